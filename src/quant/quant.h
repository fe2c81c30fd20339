/* quant: the ggml element types (spec: ../shared/spec/gguf-and-quants.md part B and C).
 *
 * The type table covers every ggml type id so the GGUF reader can size any tensor; `supported`
 * marks the types the engine can compute with. The functions here are the scalar definitions
 * (written from the format description, easy to check by eye); fast versions live in kernels/. */
#ifndef LL_QUANT_H
#define LL_QUANT_H

#include "core/core.h"

enum ll_type {
    LL_TYPE_F32 = 0, LL_TYPE_F16 = 1, LL_TYPE_Q4_0 = 2, LL_TYPE_Q4_1 = 3,
    LL_TYPE_Q5_0 = 6, LL_TYPE_Q5_1 = 7, LL_TYPE_Q8_0 = 8, LL_TYPE_Q8_1 = 9,
    LL_TYPE_Q2_K = 10, LL_TYPE_Q3_K = 11, LL_TYPE_Q4_K = 12, LL_TYPE_Q5_K = 13,
    LL_TYPE_Q6_K = 14, LL_TYPE_Q8_K = 15,
    LL_TYPE_BF16 = 30,
    LL_TYPE_COUNT = 40            /* one past the highest id in the table */
};

typedef struct {
    const char *name;       /* "Q4_K", as ggml names it */
    int64_t     blck;       /* elements per block */
    size_t      bytes;      /* bytes per block */
    bool        supported;  /* we can multiply with it as a weight and dequantize it */
    uint32_t    dot_type;   /* activation partner type (C.1); F32 for F32 */
} ll_type_traits;

/* NULL for ids that are unknown or removed upstream (4, 5, 31-33, 36-38, >= LL_TYPE_COUNT). */
const ll_type_traits *ll_type_traits_of(uint32_t type);
/* Bytes of n elements of type; false when n is not a multiple of the block or it overflows. */
bool ll_type_row_bytes(uint32_t type, int64_t n, uint64_t *bytes);

/* ---- scalar conversions (B.2) ---- */
float    ll_fp16_to_fp32(uint16_t h);
uint16_t ll_fp32_to_fp16(float f);      /* round to nearest even; overflow -> inf */
float    ll_bf16_to_fp32(uint16_t h);
uint16_t ll_fp32_to_bf16(float f);      /* ggml's rounding, NaN kept quiet */

/* Dequantize n elements (a multiple of the block size) of a supported type to f32. */
void ll_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);

/* Convert n activations to the partner type dot_type (Q8_0 with x86 rounding, Q8_1, Q8_K,
 * F16, BF16, or F32 = copy), as llama.cpp's CPU backend does (C.2). dst holds
 * row_bytes(dot_type, n). n must be a multiple of dot_type's block. */
void ll_quantize_act_ref(uint32_t dot_type, const float *x, void *dst, int64_t n);

/* Dot product of n elements: a weight row of type w_type and an activation row already in
 * that type's dot_type (C.3). The reference definition every SIMD kernel is tested against. */
float ll_vec_dot_ref(uint32_t w_type, int64_t n, const void *w, const void *a);

/* The same definitions, one function per type, with the kernel table's signatures
 * (kernels.h: ll_quantize_act_fn, ll_dot_fn). dispatch.c uses them where no SIMD version
 * exists or LOCALLAMA_ISA=scalar. */
void ll_quantize_q8_0_ref(const float *x, void *dst, int64_t n);
void ll_quantize_q8_1_ref(const float *x, void *dst, int64_t n);
void ll_quantize_q8_k_ref(const float *x, void *dst, int64_t n);
void ll_quantize_f16_ref(const float *x, void *dst, int64_t n);
void ll_quantize_bf16_ref(const float *x, void *dst, int64_t n);
void ll_quantize_f32_ref(const float *x, void *dst, int64_t n);

float ll_dot_f32_ref(int64_t n, const void *w, const void *a);
float ll_dot_f16_ref(int64_t n, const void *w, const void *a);
float ll_dot_bf16_ref(int64_t n, const void *w, const void *a);
float ll_dot_q4_0_ref(int64_t n, const void *w, const void *a);
float ll_dot_q4_1_ref(int64_t n, const void *w, const void *a);
float ll_dot_q5_0_ref(int64_t n, const void *w, const void *a);
float ll_dot_q5_1_ref(int64_t n, const void *w, const void *a);
float ll_dot_q8_0_ref(int64_t n, const void *w, const void *a);
float ll_dot_q2_k_ref(int64_t n, const void *w, const void *a);
float ll_dot_q3_k_ref(int64_t n, const void *w, const void *a);
float ll_dot_q4_k_ref(int64_t n, const void *w, const void *a);
float ll_dot_q5_k_ref(int64_t n, const void *w, const void *a);
float ll_dot_q6_k_ref(int64_t n, const void *w, const void *a);

#endif
