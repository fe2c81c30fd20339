/* kernels: dot products and matrix products with runtime CPU dispatch.
 *
 * The table is filled once (first call of ll_kernels_get) from the CPU's features: AVX2+FMA
 * versions where we have them, the scalar _ref definitions from quant/ everywhere else. A CPU
 * without an ISA never gets its kernels (fault R16: never SIGILL). LOCALLAMA_ISA=scalar forces
 * the reference kernels (for tests and debugging). */
#ifndef LL_KERNELS_H
#define LL_KERNELS_H

#include "quant/quant.h"

typedef float (*ll_dot_fn)(int64_t n, const void *w, const void *a);
typedef void  (*ll_quantize_act_fn)(const float *x, void *dst, int64_t n);

struct ll_kernels {
    ll_dot_fn          dot[LL_TYPE_COUNT];           /* by weight type; NULL if unsupported */
    ll_quantize_act_fn quantize_act[LL_TYPE_COUNT];  /* by activation (dot) type */
    const char        *isa;                          /* "avx2", "scalar" */
};

const struct ll_kernels *ll_kernels_get(void);

/* Fill k for one named ISA ("scalar" or "avx2") regardless of LOCALLAMA_ISA, for tests and
 * benchmarks that compare variants. Returns false, leaving the scalar table in k, when the
 * name is unknown or this CPU cannot run it. Entries without a SIMD version keep the _ref. */
bool ll_kernels_init_isa(struct ll_kernels *k, const char *isa);

/* Rows [r0, r1) of a matrix product, for one thread's share:
 *   y[t * y_stride + r] = dot(row r of W, x_t)  for t < n_tok, r0 <= r < r1.
 * W is w_type with rows of n_in elements (row r at w + r * row_bytes(w_type, n_in)).
 * xq holds the n_tok activation rows already converted to the dot type
 * (row t at xq + t * xq_stride bytes). */
void ll_matmul_rows(const struct ll_kernels *k, uint32_t w_type, const void *w, int64_t n_in,
                    int64_t r0, int64_t r1, const void *xq, size_t xq_stride, int64_t n_tok,
                    float *y, int64_t y_stride);

#endif
