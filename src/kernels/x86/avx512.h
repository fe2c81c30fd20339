/* kernels/x86: the AVX-512 (F, BW, DQ, VL) versions of the dots that gain from the width.
 * Declarations only, so dispatch.c (built without AVX-512 flags) can take their addresses;
 * only call them after the CPU check in dispatch.c. The K-quant dots compute the same exact integer sums as their
 * AVX2 and scalar versions and scale them in the same f32 expression, so every output is
 * bit-identical to the AVX2 table's (tests/kernels compares them with memcmp). */
#ifndef LL_KERNELS_X86_AVX512_H
#define LL_KERNELS_X86_AVX512_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

float ll_dot_q6_k_avx512(int64_t n, const void *w, const void *a);

void ll_dot_multi_q6_k_avx512(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);

/* The F16 prompt product with an AVX-512 register tile (dot_float_avx512.c); bit-identical to
 * ll_dot_f16_avx2, which the AVX-512 table keeps as its F16 dot. */
bool ll_gemm_f16_avx512(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                        int64_t n_tok, float *y, int64_t y_stride);

/* Attention's F16 rows against f32 columns (attn_avx512.c); bit-identical to the AVX2 kernel. */
void ll_dot_rows_f16_xf32_avx512(int64_t n, const void *w, size_t w_stride, int64_t n_rows, const void *a,
                                 size_t a_stride, int n_cols, float *out, size_t out_stride);

/* Q4_K generation with AVX-512 VNNI (gemv_q4_k_avx512vnni.c; only where the CPU has it). */
bool ll_gemv_q4_k_avx512vnni(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y);

#endif
