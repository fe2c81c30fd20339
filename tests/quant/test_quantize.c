/* Tests for the weight quantizers (src/quant/quantize.h): round trips through the scalar
 * dequantizer with per-type error bounds, edge rows (zeros, one huge value, denormals,
 * values that overflow the F16 scales, NaN/inf detection), row independence, and the
 * golden check: every tensor of the llama3.2-tiny F32 model quantized to the type the
 * matching llama-quantize file holds gives exactly that file's bytes. */
#include "../test.h"
#include "gguf/gguf.h"
#include "quant/blocks.h"
#include "quant/quantize.h"

#include <float.h>
#include <stdint.h>

static const uint32_t qtypes[] = {
    LL_TYPE_F32, LL_TYPE_F16, LL_TYPE_BF16, LL_TYPE_Q8_0, LL_TYPE_Q4_0, LL_TYPE_Q4_1,
    LL_TYPE_Q5_0, LL_TYPE_Q5_1, LL_TYPE_Q2_K, LL_TYPE_Q3_K, LL_TYPE_Q4_K, LL_TYPE_Q5_K, LL_TYPE_Q6_K,
};
enum { N_QTYPES = sizeof qtypes / sizeof qtypes[0], ROW = 512 };

static uint64_t rng_state = 0x51A7E0C0FFEEull;
static float rng_uniform(float lo, float hi) {       /* xorshift64* */
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545F4914F6CDD1Dull;
    return lo + (hi - lo) * (float)(r >> 40) / (float)(1 << 24);
}

/* Upper bounds on the NRMSE of Gaussian-like rows, about 1.5x what each type reaches on the
 * tiny model's weights (locallama quantize --pure --stats: Q8_0 0.0053, Q6_K 0.018, Q5_K
 * 0.036, Q5_1 0.038, Q5_0 0.043, Q4_K 0.071, Q4_1 0.078, Q4_0 0.086, Q3_K 0.151, Q2_K 0.296). */
static double nrmse_bound(uint32_t t) {
    switch (t) {
    case LL_TYPE_F32: return 0;
    case LL_TYPE_F16: return 1e-3;
    case LL_TYPE_BF16: return 5e-3;
    case LL_TYPE_Q8_0: return 0.008;
    case LL_TYPE_Q6_K: return 0.03;
    case LL_TYPE_Q5_K: case LL_TYPE_Q5_0: case LL_TYPE_Q5_1: return 0.065;
    case LL_TYPE_Q4_K: case LL_TYPE_Q4_0: case LL_TYPE_Q4_1: return 0.13;
    case LL_TYPE_Q3_K: return 0.22;
    case LL_TYPE_Q2_K: return 0.45;
    default: return 0;
    }
}

static size_t row_bytes(uint32_t t, int64_t n) {
    uint64_t b = 0;
    ll_type_row_bytes(t, n, &b);
    return (size_t)b;
}

/* Sum of 4 uniforms: roughly normal, like trained weights. */
static void fill_gauss(float *x, int n, float sigma) {
    for (int i = 0; i < n; i++) {
        float s = 0;
        for (int k = 0; k < 4; k++) s += rng_uniform(-1.f, 1.f);
        x[i] = s * sigma * 0.866f;
    }
}

static double nrmse(uint32_t t, const float *x, int n, const void *q) {
    float y[ROW * 4];
    double e = 0, r = 0;
    ll_quantize_error(t, x, q, n, y, &e, &r);
    return r > 0 ? sqrt(e / r) : 0;
}

static void test_round_trip_every_type(void) {
    float x[ROW * 4];
    static uint8_t q[ROW * 4 * 4];
    fill_gauss(x, ROW * 4, 0.05f);
    for (int i = 0; i < N_QTYPES; i++) {
        uint32_t t = qtypes[i];
        CHECK(ll_quantize_supported(t));
        ll_quantize_rows(t, x, q, 4, ROW);
        CHECK(ll_quantize_check(t, q, row_bytes(t, ROW) * 4, NULL));
        double e = nrmse(t, x, ROW * 4, q);
        CHECK_MSG(e <= nrmse_bound(t), "%s nrmse %.5f > %.5f", ll_type_traits_of(t)->name, e, nrmse_bound(t));
        if (t != LL_TYPE_F32) CHECK_MSG(e > 0, "%s reproduced random data exactly", ll_type_traits_of(t)->name);
    }
    CHECK(!ll_quantize_supported(LL_TYPE_Q8_K));
    CHECK(!ll_quantize_supported(20));   /* IQ4_NL */
}

/* The scale does not change the relative error much: quantizers are scale-free up to the
 * F16 rounding of d (test at 1e-3 and 1e3). */
static void test_scale_invariance(void) {
    float x[ROW], xs[ROW];
    static uint8_t q[ROW * 4];
    fill_gauss(x, ROW, 1.f);
    for (int i = 0; i < N_QTYPES; i++) {
        uint32_t t = qtypes[i];
        for (int s = 0; s < 2; s++) {
            float k = s ? 1e3f : 1e-3f;
            for (int j = 0; j < ROW; j++) xs[j] = x[j] * k;
            ll_quantize_rows(t, xs, q, 1, ROW);
            double e = nrmse(t, xs, ROW, q);
            CHECK_MSG(e <= nrmse_bound(t) * 1.2 + 1e-3, "%s at scale %g: nrmse %.5f", ll_type_traits_of(t)->name, k, e);
        }
    }
}

/* An all-zero row quantizes to all-zero weights, with finite (zero) scales. */
static void test_zero_row(void) {
    float x[ROW] = {0}, y[ROW];
    static uint8_t q[ROW * 4];
    for (int i = 0; i < N_QTYPES; i++) {
        uint32_t t = qtypes[i];
        memset(q, 0xAB, sizeof q);
        ll_quantize_rows(t, x, q, 1, ROW);
        CHECK(ll_quantize_check(t, q, row_bytes(t, ROW), NULL));
        ll_dequantize_row(t, q, y, ROW);
        int nz = 0;
        for (int j = 0; j < ROW; j++) nz += y[j] != 0.0f;
        CHECK_MSG(nz == 0, "%s: %d nonzero values from a zero row", ll_type_traits_of(t)->name, nz);
    }
}

/* One value 1000x larger than the rest: it must come back close (it sets the block scale),
 * and the row stays finite. */
static void test_one_huge_value(void) {
    float x[ROW], y[ROW];
    static uint8_t q[ROW * 4];
    fill_gauss(x, ROW, 0.01f);
    x[77] = 10.0f;
    for (int i = 0; i < N_QTYPES; i++) {
        uint32_t t = qtypes[i];
        ll_quantize_rows(t, x, q, 1, ROW);
        CHECK(ll_quantize_check(t, q, row_bytes(t, ROW), NULL));
        ll_dequantize_row(t, q, y, ROW);
        /* Q2_K/Q3_K keep the outlier only to a few percent; all others closer */
        double tol = t == LL_TYPE_Q2_K || t == LL_TYPE_Q3_K ? 0.25 : 0.05;
        CHECK_MSG(fabs(y[77] - 10.0) <= 10.0 * tol, "%s: outlier 10 came back as %g", ll_type_traits_of(t)->name, y[77]);
        for (int j = 0; j < ROW; j++) CHECK(isfinite(y[j]));
    }
}

/* Denormal inputs: no NaN or infinity anywhere, and nothing larger than the input. */
static void test_denormal_row(void) {
    float x[ROW], y[ROW];
    static uint8_t q[ROW * 4];
    for (int j = 0; j < ROW; j++) x[j] = (j % 2 ? 1 : -1) * FLT_MIN * (float)(j % 7) / 8.f;
    for (int i = 0; i < N_QTYPES; i++) {
        uint32_t t = qtypes[i];
        ll_quantize_rows(t, x, q, 1, ROW);
        CHECK_MSG(ll_quantize_check(t, q, row_bytes(t, ROW), NULL), "%s", ll_type_traits_of(t)->name);
        ll_dequantize_row(t, q, y, ROW);
        for (int j = 0; j < ROW; j++) CHECK(isfinite(y[j]) && fabsf(y[j]) <= FLT_MIN);
    }
}

/* Values whose block scale does not fit F16 (max|x|/127 > 65504): the check must catch the
 * infinite scale, as llama.cpp's validation does, for every quantized type. */
static void test_scale_overflow_detected(void) {
    float x[ROW];
    static uint8_t q[ROW * 4];
    fill_gauss(x, ROW, 1.f);
    x[3] = 3e9f;
    for (int i = 0; i < N_QTYPES; i++) {
        uint32_t t = qtypes[i];
        if (t == LL_TYPE_F32 || t == LL_TYPE_BF16) continue;
        ll_quantize_rows(t, x, q, 1, ROW);
        size_t bad = 99;
        CHECK_MSG(!ll_quantize_check(t, q, row_bytes(t, ROW), &bad), "%s accepted an infinite scale", ll_type_traits_of(t)->name);
        CHECK_EQ_INT(bad, t == LL_TYPE_F16 ? 3 : 0);
    }
}

/* NaN and infinity in a source row are found by the same check on F32 data. */
static void test_nan_inf_detected(void) {
    float x[64];
    fill_gauss(x, 64, 1.f);
    CHECK(ll_quantize_check(LL_TYPE_F32, x, sizeof x, NULL));
    size_t bad = 0;
    x[40] = NAN;
    CHECK(!ll_quantize_check(LL_TYPE_F32, x, sizeof x, &bad));
    CHECK_EQ_INT(bad, 40);
    x[40] = 0;
    x[5] = -INFINITY;
    CHECK(!ll_quantize_check(LL_TYPE_F32, x, sizeof x, &bad));
    CHECK_EQ_INT(bad, 5);
    uint8_t h[4] = { 0x00, 0x7C, 0x00, 0x3C };      /* F16 +inf, 1.0 */
    CHECK(!ll_quantize_check(LL_TYPE_F16, h, 4, &bad));
    uint8_t bf[4] = { 0x80, 0x3F, 0xC1, 0x7F };     /* BF16 1.0, NaN */
    CHECK(!ll_quantize_check(LL_TYPE_BF16, bf, 4, &bad));
    CHECK_EQ_INT(bad, 1);
}

/* Rows are independent: quantizing 3 rows at once equals quantizing each alone. */
static void test_rows_independent(void) {
    float x[3 * ROW];
    static uint8_t a[3 * ROW * 4], b[3 * ROW * 4];
    fill_gauss(x, 3 * ROW, 0.1f);
    for (int i = 0; i < N_QTYPES; i++) {
        uint32_t t = qtypes[i];
        size_t rb = row_bytes(t, ROW);
        ll_quantize_rows(t, x, a, 3, ROW);
        for (int r = 0; r < 3; r++) ll_quantize_rows(t, x + r * ROW, b + r * rb, 1, ROW);
        CHECK_MSG(!memcmp(a, b, 3 * rb), "%s", ll_type_traits_of(t)->name);
    }
}

/* Known values through the symmetric and affine legacy rules: [-8..7] * 0.5 in a Q4_0 block
 * has d = -4/-8 = 0.5 and is reproduced exactly, as is [-16, 15] in Q5_1 (min -16, d 1). */
static void test_legacy_exact_grid(void) {
    float x[32], y[32];
    uint8_t q[34];
    for (int j = 0; j < 32; j++) x[j] = 0.5f * (float)(j % 16 - 8);
    ll_quantize_rows(LL_TYPE_Q4_0, x, q, 1, 32);
    CHECK_EQ_INT(blk_u16(q), ll_fp32_to_fp16(0.5f));
    ll_dequantize_row(LL_TYPE_Q4_0, q, y, 32);
    for (int j = 0; j < 32; j++) CHECK(y[j] == x[j]);
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
    ll_quantize_rows(LL_TYPE_Q5_1, x, q, 1, 32);
    ll_dequantize_row(LL_TYPE_Q5_1, q, y, 32);
    for (int j = 0; j < 32; j++) CHECK(y[j] == x[j]);
}

/* The golden comparison: llama-quantize (0c1e570) output for the tiny model, tensor by
 * tensor, from our quantizers fed the F32 original. */
static void test_golden_tiny_model_bytes(void) {
    static const char *files[] = {
        "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q6_K",
        "Q3_K_M", "Q4_K_M", "Q5_K_M",
    };
    char path[512];
    snprintf(path, sizeof path, "%s/reference/llama3.2-tiny/llama3.2-tiny-v2k-F32.gguf", LL_SHARED_DIR);
    ll_error err = {0};
    ll_gguf *src = NULL;
    if (ll_gguf_open(&src, path, &err) != LL_OK) { CHECK_MSG(0, "%s", err.msg); return; }
    int n_seen[LL_TYPE_COUNT] = {0};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        snprintf(path, sizeof path, "%s/reference/llama3.2-tiny/llama3.2-tiny-v2k-%s.gguf", LL_SHARED_DIR, files[f]);
        ll_gguf *gold = NULL;
        if (ll_gguf_open(&gold, path, &err) != LL_OK) { CHECK_MSG(0, "%s", err.msg); continue; }
        for (size_t i = 0; i < ll_gguf_n_tensors(gold); i++) {
            const ll_gguf_tensor *g = ll_gguf_tensor_at(gold, i);
            char name[80];
            snprintf(name, sizeof name, "%.*s", LL_STR(g->name));
            const ll_gguf_tensor *s = ll_gguf_find_tensor(src, name);
            CHECK_MSG(s != NULL, "%s: %s missing from the F32 file", files[f], name);
            if (!s) continue;
            int64_t nrows = g->ne[1] * g->ne[2] * g->ne[3];
            uint8_t *out = malloc(g->n_bytes);
            ll_quantize_rows(g->type, s->data, out, nrows, g->ne[0]);
            size_t first = 0, ndiff = 0;
            for (size_t k = 0; k < g->n_bytes; k++)
                if (out[k] != ((const uint8_t *)g->data)[k]) { if (!ndiff++) first = k; }
            CHECK_MSG(ndiff == 0, "%s %s (%s): %zu of %llu bytes differ, first at %zu", files[f], name,
                      ll_type_traits_of(g->type)->name, ndiff, (unsigned long long)g->n_bytes, first);
            n_seen[g->type]++;
            free(out);
        }
        ll_gguf_close(gold);
    }
    ll_gguf_close(src);
    /* every type we write was covered by at least one golden tensor (Q3_K via Q3_K_M, Q4_K
     * and Q5_K via the _M mixes) */
    for (int i = 0; i < N_QTYPES; i++)
        CHECK_MSG(n_seen[qtypes[i]] > 0, "no golden tensor of type %s", ll_type_traits_of(qtypes[i])->name);
}

/* The importance-matrix path: without a matrix it is the plain path; with one it trades error
 * on unimportant columns for error on important ones, so the error weighted by the matrix
 * must drop (summed over 16 rows) for every type that uses it, and Q8_0 ignores it. */
static void test_imatrix_weights_the_error(void) {
    enum { R = 16 };
    static float x[R * ROW], y[ROW], qw[ROW];
    static uint8_t a[R * ROW * 4], b[R * ROW * 4];
    fill_gauss(x, R * ROW, 0.05f);
    for (int j = 0; j < ROW; j++) qw[j] = j % 8 == 0 ? 100.f : 0.01f;
    for (int i = 0; i < N_QTYPES; i++) {
        uint32_t t = qtypes[i];
        size_t rb = row_bytes(t, ROW);
        ll_quantize_rows(t, x, a, R, ROW);
        ll_quantize_rows_imatrix(t, x, b, R, ROW, NULL);
        CHECK_MSG(!memcmp(a, b, R * rb), "%s: NULL matrix differs from the plain path", ll_type_traits_of(t)->name);
        ll_quantize_rows_imatrix(t, x, b, R, ROW, qw);
        CHECK(ll_quantize_check(t, b, R * rb, NULL));
        double ea = 0, eb = 0;
        for (int r = 0; r < R; r++) {
            const float *xr = x + r * ROW;
            ll_dequantize_row(t, a + r * rb, y, ROW);
            for (int j = 0; j < ROW; j++) ea += qw[j] * (y[j] - xr[j]) * (y[j] - xr[j]);
            ll_dequantize_row(t, b + r * rb, y, ROW);
            for (int j = 0; j < ROW; j++) eb += qw[j] * (y[j] - xr[j]) * (y[j] - xr[j]);
        }
        bool uses = t != LL_TYPE_F32 && t != LL_TYPE_F16 && t != LL_TYPE_BF16 && t != LL_TYPE_Q8_0;
        if (uses) CHECK_MSG(eb < ea, "%s: weighted error %.4g with the matrix, %.4g without", ll_type_traits_of(t)->name, eb, ea);
        else CHECK_MSG(!memcmp(a, b, R * rb), "%s should ignore the matrix", ll_type_traits_of(t)->name);
    }
}

int main(void) {
    RUN(test_round_trip_every_type);
    RUN(test_scale_invariance);
    RUN(test_zero_row);
    RUN(test_one_huge_value);
    RUN(test_denormal_row);
    RUN(test_scale_overflow_detected);
    RUN(test_nan_inf_detected);
    RUN(test_rows_independent);
    RUN(test_legacy_exact_grid);
    RUN(test_imatrix_weights_the_error);
    RUN(test_golden_tiny_model_bytes);
    return test_summary();
}
