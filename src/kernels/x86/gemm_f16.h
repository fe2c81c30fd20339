/* kernels/x86: the F16 prompt product's driver (dot_float_avx2.c: cache blocking, packing,
 * prefetch, results) with its register tile as a parameter, for the AVX2 and AVX-512 tiles.
 * A tile of mr rows x nr tokens (nr a multiple of 4, at most F16_NR_MAX) keeps one 8-lane
 * accumulator per (row, token) pair, saved between slices as [row][token][lane] floats:
 *   micro(steps, w, x, acc, first): steps x 8 elements of the packed rows w ([i/8][row][8])
 *     against the packed tokens x ([i/8][token][8]) from the saved acc (zero when first);
 *   micro_cvt(steps, wh, rb, w, x, acc, first): the same, reading the rows as F16 from wh
 *     (rb bytes apart) and packing them into w on the way.
 * Every lane's sequence of FMAs is the single dot's (ll_dot_f16_avx2), so the results are
 * bit-identical to it whatever the tile. */
#ifndef LL_KERNELS_X86_GEMM_F16_H
#define LL_KERNELS_X86_GEMM_F16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { F16_NR_MAX = 16 };

struct f16_tile {
    int mr, nr;
    void (*micro)(int64_t steps, const float *w, const float *x, float *acc, bool first);
    void (*micro_cvt)(int64_t steps, const uint8_t *wh, size_t rb, float *w, const float *x, float *acc, bool first);
};

bool ll_gemm_f16_tiled(const struct f16_tile *tl, int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                       size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride);

#endif
