/* kernels/x86: AVX2+FMA dots of the float types (gguf-and-quants.md C.2): F32 x F32,
 * F16 x F16 (F16C conversion, exact) and BF16 x BF16 (a shift). Products are fused into four
 * f32 accumulators of 8 lanes, reduced at the end; the tail of fewer than 8 elements is summed
 * in double, as ggml does. The reference sums everything in double, so results differ from it
 * by f32 rounding of the lane sums. */
#include "kernels/x86/avx2_util.h"

static inline __m256 load_f16x8(const uint8_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 load_bf16x8(const uint8_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static inline __m256 load_f32x8(const uint8_t *p) { return _mm256_loadu_ps((const float *)p); }

/* One body for the three types: SZ bytes per element, LOAD converts 8 elements to f32, SCALAR
 * converts one. */
#define FLOAT_DOT(SZ, LOAD, SCALAR)                                                        \
    const uint8_t *wb = w, *ab = a;                                                        \
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                            \
    int64_t i = 0;                                                                         \
    for (; i + 32 <= n; i += 32) {                                                         \
        s0 = _mm256_fmadd_ps(LOAD(wb + SZ * i), LOAD(ab + SZ * i), s0);                    \
        s1 = _mm256_fmadd_ps(LOAD(wb + SZ * (i + 8)), LOAD(ab + SZ * (i + 8)), s1);        \
        s2 = _mm256_fmadd_ps(LOAD(wb + SZ * (i + 16)), LOAD(ab + SZ * (i + 16)), s2);      \
        s3 = _mm256_fmadd_ps(LOAD(wb + SZ * (i + 24)), LOAD(ab + SZ * (i + 24)), s3);      \
    }                                                                                      \
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(LOAD(wb + SZ * i), LOAD(ab + SZ * i), s0); \
    double tail = 0.0;                                                                     \
    for (; i < n; i++) tail += (double)(SCALAR(wb + SZ * i) * SCALAR(ab + SZ * i));        \
    return (float)((double)hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) + tail);

static inline float bf16_at(const uint8_t *p) { return ll_bf16_to_fp32(blk_u16(p)); }

float ll_dot_f32_avx2(int64_t n, const void *w, const void *a) { FLOAT_DOT(4, load_f32x8, blk_f32) }
float ll_dot_f16_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    __m256 s0 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load_f16x8(wb + 2 * i), load_f16x8(ab + 2 * i), s0);
    double tail = 0.0;
    for (; i < n; i++) tail += (double)(f16_at(wb + 2 * i) * f16_at(ab + 2 * i));
    return (float)((double)hsum_ps(s0) + tail);
}
float ll_dot_bf16_avx2(int64_t n, const void *w, const void *a) { FLOAT_DOT(2, load_bf16x8, bf16_at) }

/* F16 against several activation columns (kernels.h, ll_dot_multi_fn): each 8 weights are
 * converted once; every column c (activation row a + c * as) keeps the single dot's one
 * accumulator and double tail, so out[c] is bit-identical to ll_dot_f16_avx2. One fmadd chain
 * per column also lets nc chains run side by side where the single dot waits on one. */
DOT_MULTI_BODY f16_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    __m256 s[LL_DOT_MULTI_MAX];
    COLS(c) s[c] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv = load_f16x8(wb + 2 * i);
        COLS(c) s[c] = _mm256_fmadd_ps(wv, load_f16x8(a + c * as + 2 * i), s[c]);
    }
    COLS(c) {
        double tail = 0.0;
        for (int64_t j = i; j < n; j++) tail += (double)(f16_at(wb + 2 * j) * f16_at(a + c * as + 2 * j));
        out[c] = (float)((double)hsum_ps(s[c]) + tail);
    }
}
DOT_MULTI_DEFINE(ll_dot_multi_f16_avx2, f16_cols)
