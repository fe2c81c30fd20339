/* kernels/x86: AMX matrix products of Q4_0 and Q8_0 weights against Q8_0 activations, for
 * prompts and batches (kernels.h, ll_gemm_fn), on CPUs with AMX-INT8 (dispatch.c checks the
 * CPU and asks the kernel for the tile state first).
 *
 * One tile multiply (TDPBSSD, signed x signed bytes into i32) takes one 32-element block b
 * of 16 tokens (tile A: 16 rows of 32 bytes, loaded straight from the activation rows) and
 * the same block of 16 weight rows (tile B: 8 rows of 64 bytes, the rows' 4-byte groups
 * interleaved as the instruction wants them: row g holds group g of weight rows 0..15), and
 * gives the exact integer block sums of the 16 x 16 (token, row) pairs. The weights are
 * interleaved once per 16 rows and call into a panel (K = 8192: 144 KB, in L2 while every
 * token passes): no load-time repacking, no extra resident memory.
 *
 * Integer sums, exact: Q8_0 quants as they are (-128..127), Q4_0 nibbles - 8 (-8..7), each
 * against the activation bytes; a block sum is at most 32 * 128 * 128 in size.
 *
 * Float order: the one in avx2_util.h (LEGACY_CHAINS) that this table's single dot and
 * dot_multi (dot_legacy_avx2.c) follow: s_b = f16(w.d) * f16(a.d), four FMA chains by block
 * index, (c0 + c2) + (c1 + c3). A tile's block sums are stored, converted and scaled 16 rows
 * to a vector, one vector per token; the loop runs chain by chain (blocks j, j + 4, ...) so
 * one chain's 16 accumulators stay in registers. y[t][r] is therefore bit-identical to the
 * single dot (tests/kernels compares them with memcmp). */
#include "kernels/x86/amx.h"
#include "kernels/x86/amx_util.h"
#include "kernels/x86/avx2_util.h"

#include <stdlib.h>


enum {
    PANEL_B = AMX_B_BYTES,              /* tile B of one block */
    PANEL_BLK = PANEL_B + 64,           /* ... then the 16 rows' f16(w.d) as f32 */
};

/* Rows w, w + rb, ... (nr <= 16; missing rows repeat the last, their columns are dropped)
 * into nb panel blocks at dst: per block the interleaved signed quants, then the scales. */
static void pack_panel(int q4, const uint8_t *w, size_t rb, int nr, int64_t nb, uint8_t *dst) {
    const size_t wbytes = q4 ? Q4_0_BYTES : Q8_0_BYTES;
    const uint8_t *row[AMX_ROWS];
    for (int k = 0; k < AMX_ROWS; k++) row[k] = w + (size_t)(k < nr ? k : nr - 1) * rb;
    int32_t tmp[AMX_ROWS * 8] __attribute__((aligned(64)));
    for (int64_t b = 0; b < nb; b++, dst += PANEL_BLK) {
        const size_t o = (size_t)b * wbytes;
        for (int k = 0; k < AMX_ROWS; k++) {
            __m256i q = q4 ? _mm256_sub_epi8(nibbles_32(row[k] + o + Q4_0_QS), _mm256_set1_epi8(8))
                           : load32(row[k] + o + Q8_0_QS);
            _mm256_store_si256((__m256i *)(tmp + 8 * k), q);
        }
        amx_interleave_b(tmp, AMX_K, dst);
        uint16_t hs[AMX_ROWS];
        for (int k = 0; k < AMX_ROWS; k++) hs[k] = blk_u16(row[k] + o);
        _mm512_store_ps((float *)(dst + PANEL_B), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)hs)));
    }
}

/* The activations of 16 tokens t0.. (n <= 16 of them; the rest zero) as the tiles A read
 * them: per block b, 16 rows of 32 quant bytes (512 contiguous bytes at xa + b * 512) and
 * the 16 tokens' f16(a.d) as f32 (at da + b * 16). */
static void pack_tokens(const uint8_t *x, size_t xs, int n, int64_t nb, uint8_t *xa, float *da) {
    for (int64_t b = 0; b < nb; b++) {
        for (int m = 0; m < AMX_TOKS; m++) {
            const uint8_t *blk = x + (size_t)m * xs + (size_t)b * Q8_0_BYTES;
            __m256i q = m < n ? load32(blk + Q8_0_QS) : _mm256_setzero_si256();
            _mm256_store_si256((__m256i *)(xa + (size_t)b * 512 + 32 * m), q);
            da[b * AMX_TOKS + m] = m < n ? f16_at(blk + Q8_0_D) : 0.0f;
        }
    }
}

/* acc[m] = fma(dw * da[m], (float)sums[m], acc[m]) for the 16 tokens m of one stored tile C. */
static inline __attribute__((always_inline)) void
scale_tile(const int32_t *sums, __m512 dw, const float *da, __m512 acc[AMX_TOKS]) {
    _Pragma("GCC unroll 16")
    for (int m = 0; m < AMX_TOKS; m++) {
        __m512 f = _mm512_cvtepi32_ps(_mm512_load_si512((const __m512i *)(sums + 16 * m)));
        __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(da[m]));
        acc[m] = _mm512_fmadd_ps(s, f, acc[m]);
    }
}

/* Block order[k] into tile C, stored to sums[SLOT]. Tile registers are not renamed, so
 * products run two blocks ahead of the vector unit that scales them, in four C tiles and
 * two pairs of A and B tiles taken in turn. */
#define AMX_ISSUE(C, A, B, SLOT, K)                                                               \
    do {                                                                                          \
        const int64_t bk_ = order[K];                                                             \
        _tile_zero(C);                                                                            \
        _tile_loadd(A, xa + (size_t)bk_ * 512, 32);                                               \
        _tile_loadd(B, panel + (size_t)bk_ * PANEL_BLK, 64);                                      \
        _tile_dpbssd(C, A, B);                                                                    \
        _tile_stored(C, sums[SLOT], 64);                                                          \
    } while (0)

/* Block order[K], stored in sums[SLOT], into its chain's accumulators; a chain's first block
 * saves the previous chain's. */
#define AMX_SCALE(SLOT, K)                                                                        \
    do {                                                                                          \
        const int64_t bk_ = order[K];                                                             \
        if (bk_ < LEGACY_CHAINS && bk_ > 0) {                                                     \
            _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) {                          \
                chain[bk_ - 1][m] = acc[m];                                                       \
                acc[m] = _mm512_setzero_ps();                                                     \
            }                                                                                     \
        }                                                                                         \
        scale_tile(sums[SLOT], _mm512_load_ps((const float *)(panel + (size_t)bk_ * PANEL_BLK + PANEL_B)), \
                   da + bk_ * AMX_TOKS, acc);                                                     \
    } while (0)

/* The panel's 16 rows against 16 packed tokens: out[m] = the 16 rows' dots with token m.
 * order[] lists the nb blocks chain by chain (0, 4, 8, .., 1, 5, ..), so one chain's 16
 * accumulators stay in registers. */
static void amx_tile(int64_t nb, const int32_t *order, const uint8_t *panel, const uint8_t *xa, const float *da,
                     float out[AMX_TOKS][AMX_ROWS]) {
    int32_t sums[4][AMX_TOKS * AMX_ROWS] __attribute__((aligned(64)));
    __m512 chain[LEGACY_CHAINS][AMX_TOKS], acc[AMX_TOKS];
    for (int j = 0; j < LEGACY_CHAINS; j++)
        for (int m = 0; m < AMX_TOKS; m++) chain[j][m] = _mm512_setzero_ps();
    _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) acc[m] = _mm512_setzero_ps();
    AMX_ISSUE(T_C0, T_A0, T_B0, 0, 0);
    if (nb > 1) AMX_ISSUE(T_C1, T_A1, T_B1, 1, 1);
    int64_t k = 0;
    for (; k + 4 <= nb; k += 4) {
        if (k + 2 < nb) AMX_ISSUE(T_C2, T_A0, T_B0, 2, k + 2);
        AMX_SCALE(0, k);
        if (k + 3 < nb) AMX_ISSUE(T_C3, T_A1, T_B1, 3, k + 3);
        AMX_SCALE(1, k + 1);
        if (k + 4 < nb) AMX_ISSUE(T_C0, T_A0, T_B0, 0, k + 4);
        AMX_SCALE(2, k + 2);
        if (k + 5 < nb) AMX_ISSUE(T_C1, T_A1, T_B1, 1, k + 5);
        AMX_SCALE(3, k + 3);
    }
    if (k < nb) {                                   /* 1..3 blocks left, issued already up to k + 1 */
        if (k + 2 < nb) AMX_ISSUE(T_C2, T_A0, T_B0, 2, k + 2);
        AMX_SCALE(0, k);
        if (k + 1 < nb) AMX_SCALE(1, k + 1);
        if (k + 2 < nb) AMX_SCALE(2, k + 2);
    }
    const int last = nb < LEGACY_CHAINS ? (int)nb - 1 : LEGACY_CHAINS - 1;
    _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) chain[last][m] = acc[m];
    for (int m = 0; m < AMX_TOKS; m++)
        _mm512_store_ps(out[m], _mm512_add_ps(_mm512_add_ps(chain[0][m], chain[2][m]), _mm512_add_ps(chain[1][m], chain[3][m])));
}

static bool gemm_legacy_amx(int q4, int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                            size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride) {
    const int64_t nb = n_in / QK, n_grp = (n_tok + AMX_TOKS - 1) / AMX_TOKS;
    const size_t rb = (size_t)nb * (q4 ? Q4_0_BYTES : Q8_0_BYTES);
    /* Per 16-token group its packed quants and scales (nb * 576 bytes), the panel, the block
     * order. The model loader bounds n_in and n_tok, so these sizes do not overflow. */
    const size_t grp_bytes = (size_t)nb * (512 + 64), panel_bytes = (size_t)nb * PANEL_BLK;
    const size_t order_bytes = ((size_t)nb * 4 + 63) & ~(size_t)63;
    uint8_t *buf = aligned_alloc(64, (size_t)n_grp * grp_bytes + panel_bytes + order_bytes);
    if (!buf) return false;
    uint8_t *panel = buf + (size_t)n_grp * grp_bytes;
    int32_t *order = (int32_t *)(panel + panel_bytes);
    int64_t k = 0;
    for (int64_t j = 0; j < LEGACY_CHAINS; j++)
        for (int64_t b = j; b < nb; b += LEGACY_CHAINS) order[k++] = (int32_t)b;
    const uint8_t *x = xq;
    for (int64_t g = 0; g < n_grp; g++) {
        uint8_t *xa = buf + (size_t)g * grp_bytes;
        int n = n_tok - g * AMX_TOKS < AMX_TOKS ? (int)(n_tok - g * AMX_TOKS) : AMX_TOKS;
        pack_tokens(x + (size_t)(g * AMX_TOKS) * xq_stride, xq_stride, n, nb, xa, (float *)(xa + (size_t)nb * 512));
    }
    amx_tiles_configure(AMX_K);
    float out[AMX_TOKS][AMX_ROWS] __attribute__((aligned(64)));
    for (int64_t r = r0; r < r1; r += AMX_ROWS) {
        const int nr = r1 - r < AMX_ROWS ? (int)(r1 - r) : AMX_ROWS;
        const __mmask16 keep = (__mmask16)((1u << nr) - 1u);
        pack_panel(q4, (const uint8_t *)w + (size_t)r * rb, rb, nr, nb, panel);
        for (int64_t g = 0; g < n_grp; g++) {
            const uint8_t *xa = buf + (size_t)g * grp_bytes;
            amx_tile(nb, order, panel, xa, (const float *)(xa + (size_t)nb * 512), out);
            const int64_t t = g * AMX_TOKS;
            const int nt = n_tok - t < AMX_TOKS ? (int)(n_tok - t) : AMX_TOKS;
            for (int m = 0; m < nt; m++) _mm512_mask_storeu_ps(y + (t + m) * y_stride + r, keep, _mm512_load_ps(out[m]));
        }
    }
    _tile_release();
    free(buf);
    return true;
}

bool ll_gemm_q4_0_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                      int64_t n_tok, float *y, int64_t y_stride) {
    return gemm_legacy_amx(1, n_in, w, r0, r1, xq, xq_stride, n_tok, y, y_stride);
}

bool ll_gemm_q8_0_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                      int64_t n_tok, float *y, int64_t y_stride) {
    return gemm_legacy_amx(0, n_in, w, r0, r1, xq, xq_stride, n_tok, y, y_stride);
}
