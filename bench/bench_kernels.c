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
 * of exactly that product, a steadier figure than time on a busy machine.
 *
 *     build/bench/bench_kernels gemm TYPE ROWS N_IN N_TOK THREADS [REPS]
 *
 * times one prompt-sized product split across threads as the forward pass splits it (see
 * bench_gemm_shape at the end of this file). */
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

static int bench_gemm_shape(int argc, char **argv);

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "gemm") == 0) return bench_gemm_shape(argc, argv);
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

/* ---- a prompt's product at model shape, threaded as the forward pass splits it ----------------
 *
 *     build/bench/bench_kernels gemm TYPE ROWS N_IN N_TOK THREADS [REPS]
 *
 * ROWS x N_IN weights of TYPE against N_TOK tokens; THREADS threads each take a contiguous
 * share of the rows (model/forward.c's split) and call ll_matmul_rows once. Prints the wall
 * time of each repetition's slowest thread, its median and best, and G multiply-adds per
 * second. Wall time: on a shared machine run it A B A B and compare medians. */
#include <pthread.h>

struct gemm_bench_arg {
    const struct ll_kernels *k;
    uint32_t type;
    const uint8_t *w, *xq;
    int64_t rows, n_in, n_tok, r0, r1;
    size_t xq_stride;
    float *y;
    double cpu_s;            /* out: this thread's CPU time */
};

static void *gemm_bench_thread(void *p) {
    struct gemm_bench_arg *a = p;
    uint64_t t0 = thread_ns();
    ll_matmul_rows(a->k, a->type, a->w, a->n_in, a->r0, a->r1, a->xq, a->xq_stride, a->n_tok, a->y, a->rows);
    a->cpu_s = (double)(thread_ns() - t0) * 1e-9;
    return NULL;
}

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bench_gemm_shape(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: bench_kernels gemm TYPE ROWS N_IN N_TOK THREADS [REPS]\n");
        return 2;
    }
    const ll_type_traits *t = NULL;
    uint32_t type = 0;
    for (uint32_t i = 0; i < LL_TYPE_COUNT; i++) {
        const ll_type_traits *c = ll_type_traits_of(i);
        if (c && c->name && strcmp(c->name, argv[2]) == 0) { t = c; type = i; break; }
    }
    int64_t rows = atoll(argv[3]), n_in = atoll(argv[4]), n_tok = atoll(argv[5]);
    int nth = atoi(argv[6]), reps = argc > 7 ? atoi(argv[7]) : 5;
    if (!t || rows <= 0 || n_in <= 0 || n_in % 256 || n_tok <= 0 || nth < 1 || nth > 64 || reps < 1 || reps > 1000) {
        fprintf(stderr, "bench_kernels gemm: bad type or shape (n_in a multiple of 256, 1..64 threads)\n");
        return 2;
    }
    const struct ll_kernels *k = ll_kernels_get();
    uint64_t row_bytes = 0, xq_stride = 0;
    ll_type_row_bytes(type, n_in, &row_bytes);
    ll_type_row_bytes(t->dot_type, n_in, &xq_stride);
    uint8_t *w = malloc((size_t)(row_bytes * (uint64_t)rows));
    uint8_t *xq = malloc((size_t)(xq_stride * (uint64_t)n_tok));
    float *x = malloc((size_t)n_in * sizeof(float)), *y = malloc((size_t)(rows * n_tok) * sizeof(float));
    double *times = malloc((size_t)reps * sizeof(double)), *cpu = malloc((size_t)reps * sizeof(double));
    if (!w || !xq || !x || !y || !times || !cpu) { fprintf(stderr, "bench_kernels gemm: out of memory\n"); return 1; }
    fill_weights(type, w, rows, n_in);
    for (int64_t tk = 0; tk < n_tok; tk++) {
        for (int64_t i = 0; i < n_in; i++) x[i] = (float)((int64_t)(next_u64() % 2001) - 1000) * 1e-3f;
        k->quantize_act[t->dot_type](x, xq + (size_t)tk * xq_stride, n_in);
    }
    struct gemm_bench_arg args[64];
    pthread_t th[64];
    for (int i = 0; i < nth; i++)
        args[i] = (struct gemm_bench_arg){ k, type, w, xq, rows, n_in, n_tok, rows * i / nth, rows * (i + 1) / nth,
                                           (size_t)xq_stride, y, 0 };
    printf("gemm %s %lld rows x %lld inputs x %lld tokens, %d threads (%s):", t->name, (long long)rows,
           (long long)n_in, (long long)n_tok, nth, k->isa);
    for (int r = 0; r < reps; r++) {
        double t0 = wall_s();
        for (int i = 1; i < nth; i++) pthread_create(&th[i], NULL, gemm_bench_thread, &args[i]);
        gemm_bench_thread(&args[0]);
        for (int i = 1; i < nth; i++) pthread_join(th[i], NULL);
        times[r] = wall_s() - t0;
        cpu[r] = 0;
        for (int i = 0; i < nth; i++) if (args[i].cpu_s > cpu[r]) cpu[r] = args[i].cpu_s;
        printf(" %.1f/%.1f", times[r] * 1e3, cpu[r] * 1e3);
    }
    qsort(times, (size_t)reps, sizeof *times, cmp_double);
    qsort(cpu, (size_t)reps, sizeof *cpu, cmp_double);
    double macs = (double)rows * (double)n_in * (double)n_tok;
    float sum = 0;
    for (int64_t i = 0; i < rows * n_tok; i++) sum += y[i];
    printf(" ms (wall/slowest thread's CPU)\n  CPU: median %.1f ms (%.1f ns per row x token per thread), best %.1f ms\n",
           cpu[reps / 2] * 1e3, cpu[reps / 2] * 1e9 * nth / ((double)rows * (double)n_tok), cpu[0] * 1e3);
    printf("  wall: median %.1f ms (%.2f GMAC/s, %.1f ns per row x token per thread), best %.1f ms (%.2f GMAC/s); checksum %.6g\n",
           times[reps / 2] * 1e3, macs / times[reps / 2] * 1e-9,
           times[reps / 2] * 1e9 * nth / ((double)rows * (double)n_tok), times[0] * 1e3, macs / times[0] * 1e-9, sum);
    free(w); free(xq); free(x); free(y); free(times); free(cpu);
    return 0;
}
