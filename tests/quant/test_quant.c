/* tests for src/quant: the worked examples of gguf-and-quants.md B.2, B.5 and C.2 (byte-exact),
 * float conversion properties, activation round trips, reference dots against the dot of the
 * dequantized rows, and row-size arithmetic. */
#include "quant/blocks.h"
#include "kernels/kernels.h"
#include "../test.h"
#include "../quant_random.h"

#include <stdint.h>

/* ---- helpers ------------------------------------------------------------------------------- */


static size_t hex_decode(const char *hex, uint8_t *out, size_t cap) {
    size_t n = 0;
    for (const char *p = hex; *p && n < cap; ) {
        if (*p == ' ' || *p == '\n') { p++; continue; }
        unsigned v;
        sscanf(p, "%2x", &v);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float f32_from(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* ---- B.2 float types ------------------------------------------------------------------------ */

static void test_B2_fp16_examples(void) {
    CHECK(ll_fp16_to_fp32(0x3C00) == 1.0f);
    CHECK(ll_fp16_to_fp32(0xC100) == -2.5f);
    CHECK(ll_fp16_to_fp32(0x7BFF) == 65504.0f);
    CHECK(ll_fp16_to_fp32(0x0001) == 0x1p-24f);
    CHECK(ll_fp16_to_fp32(0x0001) == 5.9604645e-08f);
    CHECK(isinf(ll_fp16_to_fp32(0x7C00)) && ll_fp16_to_fp32(0x7C00) > 0);
    CHECK(isnan(ll_fp16_to_fp32(0xFE00)));
    CHECK(ll_fp16_to_fp32(0x03FF) == 1023 * 0x1p-24f);          /* largest subnormal */
    CHECK(ll_fp16_to_fp32(0x0400) == 0x1p-14f);                 /* smallest normal */
    CHECK(f32_bits(ll_fp16_to_fp32(0x8000)) == 0x80000000u);    /* -0 */
    CHECK(isinf(ll_fp16_to_fp32(0xFC00)) && ll_fp16_to_fp32(0xFC00) < 0);
}

static void test_B2_bf16_examples(void) {
    CHECK(ll_bf16_to_fp32(0x3F80) == 1.0f);
    CHECK(ll_bf16_to_fp32(0xC020) == -2.5f);
    CHECK(ll_bf16_to_fp32(0x4049) == 3.140625f);
    CHECK(ll_bf16_to_fp32(0x0001) == f32_from(0x00010000));
    CHECK_NEAR(ll_bf16_to_fp32(0x0001), 9.18355e-41, 1e-45);
    /* f32 -> bf16: nearest even on the dropped half, NaN quiet with sign kept. */
    CHECK_EQ_INT(ll_fp32_to_bf16(1.0f), 0x3F80);
    CHECK_EQ_INT(ll_fp32_to_bf16(f32_from(0x3F808000)), 0x3F80);   /* tie, even stays */
    CHECK_EQ_INT(ll_fp32_to_bf16(f32_from(0x3F818000)), 0x3F82);   /* tie, odd rounds up */
    CHECK_EQ_INT(ll_fp32_to_bf16(f32_from(0x3F808001)), 0x3F81);
    CHECK_EQ_INT(ll_fp32_to_bf16(f32_from(0x7F800001)), 0x7FC0);   /* signalling -> quiet */
    CHECK_EQ_INT(ll_fp32_to_bf16(f32_from(0xFF800001)), 0xFFC0);
    CHECK_EQ_INT(ll_fp32_to_bf16(f32_from(0x7F7FFFFF)), 0x7F80);   /* overflow to inf */
    CHECK_EQ_INT(ll_fp32_to_bf16(-INFINITY), 0xFF80);
}

static void test_B2_fp32_to_fp16_rounding(void) {
    CHECK_EQ_INT(ll_fp32_to_fp16(1.0f), 0x3C00);
    CHECK_EQ_INT(ll_fp32_to_fp16(-2.5f), 0xC100);
    CHECK_EQ_INT(ll_fp32_to_fp16(65504.0f), 0x7BFF);
    CHECK_EQ_INT(ll_fp32_to_fp16(65519.99f), 0x7BFF);
    CHECK_EQ_INT(ll_fp32_to_fp16(65520.0f), 0x7C00);           /* tie to even = inf */
    CHECK_EQ_INT(ll_fp32_to_fp16(1e10f), 0x7C00);
    CHECK_EQ_INT(ll_fp32_to_fp16(-INFINITY), 0xFC00);
    CHECK_EQ_INT(ll_fp32_to_fp16(1.0f + 0x1p-11f), 0x3C00);    /* tie, even stays */
    CHECK_EQ_INT(ll_fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3C02); /* tie, odd rounds up */
    CHECK_EQ_INT(ll_fp32_to_fp16(0x1p-24f), 0x0001);
    CHECK_EQ_INT(ll_fp32_to_fp16(0x1p-25f), 0x0000);           /* tie to even = 0 */
    CHECK_EQ_INT(ll_fp32_to_fp16(0x1.8p-24f), 0x0002);         /* 1.5 units -> 2 */
    CHECK_EQ_INT(ll_fp32_to_fp16(0x1.000002p-25f), 0x0001);    /* just over half */
    CHECK_EQ_INT(ll_fp32_to_fp16(0x1.ffcp-15f), 0x0400);       /* 1023.5 units: tie, up into normals */
    CHECK_EQ_INT(ll_fp32_to_fp16(-0.0f), 0x8000);
    CHECK_EQ_INT(ll_fp32_to_fp16(1e-30f), 0x0000);
    uint16_t h = ll_fp32_to_fp16(NAN);
    CHECK((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0 && (h & 0x200));
    CHECK((ll_fp32_to_fp16(f32_from(0xFF800001)) & 0xFE00) == 0xFE00); /* quiet, sign kept */
}

/* Every f16 survives f16 -> f32 -> f16 unchanged (NaN stays a NaN). */
static void test_B2_fp16_round_trip_all(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ll_fp16_to_fp32((uint16_t)h);
        uint16_t back = ll_fp32_to_fp16(f);
        bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF);
        if (nan ? !(isnan(f) && (back & 0x7C00) == 0x7C00 && (back & 0x3FF)) : back != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ll_bf16_to_fp32((uint16_t)h);
        bool nan = (h & 0x7F80) == 0x7F80 && (h & 0x7F);
        uint16_t back = ll_fp32_to_bf16(f);
        if (nan ? !isnan(ll_bf16_to_fp32(back)) : back != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

/* On random f32 bit patterns, f32 -> f16 picks the nearest f16 (ties to even), checked in
 * double against both neighbours. */
static void test_B2_fp32_to_fp16_nearest_random(void) {
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        uint32_t u = (uint32_t)rng_u64();
        /* Bias towards the f16 range (exponents 100..145) half of the time. */
        if (i & 1) u = (u & 0x807FFFFFu) | (uint32_t)(100 + rng_u64() % 46) << 23;
        float x = f32_from(u);
        if (isnan(x)) continue;
        uint16_t h = ll_fp32_to_fp16(x);
        double hv = ll_fp16_to_fp32(h), xv = x;
        if (fabs(xv) >= 65520.0) { if ((h & 0x7FFF) != 0x7C00) bad++; continue; }
        double err = fabs(hv - xv);
        for (int k = -1; k <= 1; k += 2) {            /* neighbours in magnitude */
            uint16_t mag = (uint16_t)(h & 0x7FFF);
            if ((k < 0 && mag == 0) || (k > 0 && mag >= 0x7BFF)) continue;
            uint16_t nb = (uint16_t)((h & 0x8000) | (mag + k));
            double e2 = fabs((double)ll_fp16_to_fp32(nb) - xv);
            if (e2 < err || (e2 == err && (h & 1))) bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- B.5 worked examples -------------------------------------------------------------------- */

struct worked {
    uint32_t type;
    const char *hex;
    int n_y; int idx[18]; float y[18];
    double sum;
};

#define Y8 0, 1, 2, 3, 4, 5, 6, 7
static const struct worked worked_examples[] = {
    { LL_TYPE_Q4_0, "00380b30557a9fc4e90e33587da2c7ec1136", 12,
      { Y8, 15, 16, 17, 31 }, { 1.5f, -4, -1.5f, 1, 3.5f, -2, 0.5f, 3, -1, -4, -2.5f, -2.5f }, -15.5 },
    { LL_TYPE_Q4_1, "003400bc0b30557a9fc4e90e33587da2c7ec1136", 12,
      { Y8, 15, 16, 17, 31 }, { 1.75f, -1, 0.25f, 1.5f, 2.75f, 0, 1.25f, 2.5f, 0.5f, -1, -0.25f, -0.25f }, 24.25 },
    { LL_TYPE_Q5_0, "00380ff055aa0b30557a9fc4e90e33587da2c7ec1136", 12,
      { Y8, 15, 16, 17, 31 }, { 5.5f, 0, 2.5f, 5, -0.5f, -6, -3.5f, -1, 3, 0, -6.5f, 1.5f }, -15.5 },
    { LL_TYPE_Q5_1, "003400c00ff055aa0b30557a9fc4e90e33587da2c7ec1136", 12,
      { Y8, 15, 16, 17, 31 }, { 4.75f, 2, 3.25f, 4.5f, 1.75f, -1, 0.25f, 1.5f, 3.5f, 2, -1.25f, 2.75f }, 56.25 },
    { LL_TYPE_Q8_0, "00308089929ba4adb6bfc8d1dae3ecf5fe071019222b343d464f58616a737c858e97", 12,
      { Y8, 15, 16, 17, 31 },
      { -16, -14.875f, -13.75f, -12.625f, -11.5f, -10.375f, -9.25f, -8.125f, 0.875f, 2, 3.125f, -13.125f }, -50 },
    { LL_TYPE_Q2_K,
      "03203d5a7794b1ceeb0825425f7c99b60b30557a9fc4e90e33587da2c7ec1136"
      "5b80a5caef14395e83a8cdf2173c6186abd0f51a3f6489aed3f81d42678cb1d6"
      "fb20456a8fb4d9fe23486d92b7dc012600380034", 18,
      { Y8, 16, 31, 32, 33, 63, 64, 127, 128, 200, 255 },
      { 4.5f, 0, 1.5f, 3, 4.5f, 0, 1.5f, 3, -0.5f, -0.5f, 12.25f, -0.75f, 3.75f, -1.75f, 11, 13, 6.25f, -2.75f },
      1070 },
    { LL_TYPE_Q3_K,
      "073c71a6db10457aafe4194e83b8ed22578cc1f62b6095caff34699ed3083d72"
      "0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186"
      "abd0f51a3f6489aed3f81d42678cb1d6fb20456a8fb4d9fe23486d92b7dc0126"
      "054c93da2168aff63d84cb120038", 18,
      { Y8, 16, 31, 32, 33, 63, 64, 127, 128, 200, 255 },
      { -16.5f, 22, -5.5f, 11, -16.5f, 22, -5.5f, 11, -30, 20, 19, -38, 5, 0, 26, -8, 45, 34 }, 131.5 },
    { LL_TYPE_Q4_K,
      "00380034054c93da2168aff63d84cb120b30557a9fc4e90e33587da2c7ec1136"
      "5b80a5caef14395e83a8cdf2173c6186abd0f51a3f6489aed3f81d42678cb1d6"
      "fb20456a8fb4d9fe23486d92b7dc01264b7095badf04294e7398bde2072c5176"
      "9bc0e50a2f54799ec3e80d32577ca1c6eb10355a7fa4c9ee13385d82a7ccf116"
      "3b6085aacff4193e6388add2f71c4166", 18,
      { Y8, 16, 31, 32, 33, 63, 64, 127, 128, 200, 255 },
      { 19.25f, -8.25f, 4.25f, 16.75f, 29.25f, 1.75f, 14.25f, 26.75f, 19.25f, 6.75f, -10, 8, 38, 92.75f,
        12.5f, 70.75f, 53.5f, 137.75f }, 20268 },
    { LL_TYPE_Q5_K,
      "00380034054c93da2168aff63d84cb12073c71a6db10457aafe4194e83b8ed22"
      "578cc1f62b6095caff34699ed3083d720b30557a9fc4e90e33587da2c7ec1136"
      "5b80a5caef14395e83a8cdf2173c6186abd0f51a3f6489aed3f81d42678cb1d6"
      "fb20456a8fb4d9fe23486d92b7dc01264b7095badf04294e7398bde2072c5176"
      "9bc0e50a2f54799ec3e80d32577ca1c6eb10355a7fa4c9ee13385d82a7ccf116"
      "3b6085aacff4193e6388add2f71c4166", 18,
      { Y8, 16, 31, 32, 33, 63, 64, 127, 128, 200, 255 },
      { 59.25f, -8.25f, 44.25f, 16.75f, 69.25f, 1.75f, 54.25f, 26.75f, 59.25f, 6.75f, 86, 8, 134, 244.75f,
        12.5f, 70.75f, 53.5f, 137.75f }, 44092 },
    { LL_TYPE_Q6_K,
      "0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186"
      "abd0f51a3f6489aed3f81d42678cb1d6fb20456a8fb4d9fe23486d92b7dc0126"
      "4b7095badf04294e7398bde2072c51769bc0e50a2f54799ec3e80d32577ca1c6"
      "eb10355a7fa4c9ee13385d82a7ccf1163b6085aacff4193e6388add2f71c4166"
      "073c71a6db10457aafe4194e83b8ed22578cc1f62b6095caff34699ed3083d72"
      "a7dc11467bb0e51a4f84b9ee23588dc2f72c6196cb00356a9fd4093e73a8dd12"
      "01fe03fc05fa07f809f60bf40df20ff00038", 18,
      { Y8, 16, 31, 32, 33, 63, 64, 127, 128, 200, 255 },
      { 13.5f, -16, -5.5f, 5, 15.5f, -14, -3.5f, 7, -27, -6, -7.5f, 24, 52, -80, 56, 121.5f, -162.5f, 208 }, -98 },
};

/* P(n, a, b): byte k = (k*a + b) mod 256, the generator of the B.5 byte arrays. */
static void pgen(uint8_t *out, int n, int a, int b) { for (int k = 0; k < n; k++) out[k] = (uint8_t)(k * a + b); }

static void test_B5_worked_examples(void) {
    for (size_t e = 0; e < sizeof worked_examples / sizeof worked_examples[0]; e++) {
        const struct worked *w = &worked_examples[e];
        const ll_type_traits *t = ll_type_traits_of(w->type);
        uint8_t blk[512];
        size_t nbytes = hex_decode(w->hex, blk, sizeof blk);
        CHECK_MSG(nbytes == t->bytes, "%s: %zu bytes, expected %zu", t->name, nbytes, t->bytes);
        float y[256];
        ll_dequantize_row(w->type, blk, y, t->blck);
        for (int k = 0; k < w->n_y; k++)
            CHECK_MSG(y[w->idx[k]] == w->y[k], "%s: y[%d] = %.9g, expected %.9g", t->name,
                      w->idx[k], y[w->idx[k]], w->y[k]);
        double sum = 0;
        for (int k = 0; k < t->blck; k++) sum += y[k];
        CHECK_MSG(sum == w->sum, "%s: sum %.9g, expected %.9g", t->name, sum, w->sum);
        /* Unaligned source: the same block at an odd address gives the same values. */
        uint8_t shifted[600];
        memcpy(shifted + 3, blk, nbytes);
        float y2[256];
        ll_dequantize_row(w->type, shifted + 3, y2, t->blck);
        CHECK_MSG(memcmp(y, y2, sizeof(float) * (size_t)t->blck) == 0, "%s unaligned", t->name);
    }
}

/* The hex strings really are the P() patterns the spec names (guards against typos above). */
static void test_B5_worked_example_bytes(void) {
    uint8_t want[210], got[210];
    hex_decode(worked_examples[9].hex, got, sizeof got);              /* Q6_K */
    pgen(want, 128, 37, 11); pgen(want + 128, 64, 53, 7);
    for (int k = 0; k < 16; k++) want[192 + k] = (uint8_t)(int8_t)((k % 2 ? -1 : 1) * (k + 1));
    want[208] = 0x00; want[209] = 0x38;
    CHECK(memcmp(want, got, 210) == 0);
    hex_decode(worked_examples[7].hex, got, sizeof got);              /* Q4_K */
    want[0] = 0x00; want[1] = 0x38; want[2] = 0x00; want[3] = 0x34;
    pgen(want + 4, 12, 71, 5); pgen(want + 16, 128, 37, 11);
    CHECK(memcmp(want, got, 144) == 0);
}

/* The unpacked sub-block scales listed in B.5 for Q2_K, Q3_K and Q4_K. */
static void test_B5_scale_unpacking(void) {
    uint8_t s[12];
    pgen(s, 12, 71, 5);
    static const int8_t q3[16] = { -11, -20, 19, 10, 17, -8, 15, -26, 16, -28, -23, -3, -30, 6, 26, -17 };
    int8_t got[16];
    blk_q3_k_scales(s, got);
    CHECK(memcmp(q3, got, 16) == 0);
    static const uint8_t k4[8][2] = { {5,33}, {12,40}, {19,47}, {26,54}, {13,3}, {20,24}, {43,44}, {50,49} };
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        blk_k4_scale_min(s, j, &sc, &m);
        CHECK_MSG(sc == k4[j][0] && m == k4[j][1], "Q4_K sub-block %d: (%d,%d)", j, sc, m);
    }
}

/* ---- C.2 activation quantization ------------------------------------------------------------ */

static void test_C2_q8_k_example(void) {
    float x[256] = { 0.5f, -1.0f, 0.25f, 0.3f };
    uint8_t b[Q8_K_BYTES];
    ll_quantize_act_ref(LL_TYPE_Q8_K, x, b, 256);
    const int8_t *q = (const int8_t *)(b + Q8_K_QS);
    CHECK_EQ_INT(q[0], 64); CHECK_EQ_INT(q[1], -127); CHECK_EQ_INT(q[2], 32); CHECK_EQ_INT(q[3], 38);
    int nz = 0;
    for (int k = 4; k < 256; k++) nz += q[k] != 0;
    CHECK_EQ_INT(nz, 0);
    CHECK(blk_f32(b + Q8_K_D) == 1.0f / 127.0f);
    CHECK_NEAR(blk_f32(b + Q8_K_D), 0.007874016, 1e-9);
    CHECK_EQ_INT(blk_i16(b + Q8_K_BSUMS), 7);
    for (int k = 1; k < 16; k++) CHECK_EQ_INT(blk_i16(b + Q8_K_BSUMS + 2 * k), 0);
    /* A positive max gives a negative d and becomes -127; the first of equal magnitudes wins. */
    float y[256] = { 0 };
    y[10] = 2.0f; y[20] = -2.0f; y[30] = 1.0f;
    ll_quantize_act_ref(LL_TYPE_Q8_K, y, b, 256);
    q = (const int8_t *)(b + Q8_K_QS);
    CHECK_EQ_INT(q[10], -127); CHECK_EQ_INT(q[20], 127); CHECK_EQ_INT(q[30], -64);
    CHECK(blk_f32(b + Q8_K_D) == 1.0f / (-127.0f / 2.0f));
    CHECK_EQ_INT(blk_i16(b + Q8_K_BSUMS), -127);
    CHECK_EQ_INT(blk_i16(b + Q8_K_BSUMS + 2), 127 - 64);
    /* All zeros: d = 0, quants 0. */
    memset(y, 0, sizeof y);
    ll_quantize_act_ref(LL_TYPE_Q8_K, y, b, 256);
    CHECK(blk_f32(b + Q8_K_D) == 0.0f);
    CHECK(b[Q8_K_QS + 5] == 0 && blk_i16(b + Q8_K_BSUMS) == 0);
}

/* With amax = 127 (d = 1), exact ties go to even on x86: 2.5 -> 2, -2.5 -> -2, 0.5 -> 0. */
static void test_C2_q8_0_ties_to_even(void) {
    float x[32] = { 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, 127.0f, -3.5f };
    uint8_t b[Q8_0_BYTES];
    ll_quantize_act_ref(LL_TYPE_Q8_0, x, b, 32);
    const int8_t *q = (const int8_t *)(b + Q8_0_QS);
    CHECK_EQ_INT(q[0], 2); CHECK_EQ_INT(q[1], -2); CHECK_EQ_INT(q[2], 0); CHECK_EQ_INT(q[3], 0);
    CHECK_EQ_INT(q[4], 2); CHECK_EQ_INT(q[5], 127); CHECK_EQ_INT(q[6], -4);
    CHECK_EQ_INT(blk_u16(b + Q8_0_D), 0x3C00);
    /* Q8_1: same quants, s = f16(d * sum) = 2 - 2 + 2 + 127 - 4 = 125. */
    uint8_t c[Q8_1_BYTES];
    ll_quantize_act_ref(LL_TYPE_Q8_1, x, c, 32);
    CHECK(memcmp(c + Q8_1_QS, b + Q8_0_QS, 32) == 0);
    CHECK_EQ_INT(blk_u16(c + Q8_1_D), 0x3C00);
    CHECK(blk_f16(c + Q8_1_S) == 125.0f);
    /* All-zero block: d = 0 and quants 0 (no division by zero). */
    float z[32] = { 0 };
    ll_quantize_act_ref(LL_TYPE_Q8_0, z, b, 32);
    CHECK_EQ_INT(blk_u16(b + Q8_0_D), 0);
    CHECK(q[0] == 0 && q[31] == 0);
}

/* s uses the f32 d, not the f16-rounded one. */
static void test_C2_q8_1_sum_uses_f32_d(void) {
    float x[32];
    for (int k = 0; k < 32; k++) x[k] = 0.1f + 0.01f * (float)k;
    uint8_t b[Q8_1_BYTES];
    ll_quantize_act_ref(LL_TYPE_Q8_1, x, b, 32);
    float amax = x[31], d = amax / 127.0f, id = 127.0f / amax;
    int sum = 0;
    for (int k = 0; k < 32; k++) sum += (int)nearbyintf(x[k] * id);
    CHECK_EQ_INT(blk_u16(b + Q8_1_S), ll_fp32_to_fp16(d * (float)sum));
    CHECK_EQ_INT(blk_u16(b + Q8_1_D), ll_fp32_to_fp16(d));
}

/* Quantize then dequantize: every element within half a step (plus the f16 rounding of d). */
static void test_activation_round_trips(void) {
    static const uint32_t types[] = { LL_TYPE_Q8_0, LL_TYPE_Q8_1, LL_TYPE_Q8_K, LL_TYPE_F16,
                                      LL_TYPE_BF16, LL_TYPE_F32 };
    enum { N = 1024 };
    float x[N], y[N];
    static uint8_t buf[N * 4];
    for (int k = 0; k < N; k++) x[k] = rng_uniform(-3, 3) * (k % 97 == 0 ? 10.0f : 1.0f);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const ll_type_traits *tt = ll_type_traits_of(types[t]);
        ll_quantize_act_ref(types[t], x, buf, N);
        ll_dequantize_row(types[t], buf, y, N);
        int bad = 0;
        for (int k = 0; k < N; k++) {
            int64_t b0 = k / tt->blck * tt->blck;
            float amax = 0;
            for (int64_t j = b0; j < b0 + tt->blck; j++) amax = fmaxf(amax, fabsf(x[j]));
            double tol;
            if (tt->blck == 1) tol = fabs(x[k]) * (types[t] == LL_TYPE_BF16 ? 0x1p-8 : 0x1p-11);
            else tol = amax / 127.0 * (0.5 + 127 * 0x1p-11);   /* half a step + f16 d error */
            if (fabs((double)y[k] - x[k]) > tol * 1.0001) bad++;
        }
        CHECK_MSG(bad == 0, "%s: %d elements off", tt->name, bad);
    }
}

/* ---- reference dots ---------------------------------------------------------------------------
 * On random weights and activations, ll_vec_dot_ref equals the double dot of the two dequantized
 * rows up to f32 rounding: |err| <= 1e-5 * sum |w_i * a_i| + 1e-6. */


static void test_dot_ref_matches_dequantized(void) {
    enum { N = 2048 };
    static uint8_t w[N * 4], a[N * 4];
    static float x[N], wd[N], ad[N];
    for (size_t t = 0; t < sizeof wtypes / sizeof wtypes[0]; t++) {
        const ll_type_traits *tt = ll_type_traits_of(wtypes[t].type);
        /* One block, an odd number of blocks, a long row, and a long odd row. */
        const int64_t lens[4] = { tt->blck, 3 * tt->blck, N, N - tt->blck };
        for (int rep = 0; rep < 4; rep++) {
            int64_t n = lens[rep];
            random_weights(&wtypes[t], w, n, 0);
            for (int64_t k = 0; k < n; k++) x[k] = rng_uniform(-2, 2);
            ll_quantize_act_ref(tt->dot_type, x, a, n);
            ll_dequantize_row(wtypes[t].type, w, wd, n);
            ll_dequantize_row(tt->dot_type, a, ad, n);
            double exact = 0, mag = 0;
            for (int64_t k = 0; k < n; k++) { exact += (double)wd[k] * ad[k]; mag += fabs((double)wd[k] * ad[k]); }
            float got = ll_vec_dot_ref(wtypes[t].type, n, w, a);
            /* Q4_1/Q5_1 use a.s = f16(d * sum q) for the min term: add its rounding error. */
            double tol = 1e-5 * mag + 1e-6;
            if (tt->dot_type == LL_TYPE_Q8_1) {
                double mins = 0;
                for (int64_t b = 0; b < n / 32; b++)
                    mins += fabs(blk_f16(w + b * tt->bytes + 2)) * fabs(blk_f16(a + b * 36 + 2));
                tol += mins * 0x1p-10;
            }
            CHECK_MSG(fabs(got - exact) <= tol, "%s n=%lld: ref %.9g, dequantized %.9g, tol %.3g",
                      tt->name, (long long)n, got, exact, tol);
        }
    }
}

/* ---- type table and row sizes --------------------------------------------------------------- */

static void test_row_bytes(void) {
    uint64_t b = 0;
    CHECK(ll_type_row_bytes(LL_TYPE_Q4_K, 4096, &b) && b == 16 * 144);
    CHECK(ll_type_row_bytes(LL_TYPE_Q4_0, 64, &b) && b == 36);
    CHECK(ll_type_row_bytes(LL_TYPE_F16, 7, &b) && b == 14);
    CHECK(ll_type_row_bytes(LL_TYPE_Q8_K, 256, &b) && b == 292);
    CHECK(ll_type_row_bytes(LL_TYPE_Q6_K, 0, &b) && b == 0);
    CHECK(!ll_type_row_bytes(LL_TYPE_Q4_K, 4000, &b));            /* not a multiple of 256 */
    CHECK(!ll_type_row_bytes(LL_TYPE_Q8_0, 33, &b));
    CHECK(!ll_type_row_bytes(LL_TYPE_F32, -4, &b));
    CHECK(!ll_type_row_bytes(LL_TYPE_F32, INT64_MAX, &b));        /* overflows u64 */
    CHECK(!ll_type_row_bytes(4, 32, &b));                          /* retired id */
    CHECK(!ll_type_row_bytes(LL_TYPE_COUNT, 32, &b));
    /* The block layouts used by the kernels agree with the table. */
    static const struct { uint32_t t; size_t bytes; } lay[] = {
        { LL_TYPE_Q4_0, Q4_0_BYTES }, { LL_TYPE_Q4_1, Q4_1_BYTES }, { LL_TYPE_Q5_0, Q5_0_BYTES },
        { LL_TYPE_Q5_1, Q5_1_BYTES }, { LL_TYPE_Q8_0, Q8_0_BYTES }, { LL_TYPE_Q8_1, Q8_1_BYTES },
        { LL_TYPE_Q2_K, Q2_K_BYTES }, { LL_TYPE_Q3_K, Q3_K_BYTES }, { LL_TYPE_Q4_K, Q4_K_BYTES },
        { LL_TYPE_Q5_K, Q5_K_BYTES }, { LL_TYPE_Q6_K, Q6_K_BYTES }, { LL_TYPE_Q8_K, Q8_K_BYTES },
    };
    for (size_t k = 0; k < sizeof lay / sizeof lay[0]; k++)
        CHECK_EQ_INT(ll_type_traits_of(lay[k].t)->bytes, lay[k].bytes);
}


/* Non-finite activations (from NaN/Inf weights) must not hit an undefined float-to-int
 * conversion in the scalar quantizers (UBSan traps on it); quants stay in range. */
static void test_act_nonfinite_inputs_stay_defined(void) {
    float x[256];
    for (int i = 0; i < 256; i++) x[i] = (float)(i % 7) - 3.0f;
    x[3] = NAN; x[40] = INFINITY; x[77] = -INFINITY; x[200] = NAN;
    uint8_t q80[8 * 34], q81[8 * 36], q8k[292];
    ll_quantize_q8_0_ref(x, q80, 256);
    ll_quantize_q8_1_ref(x, q81, 256);
    ll_quantize_q8_k_ref(x, q8k, 256);
    for (int b = 0; b < 8; b++)
        for (int j = 0; j < 32; j++) {
            int v0 = (int8_t)q80[b * 34 + 2 + j], v1 = (int8_t)q81[b * 36 + 4 + j];
            CHECK(v0 >= -128 && v0 <= 127);
            CHECK(v1 >= -128 && v1 <= 127);
        }
    /* The block holding -inf gets a non-finite Q8_K scale, so the NaN reaches the logits. */
    float d;
    memcpy(&d, q8k, 4);
    CHECK(!isfinite(d));
}

/* One NaN (quiet, signalling, negative) or infinity anywhere in a row: the AVX2 and scalar
 * Q8_0, Q8_1 and Q8_K quantizers write the same bytes (they used to differ: the scalar
 * amax skipped a NaN, the AVX2 max kept or lost it by lane, and cvtps turned NaN products
 * into -128). The block holding it gets a NaN scale and zero quants, never a finite scale
 * that hides it; the other blocks are what the finite row gives. And every dot product
 * against that row, scalar or AVX2, for every weight type, is NaN (R17). */
static void test_act_nonfinite_row_agrees_and_poisons_its_block(void) {
    enum { N = 512 };
    struct ll_kernels k_ref, k_simd;
    ll_kernels_init_isa(&k_ref, "scalar");
    bool have_simd = ll_kernels_init_isa(&k_simd, "avx2");
    if (!have_simd) fprintf(stderr, "note: no AVX2 on this CPU, checking the scalar side only\n");
    static const uint32_t acts[] = { LL_TYPE_Q8_0, LL_TYPE_Q8_1, LL_TYPE_Q8_K };
    static const uint32_t specials[] = { 0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FA5A5A5u,
                                         0x7F800000u, 0xFF800000u };
    float x[N];
    for (int k = 0; k < N; k++) x[k] = rng_uniform(-3, 3);
    static uint8_t clean[N * 2], r[N * 2], v[N * 2];
    for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++) {
        uint32_t at = acts[ai];
        const ll_type_traits *tt = ll_type_traits_of(at);
        size_t blk = (size_t)tt->blck, bb = tt->bytes, row = N / blk * bb;
        k_ref.quantize_act[at](x, clean, N);
        for (size_t si = 0; si < sizeof specials / sizeof specials[0]; si++) {
            for (int pos = 0; pos < N; pos++) {
                float y[N];
                memcpy(y, x, sizeof y);
                memcpy(&y[pos], &specials[si], 4);
                memset(r, 0xAA, row);
                k_ref.quantize_act[at](y, r, N);
                if (have_simd) {
                    memset(v, 0x55, row);
                    k_simd.quantize_act[at](y, v, N);
                    size_t bad = row;
                    for (size_t k = 0; k < row; k++) if (r[k] != v[k]) { bad = k; break; }
                    CHECK_MSG(bad == row, "%s, 0x%08x at %d: AVX2 differs at byte %zu (%02x vs %02x)",
                              tt->name, (unsigned)specials[si], pos, bad, r[bad], v[bad]);
                    if (bad != row) break;
                }
                /* The block at pos: NaN scale, zero quants (and bsums); the rest untouched. */
                size_t b = (size_t)pos / blk;
                const uint8_t *q = r + b * bb;
                size_t qs = at == LL_TYPE_Q8_K ? Q8_K_QS : at == LL_TYPE_Q8_1 ? Q8_1_QS : Q8_0_QS;
                float d = at == LL_TYPE_Q8_K ? f32_from(blk_u16(q) | (uint32_t)blk_u16(q + 2) << 16)
                                             : ll_fp16_to_fp32(blk_u16(q));
                CHECK_MSG(isnan(d), "%s, 0x%08x at %d: scale %g is not NaN", tt->name,
                          (unsigned)specials[si], pos, (double)d);
                if (at == LL_TYPE_Q8_1) CHECK(isnan(ll_fp16_to_fp32(blk_u16(q + Q8_1_S))));
                size_t nz = 0;
                for (size_t k = qs; k < bb; k++) nz += q[k] != 0;
                CHECK_EQ_INT(nz, 0);
                CHECK(memcmp(r, clean, b * bb) == 0);
                CHECK(memcmp(r + (b + 1) * bb, clean + (b + 1) * bb, row - (b + 1) * bb) == 0);
                if (test_cur_failed) return;
            }
        }
    }
    /* The NaN reaches every dot product that reads the row. */
    static uint8_t w[N * 4];
    float y[N];
    memcpy(y, x, sizeof y);
    y[77] = NAN;
    for (int t = 0; t < N_WTYPES; t++) {
        const ll_type_traits *tt = ll_type_traits_of(wtypes[t].type);
        if (tt->dot_type != LL_TYPE_Q8_0 && tt->dot_type != LL_TYPE_Q8_1 && tt->dot_type != LL_TYPE_Q8_K)
            continue;
        random_weights(&wtypes[t], w, N, 0);
        k_ref.quantize_act[tt->dot_type](y, r, N);
        float ref = k_ref.dot[wtypes[t].type](N, w, r);
        CHECK_MSG(isnan(ref), "%s: scalar dot %g with a NaN activation", tt->name, (double)ref);
        if (have_simd) {
            float simd = k_simd.dot[wtypes[t].type](N, w, r);
            CHECK_MSG(isnan(simd), "%s: AVX2 dot %g with a NaN activation", tt->name, (double)simd);
        }
    }
}


int main(void) {
    RUN(test_act_nonfinite_inputs_stay_defined);
    RUN(test_act_nonfinite_row_agrees_and_poisons_its_block);
    RUN(test_B2_fp16_examples);
    RUN(test_B2_bf16_examples);
    RUN(test_B2_fp32_to_fp16_rounding);
    RUN(test_B2_fp16_round_trip_all);
    RUN(test_B2_fp32_to_fp16_nearest_random);
    RUN(test_B5_worked_examples);
    RUN(test_B5_worked_example_bytes);
    RUN(test_B5_scale_unpacking);
    RUN(test_C2_q8_k_example);
    RUN(test_C2_q8_0_ties_to_even);
    RUN(test_C2_q8_1_sum_uses_f32_d);
    RUN(test_activation_round_trips);
    RUN(test_dot_ref_matches_dequantized);
    RUN(test_row_bytes);
    return test_summary();
}
