/* kernels/x86: the AMX (AMX-TILE, AMX-INT8, with AVX-512 F/BW/DQ/VL/VNNI) matrix products.
 * Declarations only, so dispatch.c (built without these flags) can take their addresses;
 * only call them after dispatch.c has checked the CPU and obtained the tile state from the
 * kernel (ll_amx_ready). Each integer one is bit-identical to the AVX2 single dot of its type
 * (gemm_legacy_amx.c says how; tests/kernels compares them with memcmp). */
#ifndef LL_KERNELS_X86_AMX_H
#define LL_KERNELS_X86_AMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool ll_gemm_q4_0_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                      int64_t n_tok, float *y, int64_t y_stride);
bool ll_gemm_q8_0_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                      int64_t n_tok, float *y, int64_t y_stride);

bool ll_gemm_q4_k_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                      int64_t n_tok, float *y, int64_t y_stride);
bool ll_gemm_q6_k_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                      int64_t n_tok, float *y, int64_t y_stride);

/* F16 weights on AMX-BF16 (gemm_f16_amxbf16.c): NOT bit-identical to the F16 dot (within f32
 * rounding of it; that file says why): the table's gemm_fast, not its gemm. */
bool ll_gemm_f16_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                     int64_t n_tok, float *y, int64_t y_stride);

#endif
