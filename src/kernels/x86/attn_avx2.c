/* kernels/x86: attention scores with AVX2+FMA+F16C — many F16 key rows against a block of
 * f32 query columns in one call (kernels.h, dot_rows_xf32).
 *
 * Per key row the work is small (a head of 64 elements: 8 FMAs per column), so a call per row
 * costs as much as the row's arithmetic. Here one call walks all the rows: each row's 8-element
 * chunks are converted once and met by every column's single FMA chain (the F16 dot's order),
 * and the columns' horizontal sums are done together, 8 columns in one tree of shuffles that
 * pairs the same lanes as hsum_ps does for one: (v_i + v_{i+4}), then (s_0 + s_2) and
 * (s_1 + s_3), then their sum. IEEE addition is commutative, so every column's result is
 * bit-identical to ll_dot_f16_avx2 of the row and that column (rounded back to F16). */
#include "kernels/x86/avx2.h"
#include "kernels/x86/avx2_util.h"

#include <immintrin.h>

/* hsum_ps of v[0..7] at once: out lane c = hsum_ps(v[c]), same pairs, same order. */
static inline __m256 hsum8_ps(const __m256 v[8]) {
    __m256 s0 = _mm256_add_ps(_mm256_permute2f128_ps(v[0], v[4], 0x20), _mm256_permute2f128_ps(v[0], v[4], 0x31));
    __m256 s1 = _mm256_add_ps(_mm256_permute2f128_ps(v[1], v[5], 0x20), _mm256_permute2f128_ps(v[1], v[5], 0x31));
    __m256 s2 = _mm256_add_ps(_mm256_permute2f128_ps(v[2], v[6], 0x20), _mm256_permute2f128_ps(v[2], v[6], 0x31));
    __m256 s3 = _mm256_add_ps(_mm256_permute2f128_ps(v[3], v[7], 0x20), _mm256_permute2f128_ps(v[3], v[7], 0x31));
    /* lane 0 of s_k: column k's v_i + v_{i+4} (i < 4); lane 1: column k + 4's */
    __m256 t01 = _mm256_add_ps(_mm256_shuffle_ps(s0, s1, 0x44), _mm256_shuffle_ps(s0, s1, 0xEE));
    __m256 t23 = _mm256_add_ps(_mm256_shuffle_ps(s2, s3, 0x44), _mm256_shuffle_ps(s2, s3, 0xEE));
    /* t01 lane 0: [s0+s2, s1+s3] of column 0, then of column 1; lane 1: columns 4, 5 */
    return _mm256_hadd_ps(t01, t23);
}

/* NC columns (constant, <= 8) against rows [0, n_rows); n a multiple of 8. */
static inline __attribute__((always_inline)) void
rows_f16_xf32(int64_t n, const uint8_t *w, size_t w_stride, int64_t n_rows, const uint8_t *a,
              size_t a_stride, const int nc, float *out, size_t out_stride) {
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *wr = w + (size_t)r * w_stride;
        __m256 s[8];
        for (int c = 0; c < 8; c++) s[c] = _mm256_setzero_ps();
        for (int64_t i = 0; i < n; i += 8) {
            const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wr + 2 * i)));
            for (int c = 0; c < nc; c++)
                s[c] = _mm256_fmadd_ps(wv, _mm256_loadu_ps((const float *)(a + (size_t)c * a_stride) + i), s[c]);
        }
        float h[8];                        /* + 0: the dot's double tail turns -0 into +0 */
        _mm256_storeu_ps(h, _mm256_add_ps(hsum8_ps(s), _mm256_setzero_ps()));
        for (int c = 0; c < nc; c++) out[(size_t)c * out_stride + (size_t)r] = h[c];
    }
}

void ll_dot_rows_f16_xf32_avx2(int64_t n, const void *w, size_t w_stride, int64_t n_rows, const void *a,
                               size_t a_stride, int n_cols, float *out, size_t out_stride) {
    const uint8_t *wb = w, *ab = a;
    if (n % 8 != 0 || n_cols > 8) {                       /* a tail in double: the general kernel */
        float part[8];
        for (int64_t r = 0; r < n_rows; r++)
            for (int c0 = 0; c0 < n_cols; c0 += 8) {
                const int nc = n_cols - c0 < 8 ? n_cols - c0 : 8;
                ll_dot_multi_f16_xf32_avx2(n, wb + (size_t)r * w_stride, ab + (size_t)c0 * a_stride, a_stride, nc, part);
                for (int c = 0; c < nc; c++) out[(size_t)(c0 + c) * out_stride + (size_t)r] = part[c];
            }
        return;
    }
    switch (n_cols) {                                     /* constant column counts unroll */
    case 8: rows_f16_xf32(n, wb, w_stride, n_rows, ab, a_stride, 8, out, out_stride); break;
    case 6: rows_f16_xf32(n, wb, w_stride, n_rows, ab, a_stride, 6, out, out_stride); break;
    case 4: rows_f16_xf32(n, wb, w_stride, n_rows, ab, a_stride, 4, out, out_stride); break;
    default:
        for (int c = 0; c < n_cols; c++)                  /* 1, 2, 3, 5, 7 columns */
            rows_f16_xf32(n, wb, w_stride, n_rows, ab + (size_t)c * a_stride, a_stride, 1, out + (size_t)c * out_stride,
                          out_stride);
        break;
    }
}
