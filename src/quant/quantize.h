/* quant/quantize: weight quantizers, f32 rows to every type the engine reads.
 *
 * These are the functions `locallama quantize` writes a model with. They follow the reference
 * quantizers of ggml (ggml-quants.c, quantize_row_*_ref), which is the path llama-quantize
 * takes when it has no importance matrix: the same block search (make_qx_quants for Q6_K,
 * make_q3_quants for Q3_K, make_qkx2_quants for Q2_K/Q4_K/Q5_K), the same rounding (the
 * 1.5*2^23 trick of nearest_int, truncation after +0.5 in the legacy types, roundf in Q8_0)
 * and every product and sum evaluated in f32 in the same order, so a file quantized by either
 * tool has the same bytes. Nothing here uses FMA or reassociates a sum: the build keeps
 * -ffp-contract at its ISO default (off) and these files get no ISA flags.
 *
 * Rows are independent, so any split of a tensor's rows over threads gives the same bytes. */
#ifndef LL_QUANTIZE_H
#define LL_QUANTIZE_H

#include "quant/quant.h"

/* True for the types ll_quantize_rows can produce: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. */
bool ll_quantize_supported(uint32_t type);

/* Quantize nrows rows of n_per_row floats into dst (nrows * row_bytes(type, n_per_row)).
 * n_per_row must be a multiple of the type's block size; type must be supported. */
void ll_quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t n_per_row);

/* The same with an importance matrix: qw holds one non-negative weight per column (n_per_row
 * values, shared by all nrows rows); NULL means none (ll_quantize_rows). This is ggml's
 * quantize_row_*_impl path, which llama-quantize takes with --imatrix (quantize_imatrix.c).
 * Q8_0, F16, BF16 and F32 ignore qw. */
void ll_quantize_rows_imatrix(uint32_t type, const float *src, void *dst, int64_t nrows,
                              int64_t n_per_row, const float *qw);

/* One function per type, each taking k elements (a multiple of its block) to k / blck blocks.
 * ll_quantize_rows dispatches to these. */
void ll_quantize_w_q4_0(const float *x, void *y, int64_t k);
void ll_quantize_w_q4_1(const float *x, void *y, int64_t k);
void ll_quantize_w_q5_0(const float *x, void *y, int64_t k);
void ll_quantize_w_q5_1(const float *x, void *y, int64_t k);
void ll_quantize_w_q8_0(const float *x, void *y, int64_t k);
void ll_quantize_w_q2_k(const float *x, void *y, int64_t k);   /* quantize_kquants.c */
void ll_quantize_w_q3_k(const float *x, void *y, int64_t k);
void ll_quantize_w_q4_k(const float *x, void *y, int64_t k);
void ll_quantize_w_q5_k(const float *x, void *y, int64_t k);
void ll_quantize_w_q6_k(const float *x, void *y, int64_t k);

/* The check llama.cpp runs on each quantized chunk (ggml_validate_row_data): every F32 / F16 /
 * BF16 value, and every F16 scale (d, and m or dmin where the type has one), is finite.
 * Returns true when valid; otherwise *bad_elem (may be NULL) is the first bad value's index,
 * counted in elements for float types and in blocks for quantized ones. */
bool ll_quantize_check(uint32_t type, const void *data, size_t n_bytes, size_t *bad_elem);

/* Normalized RMS error of a quantized row against its source: accumulates sum((q - x)^2) and
 * sum(x^2) in double into err2 and ref2 (NRMSE = sqrt(err2 / ref2)). scratch holds n floats. */
void ll_quantize_error(uint32_t type, const float *x, const void *q, int64_t n, float *scratch,
                       double *err2, double *ref2);

#endif
