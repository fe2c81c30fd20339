/* kernels/x86: AMX matrix products of Q4_K weights against Q8_K activations, for prompts and
 * batches (kernels.h, ll_gemm_fn), on CPUs with AMX-INT8 (tile layout: amx_util.h).
 *
 * One tile multiply (TDPBSUD: signed activation bytes x unsigned weight nibbles 0..15) takes
 * one 32-element sub-block of 16 tokens and 16 weight rows and gives its exact i32 sums. A
 * super-block's integer part is then, per (token, row), isum = sum over its 8 sub-blocks of
 * scale x sub-block sum (a vector multiply per token and sub-block), and its min part
 * msum = sum of min x (32-element activation sum), four i16 pair products per token
 * (VPDPWSSD). Both are exact integers, the ones the single dot computes.
 *
 * Float order: k4_scale (kquants_util.h) per super-block, the super-blocks summed in order
 * from +0 - the single dot's (dot_kquants_avx2.c) - lane-wise for the 16 rows; so y[t][r] is
 * bit-identical to it (tests/kernels compares them with memcmp).
 *
 * Per 16 rows and call the weights are unpacked once into a panel (per super-block: 8 tiles
 * B of nibbles, the scales as i32, the mins as i16 pairs, d and dmin as f32), and every
 * 16-token group's activations once per call into tiles A with their scales and sums. */
#include "kernels/x86/amx.h"
#include "kernels/x86/amx_util.h"
#include "kernels/x86/kquants_util.h"

#include <stdlib.h>

enum {
    SUBS = QK_K / AMX_K,                        /* 8 sub-blocks per super-block */
    /* panel, per super-block */
    PN_B = 0,                                   /* 8 tiles B */
    PN_SC = PN_B + SUBS * AMX_B_BYTES,          /* 8 x 16 i32 scales */
    PN_MIN = PN_SC + SUBS * 64,                 /* 4 x 16 (i16 min 2p, i16 min 2p+1) */
    PN_D = PN_MIN + 4 * 64,                     /* 16 f32 d */
    PN_DMIN = PN_D + 64,                        /* 16 f32 dmin */
    PN_BYTES = PN_DMIN + 64,
    /* packed tokens, per super-block */
    TK_A = 0,                                   /* 8 tiles A */
    TK_D = TK_A + SUBS * AMX_A_BYTES,           /* 16 f32 d */
    TK_BS = TK_D + 64,                          /* 4 x 16 (i16 bsum32 2p, i16 bsum32 2p+1) */
    TK_BYTES = TK_BS + 4 * 64,
};

/* Rows w, w + rb, ... (nr <= 16; missing rows repeat the last) into nsb panel super-blocks. */
static void pack_panel_q4_k(const uint8_t *w, size_t rb, int nr, int64_t nsb, uint8_t *dst) {
    const uint8_t *row[AMX_ROWS];
    for (int k = 0; k < AMX_ROWS; k++) row[k] = w + (size_t)(k < nr ? k : nr - 1) * rb;
    int32_t tmp[SUBS][AMX_ROWS * 8] __attribute__((aligned(64)));
    int32_t sc32[SUBS][AMX_ROWS] __attribute__((aligned(64)));
    int16_t mins[SUBS][AMX_ROWS];
    float d[AMX_ROWS], dmin[AMX_ROWS];
    const __m256i m15 = _mm256_set1_epi8(15);
    for (int64_t s = 0; s < nsb; s++, dst += PN_BYTES) {
        const size_t o = (size_t)s * Q4_K_BYTES;
        for (int k = 0; k < AMX_ROWS; k++) {
            const uint8_t *b = row[k] + o;
            for (int g = 0; g < 4; g++) {
                __m256i qv = load32(b + Q4_K_QS + 32 * g);
                _mm256_store_si256((__m256i *)(tmp[2 * g] + 8 * k), _mm256_and_si256(qv, m15));
                _mm256_store_si256((__m256i *)(tmp[2 * g + 1] + 8 * k), _mm256_and_si256(_mm256_srli_epi16(qv, 4), m15));
            }
            uint8_t sc[8];
            int16_t mn[8];
            _mm_storeu_si128((__m128i *)mn, k4_unpack_scales_mins(b + Q4_K_SCALES, sc));
            for (int j = 0; j < SUBS; j++) { sc32[j][k] = sc[j]; mins[j][k] = mn[j]; }
            d[k] = f16_at(b + Q4_K_D);
            dmin[k] = f16_at(b + Q4_K_DMIN);
        }
        for (int j = 0; j < SUBS; j++) amx_interleave_b(tmp[j], AMX_K, dst + PN_B + (size_t)j * AMX_B_BYTES);
        memcpy(dst + PN_SC, sc32, sizeof sc32);
        for (int p = 0; p < 4; p++)
            for (int k = 0; k < AMX_ROWS; k++) {
                int16_t pair[2] = { mins[2 * p][k], mins[2 * p + 1][k] };
                memcpy(dst + PN_MIN + 64 * p + 4 * k, pair, 4);
            }
        memcpy(dst + PN_D, d, sizeof d);
        memcpy(dst + PN_DMIN, dmin, sizeof dmin);
    }
}

/* Tokens x .. (n <= 16 of them, stride xs; the rest zero) into nsb packed super-blocks. */
static void pack_tokens_q8_k(const uint8_t *x, size_t xs, int n, int64_t nsb, uint8_t *dst) {
    for (int64_t s = 0; s < nsb; s++, dst += TK_BYTES) {
        float d[AMX_TOKS];
        for (int m = 0; m < AMX_TOKS; m++) {
            const uint8_t *b = x + (size_t)m * xs + (size_t)s * Q8_K_BYTES;
            for (int j = 0; j < SUBS; j++) {
                __m256i q = m < n ? load32(b + Q8_K_QS + 32 * j) : _mm256_setzero_si256();
                _mm256_store_si256((__m256i *)(dst + TK_A + (size_t)j * AMX_A_BYTES + 32 * m), q);
            }
            __m128i pairs = _mm_setzero_si128();        /* bsum_2j + bsum_2j+1, j = 0..7 */
            if (m < n)
                pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(b + Q8_K_BSUMS)),
                                       _mm_loadu_si128((const __m128i *)(b + Q8_K_BSUMS + 16)));
            int32_t pr[4];
            _mm_storeu_si128((__m128i *)pr, pairs);
            for (int p = 0; p < 4; p++) memcpy(dst + TK_BS + 64 * p + 4 * m, &pr[p], 4);
            d[m] = m < n ? blk_f32(b + Q8_K_D) : 0.0f;
        }
        memcpy(dst + TK_D, d, sizeof d);
    }
}

/* Item K (super-block K / 8, sub-block K % 8) into tile C, stored to sums[SLOT]. */
#define AMX_ISSUE(C, A, B, SLOT, K)                                                               \
    do {                                                                                          \
        const size_t sb_ = (size_t)(K) / SUBS, j_ = (size_t)(K) % SUBS;                           \
        _tile_zero(C);                                                                            \
        _tile_loadd(A, xa + sb_ * TK_BYTES + TK_A + j_ * AMX_A_BYTES, AMX_K);                     \
        _tile_loadd(B, panel + sb_ * PN_BYTES + PN_B + j_ * AMX_B_BYTES, 64);                     \
        _tile_dpbsud(C, A, B);                                                                    \
        _tile_stored(C, sums[SLOT], 64);                                                          \
    } while (0)

/* Item K's sums into isum; after a super-block's last sub-block its value joins acc. */
#define AMX_SCALE(SLOT, K)                                                                        \
    do {                                                                                          \
        const size_t sb_ = (size_t)(K) / SUBS, j_ = (size_t)(K) % SUBS;                           \
        const uint8_t *pn_ = panel + sb_ * PN_BYTES;                                              \
        const __m512i sc_ = _mm512_load_si512((const __m512i *)(pn_ + PN_SC + 64 * j_));          \
        _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++)                               \
            isum[m] = _mm512_add_epi32(isum[m], _mm512_mullo_epi32(sc_, _mm512_load_si512((const __m512i *)(sums[SLOT] + 16 * m)))); \
        if (j_ == SUBS - 1) {                                                                     \
            finish_super_block(pn_, xa + sb_ * TK_BYTES, isum, acc);                              \
            _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) isum[m] = _mm512_setzero_si512(); \
        }                                                                                         \
    } while (0)

/* acc[m] += k4_scale(d, dmin, token m, isum[m], msum[m]) for the 16 rows, lane-wise. */
static inline __attribute__((always_inline)) void
finish_super_block(const uint8_t *pn, const uint8_t *tk, const __m512i isum[AMX_TOKS], float acc[AMX_TOKS][AMX_ROWS]) {
    const __m512 d = _mm512_load_ps((const float *)(pn + PN_D)), dmin = _mm512_load_ps((const float *)(pn + PN_DMIN));
    const __m512i mn0 = _mm512_load_si512((const __m512i *)(pn + PN_MIN)), mn1 = _mm512_load_si512((const __m512i *)(pn + PN_MIN + 64));
    const __m512i mn2 = _mm512_load_si512((const __m512i *)(pn + PN_MIN + 128)), mn3 = _mm512_load_si512((const __m512i *)(pn + PN_MIN + 192));
    const float *ad = (const float *)(tk + TK_D);
    const int32_t *bs = (const int32_t *)(tk + TK_BS);
    _Pragma("GCC unroll 16")
    for (int m = 0; m < AMX_TOKS; m++) {
        __m512i ms = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mn0, _mm512_set1_epi32(bs[m]));
        ms = _mm512_dpwssd_epi32(ms, mn1, _mm512_set1_epi32(bs[16 + m]));
        ms = _mm512_dpwssd_epi32(ms, mn2, _mm512_set1_epi32(bs[32 + m]));
        ms = _mm512_dpwssd_epi32(ms, mn3, _mm512_set1_epi32(bs[48 + m]));
        const __m512 a = _mm512_set1_ps(ad[m]);
        __m512 v = _mm512_sub_ps(_mm512_mul_ps(_mm512_mul_ps(d, a), _mm512_cvtepi32_ps(isum[m])),
                                 _mm512_mul_ps(_mm512_mul_ps(dmin, a), _mm512_cvtepi32_ps(ms)));
        _mm512_store_ps(acc[m], _mm512_add_ps(_mm512_load_ps(acc[m]), v));
    }
}

/* The panel's 16 rows against one packed 16-token group: acc[m] = the rows' dots with token m. */
static void amx_tile_q4_k(int64_t nsb, const uint8_t *panel, const uint8_t *xa, float acc[AMX_TOKS][AMX_ROWS]) {
    int32_t sums[4][AMX_TOKS * AMX_ROWS] __attribute__((aligned(64)));
    __m512i isum[AMX_TOKS];
    _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) {
        isum[m] = _mm512_setzero_si512();
        _mm512_store_ps(acc[m], _mm512_setzero_ps());
    }
    const int64_t n = nsb * SUBS;               /* a multiple of 4 */
    AMX_ISSUE(T_C0, T_A0, T_B0, 0, 0);
    AMX_ISSUE(T_C1, T_A1, T_B1, 1, 1);
    for (int64_t k = 0; k < n; k += 4) {
        AMX_ISSUE(T_C2, T_A0, T_B0, 2, k + 2);
        AMX_SCALE(0, k);
        AMX_ISSUE(T_C3, T_A1, T_B1, 3, k + 3);
        AMX_SCALE(1, k + 1);
        if (k + 4 < n) AMX_ISSUE(T_C0, T_A0, T_B0, 0, k + 4);
        AMX_SCALE(2, k + 2);
        if (k + 5 < n) AMX_ISSUE(T_C1, T_A1, T_B1, 1, k + 5);
        AMX_SCALE(3, k + 3);
    }
}

bool ll_gemm_q4_k_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                      int64_t n_tok, float *y, int64_t y_stride) {
    const int64_t nsb = n_in / QK_K, n_grp = (n_tok + AMX_TOKS - 1) / AMX_TOKS;
    const size_t rb = (size_t)nsb * Q4_K_BYTES;
    /* Every token group packed, then the panel. The model loader bounds n_in and n_tok, so
     * these sizes do not overflow. */
    const size_t grp_bytes = (size_t)nsb * TK_BYTES, panel_bytes = (size_t)nsb * PN_BYTES;
    uint8_t *buf = aligned_alloc(64, (size_t)n_grp * grp_bytes + panel_bytes);
    if (!buf) return false;
    uint8_t *panel = buf + (size_t)n_grp * grp_bytes;
    const uint8_t *x = xq;
    for (int64_t g = 0; g < n_grp; g++) {
        int n = n_tok - g * AMX_TOKS < AMX_TOKS ? (int)(n_tok - g * AMX_TOKS) : AMX_TOKS;
        pack_tokens_q8_k(x + (size_t)(g * AMX_TOKS) * xq_stride, xq_stride, n, nsb, buf + (size_t)g * grp_bytes);
    }
    amx_tiles_configure(AMX_K);
    float acc[AMX_TOKS][AMX_ROWS] __attribute__((aligned(64)));
    for (int64_t r = r0; r < r1; r += AMX_ROWS) {
        const int nr = r1 - r < AMX_ROWS ? (int)(r1 - r) : AMX_ROWS;
        const __mmask16 keep = (__mmask16)((1u << nr) - 1u);
        pack_panel_q4_k((const uint8_t *)w + (size_t)r * rb, rb, nr, nsb, panel);
        for (int64_t g = 0; g < n_grp; g++) {
            amx_tile_q4_k(nsb, panel, buf + (size_t)g * grp_bytes, acc);
            const int64_t t = g * AMX_TOKS;
            const int nt = n_tok - t < AMX_TOKS ? (int)(n_tok - t) : AMX_TOKS;
            for (int m = 0; m < nt; m++) _mm512_mask_storeu_ps(y + (t + m) * y_stride + r, keep, _mm512_load_ps(acc[m]));
        }
    }
    _tile_release();
    free(buf);
    return true;
}

/* ---- Q6_K ---------------------------------------------------------------------------------
 *
 * Q6_K scales every 16 elements, and a tile product per 16 elements would pay a tile store
 * and a vector multiply per token for every 16 x 16 x 16 products. Instead the scale goes into
 * the weights: w = scale x (q - 32) is an exact integer in [-4064, 4096], written as two
 * signed bytes w = 64 hi + lo with lo in [-32, 31] and hi in [-63, 64]. Two tile products over
 * whole 64-byte rows (TDPBSSD, signed x signed) then sum a whole super-block into two tiles,
 * and isum = 64 x (sum of a x hi) + (sum of a x lo) is exactly the integer the single dot
 * computes (sum of scale x (q - 32) x a; each part is at most 256 x 127 x 64 in size).
 * Float order: per super-block (f16(d) * a.d) * (float)isum, summed in order from +0, as
 * q6_k_row (dot_kquants_avx2.c). Tiles take 64 bytes per row (amx_tiles_configure(64)). */
enum {
    Q6_CHUNKS = QK_K / 64,                      /* 64-byte rows of tile A per super-block */
    Q6_TILE = 16 * 64,                          /* one tile A or B: 16 rows of 64 bytes */
    P6_HI = 0,                                  /* 4 tiles B of hi */
    P6_LO = P6_HI + Q6_CHUNKS * Q6_TILE,        /* 4 tiles B of lo */
    P6_D = P6_LO + Q6_CHUNKS * Q6_TILE,         /* 16 f32 d */
    P6_BYTES = P6_D + 64,
    T6_A = 0,                                   /* 4 tiles A */
    T6_D = T6_A + Q6_CHUNKS * Q6_TILE,          /* 16 f32 d */
    T6_BYTES = T6_D + 64,
};

static void pack_panel_q6_k(const uint8_t *w, size_t rb, int nr, int64_t nsb, uint8_t *dst) {
    const uint8_t *row[AMX_ROWS];
    for (int k = 0; k < AMX_ROWS; k++) row[k] = w + (size_t)(k < nr ? k : nr - 1) * rb;
    int32_t hi[Q6_CHUNKS][AMX_ROWS * 16] __attribute__((aligned(64)));   /* chunk c of row k */
    int32_t lo[Q6_CHUNKS][AMX_ROWS * 16] __attribute__((aligned(64)));
    float d[AMX_ROWS];
    const __m256i m32 = _mm256_set1_epi8(32);
    for (int64_t s = 0; s < nsb; s++, dst += P6_BYTES) {
        const size_t o = (size_t)s * Q6_K_BYTES;
        for (int k = 0; k < AMX_ROWS; k++) {
            const uint8_t *b = row[k] + o;
            for (int h = 0; h < 2; h++) {
                __m256i ql0 = load32(b + Q6_K_QL + 64 * h), ql1 = load32(b + Q6_K_QL + 64 * h + 32);
                __m256i qh = load32(b + Q6_K_QH + 32 * h);
                for (int p = 0; p < 4; p++) {           /* elements 128h + 32p .. + 31: sub-blocks 8h + 2p, + 1 */
                    __m256i q = _mm256_sub_epi8(q6_k_plane(ql0, ql1, qh, p), m32);
                    const int j = 8 * h + 2 * p, e = 128 * h + 32 * p;
                    /* w = scale x (q - 32) in i16, 16 elements per scale */
                    __m256i sc = _mm256_setr_m128i(_mm_set1_epi16((int8_t)b[Q6_K_SCALES + j]),
                                                   _mm_set1_epi16((int8_t)b[Q6_K_SCALES + j + 1]));
                    __m256i q16a = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
                    __m256i q16b = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
                    __m256i wa = _mm256_mullo_epi16(q16a, _mm256_permute2x128_si256(sc, sc, 0x00));
                    __m256i wb = _mm256_mullo_epi16(q16b, _mm256_permute2x128_si256(sc, sc, 0x11));
                    /* hi = (w + 32) >> 6 (floor), lo = w - 64 hi */
                    __m256i ha = _mm256_srai_epi16(_mm256_add_epi16(wa, _mm256_set1_epi16(32)), 6);
                    __m256i hb = _mm256_srai_epi16(_mm256_add_epi16(wb, _mm256_set1_epi16(32)), 6);
                    __m256i la = _mm256_sub_epi16(wa, _mm256_slli_epi16(ha, 6));
                    __m256i lb = _mm256_sub_epi16(wb, _mm256_slli_epi16(hb, 6));
                    /* to bytes in element order (packs works per 128-bit lane) */
                    __m256i hbytes = _mm256_permute4x64_epi64(_mm256_packs_epi16(ha, hb), 0xD8);
                    __m256i lbytes = _mm256_permute4x64_epi64(_mm256_packs_epi16(la, lb), 0xD8);
                    const int c = e / 64, off = e % 64;
                    _mm256_storeu_si256((__m256i *)((uint8_t *)hi[c] + 64 * k + off), hbytes);
                    _mm256_storeu_si256((__m256i *)((uint8_t *)lo[c] + 64 * k + off), lbytes);
                }
            }
            d[k] = f16_at(b + Q6_K_D);
        }
        for (int c = 0; c < Q6_CHUNKS; c++) {
            amx_interleave_b(hi[c], 64, dst + P6_HI + (size_t)c * Q6_TILE);
            amx_interleave_b(lo[c], 64, dst + P6_LO + (size_t)c * Q6_TILE);
        }
        memcpy(dst + P6_D, d, sizeof d);
    }
}

static void pack_tokens_q6_k(const uint8_t *x, size_t xs, int n, int64_t nsb, uint8_t *dst) {
    for (int64_t s = 0; s < nsb; s++, dst += T6_BYTES) {
        float d[AMX_TOKS];
        for (int m = 0; m < AMX_TOKS; m++) {
            const uint8_t *b = x + (size_t)m * xs + (size_t)s * Q8_K_BYTES;
            for (int c = 0; c < Q6_CHUNKS; c++)
                for (int h = 0; h < 2; h++) {
                    __m256i q = m < n ? load32(b + Q8_K_QS + 64 * c + 32 * h) : _mm256_setzero_si256();
                    _mm256_store_si256((__m256i *)(dst + T6_A + (size_t)c * Q6_TILE + 64 * m + 32 * h), q);
                }
            d[m] = m < n ? blk_f32(b + Q8_K_D) : 0.0f;
        }
        memcpy(dst + T6_D, d, sizeof d);
    }
}

/* Super-block S's two sums into tiles CH and CL, stored to sums[SLOT] and sums[SLOT + 1]. */
#define AMX6_ISSUE(CH, CL, SLOT, S)                                                               \
    do {                                                                                          \
        const uint8_t *a_ = xa + (size_t)(S) * T6_BYTES + T6_A, *p_ = panel + (size_t)(S) * P6_BYTES; \
        _tile_zero(CH);                                                                           \
        _tile_zero(CL);                                                                           \
        _tile_loadd(T_A0, a_, 64);                                                                \
        _tile_loadd(T_B0, p_ + P6_HI, 64);                                                        \
        _tile_dpbssd(CH, T_A0, T_B0);                                                             \
        _tile_loadd(T_B1, p_ + P6_LO, 64);                                                        \
        _tile_dpbssd(CL, T_A0, T_B1);                                                             \
        _tile_loadd(T_A1, a_ + Q6_TILE, 64);                                                      \
        _tile_loadd(T_B0, p_ + P6_HI + Q6_TILE, 64);                                              \
        _tile_dpbssd(CH, T_A1, T_B0);                                                             \
        _tile_loadd(T_B1, p_ + P6_LO + Q6_TILE, 64);                                              \
        _tile_dpbssd(CL, T_A1, T_B1);                                                             \
        _tile_loadd(T_A0, a_ + 2 * Q6_TILE, 64);                                                  \
        _tile_loadd(T_B0, p_ + P6_HI + 2 * Q6_TILE, 64);                                          \
        _tile_dpbssd(CH, T_A0, T_B0);                                                             \
        _tile_loadd(T_B1, p_ + P6_LO + 2 * Q6_TILE, 64);                                          \
        _tile_dpbssd(CL, T_A0, T_B1);                                                             \
        _tile_loadd(T_A1, a_ + 3 * Q6_TILE, 64);                                                  \
        _tile_loadd(T_B0, p_ + P6_HI + 3 * Q6_TILE, 64);                                          \
        _tile_dpbssd(CH, T_A1, T_B0);                                                             \
        _tile_loadd(T_B1, p_ + P6_LO + 3 * Q6_TILE, 64);                                          \
        _tile_dpbssd(CL, T_A1, T_B1);                                                             \
        _tile_stored(CH, sums[SLOT], 64);                                                         \
        _tile_stored(CL, sums[(SLOT) + 1], 64);                                                   \
    } while (0)

/* acc[m] += (d * a_m.d) * (float)(64 * hi + lo) for super-block S, lane-wise. */
#define AMX6_SCALE(SLOT, S)                                                                       \
    do {                                                                                          \
        const __m512 d_ = _mm512_load_ps((const float *)(panel + (size_t)(S) * P6_BYTES + P6_D)); \
        const float *ad_ = (const float *)(xa + (size_t)(S) * T6_BYTES + T6_D);                   \
        _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) {                             \
            __m512i is_ = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512((const __m512i *)(sums[SLOT] + 16 * m)), 6), \
                                           _mm512_load_si512((const __m512i *)(sums[(SLOT) + 1] + 16 * m))); \
            acc[m] = _mm512_add_ps(acc[m], _mm512_mul_ps(_mm512_mul_ps(d_, _mm512_set1_ps(ad_[m])), _mm512_cvtepi32_ps(is_))); \
        }                                                                                         \
    } while (0)

static void amx_tile_q6_k(int64_t nsb, const uint8_t *panel, const uint8_t *xa, float out[AMX_TOKS][AMX_ROWS]) {
    int32_t sums[4][AMX_TOKS * AMX_ROWS] __attribute__((aligned(64)));
    __m512 acc[AMX_TOKS];
    _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) acc[m] = _mm512_setzero_ps();
    AMX6_ISSUE(T_C0, T_C1, 0, 0);
    int64_t s = 0;
    for (; s + 2 <= nsb; s += 2) {
        AMX6_ISSUE(T_C2, T_C3, 2, s + 1);
        AMX6_SCALE(0, s);
        if (s + 2 < nsb) AMX6_ISSUE(T_C0, T_C1, 0, s + 2);
        AMX6_SCALE(2, s + 1);
    }
    if (s < nsb) AMX6_SCALE(0, s);              /* odd count: the last, issued above */
    _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) _mm512_store_ps(out[m], acc[m]);
}

bool ll_gemm_q6_k_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                      int64_t n_tok, float *y, int64_t y_stride) {
    const int64_t nsb = n_in / QK_K, n_grp = (n_tok + AMX_TOKS - 1) / AMX_TOKS;
    const size_t rb = (size_t)nsb * Q6_K_BYTES;
    const size_t grp_bytes = (size_t)nsb * T6_BYTES, panel_bytes = (size_t)nsb * P6_BYTES;
    uint8_t *buf = aligned_alloc(64, (size_t)n_grp * grp_bytes + panel_bytes);
    if (!buf) return false;
    uint8_t *panel = buf + (size_t)n_grp * grp_bytes;
    const uint8_t *x = xq;
    for (int64_t g = 0; g < n_grp; g++) {
        int n = n_tok - g * AMX_TOKS < AMX_TOKS ? (int)(n_tok - g * AMX_TOKS) : AMX_TOKS;
        pack_tokens_q6_k(x + (size_t)(g * AMX_TOKS) * xq_stride, xq_stride, n, nsb, buf + (size_t)g * grp_bytes);
    }
    amx_tiles_configure(64);
    float out[AMX_TOKS][AMX_ROWS] __attribute__((aligned(64)));
    for (int64_t r = r0; r < r1; r += AMX_ROWS) {
        const int nr = r1 - r < AMX_ROWS ? (int)(r1 - r) : AMX_ROWS;
        const __mmask16 keep = (__mmask16)((1u << nr) - 1u);
        pack_panel_q6_k((const uint8_t *)w + (size_t)r * rb, rb, nr, nsb, panel);
        for (int64_t g = 0; g < n_grp; g++) {
            amx_tile_q6_k(nsb, panel, buf + (size_t)g * grp_bytes, out);
            const int64_t t = g * AMX_TOKS;
            const int nt = n_tok - t < AMX_TOKS ? (int)(n_tok - t) : AMX_TOKS;
            for (int m = 0; m < nt; m++) _mm512_mask_storeu_ps(y + (t + m) * y_stride + r, keep, _mm512_load_ps(out[m]));
        }
    }
    _tile_release();
    free(buf);
    return true;
}
