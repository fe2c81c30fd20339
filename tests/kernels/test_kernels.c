/* tests for src/kernels: every SIMD kernel against its quant/ _ref definition, the dispatch
 * table, and ll_matmul_rows.
 *
 * Tolerances: a SIMD dot may differ from the reference only by f32 summation order, so
 * |simd - ref| <= 1e-5 * sum_i |w_i * a_i| + 1e-6 (sum over the dequantized products). On
 * inputs whose every partial sum is an integer below 2^24 (unit scales, small activations)
 * they must be exactly equal: that checks the integer sums. Activation quantizers must be
 * bit-identical. Without AVX2 on this CPU the SIMD tests pass with a note. */
#include "kernels/kernels.h"
#include "quant/blocks.h"
#include "../test.h"
#define TEST_RNG_SEED 0x243F6A8885A308D3ull
#include "../quant_random.h"

#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static struct ll_kernels k_ref, k_simd;
static bool have_simd;

static bool simd_or_skip(void) {
    if (!have_simd) fprintf(stderr, "note %s: no AVX2+FMA+F16C on this CPU, skipped\n", test_cur_name);
    return have_simd;
}


/* Activation blocks built directly with d = 1 and quants in -8..8, with consistent sums. */
static void make_unit_activations(uint32_t dot_type, uint8_t *a, int64_t n) {
    if (dot_type == LL_TYPE_Q8_K) {
        for (int64_t b = 0; b < n / QK_K; b++, a += Q8_K_BYTES) {
            float one = 1.0f;
            memcpy(a + Q8_K_D, &one, 4);
            for (int k = 0; k < 16; k++) {
                int16_t s = 0;
                for (int e = 0; e < 16; e++) {
                    int8_t q = (int8_t)((int)(rng_u64() % 17) - 8);
                    a[Q8_K_QS + 16 * k + e] = (uint8_t)q;
                    s = (int16_t)(s + q);
                }
                memcpy(a + Q8_K_BSUMS + 2 * k, &s, 2);
            }
        }
        return;
    }
    size_t bytes = dot_type == LL_TYPE_Q8_0 ? Q8_0_BYTES : Q8_1_BYTES;
    int qs = dot_type == LL_TYPE_Q8_0 ? Q8_0_QS : Q8_1_QS;
    for (int64_t b = 0; b < n / QK; b++, a += bytes) {
        int sum = 0;
        blk_put_u16(a, 0x3C00);
        for (int e = 0; e < QK; e++) {
            int8_t q = (int8_t)((int)(rng_u64() % 17) - 8);
            a[qs + e] = (uint8_t)q;
            sum += q;
        }
        if (dot_type == LL_TYPE_Q8_1) blk_put_u16(a + Q8_1_S, ll_fp32_to_fp16((float)sum));
    }
}

/* Lengths: one block, odd block counts, and longer rows; floats also get ragged tails. */
static int lengths_for(const ll_type_traits *t, int64_t *out) {
    if (t->blck == 1) {
        static const int64_t f[] = { 1, 7, 8, 31, 32, 33, 100, 2048, 2051 };
        memcpy(out, f, sizeof f);
        return (int)(sizeof f / sizeof f[0]);
    }
    static const int64_t mult[] = { 1, 2, 3, 5, 8, 9, 16 };
    for (int k = 0; k < 7; k++) out[k] = mult[k] * t->blck;
    return 7;
}

enum { MAXN = 16 * 256 + 64 };
static uint8_t wbuf[MAXN * 4 + 64], abuf[MAXN * 4 + 64];
static float xbuf[MAXN], wdq[MAXN], adq[MAXN];

static void test_dot_simd_vs_ref_random(void) {
    if (!simd_or_skip()) return;
    for (int t = 0; t < N_WTYPES; t++) {
        uint32_t wt = wtypes[t].type;
        const ll_type_traits *tt = ll_type_traits_of(wt);
        CHECK_MSG(k_simd.dot[wt] != k_ref.dot[wt], "%s has no SIMD dot", tt->name);
        int64_t lens[16];
        int nl = lengths_for(tt, lens);
        for (int li = 0; li < nl; li++) {
            int64_t n = lens[li];
            for (int rep = 0; rep < 3; rep++) {
                /* Odd offsets: weights and activations at any alignment. */
                uint8_t *w = wbuf + (rep == 0 ? 0 : 1 + rep), *a = abuf + (rep == 0 ? 0 : 3);
                random_weights(&wtypes[t], w, n, 0);
                float amp = rep == 2 ? 100.0f : 1.0f;
                for (int64_t k = 0; k < n; k++) xbuf[k] = rng_uniform(-amp, amp);
                k_ref.quantize_act[tt->dot_type](xbuf, a, n);
                ll_dequantize_row(wt, w, wdq, n);
                ll_dequantize_row(tt->dot_type, a, adq, n);
                double mag = 0;
                for (int64_t k = 0; k < n; k++) mag += fabs((double)wdq[k] * adq[k]);
                float r = k_ref.dot[wt](n, w, a), s = k_simd.dot[wt](n, w, a);
                double tol = 1e-5 * mag + 1e-6;
                CHECK_MSG(fabs((double)r - s) <= tol, "%s n=%lld rep %d: ref %.9g simd %.9g tol %.3g",
                          tt->name, (long long)n, rep, r, s, tol);
            }
        }
    }
}

/* Unit scales and small activations: every partial sum is an exact integer in f32, so any
 * difference is a wrong integer sum (a misplaced nibble, bit or scale). */
static void test_dot_simd_integer_sums_exact(void) {
    if (!simd_or_skip()) return;
    for (int t = 0; t < N_WTYPES; t++) {
        uint32_t wt = wtypes[t].type;
        if (is_float_type(wt)) continue;
        const ll_type_traits *tt = ll_type_traits_of(wt);
        for (int64_t n = tt->blck; n <= 1024; n += 3 * tt->blck) {
            random_weights(&wtypes[t], wbuf + 1, n, 1.0f);
            make_unit_activations(tt->dot_type, abuf + 2, n);
            float r = k_ref.dot[wt](n, wbuf + 1, abuf + 2), s = k_simd.dot[wt](n, wbuf + 1, abuf + 2);
            CHECK_MSG(r == s && r == floorf(r), "%s n=%lld: ref %.9g simd %.9g", tt->name, (long long)n, r, s);
            /* And both equal the dot of the dequantized rows, computed in double. */
            ll_dequantize_row(wt, wbuf + 1, wdq, n);
            ll_dequantize_row(tt->dot_type, abuf + 2, adq, n);
            double exact = 0;
            for (int64_t k = 0; k < n; k++) exact += (double)wdq[k] * adq[k];
            CHECK_MSG(r == exact, "%s n=%lld: ref %.9g exact %.9g", tt->name, (long long)n, r, exact);
        }
    }
}

/* Activation quantizers: bit-identical to the reference on random data, exact ties, blocks of
 * zeros, negative and repeated maxima, and (F16) subnormals, overflow, inf and NaN. */
static void check_quantizer_same(uint32_t at, const float *x, int64_t n, const char *what) {
    static uint8_t r[MAXN * 4], s[MAXN * 4];
    uint64_t bytes = 0;
    ll_type_row_bytes(at, n, &bytes);
    memset(r, 0xAA, bytes); memset(s, 0x55, bytes);
    k_ref.quantize_act[at](x, r, n);
    k_simd.quantize_act[at](x, s, n);
    size_t bad = bytes;
    for (size_t k = 0; k < bytes; k++) if (r[k] != s[k]) { bad = k; break; }
    CHECK_MSG(bad == bytes, "%s %s n=%lld: first difference at byte %zu (%02x vs %02x)",
              ll_type_traits_of(at)->name, what, (long long)n, bad, r[bad], s[bad]);
}

static void test_quantize_act_bit_identical(void) {
    if (!simd_or_skip()) return;
    static const uint32_t acts[] = { LL_TYPE_Q8_0, LL_TYPE_Q8_1, LL_TYPE_Q8_K, LL_TYPE_F16 };
    for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++) {
        uint32_t at = acts[ai];
        CHECK_MSG(k_simd.quantize_act[at] != k_ref.quantize_act[at], "%s has no SIMD quantizer",
                  ll_type_traits_of(at)->name);
        int64_t blk = ll_type_traits_of(at)->blck == 1 ? 1 : ll_type_traits_of(at)->blck;
        int64_t lens[] = { 256, 512, 3 * 256, 4096 };
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            int64_t n = lens[li] / blk * blk;
            for (int64_t k = 0; k < n; k++) xbuf[k] = rng_uniform(-3, 3);
            check_quantizer_same(at, xbuf, n, "random");
            for (int64_t k = 0; k < n; k++) xbuf[k] = rng_uniform(-1e-3f, 1e-3f) * (float)(k % 7);
            check_quantizer_same(at, xbuf, n, "small");
        }
        /* Ties: max 127 makes id = 1 (Q8_0/Q8_1), halves land exactly on .5. */
        for (int k = 0; k < 512; k++) xbuf[k] = (float)((int)(rng_u64() % 254) - 127) + 0.5f;
        for (int k = 0; k < 512; k += 32) xbuf[k] = 127.0f;
        check_quantizer_same(at, xbuf, 512, "ties");
        /* Q8_K ties: max -127 gives iscale 1. */
        for (int k = 0; k < 512; k += 256) xbuf[k] = -127.0f;
        check_quantizer_same(at, xbuf, 512, "ties2");
        /* Zeros, repeated maxima of both signs, a single spike. */
        memset(xbuf, 0, 512 * sizeof(float));
        check_quantizer_same(at, xbuf, 512, "zeros");
        for (int k = 0; k < 512; k++) xbuf[k] = (k % 5 == 0) ? (k % 2 ? 2.0f : -2.0f) : rng_uniform(-2, 2);
        check_quantizer_same(at, xbuf, 512, "repeated max");
        memset(xbuf, 0, 512 * sizeof(float));
        xbuf[300] = 1e-30f;
        check_quantizer_same(at, xbuf, 512, "spike");
    }
    /* F16 only: the full range of f32 including the special values, and a ragged length. */
    for (int k = 0; k < 4096; k++) {
        uint32_t u = (uint32_t)rng_u64();
        if (k % 3) u = (u & 0x807FFFFFu) | (uint32_t)(90 + rng_u64() % 60) << 23;
        memcpy(&xbuf[k], &u, 4);
    }
    xbuf[0] = INFINITY; xbuf[1] = -INFINITY; xbuf[2] = NAN; xbuf[3] = 65520.0f; xbuf[4] = 0x1p-25f;
    check_quantizer_same(LL_TYPE_F16, xbuf, 4096, "bit patterns");
    check_quantizer_same(LL_TYPE_F16, xbuf, 13, "ragged");
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static void test_dispatch_table_complete(void) {
    const struct ll_kernels *k = ll_kernels_get();
    CHECK(k != NULL && k == ll_kernels_get());
    if (!getenv("LOCALLAMA_ISA")) {
        struct ll_kernels best;
        const char *want = ll_kernels_init_isa(&best, "amx")      ? "amx"
                           : ll_kernels_init_isa(&best, "avx512") ? "avx512"
                           : ll_kernels_init_isa(&best, "avx2")   ? "avx2"
                                                                  : "scalar";
        CHECK_MSG(strcmp(k->isa, want) == 0, "picked %s, expected %s", k->isa, want);
    }
    for (uint32_t t = 0; t < LL_TYPE_COUNT; t++) {
        const ll_type_traits *tt = ll_type_traits_of(t);
        if (!tt || !tt->supported) continue;
        CHECK_MSG(k->dot[t] != NULL, "no dot for %s", tt->name);
        CHECK_MSG(k->quantize_act[tt->dot_type] != NULL, "no quantizer for %s", tt->name);
    }
    /* A dot_multi only beside the dot it must equal; none in the scalar table, whose matmul
     * loops over the reference dot. */
    for (uint32_t t = 0; t < LL_TYPE_COUNT; t++) {
        CHECK_MSG(!k->dot_multi[t] || k->dot[t], "type %u: dot_multi without dot", t);
        CHECK_MSG(!k_ref.dot_multi[t], "type %u: scalar table has a dot_multi", t);
    }
    struct ll_kernels tmp;
    CHECK(!ll_kernels_init_isa(&tmp, "no-such-isa") && strcmp(tmp.isa, "scalar") == 0);
    CHECK(ll_kernels_init_isa(&tmp, "scalar") && tmp.dot[LL_TYPE_Q4_0] == ll_dot_q4_0_ref);
}

/* LOCALLAMA_ISA=scalar forces the reference table (checked in a child: the table is per process). */
static void test_dispatch_env_forces_scalar(void) {
    pid_t pid = fork();
    if (pid == 0) {
        setenv("LOCALLAMA_ISA", "scalar", 1);
        const struct ll_kernels *k = ll_kernels_get();
        _exit(strcmp(k->isa, "scalar") == 0 && k->dot[LL_TYPE_Q8_0] == ll_dot_q8_0_ref ? 0 : 1);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- matmul ---------------------------------------------------------------------------------- */

/* Bitwise float equality: the multi-column kernels promise the single dot's exact result. */
static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Output (t, r) of a product of table k against its contract: the dot's bits, or where it came
 * from the type's gemm_fast (fast: F16 on AMX-BF16), within f32 rounding of the dot (1e-5 of
 * the sum of |w a|) and the bits of gemm_fast given that token alone (n_tok 1, other row
 * blocks): such an output never depends on the rest of the call. */
static bool product_ok(const struct ll_kernels *k, uint32_t wt, int64_t n_in, const uint8_t *row, const uint8_t *w,
                       int64_t r, const uint8_t *act, bool fast, float got) {
    const float dot = k->dot[wt](n_in, row, act);
    if (!fast || !k->gemm_fast[wt]) return same_bits(got, dot);
    static float wd[4096], ad[4096];
    if (n_in > 4096) return false;
    ll_dequantize_row(wt, row, wd, n_in);
    ll_dequantize_row(ll_type_traits_of(wt)->dot_type, act, ad, n_in);
    double mag = 0;
    for (int64_t e = 0; e < n_in; e++) mag += fabs((double)wd[e] * ad[e]);
    static float alone[4096];
    if (r >= 4096 || !k->gemm_fast[wt](n_in, w, r, r + 1, act, 0, 1, alone, 0)) return false;
    if (isnan(dot)) return isnan(got) && isnan(alone[r]);          /* NaN weights (all bits set) */
    return fabs((double)got - dot) <= 1e-5 * mag + 1e-6 && same_bits(got, alone[r]);
}

static const struct wfields *wfields_of(uint32_t wt) {
    for (int t = 0; t < N_WTYPES; t++) if (wtypes[t].type == wt) return &wtypes[t];
    return NULL;
}

/* Every dot_multi against the single dot of its table, column by column, bit for bit: random
 * weights and activations (columns of different magnitudes, odd offsets and an odd stride),
 * n_cols 1..8 and counts that need more than one pass; slots past n_cols stay untouched. */
static void test_dot_multi_bit_identical(void) {
    if (!simd_or_skip()) return;
    static const uint32_t must[] = { LL_TYPE_Q4_K, LL_TYPE_Q6_K, LL_TYPE_Q8_0, LL_TYPE_Q4_0, LL_TYPE_F16 };
    for (size_t m = 0; m < sizeof must / sizeof must[0]; m++)
        CHECK_MSG(k_simd.dot_multi[must[m]] != NULL, "%s has no dot_multi", ll_type_traits_of(must[m])->name);
    enum { MAX_COLS = 2 * LL_DOT_MULTI_MAX + 1 };
    static uint8_t acols[MAX_COLS * (MAXN * 2 + 64) + 64];
    int n_checked = 0;
    for (uint32_t wt = 0; wt < LL_TYPE_COUNT; wt++) {
        if (!k_simd.dot_multi[wt]) continue;
        const ll_type_traits *tt = ll_type_traits_of(wt);
        int64_t lens[16];
        int nl = lengths_for(tt, lens);
        for (int li = 0; li < nl; li++) {
            int64_t n = lens[li];
            uint64_t xb = 0;
            ll_type_row_bytes(tt->dot_type, n, &xb);
            size_t stride = (size_t)xb + 3;             /* odd: any alignment per column */
            uint8_t *w = wbuf + 1, *a = acols + 5;
            random_weights(wfields_of(wt), w, n, 0);
            for (int c = 0; c < MAX_COLS; c++) {
                float amp = c % 3 == 0 ? 1.0f : c % 3 == 1 ? 100.0f : 1e-3f;
                for (int64_t e = 0; e < n; e++) xbuf[e] = rng_uniform(-amp, amp);
                k_simd.quantize_act[tt->dot_type](xbuf, a + c * stride, n);
            }
            float want[MAX_COLS];
            for (int c = 0; c < MAX_COLS; c++) want[c] = k_simd.dot[wt](n, w, a + c * stride);
            static const int counts[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17 };
            for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
                int nc = counts[ci];
                float out[MAX_COLS + 1];
                for (int c = 0; c <= MAX_COLS; c++) out[c] = -999.0f;
                k_simd.dot_multi[wt](n, w, a, stride, nc, out);
                for (int c = 0; c <= MAX_COLS; c++) {
                    bool ok = c < nc ? same_bits(out[c], want[c]) : out[c] == -999.0f;
                    CHECK_MSG(ok, "%s n=%lld n_cols=%d col %d: multi %.9g single %.9g", tt->name,
                              (long long)n, nc, c, out[c], c < MAX_COLS ? want[c] : 0.0f);
                }
                n_checked++;
            }
        }
    }
    CHECK(n_checked > 0);
}

/* ll_matmul_rows for n_tok 1..9, 17, 33 (token groups of the multi-column width and their
 * remainders) equals the per-token dots of the same table bit for bit, writes only rows
 * [r0, r1) of the first n_tok outputs, and does so with the SIMD table (dot_multi) and with
 * the scalar one (the plain dot loop that LOCALLAMA_ISA=scalar runs). Types without a
 * dot_multi (BF16) take the fallback in both. */
static void test_matmul_rows_matches_dots(void) {
    static const uint32_t types[] = { LL_TYPE_Q4_K, LL_TYPE_Q6_K, LL_TYPE_Q8_0, LL_TYPE_Q4_0,
                                      LL_TYPE_F16, LL_TYPE_Q4_1, LL_TYPE_BF16 };
    static const int64_t n_ins[] = { 256, 512, 1280 };
    static const int toks[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 33 };
    enum { MAX_IN = 1280, N_OUT = 37, N_TOK = 33, Y_STRIDE = 40 };
    static uint8_t w[N_OUT * MAX_IN * 2], xq[N_TOK * MAX_IN * 2];
    static float x[N_TOK * MAX_IN], y[N_TOK * Y_STRIDE];
    const struct ll_kernels *tables[2] = { &k_ref, have_simd ? &k_simd : NULL };
    for (int ki = 0; ki < 2; ki++) {
        const struct ll_kernels *k = tables[ki];
        if (!k) continue;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ni = 0; ni < sizeof n_ins / sizeof n_ins[0]; ni++) {
            uint32_t wt = types[ti];
            int64_t n_in = n_ins[ni];
            const ll_type_traits *tt = ll_type_traits_of(wt);
            uint64_t rb = 0, xb = 0;
            ll_type_row_bytes(wt, n_in, &rb);
            ll_type_row_bytes(tt->dot_type, n_in, &xb);
            for (int r = 0; r < N_OUT; r++) random_weights(wfields_of(wt), w + r * rb, n_in, 0);
            for (int i = 0; i < N_TOK * n_in; i++) x[i] = rng_uniform(-1, 1);
            for (int t = 0; t < N_TOK; t++) k->quantize_act[tt->dot_type](x + t * n_in, xq + t * xb, n_in);
            for (size_t nt = 0; nt < sizeof toks / sizeof toks[0]; nt++) {
                int n_tok = toks[nt];
                for (int i = 0; i < N_TOK * Y_STRIDE; i++) y[i] = -999.0f;
                ll_matmul_rows(k, wt, w, n_in, 3, 30, xq, xb, n_tok, y, Y_STRIDE);
                int bad = 0;
                for (int t = 0; t < N_TOK; t++)
                    for (int r = 0; r < Y_STRIDE; r++) {
                        if (t < n_tok && r >= 3 && r < 30)
                            bad += !product_ok(k, wt, n_in, w + r * rb, w, r, xq + t * xb, false, y[t * Y_STRIDE + r]);
                        else bad += y[t * Y_STRIDE + r] != -999.0f;
                    }
                CHECK_MSG(bad == 0, "%s %s n_in=%lld n_tok=%d: %d outputs wrong", k->isa, tt->name,
                          (long long)n_in, n_tok, bad);
            }
        }
    }
}

/* ll_matmul_rows_mode for a few types of every table: LL_MM_EXACT gives the dot's bits at every
 * token count, LL_MM_FAST the product_ok contract at every count (1 and 3 included, where the
 * exact rule takes the dots) and the dot's bits for types without a gemm_fast. */
static void test_matmul_modes(void) {
    static const uint32_t types[] = { LL_TYPE_F16, LL_TYPE_Q8_0, LL_TYPE_Q4_K };
    static const int toks[] = { 1, 3, 8, 33 };
    enum { N_IN = 512, N_OUT = 37, N_TOK = 33, Y_STRIDE = 40 };
    static uint8_t w[N_OUT * N_IN * 2], xq[N_TOK * N_IN * 2];
    static float x[N_IN], y[N_TOK * Y_STRIDE];
    const struct ll_kernels *tables[2] = { &k_ref, have_simd ? &k_simd : NULL };
    for (int ki = 0; ki < 2; ki++) {
        const struct ll_kernels *k = tables[ki];
        if (!k) continue;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const uint32_t wt = types[ti];
            const ll_type_traits *tt = ll_type_traits_of(wt);
            uint64_t rb = 0, xb = 0;
            ll_type_row_bytes(wt, N_IN, &rb);
            ll_type_row_bytes(tt->dot_type, N_IN, &xb);
            for (int r = 0; r < N_OUT; r++) random_weights(wfields_of(wt), w + r * rb, N_IN, 0);
            for (int t = 0; t < N_TOK; t++) {
                for (int e = 0; e < N_IN; e++) x[e] = rng_uniform(-1, 1);
                k->quantize_act[tt->dot_type](x, xq + t * xb, N_IN);
            }
            for (int mode = LL_MM_EXACT; mode <= LL_MM_FAST; mode++)
                for (size_t nt = 0; nt < sizeof toks / sizeof toks[0]; nt++) {
                    const int n_tok = toks[nt];
                    for (int i = 0; i < N_TOK * Y_STRIDE; i++) y[i] = -999.0f;
                    ll_matmul_rows_mode(k, wt, w, N_IN, 3, 30, xq, xb, n_tok, y, Y_STRIDE, mode);
                    int bad = 0;
                    for (int t = 0; t < N_TOK; t++)
                        for (int r = 0; r < Y_STRIDE; r++) {
                            if (t < n_tok && r >= 3 && r < 30)
                                bad += !product_ok(k, wt, N_IN, w + r * rb, w, r, xq + t * xb,
                                                   mode == LL_MM_FAST, y[t * Y_STRIDE + r]);
                            else bad += y[t * Y_STRIDE + r] != -999.0f;
                        }
                    CHECK_MSG(bad == 0, "%s %s mode %d n_tok=%d: %d outputs wrong", k->isa, tt->name, mode, n_tok, bad);
                }
        }
    }
}

/* Every register-tiled product (gemm) against the single dot of its table, bit for bit: row
 * ranges that are not a multiple of the row tile (4 for the K-quants, 8 for Q4_0/Q8_0), token
 * counts 8..40 that are not a multiple of the token group, block counts that are not a
 * multiple of the legacy types' four chains, an odd activation stride, and besides random data
 * the extreme blocks (every quant byte 0x00, 0xFF or 0x80 - Q8_0's -128 -, activations all at
 * +-127) where the i16 partial sums come closest to overflowing. Outputs outside rows
 * [r0, r1) and tokens [0, n_tok) stay untouched. */
static void test_gemm_bit_identical(void) {
    if (!simd_or_skip()) return;
    static const uint32_t must[] = { LL_TYPE_Q4_K, LL_TYPE_Q6_K, LL_TYPE_F16, LL_TYPE_Q4_0, LL_TYPE_Q8_0 };
    for (size_t m = 0; m < sizeof must / sizeof must[0]; m++)
        CHECK_MSG(k_simd.gemm[must[m]] != NULL, "%s has no gemm", ll_type_traits_of(must[m])->name);
    enum { MAX_IN = 2048, N_ROWS = 23, MAX_TOK = 40, Y_STRIDE = 29 };
    static const int64_t n_ins[] = { 256, 768, 2048, 96, 224 };   /* 96, 224: 3 and 7 legacy blocks */
    static const int toks[] = { 8, 9, 15, 16, 25, 33, 40 };
    static uint8_t w[N_ROWS * MAX_IN * 2 + 64], xq[MAX_TOK * (MAX_IN * 2 + 64) + 64];
    static float x[MAX_IN], y[MAX_TOK * Y_STRIDE];
    int n_checked = 0;
    for (uint32_t wt = 0; wt < LL_TYPE_COUNT; wt++) {
        if (!k_simd.gemm[wt]) continue;
        const ll_type_traits *tt = ll_type_traits_of(wt);
        for (size_t ni = 0; ni < sizeof n_ins / sizeof n_ins[0]; ni++)
        for (int mode = 0; mode < 4; mode++) {           /* random, all 0xFF, 0x00, 0x80 */
            int64_t n_in = n_ins[ni];
            if (n_in % tt->blck != 0) continue;
            uint64_t rb = 0, xb = 0;
            ll_type_row_bytes(wt, n_in, &rb);
            ll_type_row_bytes(tt->dot_type, n_in, &xb);
            size_t stride = (size_t)xb + 7;
            uint8_t *wr = w + 3;
            for (int r = 0; r < N_ROWS; r++) {
                random_weights(wfields_of(wt), wr + r * rb, n_in, 0);
                if (mode == 0) continue;
                uint8_t keep[4];
                for (int64_t b = 0; b < n_in / tt->blck; b++) {     /* keep the f16 scales */
                    uint8_t *blk = wr + r * rb + b * tt->bytes;
                    const struct wfields *wf = wfields_of(wt);
                    for (int f = 0; f < wf->n; f++) memcpy(keep + 2 * f, blk + wf->off[f], 2);
                    memset(blk, mode == 1 ? 0xFF : mode == 2 ? 0x00 : 0x80, tt->bytes);
                    for (int f = 0; f < wf->n; f++) memcpy(blk + wf->off[f], keep + 2 * f, 2);
                }
            }
            for (int t = 0; t < MAX_TOK; t++) {
                for (int64_t e = 0; e < n_in; e++)
                    x[e] = mode == 0 ? rng_uniform(-1, 1) : (t % 2 ? -1.0f : 1.0f);
                k_simd.quantize_act[tt->dot_type](x, xq + 1 + t * stride, n_in);
            }
            for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++) {
                int n_tok = toks[ti];
                for (int i = 0; i < MAX_TOK * Y_STRIDE; i++) y[i] = -999.0f;
                /* 21 rows (5 tiles of 4 and 1; 2 of 8 and 5), then 16 (whole tiles of 8) */
                const int r0 = ti % 2 ? 2 : 7, r1 = N_ROWS;
                CHECK(k_simd.gemm[wt](n_in, wr, r0, r1, xq + 1, stride, n_tok, y, Y_STRIDE));
                int bad = 0;
                for (int t = 0; t < MAX_TOK; t++)
                    for (int r = 0; r < Y_STRIDE; r++) {
                        if (t < n_tok && r >= r0 && r < r1)
                            bad += !product_ok(&k_simd, wt, n_in, wr + r * rb, wr, r, xq + 1 + t * stride, false,
                                               y[t * Y_STRIDE + r]);
                        else bad += y[t * Y_STRIDE + r] != -999.0f;
                    }
                CHECK_MSG(bad == 0, "%s n_in=%lld mode %d n_tok=%d: %d outputs wrong", tt->name,
                          (long long)n_in, mode, n_tok, bad);
                n_checked++;
            }
        }
    }
    CHECK(n_checked > 0);
}

/* The softmax's exponentials of the SIMD table against expf: every value within 2 ulp over
 * [-87, 0] (below that, 0 where expf gives under 2^-125), -inf to exactly 0, e^0 exactly 1,
 * the in-place results summed as the reference sums them, for lengths with and without a
 * vector tail. */
static void test_exp_sum(void) {
    CHECK(k_ref.exp_sum != NULL);
    if (!simd_or_skip()) return;
    CHECK(k_simd.exp_sum != NULL);
    enum { N = 1003 };
    static float x[N], y[N], ref[N];
    for (int round = 0; round < 4; round++) {
        int n = round == 0 ? N : round == 1 ? 8 : round == 2 ? 7 : 64;
        for (int i = 0; i < n; i++) x[i] = round == 3 ? -100.0f + 100.0f * (float)i / 63 : rng_uniform(-95, 5);
        float max = -INFINITY;
        for (int i = 0; i < n; i++) if (x[i] > max) max = x[i];
        if (n > 2) x[1] = -INFINITY;
        memcpy(y, x, sizeof x);
        memcpy(ref, x, sizeof x);
        double s = k_simd.exp_sum(y, n, max), sr = ll_exp_sum_ref(ref, n, max);
        int bad = 0;
        for (int i = 0; i < n; i++) {
            float d = x[i] - max;
            bool ok;
            if (d == -INFINITY) ok = y[i] == 0.0f;
            else if (d < -87.0f) ok = (y[i] == 0.0f && ref[i] < 0x1p-125f) || y[i] == ref[i];   /* tail: expf */
            else ok = (d != 0.0f || y[i] == 1.0f) && fabsf(y[i] - ref[i]) <= 2 * (nextafterf(ref[i], INFINITY) - ref[i]);
            if (!ok && bad++ < 3) fprintf(stderr, "exp_sum: exp(%.9g) gave %.9g, expf %.9g\n", d, y[i], ref[i]);
        }
        CHECK_MSG(bad == 0, "exp_sum round %d: %d values off by more than 2 ulp", round, bad);
        CHECK_MSG(fabs(s - sr) <= 1e-6 * sr, "exp_sum round %d: sum %.9g vs %.9g", round, s, sr);
    }
}

/* The softmax's passes around exp_sum (att_scale_mask, att_weights) against their references,
 * bit for bit: lengths with and without a vector tail, keys hidden anywhere (positions out of
 * order, as after a shift), a hidden NaN and a visible one, no visible key at all, the
 * weights' zero tail starting inside a vector, with and without the F16 rounding. */
static void test_att_softmax_passes(void) {
    CHECK(k_ref.att_scale_mask != NULL && k_ref.att_weights != NULL);
    if (!simd_or_skip()) return;
    enum { N = 203 };
    static float x[N], y[N], r[N];
    static int32_t pos[N];
    static uint16_t hy[N], hr[N];
    static const int64_t ns[] = { 0, 1, 7, 8, 9, 64, 203 };
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const int64_t n = ns[ni];
        for (int round = 0; round < 4; round++) {
            for (int64_t i = 0; i < n; i++) {
                x[i] = rng_uniform(-30, 30);
                pos[i] = round == 0 ? (int32_t)i : (int32_t)(rng_u64() % (uint64_t)(n + 1));
            }
            const int32_t p = round == 3 ? -1 : (int32_t)(n / 2);
            if (n > 5) { x[3] = NAN; pos[3] = p + 1; x[5] = NAN; pos[5] = p; }   /* hidden, visible */
            memcpy(y, x, sizeof x);
            memcpy(r, x, sizeof x);
            int64_t hy_i = -7, hr_i = -9;
            const float my = k_simd.att_scale_mask(y, pos, n, p, 0.125f, &hy_i);
            const float mr = k_ref.att_scale_mask(r, pos, n, p, 0.125f, &hr_i);
            CHECK_MSG(hy_i == hr_i && (my == mr || (isnan(my) && isnan(mr))),
                      "scale_mask n %lld round %d: hi %lld vs %lld, max %g vs %g", (long long)n, round,
                      (long long)hy_i, (long long)hr_i, my, mr);
            CHECK_MSG(memcmp(y, r, (size_t)n * sizeof(float)) == 0, "scale_mask n %lld round %d: scores differ",
                      (long long)n, round);
            for (int mode = 0; mode < 3; mode++) {
                for (int64_t i = 0; i < n; i++) y[i] = r[i] = x[i] == x[i] ? x[i] : 1.0f;
                const int64_t hi = n - n / 3, len = n;
                memset(hy, 0, sizeof hy);
                memset(hr, 0, sizeof hr);
                k_simd.att_weights(y, hi, len, 0.37f, mode > 0, mode == 2 ? hy : NULL);
                k_ref.att_weights(r, hi, len, 0.37f, mode > 0, mode == 2 ? hr : NULL);
                CHECK_MSG(memcmp(y, r, (size_t)n * sizeof(float)) == 0 && memcmp(hy, hr, sizeof hy) == 0,
                          "att_weights n %lld mode %d: differ", (long long)n, mode);
            }
        }
    }
}

/* Every f32-column multi dot (dot_multi_xf32) against the single dot of its table with the
 * columns in the dot type, bit for bit: lengths with and without a vector tail, 1..11 columns
 * (more than one pass of LL_DOT_MULTI_MAX), an odd column stride. */
static void test_dot_multi_xf32_bit_identical(void) {
    if (!simd_or_skip()) return;
    CHECK_MSG(k_simd.dot_multi_xf32[LL_TYPE_F16] != NULL, "F16 has no dot_multi_xf32");
    enum { MAX_N = 131, MAX_C = 11, XS = MAX_N + 3 };
    static const int64_t ns[] = { 8, 64, 128, 131 };
    static uint8_t w[MAX_N * 2 + 8], a16[MAX_C][MAX_N * 2];
    static float x[MAX_C * XS], out[MAX_C];
    int n_checked = 0;
    for (uint32_t wt = 0; wt < LL_TYPE_COUNT; wt++) {
        if (!k_simd.dot_multi_xf32[wt]) continue;
        CHECK_MSG(wt == LL_TYPE_F16, "dot_multi_xf32 for a type this test cannot widen");
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int64_t n = ns[ni];
            random_weights(wfields_of(wt), w + 1, n, 0);
            for (int c = 0; c < MAX_C; c++) {
                float tmp[MAX_N];
                for (int64_t e = 0; e < n; e++) tmp[e] = rng_uniform(-2, 2);
                k_simd.quantize_act[LL_TYPE_F16](tmp, a16[c], n);
                ll_dequantize_row(LL_TYPE_F16, a16[c], x + c * XS, n);
            }
            for (int nc = 1; nc <= MAX_C; nc++) {
                k_simd.dot_multi_xf32[wt](n, w + 1, x, XS * sizeof(float), nc, out);
                int bad = 0;
                for (int c = 0; c < nc; c++)
                    if (!same_bits(out[c], k_simd.dot[wt](n, w + 1, a16[c]))) bad++;
                CHECK_MSG(bad == 0, "%s n=%lld nc=%d: %d columns differ", ll_type_traits_of(wt)->name,
                          (long long)n, nc, bad);
                n_checked++;
            }
        }
    }
    CHECK(n_checked > 0);
}

/* Every many-rows kernel (dot_rows_xf32: attention's keys against a block of queries, and the
 * rows of V^T against a block of weights) against the single dot of its table, bit for bit:
 * head sizes with and without a vector tail, rows long enough to be done in slices, 1..11
 * columns, 1..73 rows with a row stride wider than a row, an odd weight address, sums that are
 * exactly zero (a row of zeros: the dot returns +0). Outputs outside the rows stay untouched. */
static void test_dot_rows_xf32_bit_identical(void) {
    if (!simd_or_skip()) return;
    CHECK_MSG(k_simd.dot_rows_xf32[LL_TYPE_F16] != NULL, "F16 has no dot_rows_xf32");
    /* 520 and 1000: rows long enough to go in slices (V^T rows), with a partial last slice;
     * up to 73 rows: more than one block of rows between slices */
    enum { MAX_N = 1000, MAX_C = 11, MAX_R = 75, XS = MAX_N + 3, WS = MAX_N * 2 + 10, OS = MAX_R + 2 };
    static const int64_t ns[] = { 8, 64, 128, 131, 520, 1000 };
    static uint8_t w[MAX_R * WS + 8], a16[MAX_C][MAX_N * 2];
    static float x[MAX_C * XS], out[MAX_C * OS];
    int n_checked = 0;
    for (uint32_t wt = 0; wt < LL_TYPE_COUNT; wt++) {
        if (!k_simd.dot_rows_xf32[wt]) continue;
        CHECK_MSG(wt == LL_TYPE_F16, "dot_rows_xf32 for a type this test cannot widen");
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int64_t n = ns[ni];
            for (int r = 0; r < MAX_R; r++) {
                if (r == 5) memset(w + 1 + (size_t)r * WS, 0, (size_t)n * 2);     /* sums of +-0 */
                else random_weights(wfields_of(wt), w + 1 + (size_t)r * WS, n, 0);
            }
            for (int c = 0; c < MAX_C; c++) {
                float tmp[MAX_N];
                for (int64_t e = 0; e < n; e++) tmp[e] = rng_uniform(-2, 2);
                if (c == 2) for (int64_t e = 0; e < n; e++) tmp[e] = -0.0f;
                k_simd.quantize_act[LL_TYPE_F16](tmp, a16[c], n);
                ll_dequantize_row(LL_TYPE_F16, a16[c], x + c * XS, n);
            }
            for (int nc = 1; nc <= MAX_C; nc++)
                for (int nr = 1; nr <= MAX_R; nr += 6) {
                    for (int i = 0; i < MAX_C * OS; i++) out[i] = 12345.0f;
                    k_simd.dot_rows_xf32[wt](n, w + 1, WS, nr, x, XS * sizeof(float), nc, out, OS);
                    int bad = 0, touched = 0;
                    for (int c = 0; c < MAX_C; c++)
                        for (int r = 0; r < OS; r++) {
                            const float got = out[c * OS + r];
                            if (c < nc && r < nr) bad += !same_bits(got, k_simd.dot[wt](n, w + 1 + (size_t)r * WS, a16[c]));
                            else touched += got != 12345.0f;
                        }
                    CHECK_MSG(bad == 0 && touched == 0, "%s n=%lld nc=%d rows=%d: %d outputs differ, %d outside written",
                              ll_type_traits_of(wt)->name, (long long)n, nc, nr, bad, touched);
                    n_checked++;
                }
        }
    }
    CHECK(n_checked > 0);
}

/* Every generation kernel (gemv: rows against one token) against the single dot of its table,
 * bit for bit: row ranges that are not a multiple of its row group, lengths with a tail the
 * vector loop does not cover, an odd activation address, and for the block types besides
 * random data the extreme blocks (every quant byte 0xFF, 0x00 or 0x80 with the f16 scales kept,
 * activations all at +-127) where i16 partial sums come closest to overflowing. Rows outside
 * [r0, r1) stay untouched. */
static void test_gemv_bit_identical(void) {
    if (!simd_or_skip()) return;
    CHECK_MSG(k_simd.gemv[LL_TYPE_F16] != NULL, "F16 has no gemv");
    enum { MAX_IN = 2080, N_ROWS = 23 };
    /* 96 and 2080: 3 and 65 blocks of 32, a group of 4 blocks missing or left over */
    static const int64_t n_ins[] = { 8, 96, 256, 2048, 2051, 2080 };
    static uint8_t w[N_ROWS * MAX_IN * 4 + 64], xq[MAX_IN * 4 + 64];
    static float x[MAX_IN], y[N_ROWS];
    int n_checked = 0;
    for (uint32_t wt = 0; wt < LL_TYPE_COUNT; wt++) {
        if (!k_simd.gemv[wt]) continue;
        const ll_type_traits *tt = ll_type_traits_of(wt);
        for (size_t ni = 0; ni < sizeof n_ins / sizeof n_ins[0]; ni++)
        for (int mode = 0; mode < (tt->blck > 1 ? 4 : 1); mode++) {   /* random, all 0xFF, 0x00, 0x80 */
            int64_t n_in = n_ins[ni];
            if (n_in % tt->blck) continue;
            uint64_t rb = 0;
            ll_type_row_bytes(wt, n_in, &rb);
            uint8_t *wr = w + 3;
            const struct wfields *wf = wfields_of(wt);
            for (int r = 0; r < N_ROWS; r++) {
                random_weights(wf, wr + r * rb, n_in, 0);
                if (mode == 0) continue;
                uint8_t keep[4];
                for (int64_t b = 0; b < n_in / tt->blck; b++) {     /* keep the f16 scales */
                    uint8_t *blk = wr + r * rb + b * tt->bytes;
                    for (int f = 0; f < wf->n; f++) memcpy(keep + 2 * f, blk + wf->off[f], 2);
                    memset(blk, mode == 1 ? 0xFF : mode == 2 ? 0x00 : 0x80, tt->bytes);
                    for (int f = 0; f < wf->n; f++) memcpy(blk + wf->off[f], keep + 2 * f, 2);
                }
            }
            for (int64_t e = 0; e < n_in; e++) x[e] = mode == 0 ? rng_uniform(-1, 1) : (e % 3 ? 1.0f : -1.0f);
            k_simd.quantize_act[tt->dot_type](x, xq + 1, n_in);
            static const int ranges[][2] = { { 0, 23 }, { 2, 23 }, { 5, 8 }, { 7, 8 } };
            for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++) {
                int r0 = ranges[ri][0], r1 = ranges[ri][1];
                for (int r = 0; r < N_ROWS; r++) y[r] = -999.0f;
                CHECK(k_simd.gemv[wt](n_in, wr, r0, r1, xq + 1, y));
                int bad = 0;
                for (int r = 0; r < N_ROWS; r++) {
                    float want = r >= r0 && r < r1 ? k_simd.dot[wt](n_in, wr + r * rb, xq + 1) : -999.0f;
                    if (!same_bits(y[r], want)) bad++;
                }
                CHECK_MSG(bad == 0, "%s n_in=%lld mode %d rows [%d,%d): %d outputs wrong", tt->name,
                          (long long)n_in, mode, r0, r1, bad);
                n_checked++;
            }
        }
    }
    CHECK(n_checked > 0);
}

/* The K-quant dots of every SIMD table compute the same integer sums and scale them in the
 * same f32 expression: on random data an AVX-512 output equals the AVX2 output bit for bit,
 * single and multi-column. */
static void test_avx512_equals_avx2_bitwise(void) {
    struct ll_kernels k2;
    if (!ll_kernels_init_isa(&k2, "avx2") || (strcmp(k_simd.isa, "avx512") != 0 && strcmp(k_simd.isa, "amx") != 0)) {
        fprintf(stderr, "note %s: no AVX-512 on this CPU, skipped\n", test_cur_name);
        return;
    }
    for (int t = 0; t < N_WTYPES; t++) {
        uint32_t wt = wtypes[t].type;
        const ll_type_traits *tt = ll_type_traits_of(wt);
        if (tt->blck != QK_K) continue;
        for (int64_t n = QK_K; n <= 16 * QK_K; n += 5 * QK_K) {
            size_t stride = (size_t)ll_type_traits_of(tt->dot_type)->bytes * (size_t)(n / QK_K) + 5;
            random_weights(&wtypes[t], wbuf + 1, n, 0);
            for (int c = 0; c < 3; c++) {
                for (int64_t k = 0; k < n; k++) xbuf[k] = rng_uniform(-4.0f, 4.0f);
                k_simd.quantize_act[tt->dot_type](xbuf, abuf + 2 + c * stride, n);
            }
            float o2[3], o5[3];
            k2.dot_multi[wt](n, wbuf + 1, abuf + 2, stride, 3, o2);
            k_simd.dot_multi[wt](n, wbuf + 1, abuf + 2, stride, 3, o5);
            for (int c = 0; c < 3; c++) {
                float s2 = k2.dot[wt](n, wbuf + 1, abuf + 2 + c * stride);
                float s5 = k_simd.dot[wt](n, wbuf + 1, abuf + 2 + c * stride);
                CHECK_MSG(same_bits(s2, s5) && same_bits(o2[c], o5[c]) && same_bits(s5, o5[c]),
                          "%s n=%lld col %d: avx2 %.9g/%.9g avx512 %.9g/%.9g", tt->name, (long long)n, c,
                          s2, o2[c], s5, o5[c]);
            }
        }
    }
}

/* The Q6_K gemm's token-group calls (up to 4 groups of 8 tokens per call) against the single
 * dot, bit for bit: token counts that leave 1, 2 and 3 groups in the last call and partial
 * groups, rows in tiles with a ragged end, and the extreme blocks where a sub-block's i16 sum
 * of (q - 32) * a reaches its bound (every quant 0 against activations -127 gives
 * 8 * 32 * 127 = 32512 in a lane). The kernel's i16 bound needs |a| <= 127, so this also
 * checks that both Q8_K quantizers never emit -128, on inputs with ties at +-max. */
static void test_gemm_q6_k_token_groups(void) {
    if (!simd_or_skip()) return;
    CHECK_MSG(k_simd.gemm[LL_TYPE_Q6_K] != NULL, "Q6_K has no gemm");
    enum { MAX_IN = 1024, N_ROWS = 11, MAX_TOK = 75, Y_STRIDE = 13 };
    static const int64_t n_ins[] = { 256, 1024 };
    static const int toks[] = { 17, 20, 24, 31, 32, 41, 57, 64, 75 };
    static uint8_t w[N_ROWS * (MAX_IN / QK_K) * Q6_K_BYTES], xq[MAX_TOK * (MAX_IN / QK_K) * Q8_K_BYTES];
    static float x[MAX_IN], y[MAX_TOK * Y_STRIDE];
    const ll_type_traits *tt = ll_type_traits_of(LL_TYPE_Q6_K);
    int n_checked = 0;
    for (size_t ni = 0; ni < sizeof n_ins / sizeof n_ins[0]; ni++)
    for (int mode = 0; mode < 3; mode++) {               /* random, every quant 0, every quant 63 */
        int64_t n_in = n_ins[ni];
        uint64_t rb = 0, xb = 0;
        ll_type_row_bytes(LL_TYPE_Q6_K, n_in, &rb);
        ll_type_row_bytes(LL_TYPE_Q8_K, n_in, &xb);
        for (int r = 0; r < N_ROWS; r++) {
            random_weights(wfields_of(LL_TYPE_Q6_K), w + r * rb, n_in, 0);
            for (int64_t b = 0; mode > 0 && b < n_in / QK_K; b++) {
                uint8_t *blk = w + r * rb + b * tt->bytes;      /* quants only: scales and d stay */
                memset(blk + Q6_K_QL, mode == 1 ? 0x00 : 0xFF, 128);
                memset(blk + Q6_K_QH, mode == 1 ? 0x00 : 0xFF, 64);
            }
        }
        for (int t = 0; t < MAX_TOK; t++) {
            for (int64_t e = 0; e < n_in; e++)
                x[e] = mode == 0 ? rng_uniform(-1, 1) : (t % 3 ? -1.0f : 1.0f);
            k_simd.quantize_act[LL_TYPE_Q8_K](x, xq + t * xb, n_in);
        }
        for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++) {
            int n_tok = toks[ti];
            for (int i = 0; i < MAX_TOK * Y_STRIDE; i++) y[i] = -999.0f;
            const int r0 = 1, r1 = ti % 2 ? N_ROWS : N_ROWS - 3;
            CHECK(k_simd.gemm[LL_TYPE_Q6_K](n_in, w, r0, r1, xq, xb, n_tok, y, Y_STRIDE));
            int bad = 0;
            for (int t = 0; t < MAX_TOK; t++)
                for (int r = 0; r < Y_STRIDE; r++) {
                    float want = t < n_tok && r >= r0 && r < r1 ? k_simd.dot[LL_TYPE_Q6_K](n_in, w + r * rb, xq + t * xb)
                                                               : -999.0f;
                    if (!same_bits(y[t * Y_STRIDE + r], want)) bad++;
                }
            CHECK_MSG(bad == 0, "Q6_K n_in=%lld mode %d n_tok=%d: %d outputs wrong", (long long)n_in, mode, n_tok, bad);
            n_checked++;
        }
    }
    CHECK(n_checked > 0);

    /* No -128 from either quantizer: ties at +max and -max, and random data. */
    static uint8_t q8[2][Q8_K_BYTES];
    for (int trial = 0; trial < 200; trial++) {
        float v[QK_K];
        for (int e = 0; e < QK_K; e++) {
            float m = trial % 2 ? 3.0f : -3.0f;
            v[e] = trial % 4 < 2 ? (e % 2 ? m : -m) : rng_uniform(-3, 3);
        }
        k_ref.quantize_act[LL_TYPE_Q8_K](v, q8[0], QK_K);
        k_simd.quantize_act[LL_TYPE_Q8_K](v, q8[1], QK_K);
        int minus128 = 0;
        for (int k = 0; k < 2; k++)
            for (int e = 0; e < QK_K; e++) minus128 += q8[k][Q8_K_QS + e] == 0x80;
        CHECK_MSG(minus128 == 0, "trial %d: Q8_K quantizer emitted -128 %d times", trial, minus128);
    }
}

/* The F16 prompt products at sizes their cache blocking splits (src/kernels/x86/dot_float_avx2.c:
 * 48-row blocks, 128-token blocks, 512-element slices with the accumulators saved between
 * them; the amx table's gemm_fast, gemm_f16_amxbf16.c: 128-row blocks, 1024-element slices),
 * against the single dot bit for bit: rows spanning three row blocks with a partial
 * tile, lengths below one vector, with a tail, ending on and off a slice boundary, token
 * counts with a partial group and a second token block. Outputs outside rows [r0, r1) and
 * tokens [0, n_tok) stay untouched. */
static void test_gemm_f16_blocks_bit_identical(void) {
    if (!simd_or_skip()) return;
    enum { MAX_IN = 1600, N_ROWS = 300, MAX_TOK = 131, Y_STRIDE = N_ROWS + 3 };
    static const int64_t n_ins[] = { 5, 515, 1031, 1600 };
    static const int toks[] = { 8, 131 };
    static uint8_t w[N_ROWS * MAX_IN * 2 + 64], xq[MAX_TOK * (MAX_IN * 2 + 8) + 64];
    static float x[MAX_IN], y[MAX_TOK * Y_STRIDE];
    const uint32_t wt = LL_TYPE_F16;
    for (size_t ni = 0; ni < sizeof n_ins / sizeof n_ins[0]; ni++) {
        int64_t n_in = n_ins[ni];
        size_t rb = (size_t)n_in * 2, stride = rb + 6;
        uint8_t *wr = w + 1;
        for (int r = 0; r < N_ROWS; r++) random_weights(wfields_of(wt), wr + r * rb, n_in, 0);
        for (int t = 0; t < MAX_TOK; t++) {
            for (int64_t e = 0; e < n_in; e++) x[e] = rng_uniform(-3, 3);
            k_simd.quantize_act[wt](x, xq + 2 + t * stride, n_in);
        }
        for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++)
        for (int fast = 0; fast < 2; fast++) {
            /* 298 rows: blocks of 48 (FMA) or 128 (AMX-BF16) with a ragged end */
            const int n_tok = toks[ti], r0 = 1, r1 = N_ROWS - 1;
            const ll_gemm_fn gemm = fast ? k_simd.gemm_fast[wt] : k_simd.gemm[wt];
            if (!gemm) continue;
            for (int i = 0; i < MAX_TOK * Y_STRIDE; i++) y[i] = -999.0f;
            CHECK(gemm(n_in, wr, r0, r1, xq + 2, stride, n_tok, y, Y_STRIDE));
            int bad = 0;
            for (int t = 0; t < MAX_TOK; t++)
                for (int r = 0; r < Y_STRIDE; r++) {
                    if (t < n_tok && r >= r0 && r < r1)
                        bad += !product_ok(&k_simd, wt, n_in, wr + r * rb, wr, r, xq + 2 + t * stride, fast,
                                           y[t * Y_STRIDE + r]);
                    else bad += y[t * Y_STRIDE + r] != -999.0f;
                }
            CHECK_MSG(bad == 0, "F16%s n_in=%lld n_tok=%d: %d outputs wrong", fast ? " fast" : "", (long long)n_in,
                      n_tok, bad);
        }
    }
}

/* gemm_fast over more tokens than one of its token blocks (gemm_f16_amxbf16.c: 256) and a
 * ragged last block: every output equals, bit for bit, the product of its token alone. */
static void test_gemm_fast_token_blocks(void) {
    if (!simd_or_skip() || !k_simd.gemm_fast[LL_TYPE_F16]) return;
    enum { N_IN = 515, N_ROWS = 40, N_TOK = 300 };
    static uint8_t w[N_ROWS * N_IN * 2], xq[N_TOK * N_IN * 2];
    static float x[N_IN], y[N_TOK * N_ROWS], y1[N_ROWS];
    const size_t rb = N_IN * 2;
    for (int r = 0; r < N_ROWS; r++) random_weights(wfields_of(LL_TYPE_F16), w + r * rb, N_IN, 0);
    for (int t = 0; t < N_TOK; t++) {
        for (int e = 0; e < N_IN; e++) x[e] = rng_uniform(-2, 2);
        k_simd.quantize_act[LL_TYPE_F16](x, xq + t * rb, N_IN);
    }
    CHECK(k_simd.gemm_fast[LL_TYPE_F16](N_IN, w, 0, N_ROWS, xq, rb, N_TOK, y, N_ROWS));
    int bad = 0;
    for (int t = 0; t < N_TOK; t++) {
        CHECK(k_simd.gemm_fast[LL_TYPE_F16](N_IN, w, 0, N_ROWS, xq + t * rb, rb, 1, y1, 0));
        for (int r = 0; r < N_ROWS; r++) bad += !same_bits(y[t * N_ROWS + r], y1[r]);
    }
    CHECK_MSG(bad == 0, "%d outputs differ from their token alone", bad);
}

int main(void) {
    ll_kernels_init_isa(&k_ref, "scalar");
    RUN(test_dispatch_env_forces_scalar);      /* first: before this process fills its table */
    /* Every SIMD table this CPU can run goes through the same checks (LOCALLAMA_ISA picks one
     * for the whole program; here each is filled directly). */
    static const char *const isas[] = { "avx2", "avx512", "amx" };
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        have_simd = ll_kernels_init_isa(&k_simd, isas[i]);
        if (i > 0 && !have_simd) {
            fprintf(stderr, "note: no %s on this CPU; its kernels were not run\n", isas[i]);
            continue;
        }
        fprintf(stderr, "== kernels: %s table\n", have_simd ? isas[i] : "no SIMD");
        RUN(test_dispatch_table_complete);
        RUN(test_dot_simd_vs_ref_random);
        RUN(test_dot_simd_integer_sums_exact);
        RUN(test_quantize_act_bit_identical);
        RUN(test_dot_multi_bit_identical);
        RUN(test_matmul_rows_matches_dots);
        RUN(test_matmul_modes);
        RUN(test_gemm_fast_token_blocks);
        RUN(test_gemm_bit_identical);
        RUN(test_gemv_bit_identical);
        RUN(test_exp_sum);
        RUN(test_att_softmax_passes);
        RUN(test_dot_multi_xf32_bit_identical);
        RUN(test_dot_rows_xf32_bit_identical);
        RUN(test_gemm_q6_k_token_groups);
        RUN(test_gemm_f16_blocks_bit_identical);
    }
    RUN(test_avx512_equals_avx2_bitwise);
    return test_summary();
}
