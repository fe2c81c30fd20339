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
#include "kernels/x86/attn_util.h"
#include "kernels/x86/avx2_util.h"

#include <immintrin.h>
#include <stdbool.h>

#define LDC(c) _mm256_loadu_ps(col[c] + i)

/* Elements [k0, k1) of one row against the 8 columns, from the saved accumulators sv (8 x 8
 * lanes; zero when first). With last, its 8 results (+ 0: the dot's double tail turns -0 into
 * +0); otherwise the accumulators go back to sv. */
static inline __attribute__((always_inline)) __m256 row8(int64_t k0, int64_t k1, const uint8_t *wr,
                                                         const float *const col[8], const bool wide, float *sv,
                                                         bool first, bool last) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    if (!first) {
        s0 = _mm256_loadu_ps(sv), s1 = _mm256_loadu_ps(sv + 8), s2 = _mm256_loadu_ps(sv + 16), s3 = _mm256_loadu_ps(sv + 24);
        s4 = _mm256_loadu_ps(sv + 32), s5 = _mm256_loadu_ps(sv + 40), s6 = _mm256_loadu_ps(sv + 48), s7 = _mm256_loadu_ps(sv + 56);
    }
    for (int64_t i = k0; i < k1; i += 8) {
        const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wr + 2 * i)));
        s0 = _mm256_fmadd_ps(wv, LDC(0), s0);
        s1 = _mm256_fmadd_ps(wv, LDC(1), s1);
        s2 = _mm256_fmadd_ps(wv, LDC(2), s2);
        s3 = _mm256_fmadd_ps(wv, LDC(3), s3);
        if (!wide) continue;                              /* 4 columns: lanes 4..7 stay 0 */
        s4 = _mm256_fmadd_ps(wv, LDC(4), s4);
        s5 = _mm256_fmadd_ps(wv, LDC(5), s5);
        s6 = _mm256_fmadd_ps(wv, LDC(6), s6);
        s7 = _mm256_fmadd_ps(wv, LDC(7), s7);
    }
    if (!last) {
        _mm256_storeu_ps(sv, s0), _mm256_storeu_ps(sv + 8, s1), _mm256_storeu_ps(sv + 16, s2), _mm256_storeu_ps(sv + 24, s3);
        _mm256_storeu_ps(sv + 32, s4), _mm256_storeu_ps(sv + 40, s5), _mm256_storeu_ps(sv + 48, s6), _mm256_storeu_ps(sv + 56, s7);
        return s0;
    }
    return _mm256_add_ps(hsum8_ps(s0, s1, s2, s3, s4, s5, s6, s7), _mm256_setzero_ps());
}

/* Columns col[0..nc) (nc <= 8; the pointers past nc repeat the last column, their sums
 * dropped) against rows [0, n_rows); n a multiple of 8. Eight named accumulators (an array
 * indexed in a loop ends up on the stack). Rows go 8 at a time: their 8x8 results are
 * transposed in registers and each column gets one 8-float store; a store per result, with
 * columns n_ctx floats apart (often a multiple of 4 KiB), stalled the loads behind it. The
 * key rows of the next 8 are prefetched (they lie one cache row apart, a stride the
 * hardware prefetcher follows badly: +15% on a 4096-cell prompt). */
static inline __attribute__((always_inline)) void
rows8(int64_t n, const uint8_t *w, size_t w_stride, int64_t n_rows, const float *const col[8], int nc,
      float *out, size_t out_stride, const bool wide) {
    float sv[ROWS_MB * 64];                                /* saved accumulators, 64 floats per row */
    for (int64_t rb = 0; rb < n_rows; rb += ROWS_MB) {
        const int64_t re = n > ROWS_KC ? (rb + ROWS_MB < n_rows ? rb + ROWS_MB : n_rows) : n_rows;
        for (int64_t k0 = 0; k0 < n; k0 += ROWS_KC) {
            const int64_t k1 = n <= ROWS_KC ? n : (k0 + ROWS_KC < n ? k0 + ROWS_KC : n);
            const bool first = k0 == 0, last = k1 == n;
            int64_t r = rb;
            for (; r + 8 <= re; r += 8) {
                const uint8_t *wr = w + (size_t)r * w_stride;
                float *sr = sv + (r - rb) % ROWS_MB * 64;
                if (r + 16 <= re)
                    for (int k = 0; k < 8; k++)
                        for (int64_t l = 2 * k0; l < 2 * k1; l += 64) _mm_prefetch((const char *)(wr + (size_t)(8 + k) * w_stride + l), _MM_HINT_T0);
                const __m256 r0 = row8(k0, k1, wr, col, wide, sr, first, last);
                const __m256 r1 = row8(k0, k1, wr + w_stride, col, wide, sr + 64, first, last);
                const __m256 r2 = row8(k0, k1, wr + 2 * w_stride, col, wide, sr + 128, first, last);
                const __m256 r3 = row8(k0, k1, wr + 3 * w_stride, col, wide, sr + 192, first, last);
                const __m256 r4 = row8(k0, k1, wr + 4 * w_stride, col, wide, sr + 256, first, last);
                const __m256 r5 = row8(k0, k1, wr + 5 * w_stride, col, wide, sr + 320, first, last);
                const __m256 r6 = row8(k0, k1, wr + 6 * w_stride, col, wide, sr + 384, first, last);
                const __m256 r7 = row8(k0, k1, wr + 7 * w_stride, col, wide, sr + 448, first, last);
                if (!last) continue;
                store8x8_t(r0, r1, r2, r3, r4, r5, r6, r7, out + r, out_stride, nc);
            }
            for (; r < re; r++) {
                __m256 v = row8(k0, k1, w + (size_t)r * w_stride, col, wide, sv + (r - rb) % ROWS_MB * 64, first, last);
                if (!last) continue;
                float h[8];
                _mm256_storeu_ps(h, v);
                for (int c = 0; c < nc; c++) out[(size_t)c * out_stride + (size_t)r] = h[c];
            }
        }
        if (n <= ROWS_KC) break;                           /* short rows: all done in one pass */
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
    const float *col[8];
    for (int c = 0; c < 8; c++) col[c] = (const float *)(ab + (size_t)(c < n_cols ? c : n_cols - 1) * a_stride);
    if (n_cols <= 4) rows8(n, wb, w_stride, n_rows, col, n_cols, out, out_stride, false);   /* a token alone */
    else rows8(n, wb, w_stride, n_rows, col, n_cols, out, out_stride, true);
}
