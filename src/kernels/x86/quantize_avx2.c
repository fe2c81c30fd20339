/* kernels/x86: AVX2 activation quantizers (gguf-and-quants.md C.2). Bit-identical to the
 * quant/act.c references: same amax, same id = 127/amax (or -127/max), the same f32 products,
 * and the same rounding (round-to-nearest-even instruction instead of nearbyintf).
 *
 * A block with a NaN or an infinity becomes a NaN-scale block of zero quants, as in act.c
 * (see there why). It has to be caught before the max: _mm256_max_ps returns its second
 * operand when either is NaN, so a NaN survives the max tree or not depending on its lane
 * and position, and cvtps_epi32 turns NaN and +-Inf products into INT_MIN, i.e. -128. */
#include "kernels/x86/avx2_util.h"

#include <float.h>

#define ROUND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

enum { ACT_NAN_F16 = 0x7E00 };     /* the NaN scale of a non-finite block, as in act.c */
#define ACT_NAN_F32 0x7FC00000u

static inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

/* Lanes where |x| is NaN or infinite (not <= FLT_MAX, unordered counts as true). */
static inline __m256 nonfinite_ps(__m256 ax) {
    return _mm256_cmp_ps(ax, _mm256_set1_ps(FLT_MAX), _CMP_NLE_UQ);
}

/* Four vectors of 8 i32 (elements 0-7, 8-15, 16-23, 24-31, each within -128..127) to 32 bytes
 * in element order. The packs work per 128-bit lane, so the dwords come out as
 * 0-3, 8-11, 16-19, 24-27, 4-7, 12-15, 20-23, 28-31 and one permute restores the order. */
static inline __m256i pack_i32x32(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    __m256i a = _mm256_packs_epi32(i0, i1), b = _mm256_packs_epi32(i2, i3);
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Shared by Q8_0 and Q8_1: quantize one block of 32, return d (f32) and the sum of quants.
 * Returns false, having written nothing, when the block holds a NaN or an infinity. */
static inline bool q8_block(const float *x, uint8_t *qs, int32_t *sum, float *d) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 a0 = abs_ps(v0), a1 = abs_ps(v1), a2 = abs_ps(v2), a3 = abs_ps(v3);
    __m256 bad = _mm256_or_ps(_mm256_or_ps(nonfinite_ps(a0), nonfinite_ps(a1)),
                              _mm256_or_ps(nonfinite_ps(a2), nonfinite_ps(a3)));
    if (_mm256_movemask_ps(bad)) return false;
    __m256 m = _mm256_max_ps(_mm256_max_ps(a0, a1), _mm256_max_ps(a2, a3));
    float amax = hmax_ps(m);
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    __m256 mul = _mm256_set1_ps(id);
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), ROUND));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), ROUND));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), ROUND));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), ROUND));
    if (sum) *sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    _mm256_storeu_si256((__m256i *)qs, pack_i32x32(i0, i1, i2, i3));
    *d = amax / 127.0f;
    return true;
}

void ll_quantize_q8_0_avx2(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, x += QK, b += Q8_0_BYTES) {
        float d;
        if (!q8_block(x, b + Q8_0_QS, NULL, &d)) {
            blk_put_u16(b + Q8_0_D, ACT_NAN_F16);
            memset(b + Q8_0_QS, 0, QK);
            continue;
        }
        blk_put_u16(b + Q8_0_D, (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
    }
}

void ll_quantize_q8_1_avx2(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, x += QK, b += Q8_1_BYTES) {
        int32_t sum;
        float d;
        if (!q8_block(x, b + Q8_1_QS, &sum, &d)) {
            blk_put_u16(b + Q8_1_D, ACT_NAN_F16);
            blk_put_u16(b + Q8_1_S, ACT_NAN_F16);
            memset(b + Q8_1_QS, 0, QK);
            continue;
        }
        blk_put_u16(b + Q8_1_D, (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
        blk_put_u16(b + Q8_1_S, (uint16_t)_cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT));
    }
}

/* Q8_K: the scale comes from the first element of largest magnitude, with its sign. */
void ll_quantize_q8_k_avx2(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, b += Q8_K_BYTES) {
        __m256 m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) {
            __m256 ax = abs_ps(_mm256_loadu_ps(x + j));
            bad = _mm256_or_ps(bad, nonfinite_ps(ax));
            m = _mm256_max_ps(m, ax);
        }
        float amax = hmax_ps(m);
        int16_t bsums[16] = {0};
        float d = 0.0f;
        if (_mm256_movemask_ps(bad)) {
            uint32_t nan_bits = ACT_NAN_F32;
            memcpy(&d, &nan_bits, 4);
            memset(b + Q8_K_QS, 0, QK_K);
        } else if (amax == 0.0f) {
            memset(b + Q8_K_QS, 0, QK_K);
        } else {
            __m256 am = _mm256_set1_ps(amax);
            float max = 0.0f;
            for (int j = 0; j < QK_K; j += 8) {
                int hit = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + j)), am, _CMP_EQ_OQ));
                if (hit) { max = x[j + __builtin_ctz((unsigned)hit)]; break; }
            }
            float iscale = -127.0f / max;
            __m256 mul = _mm256_set1_ps(iscale);
            const __m256i lim = _mm256_set1_epi32(127);
            for (int j = 0; j < QK_K; j += 32) {
                __m256i q[4];
                for (int k = 0; k < 4; k++) {
                    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), mul);
                    q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_round_ps(v, ROUND)), lim);
                }
                bsums[j / 16] = (int16_t)hsum_i32(_mm256_add_epi32(q[0], q[1]));
                bsums[j / 16 + 1] = (int16_t)hsum_i32(_mm256_add_epi32(q[2], q[3]));
                _mm256_storeu_si256((__m256i *)(b + Q8_K_QS + j), pack_i32x32(q[0], q[1], q[2], q[3]));
            }
            d = 1.0f / iscale;
        }
        memcpy(b + Q8_K_D, &d, 4);
        memcpy(b + Q8_K_BSUMS, bsums, sizeof bsums);
    }
}

void ll_quantize_f16_avx2(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(b + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) blk_put_u16(b + 2 * i, ll_fp32_to_fp16(x[i]));
}
