/* quant: float conversions (gguf-and-quants.md B.2) and the scalar reference dequantizer of
 * every supported type (B.3, B.4).
 *
 * Each formula is evaluated in f32 in the order the spec writes it, products in parentheses
 * first (`(d * sc) * q - (dmin * m)`), so results are bit-identical to ggml's reference
 * dequantizer; the B.5 worked examples in tests/quant check that byte for byte. */
#include "quant/blocks.h"

#include <math.h>

/* ---- float conversions ------------------------------------------------------------------ */

static float f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* binary16 -> binary32 is exact: rebias the exponent, shift the fraction, and renormalize
 * subnormals (value = frac * 2^-24). */
float ll_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, frac = h & 0x3FF;
    if (exp == 0x1F)                                    /* inf or NaN, payload kept */
        return f32_from_bits(sign | 0x7F800000u | frac << 13);
    if (exp == 0) {
        if (frac == 0) return f32_from_bits(sign);
        float v = (float)frac * 0x1p-24f;               /* exact: frac < 2^10 */
        return sign ? -v : v;
    }
    return f32_from_bits(sign | (exp + 112) << 23 | frac << 13);
}

/* binary32 -> binary16, round to nearest, ties to even; overflow to inf. NaN stays NaN: quiet
 * bit set and the top of the payload kept, which is what the F16C instruction does, so the
 * SIMD activation converter gives the same bits. */
uint16_t ll_fp32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7FFFFFFF;
    if (x > 0x7F800000) return (uint16_t)(sign | 0x7E00 | ((x >> 13) & 0x3FF));
    if (x >= 0x477FF000) return (uint16_t)(sign | 0x7C00);    /* >= 65520: rounds to inf */
    int32_t exp = (int32_t)(x >> 23) - 127 + 15;              /* binary16 biased exponent */
    uint32_t frac = x & 0x7FFFFF;
    if (exp <= 0) {
        /* Subnormal (or zero) result: the value in units of 2^-24 is m >> shift. */
        uint32_t m = frac | 0x800000, shift = (uint32_t)(14 - exp);
        if (shift >= 25) return sign;                         /* below half of 2^-24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);           /* r == 0x400 is the smallest normal: right */
    }
    uint32_t h = (uint32_t)exp << 10 | frac >> 13, rem = frac & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;      /* carry may bump the exponent */
    return (uint16_t)(sign | h);
}

float ll_bf16_to_fp32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

/* ggml's rule (B.2): NaN -> quiet NaN with its sign; otherwise add 0x7FFF plus the lowest kept
 * bit and keep the top half (round to nearest even, overflow to inf). */
uint16_t ll_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

/* ---- dequantization: the 32-element legacy types (B.3) -------------------------------------
 * Byte qs[j] holds element j in its low nibble and element j+16 in its high nibble. */

static void dequant_q4_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q4_0_BYTES, y += QK) {
        float d = blk_f16(b + Q4_0_D);
        const uint8_t *qs = b + Q4_0_QS;
        for (int j = 0; j < 16; j++) {
            y[j]      = (float)((qs[j] & 15) - 8) * d;
            y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequant_q4_1(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q4_1_BYTES, y += QK) {
        float d = blk_f16(b + Q4_1_D), m = blk_f16(b + Q4_1_M);
        const uint8_t *qs = b + Q4_1_QS;
        for (int j = 0; j < 16; j++) {
            y[j]      = (float)(qs[j] & 15) * d + m;
            y[j + 16] = (float)(qs[j] >> 4) * d + m;
        }
    }
}

/* Q5_x: bit j of the little-endian u32 qh is the fifth bit of element j. */
static void dequant_q5_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q5_0_BYTES, y += QK) {
        float d = blk_f16(b + Q5_0_D);
        uint32_t h = blk_u32(b + Q5_0_QH);
        const uint8_t *qs = b + Q5_0_QS;
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 15) | (int)((h >> j) & 1) << 4;
            int hi = (qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
            y[j]      = (float)(lo - 16) * d;
            y[j + 16] = (float)(hi - 16) * d;
        }
    }
}

static void dequant_q5_1(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q5_1_BYTES, y += QK) {
        float d = blk_f16(b + Q5_1_D), m = blk_f16(b + Q5_1_M);
        uint32_t h = blk_u32(b + Q5_1_QH);
        const uint8_t *qs = b + Q5_1_QS;
        for (int j = 0; j < 16; j++) {
            int lo = (qs[j] & 15) | (int)((h >> j) & 1) << 4;
            int hi = (qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
            y[j]      = (float)lo * d + m;
            y[j + 16] = (float)hi * d + m;
        }
    }
}

static void dequant_q8_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q8_0_BYTES, y += QK) {
        float d = blk_f16(b + Q8_0_D);
        for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)b[Q8_0_QS + j] * d;
    }
}

static void dequant_q8_1(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q8_1_BYTES, y += QK) {
        float d = blk_f16(b + Q8_1_D);                  /* s is not used to dequantize */
        for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)b[Q8_1_QS + j] * d;
    }
}

/* ---- dequantization: the K-quants (B.4) ----------------------------------------------------
 * For the 2-bit planes, element i = 128*half + 32*plane + l sits in bits 2*plane..2*plane+1
 * of qs[32*half + l]. */

static void dequant_q2_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q2_K_BYTES, y += QK_K) {
        float d = blk_f16(b + Q2_K_D), dmin = blk_f16(b + Q2_K_DMIN);
        const uint8_t *sc = b + Q2_K_SCALES, *qs = b + Q2_K_QS;
        for (int e = 0; e < QK_K; e++) {
            int half = e / 128, plane = (e % 128) / 32, l = e % 32;
            int q = (qs[32 * half + l] >> (2 * plane)) & 3;
            int s = sc[e / 16] & 15, m = sc[e / 16] >> 4;
            y[e] = (d * (float)s) * (float)q - (dmin * (float)m);
        }
    }
}

static void dequant_q3_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q3_K_BYTES, y += QK_K) {
        float d = blk_f16(b + Q3_K_D);
        int8_t sc[16];
        blk_q3_k_scales(b + Q3_K_SCALES, sc);
        const uint8_t *hm = b + Q3_K_HMASK, *qs = b + Q3_K_QS;
        for (int e = 0; e < QK_K; e++) {
            int half = e / 128, plane = (e % 128) / 32, l = e % 32;
            int low2 = (qs[32 * half + l] >> (2 * plane)) & 3;
            int q = (hm[l] >> (e / 32)) & 1 ? low2 : low2 - 4;   /* set bit: no offset */
            y[e] = (d * (float)sc[e / 16]) * (float)q;
        }
    }
}

static void dequant_q4_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q4_K_BYTES, y += QK_K) {
        float d = blk_f16(b + Q4_K_D), dmin = blk_f16(b + Q4_K_DMIN);
        const uint8_t *qs = b + Q4_K_QS;
        for (int j = 0; j < 8; j++) {                   /* sub-blocks of 32 */
            uint8_t sc, m;
            blk_k4_scale_min(b + Q4_K_SCALES, j, &sc, &m);
            float ds = d * (float)sc, dm = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                uint8_t byte = qs[32 * (j / 2) + l];
                int q = j % 2 ? byte >> 4 : byte & 15;
                y[32 * j + l] = ds * (float)q - dm;
            }
        }
    }
}

static void dequant_q5_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q5_K_BYTES, y += QK_K) {
        float d = blk_f16(b + Q5_K_D), dmin = blk_f16(b + Q5_K_DMIN);
        const uint8_t *qh = b + Q5_K_QH, *qs = b + Q5_K_QS;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            blk_k4_scale_min(b + Q5_K_SCALES, j, &sc, &m);
            float ds = d * (float)sc, dm = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                uint8_t byte = qs[32 * (j / 2) + l];
                int q = (j % 2 ? byte >> 4 : byte & 15) | ((qh[l] >> j) & 1) << 4;
                y[32 * j + l] = ds * (float)q - dm;
            }
        }
    }
}

static void dequant_q6_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q6_K_BYTES, y += QK_K) {
        float d = blk_f16(b + Q6_K_D);
        const uint8_t *ql = b + Q6_K_QL, *qh = b + Q6_K_QH;
        const int8_t *sc = (const int8_t *)(b + Q6_K_SCALES);
        for (int e = 0; e < QK_K; e++) {
            int half = e / 128, plane = (e % 128) / 32, l = e % 32;
            uint8_t lb = ql[64 * half + l + 32 * (plane % 2)];
            int low4 = plane < 2 ? lb & 15 : lb >> 4;
            int high2 = (qh[32 * half + l] >> (2 * plane)) & 3;
            int q = (low4 | high2 << 4) - 32;
            y[e] = (d * (float)sc[e / 16]) * (float)q;
        }
    }
}

static void dequant_q8_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += Q8_K_BYTES, y += QK_K) {
        float d = blk_f32(b + Q8_K_D);
        for (int e = 0; e < QK_K; e++) y[e] = d * (float)(int8_t)b[Q8_K_QS + e];
    }
}

void ll_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    switch (type) {
    case LL_TYPE_F32:  memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case LL_TYPE_F16:  for (int64_t i = 0; i < n; i++) dst[i] = blk_f16(b + 2 * i); return;
    case LL_TYPE_BF16: for (int64_t i = 0; i < n; i++) dst[i] = ll_bf16_to_fp32(blk_u16(b + 2 * i)); return;
    case LL_TYPE_Q4_0: dequant_q4_0(b, dst, n / QK); return;
    case LL_TYPE_Q4_1: dequant_q4_1(b, dst, n / QK); return;
    case LL_TYPE_Q5_0: dequant_q5_0(b, dst, n / QK); return;
    case LL_TYPE_Q5_1: dequant_q5_1(b, dst, n / QK); return;
    case LL_TYPE_Q8_0: dequant_q8_0(b, dst, n / QK); return;
    case LL_TYPE_Q8_1: dequant_q8_1(b, dst, n / QK); return;
    case LL_TYPE_Q2_K: dequant_q2_k(b, dst, n / QK_K); return;
    case LL_TYPE_Q3_K: dequant_q3_k(b, dst, n / QK_K); return;
    case LL_TYPE_Q4_K: dequant_q4_k(b, dst, n / QK_K); return;
    case LL_TYPE_Q5_K: dequant_q5_k(b, dst, n / QK_K); return;
    case LL_TYPE_Q6_K: dequant_q6_k(b, dst, n / QK_K); return;
    case LL_TYPE_Q8_K: dequant_q8_k(b, dst, n / QK_K); return;
    default:
        /* Callers check `supported` at load time (G35); zeros are a safe answer if not. */
        for (int64_t i = 0; i < n; i++) dst[i] = 0.0f;
        return;
    }
}
