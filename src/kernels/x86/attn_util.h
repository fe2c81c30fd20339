/* kernels/x86: what the AVX2 and AVX-512 many-rows kernels of attention share (attn_avx2.c,
 * attn_avx512.c): the horizontal sums of 8 columns at once in hsum_ps's own order, and the
 * transposed store of 8 rows' results. AVX2 intrinsics only. */
#ifndef LL_KERNELS_X86_ATTN_UTIL_H
#define LL_KERNELS_X86_ATTN_UTIL_H

#include <immintrin.h>
#include <stddef.h>

/* hsum_ps of v0..v7 at once: out lane c = hsum_ps(v_c), same pairs, same order. */
static inline __attribute__((always_inline)) __m256
hsum8_ps(__m256 v0, __m256 v1, __m256 v2, __m256 v3, __m256 v4, __m256 v5, __m256 v6, __m256 v7) {
    __m256 s0 = _mm256_add_ps(_mm256_permute2f128_ps(v0, v4, 0x20), _mm256_permute2f128_ps(v0, v4, 0x31));
    __m256 s1 = _mm256_add_ps(_mm256_permute2f128_ps(v1, v5, 0x20), _mm256_permute2f128_ps(v1, v5, 0x31));
    __m256 s2 = _mm256_add_ps(_mm256_permute2f128_ps(v2, v6, 0x20), _mm256_permute2f128_ps(v2, v6, 0x31));
    __m256 s3 = _mm256_add_ps(_mm256_permute2f128_ps(v3, v7, 0x20), _mm256_permute2f128_ps(v3, v7, 0x31));
    /* lane 0 of s_k: column k's v_i + v_{i+4} (i < 4); lane 1: column k + 4's */
    __m256 t01 = _mm256_add_ps(_mm256_shuffle_ps(s0, s1, 0x44), _mm256_shuffle_ps(s0, s1, 0xEE));
    __m256 t23 = _mm256_add_ps(_mm256_shuffle_ps(s2, s3, 0x44), _mm256_shuffle_ps(s2, s3, 0xEE));
    /* t01 lane 0: [s0+s2, s1+s3] of column 0, then of column 1; lane 1: columns 4, 5 */
    return _mm256_hadd_ps(t01, t23);
}

/* Rows r0..r7 (lane c: column c's result) stored transposed: column c < nc gets its 8
 * results at o + c * stride, one 8-float store each. */
static inline __attribute__((always_inline)) void
store8x8_t(__m256 r0, __m256 r1, __m256 r2, __m256 r3, __m256 r4, __m256 r5, __m256 r6, __m256 r7, float *o,
           size_t out_stride, int nc) {
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(o, _mm256_permute2f128_ps(u0, u4, 0x20));                     /* column 0 */
    if (nc > 1) _mm256_storeu_ps(o + out_stride, _mm256_permute2f128_ps(u1, u5, 0x20));
    if (nc > 2) _mm256_storeu_ps(o + 2 * out_stride, _mm256_permute2f128_ps(u2, u6, 0x20));
    if (nc > 3) _mm256_storeu_ps(o + 3 * out_stride, _mm256_permute2f128_ps(u3, u7, 0x20));
    if (nc > 4) _mm256_storeu_ps(o + 4 * out_stride, _mm256_permute2f128_ps(u0, u4, 0x31));
    if (nc > 5) _mm256_storeu_ps(o + 5 * out_stride, _mm256_permute2f128_ps(u1, u5, 0x31));
    if (nc > 6) _mm256_storeu_ps(o + 6 * out_stride, _mm256_permute2f128_ps(u2, u6, 0x31));
    if (nc > 7) _mm256_storeu_ps(o + 7 * out_stride, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* Long rows (attention's V^T rows: as many elements as cells) are done in slices of
 * ROWS_KC elements, every row of a block of ROWS_MB rows through one slice before the next,
 * their accumulators saved between slices (64 floats per row: 8 columns x 8 lanes): the
 * columns' slice (8 KB) stays in L1 for all the rows, where whole rows would read the columns
 * (8 x 4096 floats at 4096 cells) from L2 once per row. Each lane still takes its elements in
 * order, so nothing changes in the sums. */
enum { ROWS_KC = 256, ROWS_MB = 64 };

#endif
