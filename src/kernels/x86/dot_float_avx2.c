/* kernels/x86: AVX2+FMA dots of the float types (gguf-and-quants.md C.2): F32 x F32,
 * F16 x F16 (F16C conversion, exact) and BF16 x BF16 (a shift). Products are fused into four
 * f32 accumulators of 8 lanes, reduced at the end; the tail of fewer than 8 elements is summed
 * in double, as ggml does. The reference sums everything in double, so results differ from it
 * by f32 rounding of the lane sums. */
#include "kernels/x86/avx2_util.h"

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

/* ---- F16 prompts: a register-tiled product (kernels.h, ll_gemm_fn) ----------------------------
 *
 * dot_multi converts the 8 activations of every column at every step (cvtph for 8 columns
 * per one weight vector), which costs as much as the FMAs. Here the tokens' F16 activations
 * are converted to f32 once per call, and each tile of weight rows once per call into an f32
 * panel (both exact), so the inner loop is FMAs and loads only: on Zen 1 a ymm cvtph2ps takes
 * the FMA pipes, and converting 3 weight vectors per 12 FMAs left the kernel at 65% of the
 * FMA peak (`build/bench/peak`). A tile of 3 weight rows x 4 tokens keeps 12 accumulators in
 * registers: per 8 elements 3 weight loads and 12 FMAs with the activation as a memory
 * operand. Each (row, token) accumulator is the single dot's s0 (the same FMAs on the same
 * lanes, in the same order) and ends with its hsum and double tail, so the result is
 * bit-identical to ll_dot_f16_avx2. */
enum { F16_TILE_ROWS = 3, F16_TILE_COLS = 4, F16_PANEL_BYTES = 192 * 1024, F16_TILE_MAX_ROWS = 63 };

static inline __attribute__((always_inline)) void
f16_tile(int nr, int nc, int64_t n, const float *w, size_t ws, const float *x, size_t xs,
         float out[F16_TILE_ROWS][F16_TILE_COLS]) {
    __m256 s[F16_TILE_ROWS][F16_TILE_COLS];
    _Pragma("GCC unroll 3") for (int r = 0; r < nr; r++)
        _Pragma("GCC unroll 4") for (int c = 0; c < nc; c++) s[r][c] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv[F16_TILE_ROWS];
        _Pragma("GCC unroll 3") for (int r = 0; r < nr; r++) wv[r] = _mm256_loadu_ps(w + r * ws + i);
        _Pragma("GCC unroll 4") for (int c = 0; c < nc; c++) {
            __m256 xv = _mm256_loadu_ps(x + c * xs + i);
            _Pragma("GCC unroll 3") for (int r = 0; r < nr; r++) s[r][c] = _mm256_fmadd_ps(wv[r], xv, s[r][c]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++) {
            double tail = 0.0;
            for (int64_t j = i; j < n; j++) tail += (double)(w[r * ws + j] * x[c * xs + j]);
            out[r][c] = (float)((double)hsum_ps(s[r][c]) + tail);
        }
}

typedef void (*f16_tile_fn)(int64_t n, const float *w, size_t ws, const float *x, size_t xs,
                            float out[F16_TILE_ROWS][F16_TILE_COLS]);
#define F16_TILE(R, C)                                                                            \
    static void f16_tile_##R##_##C(int64_t n, const float *w, size_t ws, const float *x, size_t xs, \
                                   float out[F16_TILE_ROWS][F16_TILE_COLS]) { f16_tile(R, C, n, w, ws, x, xs, out); }
F16_TILE(1, 1) F16_TILE(1, 2) F16_TILE(1, 3) F16_TILE(1, 4)
F16_TILE(2, 1) F16_TILE(2, 2) F16_TILE(2, 3) F16_TILE(2, 4)
F16_TILE(3, 1) F16_TILE(3, 2) F16_TILE(3, 3) F16_TILE(3, 4)
static const f16_tile_fn f16_tiles[F16_TILE_ROWS][F16_TILE_COLS] = {
    { f16_tile_1_1, f16_tile_1_2, f16_tile_1_3, f16_tile_1_4 },
    { f16_tile_2_1, f16_tile_2_2, f16_tile_2_3, f16_tile_2_4 },
    { f16_tile_3_1, f16_tile_3_2, f16_tile_3_3, f16_tile_3_4 },
};

/* n F16 values at src to f32 at dst (exact). */
static void f16_row_to_f32(const uint8_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16x8(src + 2 * i));
    for (; i < n; i++) dst[i] = f16_at(src + 2 * i);
}

bool ll_gemm_f16_avx2(int64_t n_in, const void *w, int64_t r0, int64_t r1, const void *xq,
                      size_t xq_stride, int64_t n_tok, float *y, int64_t y_stride) {
    const size_t xs = (size_t)n_in, rb = (size_t)n_in * 2;
    /* Rows per panel: whole row groups whose f32 copy stays in L2 beside 4 tokens. */
    int64_t tile = (int64_t)(F16_PANEL_BYTES / (xs * sizeof(float)));
    if (tile < F16_TILE_ROWS) tile = F16_TILE_ROWS;
    if (tile > F16_TILE_MAX_ROWS) tile = F16_TILE_MAX_ROWS;
    tile -= tile % F16_TILE_ROWS;             /* whole row groups, except at the end of the range */
    float *x = malloc(((size_t)n_tok + (size_t)tile) * xs * sizeof *x);
    if (!x) return false;
    float *panel = x + (size_t)n_tok * xs;
    for (int64_t t = 0; t < n_tok; t++) f16_row_to_f32((const uint8_t *)xq + (size_t)t * xq_stride, x + (size_t)t * xs, n_in);
    const uint8_t *wb = w;
    for (int64_t rt = r0; rt < r1; rt += tile) {
        int64_t re = rt + tile < r1 ? rt + tile : r1;
        for (int64_t r = rt; r < re; r++) f16_row_to_f32(wb + (size_t)r * rb, panel + (size_t)(r - rt) * xs, n_in);
        for (int64_t t = 0; t < n_tok; t += F16_TILE_COLS) {
            int nc = n_tok - t < F16_TILE_COLS ? (int)(n_tok - t) : F16_TILE_COLS;
            for (int64_t r = rt; r < re; r += F16_TILE_ROWS) {
                int nr = re - r < F16_TILE_ROWS ? (int)(re - r) : F16_TILE_ROWS;
                float out[F16_TILE_ROWS][F16_TILE_COLS];
                f16_tiles[nr - 1][nc - 1](n_in, panel + (size_t)(r - rt) * xs, xs, x + (size_t)t * xs, xs, out);
                for (int c = 0; c < nc; c++)
                    for (int i = 0; i < nr; i++) y[(t + c) * y_stride + r + i] = out[i][c];
            }
        }
    }
    free(x);
    return true;
}
