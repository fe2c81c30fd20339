/* kernels/x86: AVX2 register-tiled matrix products of Q4_K and Q6_K weights against Q8_K
 * activations, for prompts and batches (kernels.h, ll_gemm_fn).
 *
 * Why not dot_multi: there each weight row meets one token per maddubs, and every 32-element
 * sub-block of every (row, token) pair needs its own madd with the sub-block scale. maddubs and
 * madd share the one integer-multiply pipe on the CPUs this targets (a 256-bit op is two
 * 128-bit halves on Zen 1), so that madd costs as much as the product itself. Here the
 * activations of 8 tokens are first repacked ("x8" layout below) so that one vector holds four
 * consecutive elements of each of the 8 tokens; the weight's four matching quants are
 * broadcast to all lanes, and one maddubs gives partial sums for 8 tokens at once. The partial
 * sums of a whole sub-block share one scale, so they are added as i16 first and the scale is
 * applied by a single madd per sub-block for all 8 tokens (Q4_K: 8 maddubs per madd; Q6_K: 4,
 * see q6_k_tile for how its offset 32 stays inside the i16 range).
 *
 * The weights are not repacked in the model: each L2-sized tile of rows is unpacked once per
 * call into "dq" rows (quant bytes, i16 scales, f32 d). Q4_K: two rows meet two token groups
 * per call, so each activation load and each broadcast of quants feeds 2 maddubs (measured
 * against 4 rows x 1 group and 1 row x 4 groups: within noise, 2 x 2 slightly ahead). Q6_K:
 * one row meets 4 token groups per call, so each broadcast of its quants feeds 4 maddubs. On Zen 1 the integer multiplies (4 maddubs + 1 madd per 16 elements and 8
 * tokens) then take ~80% of the run time; the rest is adds and broadcasts that share the
 * pipes.
 *
 * Exactness: every integer sum is the exact value the single dot computes (no i16 sum can
 * overflow: see the bounds at each kernel), and the per-super-block f32 expression and its
 * accumulation order are those of k4_scale / kq_scale_offs, evaluated lane-wise for the 8
 * tokens (-std=c11: no contraction into FMA). So y[t][r] is bit-identical to
 * dot(row r, token t) of the same table; tests/kernels compares them with memcmp. */
#include "kernels/x86/kquants_util.h"

#include <stdlib.h>

/* One super-block of 8 tokens' Q8_K activations, repacked ("x8"):
 *   PK_D     8 f32      the tokens' scales d
 *   PK_QS    64 x 32 B  chunk k: token c's elements 4k..4k+3 at bytes 4c..4c+3
 *   PK_MINS  4 x 32 B   vector p: token c's (bsum_4p + bsum_4p+1, bsum_4p+2 + bsum_4p+3) as two
 *                       i16 at bytes 4c..4c+3: the 32-element sums Q4_K's mins multiply
 *   PK_CORR  16 x 32 B  (Q6_K only) vector j: token c's 32 * (sum of elements 4k + 2h, 4k + 2h + 1
 *                       over the sub-block's chunks k = 4j..4j+3) as i16 at bytes 4c + 2h: Q6_K's
 *                       offset 32 in the lanes of the sub-block's maddubs sums; each at most
 *                       32 * 8 * 127 = 32512 in size
 * Tokens past the end of the prompt repeat the first token of the group; their outputs are
 * computed and dropped. */
enum {
    PK_D = 0, PK_QS = 32, PK_MINS = PK_QS + 64 * 32, PK_CORR = PK_MINS + 4 * 32,
    PK_BYTES_Q4_K = PK_CORR, PK_BYTES_Q6_K = PK_CORR + 16 * 32,
    GEMM_COLS = 8, GEMM_ROWS = 4,
    GEMM_GROUPS = 4,                            /* most token groups one tile call takes */
    GEMM_TOKS = GEMM_COLS * GEMM_GROUPS,
};

/* Weight bytes kept hot in L2 while the token groups stream past (as matmul.c's tile). */
enum { GEMM_TILE_BYTES = 128 * 1024, GEMM_TILE_MAX_ROWS = 64 };

/* Tokens x .. x + (nc-1)*xs (nc <= 8), nb super-blocks each, into nb x8 blocks of pk_bytes
 * at dst; with_corr adds PK_CORR. */
static void pack_q8_k_x8(const uint8_t *x, size_t xs, int nc, int64_t nb, bool with_corr, size_t pk_bytes,
                         uint8_t *dst) {
    const __m256i ones8 = _mm256_set1_epi8(1);
    const uint8_t *col[GEMM_COLS];
    for (int c = 0; c < GEMM_COLS; c++) col[c] = x + (size_t)(c < nc ? c : 0) * xs;
    for (int64_t i = 0; i < nb; i++, dst += pk_bytes) {
        const size_t o = (size_t)i * Q8_K_BYTES;
        __m256i v[8];
        for (int c = 0; c < GEMM_COLS; c++) memcpy(dst + PK_D + 4 * c, col[c] + o + Q8_K_D, 4);
        for (int s = 0; s < 8; s++) {
            for (int c = 0; c < GEMM_COLS; c++) v[c] = load32(col[c] + o + Q8_K_QS + 32 * s);
            transpose8_epi32(v);
            for (int k = 0; k < 8; k++) _mm256_storeu_si256((__m256i *)(dst + PK_QS + 32 * (8 * s + k)), v[k]);
            for (int j = 0; with_corr && j < 2; j++) {       /* chunks 8s + 4j .. 8s + 4j + 3: sub-block 2s + j */
                __m256i c = _mm256_maddubs_epi16(ones8, v[4 * j]);
                for (int k = 1; k < 4; k++) c = _mm256_add_epi16(c, _mm256_maddubs_epi16(ones8, v[4 * j + k]));
                _mm256_storeu_si256((__m256i *)(dst + PK_CORR + 32 * (2 * s + j)), _mm256_slli_epi16(c, 5));
            }
        }
        for (int c = 0; c < GEMM_COLS; c++) v[c] = load32(col[c] + o + Q8_K_BSUMS);
        for (int c = 0; c < GEMM_COLS; c++)   /* |bsum| <= 16 * 128, so the i16 pair sums are exact */
            v[c] = _mm256_castsi128_si256(_mm_hadd_epi16(_mm256_castsi256_si128(v[c]),
                                                         _mm256_extracti128_si256(v[c], 1)));
        transpose8_epi32(v);
        for (int p = 0; p < 4; p++) _mm256_storeu_si256((__m256i *)(dst + PK_MINS + 32 * p), v[p]);
    }
}

#define ROWS(r) _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)
#define GROUPS(g) _Pragma("GCC unroll 4") for (int g = 0; g < ng; g++)

/* Q4_K rows decoded once per call ("dq4" rows): per super-block DQ4_BYTES, the 256 quants
 * 0..15 as bytes in element order (sub-block j at bytes 32j..32j+31), the 8 scales as i16 at
 * DQ4_SC, the 8 mins as i16 at DQ4_MINS (dword p: m_2p, m_2p+1, as PK_MINS pairs them), the
 * f16 d and dmin as f32 at DQ4_D, DQ4_DMIN (exact). The nibble and scale unpacking then
 * happens once per row tile, not once per row and token group. */
enum { DQ4_SC = QK_K, DQ4_MINS = DQ4_SC + 16, DQ4_D = DQ4_MINS + 16, DQ4_DMIN = DQ4_D + 4, DQ4_BYTES = QK_K + 64 };

static void q4_k_decode_rows(const uint8_t *w, size_t rb, int64_t nrows, int64_t nb, uint8_t *dst) {
    const __m256i m15 = _mm256_set1_epi8(15);
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *wb = w + (size_t)r * rb;
        for (int64_t i = 0; i < nb; i++, wb += Q4_K_BYTES, dst += DQ4_BYTES) {
            _Pragma("GCC unroll 4")
            for (int g = 0; g < 4; g++) {
                __m256i qv = load32(wb + Q4_K_QS + 32 * g);
                _mm256_store_si256((__m256i *)(dst + 64 * g), _mm256_and_si256(qv, m15));
                _mm256_store_si256((__m256i *)(dst + 64 * g + 32), _mm256_and_si256(_mm256_srli_epi16(qv, 4), m15));
            }
            uint8_t sc[8];
            __m128i mins = k4_unpack_scales_mins(wb + Q4_K_SCALES, sc);
            _mm_store_si128((__m128i *)(dst + DQ4_SC), _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
            _mm_store_si128((__m128i *)(dst + DQ4_MINS), mins);
            float d = f16_at(wb + Q4_K_D), dmin = f16_at(wb + Q4_K_DMIN);
            memcpy(dst + DQ4_D, &d, 4);
            memcpy(dst + DQ4_DMIN, &dmin, 4);
        }
    }
}

/* Q4_K, nr dq4 rows (row r at w + r * rb) x ng packed token groups (group g at pk + g * pk_gs):
 * out[r][8g + c] = dot(row r, token c of group g).
 * Integer bounds: quants 0..15, |activation| <= 127 (Q8_K), so one maddubs lane is at most
 * 2 * 15 * 127 = 3810 and the sum of the 8 chunks of a sub-block at most 30480 < 32767.
 * f32: out starts at 0 and adds (d * a.d) * isum - (dmin * a.d) * msum per super-block in
 * order, k4_scale's expression. */
static inline __attribute__((always_inline)) void
q4_k_tile(int nr, int ng, int64_t nb, const uint8_t *w, size_t rb, const uint8_t *pk, size_t pk_gs,
          float out[][GEMM_TOKS]) {
    ROWS(r) GROUPS(g) _mm256_storeu_ps(out[r] + GEMM_COLS * g, _mm256_setzero_ps());
    for (int64_t i = 0; i < nb; i++, w += DQ4_BYTES, pk += PK_BYTES_Q4_K) {
        __m256i isum[GEMM_ROWS][GEMM_GROUPS];
        ROWS(r) GROUPS(g) isum[r][g] = _mm256_setzero_si256();
        _Pragma("GCC unroll 8")
        for (int j = 0; j < 8; j++) {
            __m256i p16[GEMM_ROWS][GEMM_GROUPS];
            ROWS(r) GROUPS(g) p16[r][g] = _mm256_setzero_si256();
            _Pragma("GCC unroll 8")
            for (int k = 0; k < 8; k++) {
                __m256i a[GEMM_GROUPS];
                GROUPS(g) a[g] = load32(pk + g * pk_gs + PK_QS + 32 * (8 * j + k));
                ROWS(r) {
                    __m256i q = bcast4(w + (size_t)r * rb + 32 * j + 4 * k);
                    GROUPS(g) p16[r][g] = add_i16_chain(p16[r][g], _mm256_maddubs_epi16(q, a[g]));
                }
            }
            ROWS(r) {
                int16_t s;
                memcpy(&s, w + (size_t)r * rb + DQ4_SC + 2 * j, 2);
                __m256i sv = _mm256_set1_epi16(s);
                GROUPS(g) isum[r][g] = add_i32_chain(isum[r][g], _mm256_madd_epi16(p16[r][g], sv));
            }
        }
        ROWS(r) {
            const uint8_t *wr = w + (size_t)r * rb;
            float d, dmin;
            memcpy(&d, wr + DQ4_D, 4);
            memcpy(&dmin, wr + DQ4_DMIN, 4);
            GROUPS(g) {
                const uint8_t *pg = pk + g * pk_gs;
                __m256i ms = _mm256_madd_epi16(load32(pg + PK_MINS), bcast4(wr + DQ4_MINS));
                for (int p = 1; p < 4; p++)
                    ms = _mm256_add_epi32(ms, _mm256_madd_epi16(load32(pg + PK_MINS + 32 * p), bcast4(wr + DQ4_MINS + 4 * p)));
                __m256 ad = _mm256_loadu_ps((const float *)(pg + PK_D));
                __m256 dd = _mm256_mul_ps(_mm256_set1_ps(d), ad), dm = _mm256_mul_ps(_mm256_set1_ps(dmin), ad);
                __m256 v = _mm256_sub_ps(_mm256_mul_ps(dd, _mm256_cvtepi32_ps(isum[r][g])),
                                         _mm256_mul_ps(dm, _mm256_cvtepi32_ps(ms)));
                float *o = out[r] + GEMM_COLS * g;
                _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), v));
            }
        }
    }
}

/* Q6_K rows decoded once per call ("dq" rows): per super-block DQ_BYTES, the 256 quants
 * q + 32 as unsigned bytes 0..63 in element order, the 16 scales as i16 at DQ_SC, the f16 d as
 * f32 at DQ_D. Decoding per row tile instead of per row and token group takes the bit
 * unpacking out of the token loop. */
enum { DQ_SC = QK_K, DQ_D = DQ_SC + 32, DQ_BYTES = DQ_D + 32 };

static void q6_k_decode_rows(const uint8_t *w, size_t rb, int64_t nrows, int64_t nb, uint8_t *dst) {
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *wb = w + (size_t)r * rb;
        for (int64_t i = 0; i < nb; i++, wb += Q6_K_BYTES, dst += DQ_BYTES) {
            _Pragma("GCC unroll 2")
            for (int h = 0; h < 2; h++) {
                __m256i ql0 = load32(wb + Q6_K_QL + 64 * h), ql1 = load32(wb + Q6_K_QL + 64 * h + 32);
                __m256i qhv = load32(wb + Q6_K_QH + 32 * h);
                _Pragma("GCC unroll 4")
                for (int p = 0; p < 4; p++)
                    _mm256_store_si256((__m256i *)(dst + 128 * h + 32 * p), q6_k_plane(ql0, ql1, qhv, p));
            }
            __m128i sc = _mm_loadu_si128((const __m128i *)(wb + Q6_K_SCALES));
            _mm256_store_si256((__m256i *)(dst + DQ_SC), _mm256_cvtepi8_epi16(sc));
            float d = f16_at(wb + Q6_K_D);
            memcpy(dst + DQ_D, &d, 4);
        }
    }
}

/* Q6_K, nr dq rows (row r at w + r * rb) x ng packed token groups (group g at pk + g * pk_gs):
 * out[r][8g + c] = dot(row r, token c of group g). Only nr = 1 is instantiated: with 4 groups
 * the accumulators fill the 16 registers (the f32 sums live in out[], touched once per
 * super-block).
 * Integer sums: maddubs of the unsigned q + 32 (0..63) against a (|a| <= 127) is at most
 * 2 * 63 * 127 = 16002 in a lane, so it never saturates. The 4 chunks of a 16-element
 * sub-block are added in i16 with wrap-around and PK_CORR (32 * the same lanes' activation
 * sums) is subtracted: the result is sum((q - 32) * a) over the lane's 8 products modulo
 * 2^16, and since that sum is at most 8 * 32 * 127 = 32512 in size it is the exact value.
 * (The Q8_K quantizers clamp to -127..127; an activation of -128 could reach 32768.) One
 * madd per sub-block then applies the scale: 5 multiplies per 16 elements and 8 tokens
 * instead of the 6.5 of widening every two chunks and correcting through the bsums, and the
 * total is the dot's isum - 32 * offs. f32: out starts at 0 and adds (f16(d) * a.d) * isum
 * per super-block in order, the dot's kq_scale_offs sum. */
static inline __attribute__((always_inline)) void
q6_k_tile(int nr, int ng, int64_t nb, const uint8_t *w, size_t rb, const uint8_t *pk, size_t pk_gs,
          float out[][GEMM_TOKS]) {
    ROWS(r) GROUPS(g) _mm256_storeu_ps(out[r] + GEMM_COLS * g, _mm256_setzero_ps());
    for (int64_t i = 0; i < nb; i++, w += DQ_BYTES, pk += PK_BYTES_Q6_K) {
        __m256i isum[GEMM_ROWS][GEMM_GROUPS];
        ROWS(r) GROUPS(g) isum[r][g] = _mm256_setzero_si256();
        for (int j = 0; j < 16; j++) {
            __m256i p16[GEMM_ROWS][GEMM_GROUPS];
            ROWS(r) GROUPS(g) p16[r][g] = _mm256_setzero_si256();
            _Pragma("GCC unroll 4")
            for (int c = 0; c < 4; c++) {
                const int k = 4 * j + c;
                __m256i a[GEMM_GROUPS];
                GROUPS(g) a[g] = load32(pk + g * pk_gs + PK_QS + 32 * k);
                ROWS(r) {
                    __m256i q = bcast4(w + (size_t)r * rb + 4 * k);
                    GROUPS(g) p16[r][g] = add_i16_chain(p16[r][g], _mm256_maddubs_epi16(q, a[g]));
                }
            }
            __m256i corr[GEMM_GROUPS];
            GROUPS(g) corr[g] = load32(pk + g * pk_gs + PK_CORR + 32 * j);
            ROWS(r) {
                int16_t s;
                memcpy(&s, w + (size_t)r * rb + DQ_SC + 2 * j, 2);
                __m256i sv = _mm256_set1_epi16(s);
                GROUPS(g) isum[r][g] = _mm256_add_epi32(isum[r][g], _mm256_madd_epi16(_mm256_sub_epi16(p16[r][g], corr[g]), sv));
            }
        }
        ROWS(r) {
            float d;
            memcpy(&d, w + (size_t)r * rb + DQ_D, 4);
            GROUPS(g) {
                __m256 dd = _mm256_mul_ps(_mm256_set1_ps(d), _mm256_loadu_ps((const float *)(pk + g * pk_gs + PK_D)));
                float *o = out[r] + GEMM_COLS * g;
                _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), _mm256_mul_ps(dd, _mm256_cvtepi32_ps(isum[r][g]))));
            }
        }
    }
}

typedef void (*tile_fn)(int64_t nb, const uint8_t *w, size_t rb, const uint8_t *pk, size_t pk_gs, float out[][GEMM_TOKS]);

#define TILE_INSTANCE(T, NR, NG)                                                                             \
    static void T##_##NR##_##NG(int64_t nb, const uint8_t *w, size_t rb, const uint8_t *pk, size_t pk_gs,  \
                                float o[][GEMM_TOKS]) { T(NR, NG, nb, w, rb, pk, pk_gs, o); }
TILE_INSTANCE(q4_k_tile, 1, 1)
TILE_INSTANCE(q4_k_tile, 1, 2)
TILE_INSTANCE(q4_k_tile, 2, 1)
TILE_INSTANCE(q4_k_tile, 2, 2)
TILE_INSTANCE(q6_k_tile, 1, 1)
TILE_INSTANCE(q6_k_tile, 1, 2)
TILE_INSTANCE(q6_k_tile, 1, 3)
TILE_INSTANCE(q6_k_tile, 1, 4)
/* [token groups][rows] */
static const tile_fn q4_k_tiles[GEMM_GROUPS + 1][GEMM_ROWS + 1] = {
    [1] = { NULL, q4_k_tile_1_1, q4_k_tile_2_1 }, [2] = { NULL, q4_k_tile_1_2, q4_k_tile_2_2 },
};
static const tile_fn q6_k_tiles[GEMM_GROUPS + 1][GEMM_ROWS + 1] = {
    [1] = { NULL, q6_k_tile_1_1 }, [2] = { NULL, q6_k_tile_1_2 }, [3] = { NULL, q6_k_tile_1_3 }, [4] = { NULL, q6_k_tile_1_4 },
};

/* How a type's weights reach its tile kernel: straight from the model (decode NULL), or
 * decoded per row tile into dq_row_bytes per row. */
struct gemm_type {
    const tile_fn (*tiles)[GEMM_ROWS + 1];   /* [token groups][rows] */
    int rows, groups;                        /* most rows and token groups per tile call */
    size_t row_bytes, pk_bytes, dq_row_bytes;
    bool pk_corr;
    void (*decode)(const uint8_t *w, size_t rb, int64_t nrows, int64_t nb, uint8_t *dst);
};

/* The driver shared by the types: pack every token group once, then for each L2-sized tile of
 * rows (decoded first where the type does that), each run of the type's token groups (Q4_K 2,
 * Q6_K up to 4 groups of 8 tokens) and each run of its rows (Q4_K 2, Q6_K 1), one tile kernel
 * call. */
static bool gemm_q8_k(const struct gemm_type *ty, int64_t n_in, const void *w, int64_t r0, int64_t r1,
                      const void *xq, size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride) {
    const int64_t nb = n_in / QK_K, groups = (n_tok + GEMM_COLS - 1) / GEMM_COLS;
    const size_t tile_row_bytes = ty->decode ? ty->dq_row_bytes : ty->row_bytes;
    int64_t tile = (int64_t)(GEMM_TILE_BYTES / tile_row_bytes);
    if (tile < GEMM_ROWS) tile = GEMM_ROWS;
    if (tile > GEMM_TILE_MAX_ROWS) tile = GEMM_TILE_MAX_ROWS;
    tile -= tile % ty->rows;                  /* whole row groups, except at the end of the range */
    /* The model loader bounds n_in and n_tok, so these sizes do not overflow. */
    size_t pk_size = (size_t)(groups * nb) * ty->pk_bytes;
    size_t dq_size = ty->decode ? (size_t)tile * ty->dq_row_bytes : 0;
    uint8_t *buf = aligned_alloc(64, (pk_size + dq_size + 63) & ~(size_t)63);
    if (!buf) return false;
    uint8_t *pk = buf, *dq = buf + pk_size;
    for (int64_t g = 0; g < groups; g++) {
        int64_t t = g * GEMM_COLS;
        int nc = n_tok - t < GEMM_COLS ? (int)(n_tok - t) : GEMM_COLS;
        pack_q8_k_x8((const uint8_t *)xq + (size_t)t * xq_stride, xq_stride, nc, nb, ty->pk_corr, ty->pk_bytes,
                     pk + (size_t)(g * nb) * ty->pk_bytes);
    }
    const uint8_t *wb = w;
    for (int64_t rt = r0; rt < r1; rt += tile) {
        int64_t re = rt + tile < r1 ? rt + tile : r1;
        const uint8_t *wt = wb + (size_t)rt * ty->row_bytes;
        size_t wt_stride = ty->row_bytes;
        if (ty->decode) {
            ty->decode(wt, ty->row_bytes, re - rt, nb, dq);
            wt = dq;
            wt_stride = ty->dq_row_bytes;
        }
        for (int64_t g = 0; g < groups; g += ty->groups) {
            int ng = groups - g < ty->groups ? (int)(groups - g) : ty->groups;
            int64_t t = g * GEMM_COLS;
            int nc = n_tok - t < GEMM_COLS * ng ? (int)(n_tok - t) : GEMM_COLS * ng;
            const uint8_t *pg = pk + (size_t)(g * nb) * ty->pk_bytes;
            for (int64_t r = rt; r < re; r += ty->rows) {
                int nr = re - r < ty->rows ? (int)(re - r) : ty->rows;
                float out[GEMM_ROWS][GEMM_TOKS];
                ty->tiles[ng][nr](nb, wt + (size_t)(r - rt) * wt_stride, wt_stride, pg, (size_t)nb * ty->pk_bytes, out);
                for (int c = 0; c < nc; c++)
                    for (int i = 0; i < nr; i++) y[(t + c) * y_stride + r + i] = out[i][c];
            }
        }
    }
    free(buf);
    return true;
}

bool ll_gemm_q4_k_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                       size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride) {
    const struct gemm_type ty = { q4_k_tiles, 2, 2, (size_t)(n_in / QK_K) * Q4_K_BYTES, PK_BYTES_Q4_K,
                                  (size_t)(n_in / QK_K) * DQ4_BYTES, false, q4_k_decode_rows };
    return gemm_q8_k(&ty, n_in, w, r0, r1, xq, xq_stride, n_tok, y, y_stride);
}

bool ll_gemm_q6_k_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                       size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride) {
    const struct gemm_type ty = { q6_k_tiles, 1, 4, (size_t)(n_in / QK_K) * Q6_K_BYTES, PK_BYTES_Q6_K,
                                  (size_t)(n_in / QK_K) * DQ_BYTES, true, q6_k_decode_rows };
    return gemm_q8_k(&ty, n_in, w, r0, r1, xq, xq_stride, n_tok, y, y_stride);
}
