/* kernels/x86: attention's many-rows kernel (kernels.h, dot_rows_xf32) with AVX-512: F16 rows
 * (keys, or rows of V^T) against up to 8 f32 columns (queries, or weights).
 *
 * As attn_avx2.c, with one zmm holding the 8-lane accumulators of two columns (lanes 0..7
 * and 8..15) and the row's 8 converted elements broadcast to both halves, so one FMA does two
 * columns' work. The columns' current slice is first packed as [i/8][column][8], so a column
 * pair's 16 floats are one load. Every lane takes the single dot's FMAs in order and the
 * horizontal sums are attn_avx2.c's (hsum8_ps on the halves), so each result is bit-identical
 * to ll_dot_f16_avx2 of that row and column (tests/kernels). */
#include "kernels/x86/attn_util.h"
#include "kernels/x86/avx2.h"
#include "kernels/x86/avx512.h"

#include <immintrin.h>
#include <stdbool.h>

/* steps x 8 elements of one row (wr) against the packed columns cp, from the saved
 * accumulators sv (4 x 16 floats; zero when first). With last, the 8 columns' results (+ 0,
 * as the dot's double tail turns -0 into +0); otherwise the accumulators go back to sv. */
static inline __attribute__((always_inline)) __m256 zrow8(int64_t steps, const uint8_t *wr, const float *cp,
                                                          const bool wide, float *sv, bool first, bool last) {
    __m512 z0 = _mm512_setzero_ps(), z1 = z0, z2 = z0, z3 = z0;
    if (!first) {
        z0 = _mm512_loadu_ps(sv), z1 = _mm512_loadu_ps(sv + 16);
        z2 = _mm512_loadu_ps(sv + 32), z3 = _mm512_loadu_ps(sv + 48);
    }
    for (int64_t k = 0; k < steps; k++, cp += 64) {
        const __m512 wv = _mm512_broadcast_f32x8(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wr + 16 * k))));
        z0 = _mm512_fmadd_ps(wv, _mm512_load_ps(cp), z0);
        z1 = _mm512_fmadd_ps(wv, _mm512_load_ps(cp + 16), z1);
        if (!wide) continue;                              /* 4 columns: the others stay 0 */
        z2 = _mm512_fmadd_ps(wv, _mm512_load_ps(cp + 32), z2);
        z3 = _mm512_fmadd_ps(wv, _mm512_load_ps(cp + 48), z3);
    }
    if (!last) {
        _mm512_storeu_ps(sv, z0), _mm512_storeu_ps(sv + 16, z1);
        _mm512_storeu_ps(sv + 32, z2), _mm512_storeu_ps(sv + 48, z3);
        return _mm512_castps512_ps256(z0);
    }
    const __m256 s = hsum8_ps(_mm512_castps512_ps256(z0), _mm512_extractf32x8_ps(z0, 1), _mm512_castps512_ps256(z1),
                              _mm512_extractf32x8_ps(z1, 1), _mm512_castps512_ps256(z2), _mm512_extractf32x8_ps(z2, 1),
                              _mm512_castps512_ps256(z3), _mm512_extractf32x8_ps(z3, 1));
    return _mm256_add_ps(s, _mm256_setzero_ps());
}

/* Elements [k0, k1) of the 8 columns (col[c], c >= nc repeating the last) into cp. */
static void pack_cols(const float *const col[8], int64_t k0, int64_t k1, float *cp) {
    for (int64_t i = k0; i < k1; i += 8, cp += 64)
        for (int c = 0; c < 8; c++) _mm256_store_ps(cp + 8 * c, _mm256_loadu_ps(col[c] + i));
}

static inline __attribute__((always_inline)) void
zrows8(int64_t n, const uint8_t *w, size_t w_stride, int64_t n_rows, const float *const col[8], int nc, float *out,
       size_t out_stride, const bool wide) {
    float sv[ROWS_MB * 64] __attribute__((aligned(64)));
    float cp[ROWS_KC * 8] __attribute__((aligned(64)));
    for (int64_t rb = 0; rb < n_rows; rb += ROWS_MB) {
        const int64_t re = n > ROWS_KC ? (rb + ROWS_MB < n_rows ? rb + ROWS_MB : n_rows) : n_rows;
        for (int64_t k0 = 0; k0 < n; k0 += ROWS_KC) {
            const int64_t k1 = k0 + ROWS_KC < n ? k0 + ROWS_KC : n, steps = (k1 - k0) / 8;
            const bool first = k0 == 0, last = k1 == n;
            pack_cols(col, k0, k1, cp);
            int64_t r = rb;
            for (; r + 8 <= re; r += 8) {
                const uint8_t *wr = w + (size_t)r * w_stride + 2 * k0;
                float *sr = sv + (r - rb) % ROWS_MB * 64;
                if (r + 16 <= re)
                    for (int k = 0; k < 8; k++)
                        for (int64_t l = 0; l < 2 * (k1 - k0); l += 64) _mm_prefetch((const char *)(wr + (size_t)(8 + k) * w_stride + l), _MM_HINT_T0);
                const __m256 r0 = zrow8(steps, wr, cp, wide, sr, first, last);
                const __m256 r1 = zrow8(steps, wr + w_stride, cp, wide, sr + 64, first, last);
                const __m256 r2 = zrow8(steps, wr + 2 * w_stride, cp, wide, sr + 128, first, last);
                const __m256 r3 = zrow8(steps, wr + 3 * w_stride, cp, wide, sr + 192, first, last);
                const __m256 r4 = zrow8(steps, wr + 4 * w_stride, cp, wide, sr + 256, first, last);
                const __m256 r5 = zrow8(steps, wr + 5 * w_stride, cp, wide, sr + 320, first, last);
                const __m256 r6 = zrow8(steps, wr + 6 * w_stride, cp, wide, sr + 384, first, last);
                const __m256 r7 = zrow8(steps, wr + 7 * w_stride, cp, wide, sr + 448, first, last);
                if (last) store8x8_t(r0, r1, r2, r3, r4, r5, r6, r7, out + r, out_stride, nc);
            }
            for (; r < re; r++) {
                __m256 v = zrow8(steps, w + (size_t)r * w_stride + 2 * k0, cp, wide, sv + (r - rb) % ROWS_MB * 64, first, last);
                if (!last) continue;
                float h[8];
                _mm256_storeu_ps(h, v);
                for (int c = 0; c < nc; c++) out[(size_t)c * out_stride + (size_t)r] = h[c];
            }
        }
        if (n <= ROWS_KC) break;                           /* short rows: all done in one pass */
    }
}

void ll_dot_rows_f16_xf32_avx512(int64_t n, const void *w, size_t w_stride, int64_t n_rows, const void *a,
                                 size_t a_stride, int n_cols, float *out, size_t out_stride) {
    if (n % 8 != 0 || n_cols > 8) {                       /* a tail in double: the AVX2 kernel's path */
        ll_dot_rows_f16_xf32_avx2(n, w, w_stride, n_rows, a, a_stride, n_cols, out, out_stride);
        return;
    }
    const uint8_t *ab = a;
    const float *col[8];
    for (int c = 0; c < 8; c++) col[c] = (const float *)(ab + (size_t)(c < n_cols ? c : n_cols - 1) * a_stride);
    if (n_cols <= 4) zrows8(n, w, w_stride, n_rows, col, n_cols, out, out_stride, false);
    else zrows8(n, w, w_stride, n_rows, col, n_cols, out, out_stride, true);
}
