/* quant: what the two weight-quantizer files share (quantize_kquants.c, the reference path;
 * quantize_imatrix.c, the importance-matrix path): the rounding helpers, the two scale
 * searches, and the packing of a K-quant super-block once its sub-block codes are chosen.
 * The paths differ only in how they weigh and search; from the codes on, the bytes are built
 * the same way, so that part lives once, in quantize_kquants.c. Private to src/quant. */
#ifndef LL_QUANTIZE_IMPL_H
#define LL_QUANTIZE_IMPL_H

#include "quant/blocks.h"

#define GROUP_MAX_EPS 1e-15f   /* a sub-block with max|x| below this is all zeros */

static inline void put_f16(uint8_t *p, float f) { blk_put_u16(p, ll_fp32_to_fp16(f)); }
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* Round to nearest, ties to even, for |f| < 2^22: adding 1.5 * 2^23 puts the integer in the
 * low mantissa bits (the add rounds). Outside that range the result is meaningless but
 * deterministic, and ggml computes the same. */
static inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* Signed codes -nmax..nmax-1 stored as L + nmax, weighted by qw (x^2 when NULL); tries 19
 * scales around nmax / max and keeps the best weighted least-squares fit (ggml:
 * make_qx_quants, rmse_type 1). Returns the scale. */
float ll_qsearch_sym(int n, int nmax, const float *x, int8_t *L, const float *qw);

/* Codes 0..nmax with x ~ scale * L - the_min (ggml: make_qkx2_quants, and make_qkx3_quants
 * with rmin -0.9, rdelta 0.05, nstep 36). Tries iscale = (rmin + rdelta*is + nmax) / (max -
 * min) for is = 0..nstep, keeps the fit with the least weighted error (absolute when use_mad,
 * squared otherwise). weights: n values; Laux: n bytes of scratch. Returns the scale. */
float ll_qsearch_affine(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                        float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                        bool use_mad);

/* 2-bit codes: byte l of each 32-byte group holds elements l, l+32, l+64, l+96. */
void ll_qpack_2bit(const uint8_t *L, uint8_t *qs);

/* The tail of each K type. x is the super-block's 256 values, b its block, L its 256 codes
 * (scratch: re-rounded here against the scales they will be decoded with).
 *   q2_k: scales, mins, d and dmin already in b; re-rounds and packs the codes.
 *   q3_k: Ls: 16 scale codes 0..63 (signed scale + 32) against d.
 *   k4:   Q4_K (nmax 15) or Q5_K (nmax 31): 8 scale and 8 min codes 0..63, d and dmin.
 *   q6_k: the 16 sub-block scales from the search (an all-zero block when they are all
 *         below GROUP_MAX_EPS); quantizes them against the largest in magnitude. */
void ll_qpack_q2_k(const float *x, uint8_t *L, uint8_t *b);
void ll_qpack_q3_k(const float *x, const uint8_t *Ls, float d, int8_t *L, uint8_t *b);
void ll_qpack_k4(const float *x, const uint8_t *ls, const uint8_t *lm, float d, float dmin,
                 int nmax, uint8_t *L, uint8_t *b);
void ll_qpack_q6_k(const float *x, const float *scales, int8_t *L, uint8_t *b);

#endif
