/* kernels/x86: AVX2+FMA dots of the float types (gguf-and-quants.md C.2): F32 x F32,
 * F16 x F16 (F16C conversion, exact) and BF16 x BF16 (a shift). Products are fused into four
 * f32 accumulators of 8 lanes, reduced at the end; the tail of fewer than 8 elements is summed
 * in double, as ggml does. The reference sums everything in double, so results differ from it
 * by f32 rounding of the lane sums. */
#include "kernels/x86/avx2_util.h"
#include "kernels/x86/gemm_f16.h"

#include <stdlib.h>

static inline __m256 load_f16x8(const uint8_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 load_bf16x8(const uint8_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static inline __m256 load_f32x8(const uint8_t *p) { return _mm256_loadu_ps((const float *)p); }

/* One body for the three types: SZ bytes per element, LOAD converts 8 elements to f32, SCALAR
 * converts one. */
#define FLOAT_DOT(SZ, LOAD, SCALAR)                                                        \
    const uint8_t *wb = w, *ab = a;                                                        \
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                            \
    int64_t i = 0;                                                                         \
    for (; i + 32 <= n; i += 32) {                                                         \
        s0 = _mm256_fmadd_ps(LOAD(wb + SZ * i), LOAD(ab + SZ * i), s0);                    \
        s1 = _mm256_fmadd_ps(LOAD(wb + SZ * (i + 8)), LOAD(ab + SZ * (i + 8)), s1);        \
        s2 = _mm256_fmadd_ps(LOAD(wb + SZ * (i + 16)), LOAD(ab + SZ * (i + 16)), s2);      \
        s3 = _mm256_fmadd_ps(LOAD(wb + SZ * (i + 24)), LOAD(ab + SZ * (i + 24)), s3);      \
    }                                                                                      \
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(LOAD(wb + SZ * i), LOAD(ab + SZ * i), s0); \
    double tail = 0.0;                                                                     \
    for (; i < n; i++) tail += (double)(SCALAR(wb + SZ * i) * SCALAR(ab + SZ * i));        \
    return (float)((double)hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) + tail);

static inline float bf16_at(const uint8_t *p) { return ll_bf16_to_fp32(blk_u16(p)); }

float ll_dot_f32_avx2(int64_t n, const void *w, const void *a) { FLOAT_DOT(4, load_f32x8, blk_f32) }
float ll_dot_f16_avx2(int64_t n, const void *w, const void *a) {
    const uint8_t *wb = w, *ab = a;
    __m256 s0 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load_f16x8(wb + 2 * i), load_f16x8(ab + 2 * i), s0);
    double tail = 0.0;
    for (; i < n; i++) tail += (double)(f16_at(wb + 2 * i) * f16_at(ab + 2 * i));
    return (float)((double)hsum_ps(s0) + tail);
}
float ll_dot_bf16_avx2(int64_t n, const void *w, const void *a) { FLOAT_DOT(2, load_bf16x8, bf16_at) }

/* F16 against several activation columns (kernels.h, ll_dot_multi_fn): each 8 weights are
 * converted once; every column c (activation row a + c * as) keeps the single dot's one
 * accumulator and double tail, so out[c] is bit-identical to ll_dot_f16_avx2. One fmadd chain
 * per column also lets nc chains run side by side where the single dot waits on one. */
DOT_MULTI_BODY f16_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    __m256 s[LL_DOT_MULTI_MAX];
    COLS(c) s[c] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv = load_f16x8(wb + 2 * i);
        COLS(c) s[c] = _mm256_fmadd_ps(wv, load_f16x8(a + c * as + 2 * i), s[c]);
    }
    COLS(c) {
        double tail = 0.0;
        for (int64_t j = i; j < n; j++) tail += (double)(f16_at(wb + 2 * j) * f16_at(a + c * as + 2 * j));
        out[c] = (float)((double)hsum_ps(s[c]) + tail);
    }
}
DOT_MULTI_DEFINE(ll_dot_multi_f16_avx2, f16_cols)

/* The same with the columns already widened to f32 (kernels.h, dot_multi_xf32): one
 * conversion per 8 weights and none per column. */
DOT_MULTI_BODY f16_xf32_cols(int64_t n, const uint8_t *wb, const uint8_t *a, size_t as, int nc, float *out) {
    __m256 s[LL_DOT_MULTI_MAX];
    COLS(c) s[c] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv = load_f16x8(wb + 2 * i);
        COLS(c) s[c] = _mm256_fmadd_ps(wv, _mm256_loadu_ps((const float *)(a + c * as) + i), s[c]);
    }
    COLS(c) {
        const float *x = (const float *)(a + c * as);
        double tail = 0.0;
        for (int64_t j = i; j < n; j++) tail += (double)(f16_at(wb + 2 * j) * x[j]);
        out[c] = (float)((double)hsum_ps(s[c]) + tail);
    }
}
DOT_MULTI_DEFINE(ll_dot_multi_f16_xf32_avx2, f16_xf32_cols)

/* ---- F16 generation: rows against one token (kernels.h, ll_gemv_fn) --------------------------
 *
 * The single dot converts both operands (two cvtph2ps per FMA) and waits on one FMA chain,
 * 5 cycles per 8 elements on Zen 1: about 8 GB/s per thread at best, below the memory's rate.
 * Here the token's activations are converted once, and four rows run side by side, each with
 * the single dot's own accumulator, order and double tail, so y[r] is bit-identical to
 * ll_dot_f16_avx2. */
enum { F16_GEMV_ROWS = 4 };

static inline __attribute__((always_inline)) void
f16_rows(int nr, int64_t n, const uint8_t *w, size_t rb, const float *x, float *y) {
    __m256 s[F16_GEMV_ROWS];
    _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++) s[r] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)
            s[r] = _mm256_fmadd_ps(load_f16x8(w + r * rb + 2 * i), xv, s[r]);
    }
    for (int r = 0; r < nr; r++) {
        double tail = 0.0;
        for (int64_t j = i; j < n; j++) tail += (double)(f16_at(w + r * rb + 2 * j) * x[j]);
        y[r] = (float)((double)hsum_ps(s[r]) + tail);
    }
}

bool ll_gemv_f16_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, float *y) {
    float *x = malloc((size_t)n_in * sizeof *x);
    if (!x) return false;
    const uint8_t *a = xq;
    int64_t i = 0;
    for (; i + 8 <= n_in; i += 8) _mm256_storeu_ps(x + i, load_f16x8(a + 2 * i));
    for (; i < n_in; i++) x[i] = f16_at(a + 2 * i);
    const size_t rb = (size_t)n_in * 2;
    const uint8_t *wb = w;
    int64_t r = r0;
    for (; r + F16_GEMV_ROWS <= r1; r += F16_GEMV_ROWS) f16_rows(F16_GEMV_ROWS, n_in, wb + (size_t)r * rb, rb, x, y + r);
    for (; r < r1; r++) f16_rows(1, n_in, wb + (size_t)r * rb, rb, x, y + r);
    free(x);
    return true;
}

/* ---- F16 prompts: a cache-blocked, register-tiled product (kernels.h, ll_gemm_fn) -----------
 *
 * Arithmetic. Each (row, token) result is the single dot's own: one 8-lane f32 accumulator
 * that takes fmadd(w[i..i+8], x[i..i+8]) for i = 0, 8, 16, ... in order, then hsum_ps, then
 * the tail of fewer than 8 elements summed in double. F16 -> f32 is exact, so converting the
 * operands once beforehand changes nothing; splitting i into blocks changes nothing as long as
 * the accumulator is saved between blocks (as its 8 lanes) and the blocks run in order. So
 * the result is bit-identical to ll_dot_f16_avx2 (test_gemm_bit_identical).
 *
 * Register tile. 3 weight rows x 4 tokens: 12 accumulators, 3 weight vectors and the current
 * token vector fill the 16 ymm registers; per 8 elements 7 loads and 12 FMAs. On Zen 1 a ymm
 * FMA takes both 128-bit pipes, so this runs at the FMA rate only when the loads hit L1 or L2.
 *
 * Cache blocking, per thread on its share of rows. cvtph2ps shares Zen 1's FMA pipes, so the
 * tile's operands are f32 copies, packed so that the tile reads two sequential streams: a
 * slice of F16_KC elements of 3 rows as [i/8][row][8], and of 4 tokens as [i/8][token][8],
 * zero-padded to whole tiles and groups.
 *   for each block of F16_NC tokens:
 *     convert the block's activations, whole rows, group by group (128 x n_in f32: 1 MB at
 *     2048 inputs, 4 MB at 8192; read from L3 or memory, each group's slice prefetched into
 *     L1 while the group before it runs);
 *     for each block of F16_MC rows:
 *       for each slice of F16_KC elements (accumulators saved between slices, in L2):
 *         for each group of 4 tokens (its slice, 8 KB, stays in L1):
 *           for each tile of 3 rows: the register tile; the first group's calls convert the
 *           rows' slice on the way (F16_MC x F16_KC, 96 KB, stays in L2; prefetched into L2
 *           during the slice before); in the last slice the tile's results are written.
 * Conversions cost 1/(rows per thread) (tokens) + 1/F16_NC (weights) of the FMA work. On Zen 1
 * cvtph2ps + store take about 3.5 cycles per 8 elements (2 between FMAs), so converting each
 * group's slice once per 48-row block, as the previous version did, cost 7% of the time.
 * The version before that converted every token and a panel of rows once per call and ran
 * each tile over the whole row: at 8192 inputs (the FFN down projection) 4 tokens are 128 KB,
 * nothing stayed in L1, a panel of only 6 rows fit in L2 beside them, and every token's f32
 * activations were streamed from memory once per 6 rows (now: once per 48). */
enum {
    F16_MR = 3, F16_NR = 4,          /* this file's register tile: rows x tokens */
    F16_KC = 512,                    /* elements per slice: a group's slice is 8 KB (4 tokens) */
    F16_MC = 48,                     /* rows per block (16 tiles): the rows' slice is 96 KB */
    F16_NC = 128,                    /* tokens per block (32 groups); saved accumulators 192 KB */
};

/* steps x 8 elements of a 3-row tile (w, packed) against a 4-token group (x, packed), from the
 * saved accumulators acc (zero when first), which it updates. With wh (CVT), the tile's rows
 * are instead read as F16 from wh, wh + rb, wh + 2 * rb, and packed into w on the way: the
 * first group of a slice converts the weights that the others then read (cvtph2ps between
 * the FMAs costs about 2 cycles, a separate pass about 3.5 and the loads' latency). */
static inline __attribute__((always_inline)) void
f16_micro_body(int64_t steps, float *w, const float *x, float *acc, bool first, const uint8_t *wh, size_t rb, bool cvt) {
    __m256 s[F16_MR][F16_NR];
    _Pragma("GCC unroll 3") for (int r = 0; r < F16_MR; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < F16_NR; c++)
            s[r][c] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(acc + (r * F16_NR + c) * 8);
    for (int64_t k = 0; k < steps; k++, w += F16_MR * 8, x += F16_NR * 8) {
        __m256 wv[F16_MR];
        _Pragma("GCC unroll 3") for (int r = 0; r < F16_MR; r++) {
            if (cvt) {
                wv[r] = load_f16x8(wh + r * rb + 16 * k);
                _mm256_storeu_ps(w + r * 8, wv[r]);
            } else {
                wv[r] = _mm256_loadu_ps(w + r * 8);
            }
        }
        _Pragma("GCC unroll 4") for (int c = 0; c < F16_NR; c++) {
            __m256 xv = _mm256_loadu_ps(x + c * 8);
            _Pragma("GCC unroll 3") for (int r = 0; r < F16_MR; r++) s[r][c] = _mm256_fmadd_ps(wv[r], xv, s[r][c]);
        }
    }
    _Pragma("GCC unroll 3") for (int r = 0; r < F16_MR; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < F16_NR; c++) _mm256_storeu_ps(acc + (r * F16_NR + c) * 8, s[r][c]);
}

static void f16_micro(int64_t steps, const float *w, const float *x, float *acc, bool first) {
    f16_micro_body(steps, (float *)w, x, acc, first, NULL, 0, false);
}

static void f16_micro_cvt(int64_t steps, const uint8_t *wh, size_t rb, float *w, const float *x, float *acc, bool first) {
    f16_micro_body(steps, w, x, acc, first, wh, rb, true);
}

/* Elements [k0, k0 + 8 * steps) of nr (<= span) F16 rows at src, row_bytes apart, to f32
 * packed by `span` rows: dst[(i/8) * span * 8 + r * 8 + i % 8]. Rows nr..span-1 are zero. */
static void f16_pack(const uint8_t *src, size_t row_bytes, int nr, int span, int64_t k0, int64_t steps, float *dst) {
    for (int r = 0; r < span; r++, src += row_bytes) {
        float *d = dst + r * 8;
        if (r < nr)
            for (int64_t k = 0; k < steps; k++) _mm256_storeu_ps(d + k * span * 8, load_f16x8(src + 2 * (k0 + 8 * k)));
        else
            for (int64_t k = 0; k < steps; k++) _mm256_storeu_ps(d + k * span * 8, _mm256_setzero_ps());
    }
}

/* Software prefetch of a region of F16 weight rows ahead of the converting micro calls (or
 * f16_pack) that read it, so that they do not wait on each line in turn. The region is the elements [k, k + n) of `rows`
 * rows, `stride` bytes apart, starting at p (pointing at element k of the first row): rows x
 * `lines` 64-byte lines (one more than n * 2 / 64, as the rows need not be aligned). A cursor
 * walks it a few lines per call, spread over the micro calls that run before the reads. */
typedef struct {
    const char *p;          /* the current row's element k */
    size_t stride;
    int64_t lines, rows;    /* lines per row, rows left (including the current) */
    int64_t line;           /* next line in the current row */
} f16_pf;

static inline f16_pf f16_pf_start(const uint8_t *p, size_t stride, int64_t rows, int64_t n) {
    return (f16_pf){ (const char *)p, stride, n * 2 / 64 + 1, n > 0 ? rows : 0, 0 };
}

#define F16_PF_STEP(c, count, HINT)                                                            \
    for (int64_t i_ = 0; i_ < (count) && (c).rows > 0; i_++) {                             \
        _mm_prefetch((c).p + (c).line * 64, HINT);                                         \
        if (++(c).line == (c).lines) { (c).line = 0; (c).p += (c).stride; (c).rows--; }    \
    }

/* The driver below takes its register tile (rows x tokens, and the two micro kernels) as a
 * parameter, so the AVX-512 tile (dot_float_avx512.c) shares it; the saved accumulators are
 * [row][token][lane] in both. */

/* hsum_ps of the four vectors a[0..8), a[8..16), a[16..24), a[24..32) at once, each summed in
 * hsum_ps's own order ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)), so bit-identical. */
static inline __m128 hsum4_ps(const float *a) {
    __m128 v[4];
    for (int c = 0; c < 4; c++) v[c] = _mm_add_ps(_mm_loadu_ps(a + 8 * c), _mm_loadu_ps(a + 8 * c + 4));
    __m128 u = _mm_add_ps(_mm_unpacklo_ps(v[0], v[1]), _mm_unpackhi_ps(v[0], v[1]));   /* a02 b02 a13 b13 */
    __m128 z = _mm_add_ps(_mm_unpacklo_ps(v[2], v[3]), _mm_unpackhi_ps(v[2], v[3]));   /* c02 d02 c13 d13 */
    return _mm_add_ps(_mm_movelh_ps(u, z), _mm_movehl_ps(z, u));
}

/* A tile's results from its saved accumulators a: hsum and the double tail (from the F16
 * operands: the same values), for rows row0.. (nr) and tokens tok0.. (nc). */
static void f16_results(const struct f16_tile *tl, const float *a, int64_t n_in, int64_t n8, const uint8_t *wb, size_t rb,
                        int64_t row0, int nr, const uint8_t *xb, size_t xq_stride, int64_t tok0, int nc, float *y,
                        int64_t y_stride) {
    for (int r = 0; r < nr; r++) {
        const uint8_t *wr = wb + (size_t)(row0 + r) * rb;
        float h[F16_NR_MAX];
        for (int c = 0; c < tl->nr; c += 4) _mm_storeu_ps(h + c, hsum4_ps(a + (r * tl->nr + c) * 8));
        for (int c = 0; c < nc; c++) {
            const uint8_t *xt = xb + (size_t)(tok0 + c) * xq_stride;
            double tail = 0.0;
            for (int64_t j = n8; j < n_in; j++) tail += (double)(f16_at(wr + 2 * j) * f16_at(xt + 2 * j));
            y[(tok0 + c) * y_stride + row0 + r] = (float)((double)h[c] + tail);
        }
    }
}

bool ll_gemm_f16_tiled(const struct f16_tile *tl, int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                       size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride) {
    const int mr = tl->mr, nr = tl->nr;
    const int64_t n8 = n_in / 8 * 8, n_grp = (n_tok + nr - 1) / nr;
    const size_t rb = (size_t)n_in * 2;
    const int64_t grp_blk = F16_NC / nr, tile_blk = (F16_MC + mr - 1) / mr;
    const int64_t blk_grps = n_grp < grp_blk ? n_grp : grp_blk;
    const size_t acc_fl = (size_t)mr * nr * 8;    /* one tile's saved accumulators */
    /* one row block's slice, one token block's whole rows, one block's saved accumulators */
    const size_t w_fl = (size_t)tile_blk * mr * F16_KC, x_fl = (size_t)(blk_grps * nr * n8);
    float *wp = aligned_alloc(64, (w_fl + x_fl + (size_t)(grp_blk * tile_blk) * acc_fl) * sizeof(float));
    if (!wp) return false;
    float *xp = wp + w_fl;
    float *acc = xp + x_fl;
    const uint8_t *xb = xq, *wb = w;
    for (int64_t g0 = 0; g0 < n_grp; g0 += grp_blk) {
        const int64_t g1 = g0 + grp_blk < n_grp ? g0 + grp_blk : n_grp;
        for (int64_t g = g0; g < g1; g++) {
            int nc = n_tok - g * nr < nr ? (int)(n_tok - g * nr) : nr;
            f16_pack(xb + (size_t)(g * nr) * xq_stride, xq_stride, nc, nr, 0, n8 / 8, xp + (g - g0) * nr * n8);
        }
        for (int64_t rb0 = r0; rb0 < r1; rb0 += F16_MC) {
            const int64_t nrows = r1 - rb0 < F16_MC ? r1 - rb0 : F16_MC, ntiles = (nrows + mr - 1) / mr;
            for (int64_t k0 = 0; k0 < n8 || k0 == 0; k0 += F16_KC) {
                const int64_t steps = (n8 - k0 < F16_KC ? n8 - k0 : F16_KC) / 8;
                /* a partial tile is packed here (zero rows), whole ones by the first group */
                if (nrows % mr) {
                    const int64_t t = ntiles - 1;
                    f16_pack(wb + (size_t)(rb0 + t * mr) * rb, rb, (int)(nrows % mr), mr, k0, steps,
                             wp + (size_t)t * mr * F16_KC);
                }
                /* what is packed after this slice: the next slice of these rows, else the
                 * first of the next row block, else (next token block) of the first one */
                int64_t wk = k0 + F16_KC, wr0 = rb0, wn = 0;
                if (wk >= n8) { wk = 0; wr0 = rb0 + F16_MC < r1 ? rb0 + F16_MC : (g1 < n_grp ? r0 : r1); }
                const int64_t wrows = r1 - wr0 < F16_MC ? r1 - wr0 : F16_MC;
                if (wrows > 0) wn = (n8 - wk < F16_KC ? n8 - wk : F16_KC);
                f16_pf wpf = f16_pf_start(wb + (size_t)wr0 * rb + 2 * wk, rb, wrows, wn);
                const int64_t calls = (g1 - g0) * ntiles, w_step = (wpf.rows * wpf.lines + calls - 1) / calls;
                for (int64_t g = g0; g < g1; g++) {
                    const float *xg = xp + (g - g0) * nr * n8 + nr * k0;
                    /* the group's slice read next (the next group's, else the first's at the
                     * next slice, else at the first slice), into L1 */
                    const float *xnext = g + 1 < g1 ? xg + nr * n8
                                                    : xp + (wk > 0 ? nr * wk : 0);
                    const int64_t x_lines = (wk > 0 && g + 1 >= g1 ? (n8 - wk < F16_KC ? n8 - wk : F16_KC) : steps * 8)
                                            * nr * 4 / 64;
                    const int64_t x_step = (x_lines + ntiles - 1) / ntiles;
                    const char *xpf = (const char *)xnext, *xpf_end = xpf + x_lines * 64;
                    for (int64_t t = 0; t < ntiles; t++) {
                        for (int64_t i = 0; i < x_step && xpf < xpf_end; i++, xpf += 64) _mm_prefetch(xpf, _MM_HINT_T0);
                        F16_PF_STEP(wpf, w_step, _MM_HINT_T1)
                        float *wt = wp + (size_t)t * mr * F16_KC, *at = acc + (size_t)((g - g0) * tile_blk + t) * acc_fl;
                        if (g == g0 && (t + 1) * mr <= nrows)
                            tl->micro_cvt(steps, wb + (size_t)(rb0 + t * mr) * rb + 2 * k0, rb, wt, xg, at, k0 == 0);
                        else
                            tl->micro(steps, wt, xg, at, k0 == 0);
                        if (k0 + F16_KC >= n8)    /* the last slice: results, among the FMAs */
                            f16_results(tl, at, n_in, n8, wb, rb, rb0 + t * mr,
                                        nrows - t * mr < mr ? (int)(nrows - t * mr) : mr, xb, xq_stride,
                                        g * nr, n_tok - g * nr < nr ? (int)(n_tok - g * nr) : nr,
                                        y, y_stride);
                    }
                }
            }
        }
    }
    free(wp);
    return true;
}

static const struct f16_tile f16_tile_avx2 = { F16_MR, F16_NR, f16_micro, f16_micro_cvt };

bool ll_gemm_f16_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                      size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride) {
    return ll_gemm_f16_tiled(&f16_tile_avx2, n_in, w, r0, r1, xq, xq_stride, n_tok, y, y_stride);
}
