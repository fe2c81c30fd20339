/* kernels/x86: the F16 prompt product of the amx table on AMX-BF16 tiles (its gemm_fast), for
 * contexts that ask for fast products (ll_ctx_params.fast_products: bench, run, serve), and
 * there for the tokens of sequences with several tokens in a batch (the forward pass sends a
 * token alone in its sequence, so every generation step, to the exact FMA kernels).
 *
 * Exact products. F16 weights and F16 activations both have 11 significant bits; bf16 has 8.
 * Each value x is split exactly into hi (x truncated to bf16) and lo = x - hi (at most 3
 * significant bits, exact in bf16, and never below bf16's range since F16's smallest value is
 * 2^-24), so w * a = wh ah + wl ah + wl al + wh al with every term exact. TDPBF16PS adds the
 * products of 16 rows x 32 elements x 16 tokens into a 16 x 16 f32 tile; per 32-element step
 * every (row, token) sum takes the four terms in that order (hh, lh, ll, hl), over the steps
 * in order, in one accumulator from zero. The instruction's own rounding is not the IEEE
 * sequence of FMAs (measured: none of sequential FMAs, pair sums or one rounding per
 * instruction reproduce it), so the sums differ from the FMA dot's in the last bits (as
 * accurate: every product exact, f32 sums); an element's result depends only on its row, its
 * token and the step order, never on the other tokens of the call or the blocking
 * (tests/kernels checks both).
 *
 * Why not generation too: with one token a tile product does 1/16 of its work, and the
 * conversion to bf16 pairs writes and rereads 4 bytes per weight; the best version measured
 * (rows packed 4 steps at a time into L1, C kept over the row) read a 1 GB matrix at 7.3 GB/s
 * on one thread against 12.6 for the AVX-512 FMA gemv (the conversion alone: 9.5 GB/s).
 *
 * Layout. A tile holds 16 rows of 64 bytes. Weights go in tile A as they are stored (row m =
 * 32 consecutive elements of weight row m; hi tile, then lo tile, per step); tokens go in tile
 * B as the instruction pairs them (row p = elements 2p, 2p+1 of each of 16 tokens). Tile C
 * (16 weight rows x 16 tokens) stays in its register over a slice of steps. Elements past n_in,
 * rows past r1 and tokens past n_tok are zeros.
 *
 * Cost: four tile products per step instead of one, still about 3.5x the zmm FMA rate on the
 * Xeon of stop 21 (one thread, L1-resident tiles: 380 G MAC/s against 108). */
#include "kernels/x86/amx.h"
#include "kernels/x86/amx_util.h"

#include <stdlib.h>
#include <sys/mman.h>

enum {
    FA_K = 32,              /* elements per step: one 64-byte tile row of bf16 */
    FA_TILE = 1024,         /* one tile: 16 rows of 64 bytes */
    FA_STEP = 2 * FA_TILE,  /* a step of 16 rows (or tokens): the hi tile, then the lo tile */
    FA_MC = 128,            /* weight rows per block; the slice of their packed steps stays in L2 */
    FA_KS = 32,             /* steps per slice (1024 elements): 128 rows' slice is 512 KB */
};

/* Tile registers: C (rows 0-15 | 16-31) x (tokens 0-15 | 16-31), B for tokens, A for rows. */
#define FC00 0
#define FC01 1
#define FC10 2
#define FC11 3
#define FB0 4
#define FB1 5
#define FA0 6
#define FA1 7

static void tiles_configure(void) {
    struct amx_tile_config c __attribute__((aligned(64)));
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) { c.rows[t] = 16; c.colsb[t] = 64; }
    _tile_loadconfig(&c);
}

/* 32 F16 values from p (left of them valid, the rest read as zero) widened to f32. */
static inline void load32(const uint8_t *p, int64_t left, __m512 *f0, __m512 *f1) {
    __m512i h;
    if (left >= FA_K) h = _mm512_loadu_si512(p);
    else h = _mm512_maskz_loadu_epi16(left > 0 ? (__mmask32)((1u << left) - 1u) : 0, p);
    *f0 = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    *f1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
}

/* 32 values x = hi + lo: hi the top 16 bits of x's f32 pattern (x truncated to bf16), lo the
 * exact remainder; both are bf16 values, so the rounding conversion leaves them as they are. */
static inline void split_row(const uint8_t *row, int64_t e, int64_t n_in, uint16_t *hi, uint16_t *lo) {
    __m512 f0, f1;
    load32(row + 2 * e, n_in - e, &f0, &f1);
    const __m512 mask = _mm512_castsi512_ps(_mm512_set1_epi32((int)0xffff0000u));
    const __m512 h0 = _mm512_and_ps(f0, mask), h1 = _mm512_and_ps(f1, mask);
    _mm512_store_si512((__m512i *)hi, (__m512i)_mm512_cvtne2ps_pbh(h1, h0));
    _mm512_store_si512((__m512i *)lo, (__m512i)_mm512_cvtne2ps_pbh(_mm512_sub_ps(f1, h1), _mm512_sub_ps(f0, h0)));
}

/* Weight rows w, w + rb, .. (nr <= 16 of them) at steps [s0, s0 + ns) into ns packed steps
 * at dst (tile A rows: row m = weight row m). Four rows side by side, step by step: four
 * forward streams are what the hardware prefetcher follows best (measured on a 1 GB matrix,
 * one thread: 11.4 GB/s, against 7.6 row by row and 11.2 for all 16 rows at once). */
enum { PACK_STREAMS = 4 };

static void pack_rows(const uint8_t *w, size_t rb, int nr, int64_t n_in, int64_t s0, int64_t ns, uint8_t *dst) {
    for (int m0 = 0; m0 < AMX_ROWS; m0 += PACK_STREAMS)
        for (int64_t s = 0; s < ns; s++)
            for (int m = m0; m < m0 + PACK_STREAMS; m++) {
                uint8_t *d = dst + (size_t)s * FA_STEP + 64 * m;
                if (m < nr) {
                    split_row(w + (size_t)m * rb, (s0 + s) * FA_K, n_in, (uint16_t *)d, (uint16_t *)(d + FA_TILE));
                } else {
                    _mm512_store_si512((__m512i *)d, _mm512_setzero_si512());
                    _mm512_store_si512((__m512i *)(d + FA_TILE), _mm512_setzero_si512());
                }
            }
}

/* Tokens x, x + xs, .. (n <= 16 of them) at steps [s0, s0 + ns) into ns packed steps at dst
 * (tile B rows: row p = the element pair p of each token). */
static void pack_tokens(const uint8_t *x, size_t xs, int n, int64_t n_in, int64_t s0, int64_t ns, uint8_t *dst) {
    uint16_t th[AMX_TOKS][FA_K] __attribute__((aligned(64))), tl[AMX_TOKS][FA_K] __attribute__((aligned(64)));
    for (int64_t s = 0; s < ns; s++, dst += FA_STEP) {
        for (int m = 0; m < AMX_TOKS; m++) {
            if (m < n) {
                split_row(x + (size_t)m * xs, (s0 + s) * FA_K, n_in, th[m], tl[m]);
            } else {
                _mm512_store_si512((__m512i *)th[m], _mm512_setzero_si512());
                _mm512_store_si512((__m512i *)tl[m], _mm512_setzero_si512());
            }
        }
        amx_interleave_b((const int32_t *)th, 64, dst);
        amx_interleave_b((const int32_t *)tl, 64, dst + FA_TILE);
    }
}

/* The four products of one step into the C tiles in use. */
#define FA_DP4()                                                                                  \
    do {                                                                                          \
        _tile_dpbf16ps(FC00, FA0, FB0);                                                           \
        if (two_t) _tile_dpbf16ps(FC01, FA0, FB1);                                                \
        if (two_r) {                                                                              \
            _tile_dpbf16ps(FC10, FA1, FB0);                                                       \
            if (two_t) _tile_dpbf16ps(FC11, FA1, FB1);                                            \
        }                                                                                         \
    } while (0)

/* ns steps of one block of 16 or 32 rows (a0, a1: packed steps) x 16 or 32 tokens (b0, b1),
 * each step's terms in the order hh, lh, ll, hl, into C tiles already loaded. */
static inline __attribute__((always_inline)) void
steps_run(int two_r, int two_t, int64_t ns, const uint8_t *a0, const uint8_t *a1, const uint8_t *b0,
          const uint8_t *b1) {
    for (int64_t s = 0; s < ns; s++) {
        const size_t o = (size_t)s * FA_STEP;
        _tile_loadd(FB0, b0 + o, 64);
        if (two_t) _tile_loadd(FB1, b1 + o, 64);
        _tile_loadd(FA0, a0 + o, 64);
        if (two_r) _tile_loadd(FA1, a1 + o, 64);
        FA_DP4();                                                       /* wh ah */
        _tile_loadd(FA0, a0 + o + FA_TILE, 64);
        if (two_r) _tile_loadd(FA1, a1 + o + FA_TILE, 64);
        FA_DP4();                                                       /* wl ah */
        _tile_loadd(FB0, b0 + o + FA_TILE, 64);
        if (two_t) _tile_loadd(FB1, b1 + o + FA_TILE, 64);
        FA_DP4();                                                       /* wl al */
        _tile_loadd(FA0, a0 + o, 64);
        if (two_r) _tile_loadd(FA1, a1 + o, 64);
        FA_DP4();                                                       /* wh al */
    }
}

/* C tiles for a block from acc (c[0..3], NULL: zero), and back (to c, or to out[4] for the
 * caller to place). */
static inline __attribute__((always_inline)) void c_load(int two_r, int two_t, uint8_t *const c[4]) {
    if (!c[0]) {
        _tile_zero(FC00);
        if (two_t) _tile_zero(FC01);
        if (two_r) _tile_zero(FC10);
        if (two_r && two_t) _tile_zero(FC11);
        return;
    }
    _tile_loadd(FC00, c[0], 64);
    if (two_t) _tile_loadd(FC01, c[1], 64);
    if (two_r) _tile_loadd(FC10, c[2], 64);
    if (two_r && two_t) _tile_loadd(FC11, c[3], 64);
}

static inline __attribute__((always_inline)) void c_store(int two_r, int two_t, uint8_t *const c[4]) {
    _tile_stored(FC00, c[0], 64);
    if (two_t) _tile_stored(FC01, c[1], 64);
    if (two_r) _tile_stored(FC10, c[2], 64);
    if (two_r && two_t) _tile_stored(FC11, c[3], 64);
}

/* One block through its slice: C from cin (cin[0] NULL: zero), products, C to cout. */
static void block_run(int two_r, int two_t, int64_t ns, const uint8_t *a0, const uint8_t *a1, const uint8_t *b0,
                      const uint8_t *b1, uint8_t *const cin[4], uint8_t *const cout[4]) {
    if (two_r && two_t) {
        c_load(1, 1, cin); steps_run(1, 1, ns, a0, a1, b0, b1); c_store(1, 1, cout);
    } else if (two_r) {
        c_load(1, 0, cin); steps_run(1, 0, ns, a0, a1, b0, b1); c_store(1, 0, cout);
    } else if (two_t) {
        c_load(0, 1, cin); steps_run(0, 1, ns, a0, a1, b0, b1); c_store(0, 1, cout);
    } else {
        c_load(0, 0, cin); steps_run(0, 0, ns, a0, a1, b0, b1); c_store(0, 0, cout);
    }
}

/* A stored C tile (16 rows x 16 tokens) into y: nr rows from r, nt tokens from t. */
static void c_place(const float *c, int nr, int nt, float *y, int64_t y_stride, int64_t r, int64_t t) {
    for (int n = 0; n < nt; n++)
        for (int m = 0; m < nr; m++) y[(t + n) * y_stride + r + m] = c[16 * m + n];
}

/* Rows [r0, r1) x n_tok tokens, y[t * y_stride + r]. Per call the tokens are packed whole
 * (16-token groups x every step: 4 bytes per element); per block of FA_MC rows and slice of
 * FA_KS steps the rows are packed once and met by every token group, 32 x 32 at a time, their
 * C tiles saved between slices in acc. */
static bool f16_amx_product(int64_t n_in, const uint8_t *w, int64_t r0, int64_t r1, const uint8_t *x, size_t xs,
                            int64_t n_tok, float *y, int64_t y_stride) {
    const int64_t steps = (n_in + FA_K - 1) / FA_K, n_tg = (n_tok + AMX_TOKS - 1) / AMX_TOKS;
    const int64_t ks = n_tok <= 16 ? steps : steps < FA_KS ? steps : FA_KS;
    const int64_t mcx = n_tok <= 16 ? 32 : FA_MC;
    const int64_t mc = r1 - r0 < mcx ? (r1 - r0 + 15) / 16 * 16 : mcx, n_rg = mc / 16;
    const size_t rb = (size_t)n_in * 2;
    /* The model loader bounds n_in and n_tok, so these sizes do not overflow. */
    const size_t x_bytes = (size_t)n_tg * (size_t)steps * FA_STEP, a_bytes = (size_t)n_rg * (size_t)ks * FA_STEP;
    const size_t c_bytes = (size_t)n_rg * (size_t)n_tg * FA_TILE;
    /* mapped (populated at once: cheaper than a fault per page) and unmapped per call: as a
     * heap block the buffers stayed resident after free and pushed the peak RSS up */
    const size_t buf_bytes = x_bytes + a_bytes + c_bytes;
    uint8_t *buf = mmap(NULL, buf_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (buf == MAP_FAILED) return false;
    uint8_t *xp = buf, *ap = buf + x_bytes, *cp = ap + a_bytes;
    for (int64_t g = 0; g < n_tg; g++) {
        const int n = n_tok - g * AMX_TOKS < AMX_TOKS ? (int)(n_tok - g * AMX_TOKS) : AMX_TOKS;
        pack_tokens(x + (size_t)(g * AMX_TOKS) * xs, xs, n, n_in, 0, steps, xp + (size_t)g * (size_t)steps * FA_STEP);
    }
    tiles_configure();
    for (int64_t rb0 = r0; rb0 < r1; rb0 += mc) {
        const int64_t nrows = r1 - rb0 < mc ? r1 - rb0 : mc, rgs = (nrows + 15) / 16;
        for (int64_t s0 = 0; s0 < steps; s0 += ks) {
            const int64_t ns = steps - s0 < ks ? steps - s0 : ks;
            const bool first = s0 == 0, last = s0 + ns >= steps;
            for (int64_t g = 0; g < rgs; g++) {
                const int nr = nrows - 16 * g < 16 ? (int)(nrows - 16 * g) : 16;
                pack_rows(w + (size_t)(rb0 + 16 * g) * rb, rb, nr, n_in, s0, ns, ap + (size_t)g * (size_t)ns * FA_STEP);
            }
            for (int64_t tg = 0; tg < n_tg; tg += 2) {
                const int two_t = tg + 1 < n_tg;
                const uint8_t *b0 = xp + ((size_t)tg * (size_t)steps + (size_t)s0) * FA_STEP;
                const uint8_t *b1 = two_t ? b0 + (size_t)steps * FA_STEP : b0;
                for (int64_t g = 0; g < rgs; g += 2) {
                    const int two_r = g + 1 < rgs;
                    const uint8_t *a0 = ap + (size_t)g * (size_t)ns * FA_STEP;
                    const uint8_t *a1 = two_r ? a0 + (size_t)ns * FA_STEP : a0;
                    uint8_t *c[4];                      /* tiles of the block not in use: c[0] */
                    for (int q = 0; q < 4; q++)
                        c[q] = ((q >> 1) && !two_r) || ((q & 1) && !two_t)
                                   ? cp + ((size_t)g * (size_t)n_tg + (size_t)tg) * FA_TILE
                                   : cp + ((size_t)(g + (q >> 1)) * (size_t)n_tg + (size_t)(tg + (q & 1))) * FA_TILE;
                    uint8_t *const zero[4] = { NULL, NULL, NULL, NULL };
                    block_run(two_r, two_t, ns, a0, a1, b0, b1, first ? zero : c, c);
                    if (!last) continue;
                    for (int q = 0; q < 4; q++) {
                        const int64_t rg = g + (q >> 1), t = (tg + (q & 1)) * AMX_TOKS;
                        if (((q >> 1) && !two_r) || ((q & 1) && !two_t)) continue;
                        const int nr = nrows - 16 * rg < 16 ? (int)(nrows - 16 * rg) : 16;
                        const int nt = n_tok - t < AMX_TOKS ? (int)(n_tok - t) : AMX_TOKS;
                        c_place((const float *)c[q], nr, nt, y, y_stride, rb0 + 16 * rg, t);
                    }
                }
            }
        }
    }
    _tile_release();
    munmap(buf, buf_bytes);
    return true;
}

/* Tokens FA_TOK_BLOCK at a time, so the packed tokens (4 bytes per element) of one call stay
 * at 8 MiB per thread for 8192-element rows instead of 16 MiB for a 512-token prompt; the
 * weights are then packed and read once per block of tokens (from L3 after the first). With
 * the buffer mapped per call (f16_amx_product) this keeps the peak RSS under llama.cpp's,
 * the target: 1B F16 pp512 2578 MiB (whole prompt, heap) -> 2490 (256 tokens, mapped; 128:
 * 2482), llama.cpp 2508; pp512 249 -> 218-223 t/s (128: 205-210; heap with 128 tokens: 228,
 * 2506 MiB). */
enum { FA_TOK_BLOCK = 256 };

bool ll_gemm_f16_amx(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq, size_t xq_stride,
                     int64_t n_tok, float *y, int64_t y_stride) {
    for (int64_t t = 0; t < n_tok; t += FA_TOK_BLOCK) {
        const int64_t nt = n_tok - t < FA_TOK_BLOCK ? n_tok - t : FA_TOK_BLOCK;
        if (!f16_amx_product(n_in, (const uint8_t *)w, r0, r1, (const uint8_t *)xq + (size_t)t * xq_stride, xq_stride,
                             nt, y + t * y_stride, y_stride))
            return false;
    }
    return true;
}
