/* kernels: dot products and matrix products with runtime CPU dispatch.
 *
 * The table is filled once (first call of ll_kernels_get) from the CPU's features: AMX tile
 * products for prompts where the CPU has AMX-INT8, AVX-512 (F/BW/DQ/VL) versions where they pay, AVX2+FMA versions elsewhere, the scalar _ref
 * definitions from quant/ where neither exists. A CPU without an ISA never gets its kernels
 * (fault R16: never SIGILL). LOCALLAMA_ISA=scalar|avx2|avx512|amx forces a level (for tests,
 * benchmarks and debugging; a level the CPU lacks falls back to the automatic choice). */
#ifndef LL_KERNELS_H
#define LL_KERNELS_H

#include "quant/quant.h"

typedef float (*ll_dot_fn)(int64_t n, const void *w, const void *a);
typedef void  (*ll_quantize_act_fn)(const float *x, void *dst, int64_t n);

/* One weight row against n_cols activation rows (row c at a + c * a_stride bytes):
 * out[c] = dot(n, w, a + c * a_stride), bit-identical to the same type's single dot in the
 * same table, for any n_cols >= 1. The weight is decoded once for all columns, so batched
 * generation and prompt processing stop paying the decoding once per token. Kernels take up
 * to LL_DOT_MULTI_MAX columns per pass (more are done in chunks); ll_matmul_rows groups
 * tokens by that width. */
enum { LL_DOT_MULTI_MAX = 8 };
typedef void (*ll_dot_multi_fn)(int64_t n, const void *w, const void *a, size_t a_stride,
                                int n_cols, float *out);

/* Rows [r0, r1) x n_tok tokens of a matrix product in one call (the ll_matmul_rows contract
 * below), for prompts and batches: y[t * y_stride + r] bit-identical to dot(row r, token t) of
 * the same table. A register-tiled kernel repacks the tokens' activations itself (into a
 * buffer it allocates and frees); false when that allocation fails, and the caller then takes
 * the dot_multi path. Only worth calling for LL_GEMM_MIN_TOK tokens or more. */
enum { LL_GEMM_MIN_TOK = 8 };
typedef bool (*ll_gemm_fn)(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                           size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride);

/* Rows [r0, r1) against ONE token, for generation: y[r] bit-identical to dot(row r, xq) of the
 * same table. A kernel here runs several rows' accumulation chains side by side (a single dot
 * waits on one chain's latency) and converts the activation once for all rows. false when its
 * scratch allocation fails; the caller then loops over dot. */
typedef bool (*ll_gemv_fn)(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y);

/* n_rows rows (row r at w + r * w_stride) against n_cols f32 columns as dot_multi_xf32 takes
 * them: out[c * out_stride + r] bit-identical to dot_multi_xf32(row r)[c]. Attention's
 * scores: every key of a sequence against a block of queries in one call. */
typedef void (*ll_dot_rows_fn)(int64_t n, const void *w, size_t w_stride, int64_t n_rows, const void *a,
                               size_t a_stride, int n_cols, float *out, size_t out_stride);

/* The softmax's exponentials: x[i] = exp(x[i] - max) in place for i < n (x[i] = -INFINITY
 * gives 0), returning their sum in double. max is at least every x[i]. */
typedef double (*ll_exp_sum_fn)(float *x, int64_t n, float max);
double ll_exp_sum_ref(float *x, int64_t n, float max);

/* The two passes of attention's softmax around exp_sum, per query column: its scores s over
 * the keys [0, n), key i at position pos[i], the query at position p.
 * att_scale_mask: s[i] = s[i] * scale, then -INFINITY where pos[i] > p (a key the query does
 *   not see; whatever s[i] held, even NaN); returns the largest visible score (NaNs skipped;
 *   -INFINITY when none) and sets *hi to the last visible key + 1 (0 when none).
 * att_weights: s[i] = s[i] * inv for i < hi and +0 for hi <= i < n; with round16 each such
 *   value is rounded to F16 (stored in h[i] when h is not NULL) and s[i] becomes that F16
 *   value widened back to f32 (exactly).
 * SIMD versions give the same values as these references, bit for bit. */
typedef float (*ll_att_scale_mask_fn)(float *s, const int32_t *pos, int64_t n, int32_t p, float scale,
                                      int64_t *hi);
typedef void  (*ll_att_weights_fn)(float *s, int64_t hi, int64_t n, float inv, bool round16, uint16_t *h);
float ll_att_scale_mask_ref(float *s, const int32_t *pos, int64_t n, int32_t p, float scale, int64_t *hi);
void  ll_att_weights_ref(float *s, int64_t hi, int64_t n, float inv, bool round16, uint16_t *h);

struct ll_kernels {
    ll_dot_fn          dot[LL_TYPE_COUNT];           /* by weight type; NULL if unsupported */
    /* As dot_multi, but the columns are f32 arrays holding values of the dot type exactly
     * (for F16: F16-rounded values widened to f32), so a caller that meets the same columns
     * many times (attention: the queries of a KV group against every key) converts them once.
     * Bit-identical to dot of the columns converted back. NULL: convert and use dot_multi. */
    ll_dot_multi_fn    dot_multi_xf32[LL_TYPE_COUNT];
    ll_dot_rows_fn     dot_rows_xf32[LL_TYPE_COUNT];  /* NULL: a loop over dot_multi_xf32 */
    ll_gemv_fn         gemv[LL_TYPE_COUNT];          /* by weight type; NULL: a loop over dot */
    ll_dot_multi_fn    dot_multi[LL_TYPE_COUNT];     /* by weight type; NULL: loop over dot */
    ll_gemm_fn         gemm[LL_TYPE_COUNT];          /* by weight type; NULL: dot_multi */
    /* A faster prompt product whose sums are within f32 rounding of dot's but not its bits
     * (F16 on AMX-BF16, x86/gemm_f16_amxbf16.c); NULL: none. Taken only by LL_MM_FAST. */
    ll_gemm_fn         gemm_fast[LL_TYPE_COUNT];
    ll_quantize_act_fn quantize_act[LL_TYPE_COUNT];  /* by activation (dot) type */
    ll_exp_sum_fn      exp_sum;                      /* never NULL */
    ll_att_scale_mask_fn att_scale_mask;             /* never NULL */
    ll_att_weights_fn  att_weights;                  /* never NULL */
    const char        *isa;                          /* "amx", "avx512", "avx2", "scalar" */
};

const struct ll_kernels *ll_kernels_get(void);

/* Fill k for one named ISA ("scalar" or "avx2") regardless of LOCALLAMA_ISA, for tests and
 * benchmarks that compare variants. Returns false, leaving the scalar table in k, when the
 * name is unknown or this CPU cannot run it. Entries without a SIMD version keep the _ref. */
bool ll_kernels_init_isa(struct ll_kernels *k, const char *isa);   /* "scalar", "avx2", "avx512", "amx" */

/* Rows [r0, r1) of a matrix product, for one thread's share:
 *   y[t * y_stride + r] = dot(row r of W, x_t)  for t < n_tok, r0 <= r < r1.
 * W is w_type with rows of n_in elements (row r at w + r * row_bytes(w_type, n_in)).
 * xq holds the n_tok activation rows already converted to the dot type
 * (row t at xq + t * xq_stride bytes). */
void ll_matmul_rows(const struct ll_kernels *k, uint32_t w_type, const void *w, int64_t n_in,
                    int64_t r0, int64_t r1, const void *xq, size_t xq_stride, int64_t n_tok,
                    float *y, int64_t y_stride);

/* ll_matmul_rows with a choice of arithmetic:
 *   LL_MM_EXACT: ll_matmul_rows itself, every output the dot's bits;
 *   LL_MM_FAST:  the type's gemm_fast for every token, whatever n_tok, where there is one
 *                (else, or when its allocation fails, LL_MM_EXACT). An output depends only on
 *                its row and its token, not on the rest of the call: the forward pass gives
 *                it the tokens of sequences with several in the batch, so a prompt's tokens
 *                round alike however the batch is cut, and keeps lone tokens (generation)
 *                exact. */
enum { LL_MM_EXACT, LL_MM_FAST };
void ll_matmul_rows_mode(const struct ll_kernels *k, uint32_t w_type, const void *w, int64_t n_in,
                         int64_t r0, int64_t r1, const void *xq, size_t xq_stride, int64_t n_tok,
                         float *y, int64_t y_stride, int mode);

#endif
