/* kernels/x86: the AVX-512 register tile of the F16 prompt product (the driver, its cache
 * blocking and the arithmetic it keeps: gemm_f16.h, dot_float_avx2.c).
 *
 * One zmm holds the 8-lane accumulators of two (row, token) pairs - tokens c and c + 1 of one
 * row, lanes 0..7 and 8..15 - which is exactly how the packed tokens ([i/8][token][8]) and the
 * saved accumulators ([row][token][lane]) already lie, and the row's 8 weights are broadcast
 * to both halves. Each lane still takes the single dot's FMAs in order, so the results are
 * bit-identical to ll_dot_f16_avx2 (tests/kernels); each FMA now does two pairs' work.
 * Tile: 6 rows x 8 tokens, 24 accumulators; per 8 elements 6 broadcast loads, 4 token loads,
 * 24 FMAs. */
#include "kernels/x86/avx512.h"
#include "kernels/x86/gemm_f16.h"

#include <immintrin.h>

enum { TILE_MR = 6, TILE_NR = 8, TILE_NP = TILE_NR / 2 };

static inline __attribute__((always_inline)) void
micro_body(int64_t steps, float *w, const float *x, float *acc, bool first, const uint8_t *wh, size_t rb, bool cvt) {
    __m512 s[TILE_MR][TILE_NP];
    _Pragma("GCC unroll 6") for (int r = 0; r < TILE_MR; r++)
        _Pragma("GCC unroll 4") for (int p = 0; p < TILE_NP; p++)
            s[r][p] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(acc + (r * TILE_NR + 2 * p) * 8);
    for (int64_t k = 0; k < steps; k++, w += TILE_MR * 8, x += TILE_NR * 8) {
        __m512 wv[TILE_MR];
        _Pragma("GCC unroll 6") for (int r = 0; r < TILE_MR; r++) {
            if (cvt) {
                __m256 h = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wh + r * rb + 16 * k)));
                _mm256_storeu_ps(w + r * 8, h);
                wv[r] = _mm512_broadcast_f32x8(h);
            } else {
                wv[r] = _mm512_broadcast_f32x8(_mm256_loadu_ps(w + r * 8));
            }
        }
        _Pragma("GCC unroll 4") for (int p = 0; p < TILE_NP; p++) {
            __m512 xv = _mm512_loadu_ps(x + p * 16);
            _Pragma("GCC unroll 6") for (int r = 0; r < TILE_MR; r++) s[r][p] = _mm512_fmadd_ps(wv[r], xv, s[r][p]);
        }
    }
    _Pragma("GCC unroll 6") for (int r = 0; r < TILE_MR; r++)
        _Pragma("GCC unroll 4") for (int p = 0; p < TILE_NP; p++) _mm512_storeu_ps(acc + (r * TILE_NR + 2 * p) * 8, s[r][p]);
}

static void micro(int64_t steps, const float *w, const float *x, float *acc, bool first) {
    micro_body(steps, (float *)w, x, acc, first, NULL, 0, false);
}

static void micro_cvt(int64_t steps, const uint8_t *wh, size_t rb, float *w, const float *x, float *acc, bool first) {
    micro_body(steps, w, x, acc, first, wh, rb, true);
}

static const struct f16_tile tile_avx512 = { TILE_MR, TILE_NR, micro, micro_cvt };

bool ll_gemm_f16_avx512(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                        int64_t n_tok, float *y, int64_t y_stride) {
    return ll_gemm_f16_tiled(&tile_avx512, n_in, w, r0, r1, xq, xq_stride, n_tok, y, y_stride);
}
