/* kernels/x86: AMX matrix products of Q4_K and Q6_K weights against Q8_K activations, for
 * prompts and batches (kernels.h, ll_gemm_fn), on CPUs with AMX-INT8 (tile layout:
 * amx_util.h; here tiles take whole 64-byte rows, amx_tiles_configure(64)).
 *
 * Both types scale their weights per sub-block (Q4_K every 32 elements, Q6_K every 16), and a
 * tile product per sub-block would pay a tile store and a vector multiply per token for every
 * sub-block. Instead the integer scale goes into the weights: w = scale x quant is an exact
 * integer too wide for a byte, written as two byte planes w = B hi + lo; two tile products
 * over whole 64-byte rows then sum a super-block into two tiles, and B x (sum of a x hi) +
 * (sum of a x lo) is exactly the integer the single dot computes. Per 16 rows and call the
 * weights are unpacked once into a panel (per super-block: the two planes as tiles B, then the
 * f32 scales, for Q4_K the mins as i16 pairs), and every 16-token group's activations once
 * per call into tiles A with their scales (and Q4_K's 32-element sums). */
#include "kernels/x86/amx.h"
#include "kernels/x86/amx_util.h"
#include "kernels/x86/kquants_util.h"

#include <stdlib.h>

enum {
    KQ_CHUNKS = QK_K / 64,                      /* 64-byte rows of tile A per super-block */
    KQ_TILE = 16 * 64,                          /* one tile A or B: 16 rows of 64 bytes */
};

/* ---- Q4_K ---------------------------------------------------------------------------------
 *
 * w = scale x q in [0, 945] (6-bit scale, 4-bit quant) = 256 hi + lo, hi in [0, 3], lo in
 * [0, 255]: unsigned bytes against the signed activations (TDPBSUD). The min part
 * msum = sum of min x (32-element activation sum) takes four i16 pair products per token
 * (VPDPWSSD). Float order: k4_scale (kquants_util.h) per super-block, the super-blocks summed
 * in order from +0 - the single dot's (dot_kquants_avx2.c) - lane-wise for the 16 rows; so
 * y[t][r] is bit-identical to it (tests/kernels compares them with memcmp). */
enum {
    P4_HI = 0,                                  /* 4 tiles B of hi */
    P4_LO = P4_HI + KQ_CHUNKS * KQ_TILE,        /* 4 tiles B of lo */
    P4_MIN = P4_LO + KQ_CHUNKS * KQ_TILE,       /* 4 x 16 (i16 min 2p, i16 min 2p+1) */
    P4_D = P4_MIN + 4 * 64,                     /* 16 f32 d */
    P4_DMIN = P4_D + 64,                        /* 16 f32 dmin */
    P4_BYTES = P4_DMIN + 64,
    T4_A = 0,                                   /* 4 tiles A */
    T4_D = T4_A + KQ_CHUNKS * KQ_TILE,          /* 16 f32 d */
    T4_BS = T4_D + 64,                          /* 4 x 16 (i16 bsum32 2p, i16 bsum32 2p+1) */
    T4_BYTES = T4_BS + 4 * 64,
};

/* Rows w, w + rb, ... (nr <= 16; missing rows repeat the last) into nsb panel super-blocks. */
static void pack_panel_q4_k(const uint8_t *w, size_t rb, int nr, int64_t nsb, uint8_t *dst) {
    const uint8_t *row[AMX_ROWS];
    for (int k = 0; k < AMX_ROWS; k++) row[k] = w + (size_t)(k < nr ? k : nr - 1) * rb;
    int32_t hi[KQ_CHUNKS][AMX_ROWS * 16] __attribute__((aligned(64)));   /* chunk c of row k */
    int32_t lo[KQ_CHUNKS][AMX_ROWS * 16] __attribute__((aligned(64)));
    int16_t mins[8][AMX_ROWS];
    float d[AMX_ROWS], dmin[AMX_ROWS];
    const __m256i m15 = _mm256_set1_epi8(15), m255 = _mm256_set1_epi16(255);
    for (int64_t s = 0; s < nsb; s++, dst += P4_BYTES) {
        const size_t o = (size_t)s * Q4_K_BYTES;
        for (int k = 0; k < AMX_ROWS; k++) {
            const uint8_t *b = row[k] + o;
            uint8_t sc[8];
            int16_t mn[8];
            _mm_storeu_si128((__m128i *)mn, k4_unpack_scales_mins(b + Q4_K_SCALES, sc));
            for (int c = 0; c < KQ_CHUNKS; c++) {       /* elements 64c..: low nibbles x sc[2c], high x sc[2c+1] */
                __m256i qv = load32(b + Q4_K_QS + 32 * c);
                __m256i q[2] = { _mm256_and_si256(qv, m15), _mm256_and_si256(_mm256_srli_epi16(qv, 4), m15) };
                for (int h = 0; h < 2; h++) {
                    __m256i s16 = _mm256_set1_epi16(sc[2 * c + h]);
                    __m256i wa = _mm256_mullo_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(q[h])), s16);
                    __m256i wb = _mm256_mullo_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(q[h], 1)), s16);
                    __m256i hb = _mm256_permute4x64_epi64(_mm256_packus_epi16(_mm256_srli_epi16(wa, 8), _mm256_srli_epi16(wb, 8)), 0xD8);
                    __m256i lb = _mm256_permute4x64_epi64(_mm256_packus_epi16(_mm256_and_si256(wa, m255), _mm256_and_si256(wb, m255)), 0xD8);
                    _mm256_storeu_si256((__m256i *)((uint8_t *)hi[c] + 64 * k + 32 * h), hb);
                    _mm256_storeu_si256((__m256i *)((uint8_t *)lo[c] + 64 * k + 32 * h), lb);
                }
            }
            for (int j = 0; j < 8; j++) mins[j][k] = mn[j];
            d[k] = f16_at(b + Q4_K_D);
            dmin[k] = f16_at(b + Q4_K_DMIN);
        }
        for (int c = 0; c < KQ_CHUNKS; c++) {
            amx_interleave_b(hi[c], 64, dst + P4_HI + (size_t)c * KQ_TILE);
            amx_interleave_b(lo[c], 64, dst + P4_LO + (size_t)c * KQ_TILE);
        }
        for (int p = 0; p < 4; p++)
            for (int k = 0; k < AMX_ROWS; k++) {
                int16_t pair[2] = { mins[2 * p][k], mins[2 * p + 1][k] };
                memcpy(dst + P4_MIN + 64 * p + 4 * k, pair, 4);
            }
        memcpy(dst + P4_D, d, sizeof d);
        memcpy(dst + P4_DMIN, dmin, sizeof dmin);
    }
}

/* Tokens x .. (n <= 16 of them, stride xs; the rest zero) into nsb packed super-blocks of
 * tbytes: 4 tiles A, the 16 f32 scales, and with bsums (Q4_K) the 32-element sums as i16
 * pairs. Q6_K's layout is Q4_K's without the sums (T6_A = T4_A, T6_D = T4_D). */
static void pack_tokens_kq(const uint8_t *x, size_t xs, int n, int64_t nsb, uint8_t *dst, size_t tbytes, bool bsums) {
    for (int64_t s = 0; s < nsb; s++, dst += tbytes) {
        float d[AMX_TOKS];
        for (int m = 0; m < AMX_TOKS; m++) {
            const uint8_t *b = x + (size_t)m * xs + (size_t)s * Q8_K_BYTES;
            for (int c = 0; c < KQ_CHUNKS; c++)
                for (int h = 0; h < 2; h++) {
                    __m256i q = m < n ? load32(b + Q8_K_QS + 64 * c + 32 * h) : _mm256_setzero_si256();
                    _mm256_store_si256((__m256i *)(dst + T4_A + (size_t)c * KQ_TILE + 64 * m + 32 * h), q);
                }
            d[m] = m < n ? blk_f32(b + Q8_K_D) : 0.0f;
            if (!bsums) continue;
            __m128i pairs = _mm_setzero_si128();        /* bsum_2j + bsum_2j+1, j = 0..7 */
            if (m < n)
                pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(b + Q8_K_BSUMS)),
                                       _mm_loadu_si128((const __m128i *)(b + Q8_K_BSUMS + 16)));
            int32_t pr[4];
            _mm_storeu_si128((__m128i *)pr, pairs);
            for (int p = 0; p < 4; p++) memcpy(dst + T4_BS + 64 * p + 4 * m, &pr[p], 4);
        }
        memcpy(dst + T4_D, d, sizeof d);
    }
}

static void pack_tokens_q4_k(const uint8_t *x, size_t xs, int n, int64_t nsb, uint8_t *dst) {
    pack_tokens_kq(x, xs, n, nsb, dst, T4_BYTES, true);
}

/* Super-block S's two plane sums (tile product DP) into tiles CH and CL, stored to sums[SLOT]
 * and sums[SLOT + 1]; TA/TP are the token and panel offsets of a super-block. */
#define KQ_ISSUE(DP, TA, TBYTES, PHI, PLO, PBYTES, CH, CL, SLOT, S)                              \
    do {                                                                                          \
        const uint8_t *a_ = xa + (size_t)(S) * (TBYTES) + (TA), *p_ = panel + (size_t)(S) * (PBYTES); \
        _tile_zero(CH);                                                                           \
        _tile_zero(CL);                                                                           \
        _Pragma("GCC unroll 4") for (int c_ = 0; c_ < KQ_CHUNKS; c_ += 2) {                       \
            _tile_loadd(T_A0, a_ + (size_t)c_ * KQ_TILE, 64);                                     \
            _tile_loadd(T_B0, p_ + (PHI) + (size_t)c_ * KQ_TILE, 64);                             \
            DP(CH, T_A0, T_B0);                                                                   \
            _tile_loadd(T_B1, p_ + (PLO) + (size_t)c_ * KQ_TILE, 64);                             \
            DP(CL, T_A0, T_B1);                                                                   \
            _tile_loadd(T_A1, a_ + (size_t)(c_ + 1) * KQ_TILE, 64);                               \
            _tile_loadd(T_B0, p_ + (PHI) + (size_t)(c_ + 1) * KQ_TILE, 64);                       \
            DP(CH, T_A1, T_B0);                                                                   \
            _tile_loadd(T_B1, p_ + (PLO) + (size_t)(c_ + 1) * KQ_TILE, 64);                       \
            DP(CL, T_A1, T_B1);                                                                   \
        }                                                                                         \
        _tile_stored(CH, sums[SLOT], 64);                                                         \
        _tile_stored(CL, sums[(SLOT) + 1], 64);                                                   \
    } while (0)
#define DP_SU(C, A, B) _tile_dpbsud(C, A, B)
#define DP_SS(C, A, B) _tile_dpbssd(C, A, B)

/* The plane sums of token m in slot SLOT: SHIFT-weighted hi plus lo, exact. */
#define KQ_ISUM(SLOT, m, SHIFT)                                                                   \
    _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512((const __m512i *)(sums[SLOT] + 16 * (m))), SHIFT), \
                     _mm512_load_si512((const __m512i *)(sums[(SLOT) + 1] + 16 * (m))))

/* acc[m] += k4_scale(d, dmin, token m, isum, msum) for super-block S, lane-wise. */
#define Q4_SCALE(SLOT, S)                                                                         \
    do {                                                                                          \
        const uint8_t *pn_ = panel + (size_t)(S) * P4_BYTES, *tk_ = xa + (size_t)(S) * T4_BYTES;  \
        const __m512 d_ = _mm512_load_ps((const float *)(pn_ + P4_D));                            \
        const __m512 dmin_ = _mm512_load_ps((const float *)(pn_ + P4_DMIN));                      \
        const float *ad_ = (const float *)(tk_ + T4_D);                                           \
        const int32_t *bs_ = (const int32_t *)(tk_ + T4_BS);                                      \
        _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) {                             \
            __m512i ms_ = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_load_si512((const __m512i *)(pn_ + P4_MIN)), \
                                              _mm512_set1_epi32(bs_[m]));                         \
            ms_ = _mm512_dpwssd_epi32(ms_, _mm512_load_si512((const __m512i *)(pn_ + P4_MIN + 64)), _mm512_set1_epi32(bs_[16 + m])); \
            ms_ = _mm512_dpwssd_epi32(ms_, _mm512_load_si512((const __m512i *)(pn_ + P4_MIN + 128)), _mm512_set1_epi32(bs_[32 + m])); \
            ms_ = _mm512_dpwssd_epi32(ms_, _mm512_load_si512((const __m512i *)(pn_ + P4_MIN + 192)), _mm512_set1_epi32(bs_[48 + m])); \
            const __m512 a_ = _mm512_set1_ps(ad_[m]);                                             \
            __m512 v_ = _mm512_sub_ps(_mm512_mul_ps(_mm512_mul_ps(d_, a_), _mm512_cvtepi32_ps(KQ_ISUM(SLOT, m, 8))), \
                                      _mm512_mul_ps(_mm512_mul_ps(dmin_, a_), _mm512_cvtepi32_ps(ms_))); \
            acc[m] = _mm512_add_ps(acc[m], v_);                                                   \
        }                                                                                         \
    } while (0)
#define Q4_ISSUE(CH, CL, SLOT, S) KQ_ISSUE(DP_SU, T4_A, T4_BYTES, P4_HI, P4_LO, P4_BYTES, CH, CL, SLOT, S)

/* The panel's 16 rows against one packed 16-token group: out[m] = the rows' dots with token m.
 * Super-block s + 1's tile products run while the vector unit scales super-block s. */
static void amx_tile_q4_k(int64_t nsb, const uint8_t *panel, const uint8_t *xa, float out[AMX_TOKS][AMX_ROWS]) {
    int32_t sums[4][AMX_TOKS * AMX_ROWS] __attribute__((aligned(64)));
    __m512 acc[AMX_TOKS];
    _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) acc[m] = _mm512_setzero_ps();
    Q4_ISSUE(T_C0, T_C1, 0, 0);
    int64_t s = 0;
    for (; s + 2 <= nsb; s += 2) {
        Q4_ISSUE(T_C2, T_C3, 2, s + 1);
        Q4_SCALE(0, s);
        if (s + 2 < nsb) Q4_ISSUE(T_C0, T_C1, 0, s + 2);
        Q4_SCALE(2, s + 1);
    }
    if (s < nsb) Q4_SCALE(0, s);                /* odd count: the last, issued above */
    _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) _mm512_store_ps(out[m], acc[m]);
}

/* The driver of both types: every token group packed once, then per 16 rows a panel and every
 * token group against it. */
typedef void (*kq_pack_fn)(const uint8_t *src, size_t stride, int n, int64_t nsb, uint8_t *dst);
typedef void (*kq_tile_fn)(int64_t nsb, const uint8_t *panel, const uint8_t *xa, float out[AMX_TOKS][AMX_ROWS]);

static bool gemm_kq_amx(kq_pack_fn pack_panel, kq_pack_fn pack_tokens, kq_tile_fn tile, size_t wbytes, size_t pbytes,
                        size_t tbytes, int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                        size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride) {
    const int64_t nsb = n_in / QK_K, n_grp = (n_tok + AMX_TOKS - 1) / AMX_TOKS;
    const size_t rb = (size_t)nsb * wbytes;
    /* The model loader bounds n_in and n_tok, so these sizes do not overflow. */
    const size_t grp_bytes = (size_t)nsb * tbytes, panel_bytes = (size_t)nsb * pbytes;
    uint8_t *buf = aligned_alloc(64, (size_t)n_grp * grp_bytes + panel_bytes);
    if (!buf) return false;
    uint8_t *panel = buf + (size_t)n_grp * grp_bytes;
    const uint8_t *x = xq;
    for (int64_t g = 0; g < n_grp; g++) {
        int n = n_tok - g * AMX_TOKS < AMX_TOKS ? (int)(n_tok - g * AMX_TOKS) : AMX_TOKS;
        pack_tokens(x + (size_t)(g * AMX_TOKS) * xq_stride, xq_stride, n, nsb, buf + (size_t)g * grp_bytes);
    }
    amx_tiles_configure(64);
    float out[AMX_TOKS][AMX_ROWS] __attribute__((aligned(64)));
    for (int64_t r = r0; r < r1; r += AMX_ROWS) {
        const int nr = r1 - r < AMX_ROWS ? (int)(r1 - r) : AMX_ROWS;
        const __mmask16 keep = (__mmask16)((1u << nr) - 1u);
        pack_panel((const uint8_t *)w + (size_t)r * rb, rb, nr, nsb, panel);
        for (int64_t g = 0; g < n_grp; g++) {
            tile(nsb, panel, buf + (size_t)g * grp_bytes, out);
            const int64_t t = g * AMX_TOKS;
            const int nt = n_tok - t < AMX_TOKS ? (int)(n_tok - t) : AMX_TOKS;
            for (int m = 0; m < nt; m++) _mm512_mask_storeu_ps(y + (t + m) * y_stride + r, keep, _mm512_load_ps(out[m]));
        }
    }
    _tile_release();
    free(buf);
    return true;
}

bool ll_gemm_q4_k_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                      int64_t n_tok, float *y, int64_t y_stride) {
    return gemm_kq_amx(pack_panel_q4_k, pack_tokens_q4_k, amx_tile_q4_k, Q4_K_BYTES, P4_BYTES, T4_BYTES, n_in, w,
                       r0, r1, xq, xq_stride, n_tok, y, y_stride);
}

/* ---- Q6_K ---------------------------------------------------------------------------------
 *
 * w = scale x (q - 32) in [-4064, 4096] (signed 8-bit scale, 6-bit quant) = 64 hi + lo with
 * lo in [-32, 31] and hi in [-63, 64]: signed bytes against the signed activations (TDPBSSD);
 * each plane's sum is at most 256 x 127 x 64 in size. Float order: per super-block
 * (f16(d) * a.d) * (float)isum, summed in order from +0, as q6_k_row (dot_kquants_avx2.c). */
enum {
    P6_HI = 0,                                  /* 4 tiles B of hi */
    P6_LO = P6_HI + KQ_CHUNKS * KQ_TILE,        /* 4 tiles B of lo */
    P6_D = P6_LO + KQ_CHUNKS * KQ_TILE,         /* 16 f32 d */
    P6_BYTES = P6_D + 64,
    T6_A = 0,                                   /* 4 tiles A */
    T6_D = T6_A + KQ_CHUNKS * KQ_TILE,          /* 16 f32 d */
    T6_BYTES = T6_D + 64,
};

static void pack_panel_q6_k(const uint8_t *w, size_t rb, int nr, int64_t nsb, uint8_t *dst) {
    const uint8_t *row[AMX_ROWS];
    for (int k = 0; k < AMX_ROWS; k++) row[k] = w + (size_t)(k < nr ? k : nr - 1) * rb;
    int32_t hi[KQ_CHUNKS][AMX_ROWS * 16] __attribute__((aligned(64)));   /* chunk c of row k */
    int32_t lo[KQ_CHUNKS][AMX_ROWS * 16] __attribute__((aligned(64)));
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
        for (int c = 0; c < KQ_CHUNKS; c++) {
            amx_interleave_b(hi[c], 64, dst + P6_HI + (size_t)c * KQ_TILE);
            amx_interleave_b(lo[c], 64, dst + P6_LO + (size_t)c * KQ_TILE);
        }
        memcpy(dst + P6_D, d, sizeof d);
    }
}

static void pack_tokens_q6_k(const uint8_t *x, size_t xs, int n, int64_t nsb, uint8_t *dst) {
    _Static_assert((int)T6_A == (int)T4_A && (int)T6_D == (int)T4_D, "Q6_K's token layout is Q4_K's without the sums");
    pack_tokens_kq(x, xs, n, nsb, dst, T6_BYTES, false);
}

#define Q6_ISSUE(CH, CL, SLOT, S) KQ_ISSUE(DP_SS, T6_A, T6_BYTES, P6_HI, P6_LO, P6_BYTES, CH, CL, SLOT, S)

/* acc[m] += (d * a_m.d) * (float)(64 * hi + lo) for super-block S, lane-wise. */
#define Q6_SCALE(SLOT, S)                                                                       \
    do {                                                                                          \
        const __m512 d_ = _mm512_load_ps((const float *)(panel + (size_t)(S) * P6_BYTES + P6_D)); \
        const float *ad_ = (const float *)(xa + (size_t)(S) * T6_BYTES + T6_D);                   \
        _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) {                             \
            acc[m] = _mm512_add_ps(acc[m], _mm512_mul_ps(_mm512_mul_ps(d_, _mm512_set1_ps(ad_[m])),             \
                                                         _mm512_cvtepi32_ps(KQ_ISUM(SLOT, m, 6))));            \
        }                                                                                         \
    } while (0)

static void amx_tile_q6_k(int64_t nsb, const uint8_t *panel, const uint8_t *xa, float out[AMX_TOKS][AMX_ROWS]) {
    int32_t sums[4][AMX_TOKS * AMX_ROWS] __attribute__((aligned(64)));
    __m512 acc[AMX_TOKS];
    _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) acc[m] = _mm512_setzero_ps();
    Q6_ISSUE(T_C0, T_C1, 0, 0);
    int64_t s = 0;
    for (; s + 2 <= nsb; s += 2) {
        Q6_ISSUE(T_C2, T_C3, 2, s + 1);
        Q6_SCALE(0, s);
        if (s + 2 < nsb) Q6_ISSUE(T_C0, T_C1, 0, s + 2);
        Q6_SCALE(2, s + 1);
    }
    if (s < nsb) Q6_SCALE(0, s);              /* odd count: the last, issued above */
    _Pragma("GCC unroll 16") for (int m = 0; m < AMX_TOKS; m++) _mm512_store_ps(out[m], acc[m]);
}

bool ll_gemm_q6_k_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                      int64_t n_tok, float *y, int64_t y_stride) {
    return gemm_kq_amx(pack_panel_q6_k, pack_tokens_q6_k, amx_tile_q6_k, Q6_K_BYTES, P6_BYTES, T6_BYTES, n_in, w, r0,
                       r1, xq, xq_stride, n_tok, y, y_stride);
}
