/* kernels/x86: AVX2 register-tiled matrix products of Q4_0 and Q8_0 weights against Q8_0
 * activations, for prompts and batches (kernels.h, ll_gemm_fn).
 *
 * Layout "lanes = rows". For each tile of 8 weight rows the quants are transposed once into a
 * panel (below) where one 32-byte vector holds the same 4-byte group of one block for the 8
 * rows. A token's 4 matching activation bytes are broadcast to all lanes, and one maddubs
 * gives the 8 rows' partial sums at once; the 8 groups of a block are summed, reduced to one
 * i32 per row, scaled and accumulated, and the 8 results of a token are 8 consecutive outputs
 * (one store). Two tokens share each panel load. The panel (K = 8192: 72 KB for Q4_0, 136 KB
 * for Q8_0) stays in L2 while every token of the call passes, so the transpose is paid once
 * per 8 rows and call: no load-time repacking, no extra resident memory.
 *
 * Integer sums, exact:
 *   Q4_0  the unsigned nibbles q (0..15) on the unsigned side of maddubs; one lane is at most
 *         2 * 15 * 128 = 3840 in size, so the 8 groups of a block add up in i16 (30720 <
 *         32767); one madd per block widens them, and 8 * sum(a over the block) (per token and
 *         block, computed once per call) turns sum(q * a) into sum((q - 8) * a).
 *   Q8_0  signed x signed by the sign trick: |w| (the panel keeps |w| and w) against a with
 *         w's sign; a lane is at most 2 * 128 * 127 = 32512, so each group is widened by its
 *         own madd (no i16 headroom for a second).
 * Float order: the one in avx2_util.h (LEGACY_CHAINS), lane-wise for the 8 rows: s_b =
 * f16(w.d) * f16(a.d), four FMA chains by block index, (c0 + c2) + (c1 + c3). So y[t][r] is
 * bit-identical to the single dot and dot_multi of dot_legacy_avx2.c (tests/kernels compares
 * them with memcmp). -std=c11 keeps GCC from contracting the separate multiply and add. */
#include "kernels/x86/avx2_util.h"

#include <stdlib.h>

enum {
    GEMM_ROWS = 8,                                  /* rows per panel: the 8 lanes */
    GEMM_TOKS = 2,                                  /* tokens sharing each panel load */
    /* Panel bytes per block: 8 group vectors (Q4_0 nibbles, Q8_0 |w|), for Q8_0 8 more with
     * the signed w, then the 8 rows' weight scales as f32. */
    PANEL_Q4_0 = 8 * 32 + 32,
    PANEL_Q8_0 = 16 * 32 + 32,
};

/* Rows w, w + rb, ... (nr <= 8 of them; missing rows repeat the last, their lanes are dropped)
 * into nb panel blocks at dst. */
static void pack_panel(int q4, const uint8_t *w, size_t rb, int nr, int64_t nb, uint8_t *dst) {
    const size_t wbytes = q4 ? Q4_0_BYTES : Q8_0_BYTES, pbytes = q4 ? PANEL_Q4_0 : PANEL_Q8_0;
    const uint8_t *row[GEMM_ROWS];
    for (int k = 0; k < GEMM_ROWS; k++) row[k] = w + (size_t)(k < nr ? k : nr - 1) * rb;
    for (int64_t b = 0; b < nb; b++, dst += pbytes) {
        const size_t o = (size_t)b * wbytes;
        __m256i v[GEMM_ROWS];
        for (int k = 0; k < GEMM_ROWS; k++) v[k] = q4 ? nibbles_32(row[k] + o + Q4_0_QS) : load32(row[k] + o + Q8_0_QS);
        transpose8_epi32(v);                        /* v[g]: group g of the 8 rows */
        for (int g = 0; g < 8; g++) {
            if (q4) {
                _mm256_store_si256((__m256i *)(dst + 32 * g), v[g]);
            } else {
                _mm256_store_si256((__m256i *)(dst + 32 * g), _mm256_abs_epi8(v[g]));
                _mm256_store_si256((__m256i *)(dst + 256 + 32 * g), v[g]);
            }
        }
        __m128i h = _mm_setr_epi16((short)blk_u16(row[0] + o), (short)blk_u16(row[1] + o), (short)blk_u16(row[2] + o),
                                   (short)blk_u16(row[3] + o), (short)blk_u16(row[4] + o), (short)blk_u16(row[5] + o),
                                   (short)blk_u16(row[6] + o), (short)blk_u16(row[7] + o));
        _mm256_store_ps((float *)(dst + pbytes - 32), _mm256_cvtph_ps(h));
    }
}

/* Per token t < n_tok and block b: da[t * nb + b] = f16(a.d) as f32 and, for Q4_0,
 * corr[t * nb + b] = 8 * the sum of the block's 32 activation bytes. */
static void prep_tokens(int q4, const uint8_t *x, size_t xs, int64_t n_tok, int64_t nb, float *da, int32_t *corr) {
    const __m256i ones8 = _mm256_set1_epi8(1);
    for (int64_t t = 0; t < n_tok; t++) {
        const uint8_t *xt = x + (size_t)t * xs;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = xt + (size_t)b * Q8_0_BYTES;
            da[t * nb + b] = f16_at(blk + Q8_0_D);
            if (q4) corr[t * nb + b] = 8 * hsum_i32(mul_sum_u8_i8(ones8, load32(blk + Q8_0_QS)));
        }
    }
}

/* One block b of the panel against nt tokens: f[t] = the 8 rows' exact block sums as f32,
 * s[t] = the 8 rows' f16(w.d) * f16(a_t.d). */
static inline __attribute__((always_inline)) void
legacy_block_step(int q4, int nt, int64_t b, const uint8_t *pb, const uint8_t *const *xt, const float *const *dat,
                  const int32_t *const *corrt, __m256 f[], __m256 s[]) {
    const __m256i ones16 = _mm256_set1_epi16(1);
    const size_t ao = (size_t)b * Q8_0_BYTES + Q8_0_QS;
    __m256i is[GEMM_TOKS];
    if (q4) {
        __m256i s16[GEMM_TOKS];
        for (int t = 0; t < nt; t++) s16[t] = _mm256_setzero_si256();
        _Pragma("GCC unroll 8")
        for (int g = 0; g < 8; g++) {
            __m256i p = load32(pb + 32 * g);
            for (int t = 0; t < nt; t++)
                s16[t] = add_i16_chain(s16[t], _mm256_maddubs_epi16(p, bcast4(xt[t] + ao + 4 * g)));
        }
        for (int t = 0; t < nt; t++)
            is[t] = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], ones16), _mm256_set1_epi32(corrt[t][b]));
    } else {
        for (int t = 0; t < nt; t++) is[t] = _mm256_setzero_si256();
        _Pragma("GCC unroll 8")
        for (int g = 0; g < 8; g++) {
            __m256i pa = load32(pb + 32 * g), ps = load32(pb + 256 + 32 * g);
            for (int t = 0; t < nt; t++) {
                __m256i a = _mm256_sign_epi8(bcast4(xt[t] + ao + 4 * g), ps);
                is[t] = add_i32_chain(is[t], _mm256_madd_epi16(_mm256_maddubs_epi16(pa, a), ones16));
            }
        }
    }
    const __m256 dw = _mm256_load_ps((const float *)(pb + (q4 ? PANEL_Q4_0 : PANEL_Q8_0) - 32));
    for (int t = 0; t < nt; t++) {
        f[t] = _mm256_cvtepi32_ps(is[t]);
        s[t] = _mm256_mul_ps(dw, _mm256_set1_ps(dat[t][b]));
    }
}

/* The panel's 8 rows against tokens x, x + xs (nt <= 2): res[t] lane k = dot(row k, token t). */
static inline __attribute__((always_inline)) void
legacy_tile(int q4, int nt, int64_t nb, const uint8_t *panel, const uint8_t *x, size_t xs, const float *da,
            const int32_t *corr, __m256 res[]) {
    const size_t pbytes = q4 ? PANEL_Q4_0 : PANEL_Q8_0;
    const uint8_t *xt[GEMM_TOKS];
    const float *dat[GEMM_TOKS];
    const int32_t *corrt[GEMM_TOKS];
    __m256 acc[GEMM_TOKS][LEGACY_CHAINS];
    for (int t = 0; t < nt; t++) {
        xt[t] = x + (size_t)t * xs;
        dat[t] = da + t * nb;
        corrt[t] = corr + t * nb;
        for (int j = 0; j < LEGACY_CHAINS; j++) acc[t][j] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i + LEGACY_CHAINS <= nb; i += LEGACY_CHAINS) {
        _Pragma("GCC unroll 4")
        for (int j = 0; j < LEGACY_CHAINS; j++) {
            __m256 f[GEMM_TOKS], s[GEMM_TOKS];
            legacy_block_step(q4, nt, i + j, panel + (size_t)(i + j) * pbytes, xt, dat, corrt, f, s);
            for (int t = 0; t < nt; t++) acc[t][j] = _mm256_fmadd_ps(s[t], f[t], acc[t][j]);
        }
    }
    _Pragma("GCC unroll 3")
    for (int j = 0; j < LEGACY_CHAINS - 1; j++) {   /* the last nb % 4 blocks: chains 0.. */
        if (i + j >= nb) break;
        __m256 f[GEMM_TOKS], s[GEMM_TOKS];
        legacy_block_step(q4, nt, i + j, panel + (size_t)(i + j) * pbytes, xt, dat, corrt, f, s);
        for (int t = 0; t < nt; t++) acc[t][j] = _mm256_fmadd_ps(s[t], f[t], acc[t][j]);
    }
    for (int t = 0; t < nt; t++)
        res[t] = _mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][2]), _mm256_add_ps(acc[t][1], acc[t][3]));
}

typedef void (*tile_fn)(int64_t nb, const uint8_t *panel, const uint8_t *x, size_t xs, const float *da,
                        const int32_t *corr, __m256 res[]);

#define TILE_INSTANCE(NAME, Q4, NT)                                                                       \
    static void NAME(int64_t nb, const uint8_t *panel, const uint8_t *x, size_t xs, const float *da,     \
                     const int32_t *corr, __m256 res[]) { legacy_tile(Q4, NT, nb, panel, x, xs, da, corr, res); }
TILE_INSTANCE(q4_0_tile_1, 1, 1)
TILE_INSTANCE(q4_0_tile_2, 1, 2)
TILE_INSTANCE(q8_0_tile_1, 0, 1)
TILE_INSTANCE(q8_0_tile_2, 0, 2)
_Static_assert(GEMM_TOKS == 2, "tile instances for 1 and 2 tokens");

/* The driver for both types: per-token scales (and Q4_0 sums) once, then for each 8 rows a
 * panel and every token against it. */
static bool gemm_legacy(int q4, const tile_fn by_toks[GEMM_TOKS + 1], int64_t n_in, const void *w, int64_t r0,
                        int64_t r1, const void *xq, size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride) {
    const int64_t nb = n_in / QK;
    const size_t rb = (size_t)nb * (q4 ? Q4_0_BYTES : Q8_0_BYTES), pbytes = q4 ? PANEL_Q4_0 : PANEL_Q8_0;
    /* f32 scales and i32 sums per (token, block), then the 32-byte aligned panel; the model
     * loader bounds n_in and n_tok, so these sizes do not overflow. */
    size_t tok_bytes = ((size_t)n_tok * (size_t)nb * 8 + 63) & ~(size_t)63;
    size_t total = (tok_bytes + (size_t)nb * pbytes + 63) & ~(size_t)63;
    uint8_t *buf = aligned_alloc(64, total);
    if (!buf) return false;
    float *da = (float *)buf;
    int32_t *corr = (int32_t *)(buf + (size_t)n_tok * (size_t)nb * 4);
    uint8_t *panel = buf + tok_bytes;
    const uint8_t *x = xq;
    prep_tokens(q4, x, xq_stride, n_tok, nb, da, corr);
    for (int64_t r = r0; r < r1; r += GEMM_ROWS) {
        int nr = r1 - r < GEMM_ROWS ? (int)(r1 - r) : GEMM_ROWS;
        pack_panel(q4, (const uint8_t *)w + (size_t)r * rb, rb, nr, nb, panel);
        for (int64_t t = 0; t < n_tok; t += GEMM_TOKS) {
            int nt = n_tok - t < GEMM_TOKS ? (int)(n_tok - t) : GEMM_TOKS;
            __m256 res[GEMM_TOKS];
            by_toks[nt](nb, panel, x + (size_t)t * xq_stride, xq_stride, da + t * nb, corr + t * nb, res);
            for (int i = 0; i < nt; i++) {
                float *yt = y + (t + i) * y_stride + r;
                if (nr == GEMM_ROWS) {
                    _mm256_storeu_ps(yt, res[i]);
                } else {
                    float tmp[GEMM_ROWS];
                    _mm256_storeu_ps(tmp, res[i]);
                    memcpy(yt, tmp, (size_t)nr * sizeof *yt);
                }
            }
        }
    }
    free(buf);
    return true;
}

static const tile_fn q4_0_by_toks[GEMM_TOKS + 1] = { NULL, q4_0_tile_1, q4_0_tile_2 };
static const tile_fn q8_0_by_toks[GEMM_TOKS + 1] = { NULL, q8_0_tile_1, q8_0_tile_2 };

bool ll_gemm_q4_0_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                       int64_t n_tok, float *y, int64_t y_stride) {
    return gemm_legacy(1, q4_0_by_toks, n_in, w, r0, r1, xq, xq_stride, n_tok, y, y_stride);
}

bool ll_gemm_q8_0_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                       int64_t n_tok, float *y, int64_t y_stride) {
    return gemm_legacy(0, q8_0_by_toks, n_in, w, r0, r1, xq, xq_stride, n_tok, y, y_stride);
}
