/* bench_kernels: one matrix-vector product per weight type, 2048 rows x 8192 inputs, with the
 * scalar reference kernels and with the dispatched ones (LOCALLAMA_ISA=avx2 or avx512 picks). Prints weight bandwidth (GB/s) and time
 * per row; the best of a few repetitions counts, timed in this thread's CPU time. A
 * micro-benchmark, not a test.
 *
 * A second table times the batched product (ll_matmul_rows with n_tok = 1, 2, 4, 8, the
 * shapes of batched generation, and 64 for a prompt) with the dispatched kernels, in ns per
 * (row x token): when a weight row is decoded once for all tokens this falls as n_tok grows.
 *
 *     build/bench/bench_kernels [rows] [n_in] [batch [TYPE [N_TOK]]]
 *
 * Defaults 2048 8192. "batch" prints only the second table, optionally for one type and one
 * n_tok: `valgrind --tool=callgrind --toggle-collect=ll_matmul_rows` then counts instructions
 * of exactly that product, a steadier figure than time on a busy machine. */
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t next_u64(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

/* Random bytes with every f16 scale field (and F16/BF16 element) replaced by a small finite
 * value, so no kernel meets inf or NaN. Offsets per type as in gguf-and-quants.md B.3/B.4. */
static void fill_weights(uint32_t type, uint8_t *w, int64_t rows, int64_t n_in) {
    const ll_type_traits *t = ll_type_traits_of(type);
    uint64_t row_bytes = 0;
    ll_type_row_bytes(type, n_in, &row_bytes);
    size_t total = (size_t)(row_bytes * (uint64_t)rows);
    for (size_t i = 0; i < total; i++) w[i] = (uint8_t)next_u64();
    static const struct { uint32_t type; int off[2]; } f16_fields[] = {
        { LL_TYPE_Q4_0, { 0, -1 } }, { LL_TYPE_Q4_1, { 0, 2 } }, { LL_TYPE_Q5_0, { 0, -1 } },
        { LL_TYPE_Q5_1, { 0, 2 } }, { LL_TYPE_Q8_0, { 0, -1 } }, { LL_TYPE_Q2_K, { 80, 82 } },
        { LL_TYPE_Q3_K, { 108, -1 } }, { LL_TYPE_Q4_K, { 0, 2 } }, { LL_TYPE_Q5_K, { 0, 2 } },
        { LL_TYPE_Q6_K, { 208, -1 } },
    };
    if (type == LL_TYPE_F32) {
        for (size_t i = 0; i < total / 4; i++) { float v = (float)(next_u64() % 1000) * 1e-3f; memcpy(w + 4 * i, &v, 4); }
        return;
    }
    if (type == LL_TYPE_F16 || type == LL_TYPE_BF16) {
        for (size_t i = 0; i < total / 2; i++) {
            float v = (float)(next_u64() % 1000) * 1e-3f;
            uint16_t h = type == LL_TYPE_F16 ? ll_fp32_to_fp16(v) : ll_fp32_to_bf16(v);
            memcpy(w + 2 * i, &h, 2);
        }
        return;
    }
    for (size_t f = 0; f < sizeof f16_fields / sizeof f16_fields[0]; f++) {
        if (f16_fields[f].type != type) continue;
        for (size_t b = 0; b < total / t->bytes; b++)
            for (int k = 0; k < 2; k++) {
                if (f16_fields[f].off[k] < 0) continue;
                uint16_t h = ll_fp32_to_fp16(0.01f);
                memcpy(w + b * t->bytes + (size_t)f16_fields[f].off[k], &h, 2);
            }
    }
}

/* CPU time of this thread: the product is single-threaded, and on a machine shared with
 * compilers the time we sit descheduled would otherwise count as kernel time. */
static uint64_t thread_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double bench_one(const struct ll_kernels *k, uint32_t type, const uint8_t *w, int64_t rows,
                        int64_t n_in, const void *xq, size_t xq_stride, int64_t n_tok, float *y,
                        float *checksum) {
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        uint64_t t0 = thread_ns();
        ll_matmul_rows(k, type, w, n_in, 0, rows, xq, xq_stride, n_tok, y, rows);
        double dt = (double)(thread_ns() - t0) * 1e-9;
        if (dt < best) best = dt;
        if (best > 0.5) break;                           /* slow reference: enough */
    }
    float s = 0;
    for (int64_t r = 0; r < rows * n_tok; r++) s += y[r];
    *checksum = s;
    return best;
}

/* The batched table: n_tok different activation rows against the same weights; 64 stands
 * for a prompt (several token groups per row tile). */
enum { BATCH_MAX = 64, N_BATCH = 5 };
static void bench_batched(const struct ll_kernels *k, int64_t rows, int64_t n_in, const char *only_type,
                          int64_t only_tok) {
    static const uint32_t types[] = { LL_TYPE_Q4_K, LL_TYPE_Q6_K, LL_TYPE_Q8_0, LL_TYPE_Q4_0, LL_TYPE_F16 };
    static const int64_t toks[N_BATCH] = { 1, 2, 4, 8, 64 };
    float *x = malloc((size_t)n_in * BATCH_MAX * sizeof(float));
    float *y = malloc((size_t)rows * BATCH_MAX * sizeof(float));
    uint8_t *xq = malloc((size_t)n_in * 4 * BATCH_MAX);
    if (!x || !y || !xq) goto done;
    for (int64_t i = 0; i < n_in * BATCH_MAX; i++) x[i] = (float)((int64_t)(next_u64() % 2001) - 1000) * 1e-3f;
    printf("\nbatched matmul %lld x %lld, single thread, %s kernels: ns per (row x token)\n",
           (long long)rows, (long long)n_in, k->isa);
    printf("%-5s %9s %9s %9s %9s %9s   %s\n", "type", "n_tok=1", "2", "4", "8", "64", "(8 vs 1)");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t type = types[ti];
        const ll_type_traits *t = ll_type_traits_of(type);
        if (only_type && strcmp(only_type, t->name) != 0) continue;
        uint64_t row_bytes = 0, xq_stride = 0;
        ll_type_row_bytes(type, n_in, &row_bytes);
        ll_type_row_bytes(t->dot_type, n_in, &xq_stride);
        uint8_t *w = malloc((size_t)(row_bytes * (uint64_t)rows));
        if (!w) break;
        fill_weights(type, w, rows, n_in);
        for (int b = 0; b < BATCH_MAX; b++) k->quantize_act[t->dot_type](x + b * n_in, xq + b * xq_stride, n_in);
        double ns[N_BATCH];
        printf("%-5s", t->name);
        for (int i = 0; i < N_BATCH; i++) {
            float c;
            ns[i] = 0;
            if (only_tok && toks[i] != only_tok) { printf(" %9s", "-"); continue; }
            ns[i] = bench_one(k, type, w, rows, n_in, xq, (size_t)xq_stride, toks[i], y, &c) /
                    (double)(rows * toks[i]) * 1e9;
            printf(" %9.1f", ns[i]);
        }
        printf("   %.2fx\n", ns[3] > 0 ? ns[0] / ns[3] : 0.0);
        free(w);
    }
done:
    free(x); free(y); free(xq);
}

int main(int argc, char **argv) {
    int64_t rows = argc > 1 ? atoll(argv[1]) : 2048, n_in = argc > 2 ? atoll(argv[2]) : 8192;
    bool batch_only = argc > 3 && strcmp(argv[3], "batch") == 0;
    if (rows <= 0 || n_in <= 0 || n_in % 256) { fprintf(stderr, "n_in must be a multiple of 256\n"); return 2; }
    struct ll_kernels k_ref, k_simd = *ll_kernels_get();    /* the dispatched table (LOCALLAMA_ISA) */
    ll_kernels_init_isa(&k_ref, "scalar");
    bool have_simd = strcmp(k_simd.isa, "scalar") != 0;
    if (batch_only) {
        bench_batched(have_simd ? &k_simd : &k_ref, rows, n_in, argc > 4 ? argv[4] : NULL,
                      argc > 5 ? atoll(argv[5]) : 0);
        return 0;
    }
    static const uint32_t types[] = { LL_TYPE_Q8_0, LL_TYPE_Q4_1, LL_TYPE_Q4_K, LL_TYPE_Q6_K, LL_TYPE_F16,
                                      LL_TYPE_Q4_0, LL_TYPE_Q5_0, LL_TYPE_Q5_1, LL_TYPE_Q5_K, LL_TYPE_Q2_K,
                                      LL_TYPE_Q3_K, LL_TYPE_BF16, LL_TYPE_F32 };
    float *x = malloc((size_t)n_in * sizeof(float)), *y = malloc((size_t)rows * sizeof(float));
    uint8_t *xq = malloc((size_t)n_in * 4);
    if (!x || !y || !xq) return 1;
    for (int64_t i = 0; i < n_in; i++) x[i] = (float)((int64_t)(next_u64() % 2001) - 1000) * 1e-3f;
    printf("matrix %lld x %lld, one token, single thread; kernels: scalar vs %s\n",
           (long long)rows, (long long)n_in, have_simd ? k_simd.isa : "(none)");
    printf("%-5s %10s %9s %9s %9s %9s %8s\n", "type", "MB", "ref GB/s", "ref ns/r", "simd GB/s", "simd ns/r", "speedup");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t type = types[ti];
        const ll_type_traits *t = ll_type_traits_of(type);
        uint64_t row_bytes = 0;
        ll_type_row_bytes(type, n_in, &row_bytes);
        double mb = (double)row_bytes * (double)rows;
        uint8_t *w = malloc((size_t)(row_bytes * (uint64_t)rows));
        if (!w) return 1;
        fill_weights(type, w, rows, n_in);
        k_ref.quantize_act[t->dot_type](x, xq, n_in);
        float c_ref, c_simd = 0;
        double t_ref = bench_one(&k_ref, type, w, rows, n_in, xq, 0, 1, y, &c_ref), t_simd = 0;
        if (have_simd) t_simd = bench_one(&k_simd, type, w, rows, n_in, xq, 0, 1, y, &c_simd);
        printf("%-5s %10.1f %9.2f %9.0f %9.2f %9.0f %7.1fx   (checksums %.6g %.6g)\n", t->name, mb / 1e6,
               mb / t_ref / 1e9, t_ref / (double)rows * 1e9,
               have_simd ? mb / t_simd / 1e9 : 0.0, have_simd ? t_simd / (double)rows * 1e9 : 0.0,
               have_simd ? t_ref / t_simd : 0.0, c_ref, c_simd);
        free(w);
    }
    free(x); free(y); free(xq);
    bench_batched(have_simd ? &k_simd : &k_ref, rows, n_in, NULL, 0);
    return 0;
}
