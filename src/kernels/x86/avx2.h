/* kernels/x86: the AVX2+FMA+F16C versions of the dot products and activation quantizers.
 * Declarations only, so dispatch.c (built without -mavx2) can take their addresses; only call
 * them after the CPU check in dispatch.c. Each matches its quant/ _ref definition: identical
 * integer sums, floats differing only by summation order (tests/kernels checks both). */
#ifndef LL_KERNELS_X86_AVX2_H
#define LL_KERNELS_X86_AVX2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

double ll_exp_sum_avx2(float *x, int64_t n, float max);
float ll_att_scale_mask_avx2(float *s, const int32_t *pos, int64_t n, int32_t p, float scale, int64_t *hi);
void ll_att_weights_avx2(float *s, int64_t hi, int64_t n, float inv, bool round16, uint16_t *h);
float ll_dot_f32_avx2(int64_t n, const void *w, const void *a);
float ll_dot_f16_avx2(int64_t n, const void *w, const void *a);
float ll_dot_bf16_avx2(int64_t n, const void *w, const void *a);
float ll_dot_q4_0_avx2(int64_t n, const void *w, const void *a);
float ll_dot_q4_1_avx2(int64_t n, const void *w, const void *a);
float ll_dot_q5_0_avx2(int64_t n, const void *w, const void *a);
float ll_dot_q5_1_avx2(int64_t n, const void *w, const void *a);
float ll_dot_q8_0_avx2(int64_t n, const void *w, const void *a);
float ll_dot_q2_k_avx2(int64_t n, const void *w, const void *a);
float ll_dot_q3_k_avx2(int64_t n, const void *w, const void *a);
float ll_dot_q4_k_avx2(int64_t n, const void *w, const void *a);
float ll_dot_q5_k_avx2(int64_t n, const void *w, const void *a);
float ll_dot_q6_k_avx2(int64_t n, const void *w, const void *a);

/* Multi-column versions (kernels.h, ll_dot_multi_fn): out[c] is bit-identical to the single
 * dot above against the activation row a + c * a_stride. */
void ll_dot_rows_f16_xf32_avx2(int64_t n, const void *w, size_t w_stride, int64_t n_rows, const void *a,
                               size_t a_stride, int n_cols, float *out, size_t out_stride);
void ll_dot_multi_f16_xf32_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);
void ll_dot_multi_f16_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);
void ll_dot_multi_q4_0_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);
void ll_dot_multi_q4_1_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);
void ll_dot_multi_q5_0_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);
void ll_dot_multi_q5_1_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);
void ll_dot_multi_q8_0_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);
void ll_dot_multi_q2_k_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);
void ll_dot_multi_q3_k_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);
void ll_dot_multi_q4_k_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);
void ll_dot_multi_q5_k_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);
void ll_dot_multi_q6_k_avx2(int64_t n, const void *w, const void *a, size_t a_stride, int n_cols, float *out);

/* Register-tiled products for prompts (kernels.h, ll_gemm_fn), gemm_kquants_avx2.c. */
bool ll_gemm_q4_k_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                       size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride);
bool ll_gemv_f16_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y);
bool ll_gemv_q4_0_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y);
bool ll_gemv_q8_0_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y);
bool ll_gemv_q6_k_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y);   /* dot_kquants_avx2.c */
/* Generation (kernels.h, ll_gemv_fn): gemv_q4_k_avx2.c. */
bool ll_gemv_q4_k_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y);
bool ll_gemm_f16_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                      size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride);   /* dot_float_avx2.c */
bool ll_gemm_q6_k_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                       size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride);
bool ll_gemm_q4_0_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                       size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride);   /* gemm_legacy_avx2.c */
bool ll_gemm_q8_0_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                       size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride);

void ll_quantize_q8_0_avx2(const float *x, void *dst, int64_t n);
void ll_quantize_q8_1_avx2(const float *x, void *dst, int64_t n);
void ll_quantize_q8_k_avx2(const float *x, void *dst, int64_t n);
void ll_quantize_f16_avx2(const float *x, void *dst, int64_t n);

#endif
