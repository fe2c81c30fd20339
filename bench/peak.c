/* peak: the arithmetic ceiling of this CPU for the kernels' own instructions (`make bench`).
 *
 *     build/bench/peak [SECONDS]      (default 1 s per measurement)
 *
 * Prompt processing is compute bound, so its physical limit is what the instructions the
 * kernels use can retire per second on all cores. Three loops, each with twelve independent
 * register chains so that latency never limits them, run on 1 and then 2 threads:
 *   fma32    AVX2 vfmadd231ps: F32 multiply-adds per second (F16/F32 GEMMs; 1 MAC = 2 FLOP);
 *   i8dot    vpmaddubsw + vpmaddwd + vpaddd, llama.cpp's AVX2 int8 dot without VNNI:
 *            u8 x s8 multiply-adds per second (quantized GEMMs: Q4_0, Q8_0, K-quants);
 *   i8dot16  vpmaddubsw + vpaddw (16-bit sums, the K-quant GEMMs' inner step).
 * The best of three runs is printed. Machines without AVX2 print a note and exit 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12
#define INNER 1000
/* The twelve chains spelled out, so that they live in registers (a loop over an array of
 * vectors is kept in memory by the compiler and then measures store forwarding instead). */
#define EACH12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

typedef struct {
    int kind;        /* 0 fma32, 1 i8dot, 2 i8dot16 */
    double seconds;  /* how long to run */
    double ops;      /* multiply-adds done */
    float sink;      /* keeps the results alive */
} job;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

__attribute__((target("avx2,fma"))) static void run_fma(job *j) {
#define DECL(c) __m256 acc##c = _mm256_set1_ps((float)(c) * 1e-3f);
#define STEP(c) acc##c = _mm256_fmadd_ps(acc##c, a, b);
#define SUM(c) s = _mm256_add_ps(s, acc##c);
    EACH12(DECL)
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    double t0 = now(), iters = 0;
    do {
        for (int i = 0; i < INNER; i++) {
            EACH12(STEP)
        }
        iters += INNER;
    } while (now() - t0 < j->seconds);
    j->seconds = now() - t0;
    j->ops = iters * CHAINS * 8;
    __m256 s = _mm256_setzero_ps();
    EACH12(SUM)
    j->sink = _mm256_cvtss_f32(s);
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx2"))) static void run_i8(job *j, int widen) {
/* The activations differ per chain (as the tokens of a GEMM tile do) and the weights are
 * shared, so each step is one product and one accumulation, as in the kernels. */
#define DECL(c) __m256i acc##c = _mm256_setzero_si256(); \
    const __m256i x##c = _mm256_set1_epi8((char)(c - 6));
#define STEP32(c) acc##c = _mm256_add_epi32(acc##c, \
    _mm256_madd_epi16(_mm256_maddubs_epi16(w, x##c), ones));
#define STEP16(c) acc##c = _mm256_add_epi16(acc##c, _mm256_maddubs_epi16(w, x##c));
#define SUM(c) s = _mm256_add_epi32(s, acc##c);
    EACH12(DECL)
    __m256i w = _mm256_set1_epi8(3);
    const __m256i ones = _mm256_set1_epi16(1);
    double t0 = now(), iters = 0;
    do {
        if (widen) {
            for (int i = 0; i < INNER; i++) {
                EACH12(STEP32)
                __asm__ volatile("" : "+x"(w)); /* a fresh weight each round, as in a GEMM */
            }
        } else {
            for (int i = 0; i < INNER; i++) {
                EACH12(STEP16)
                __asm__ volatile("" : "+x"(w));
            }
        }
        iters += INNER;
    } while (now() - t0 < j->seconds);
    j->seconds = now() - t0;
    j->ops = iters * CHAINS * 32;
    __m256i s = _mm256_setzero_si256();
    EACH12(SUM)
    j->sink = (float)_mm256_extract_epi32(s, 0);
#undef DECL
#undef STEP32
#undef STEP16
#undef SUM
}

static void *run(void *arg) {
    job *j = arg;
    if (j->kind == 0)
        run_fma(j);
    else
        run_i8(j, j->kind == 1);
    return NULL;
}

/* Multiply-adds per second over `threads` threads, best of three runs. */
static double measure(int kind, int threads, double seconds) {
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        job jobs[2];
        pthread_t th[2];
        for (int t = 0; t < threads; t++) {
            jobs[t] = (job){.kind = kind, .seconds = seconds};
            if (pthread_create(&th[t], NULL, run, &jobs[t]) != 0) {
                fprintf(stderr, "peak: cannot start a thread\n");
                exit(1);
            }
        }
        double rate = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            rate += jobs[t].ops / jobs[t].seconds;
        }
        if (rate > best) best = rate;
    }
    return best;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    if (!(seconds > 0) || seconds > 60) {
        fprintf(stderr, "usage: peak [SECONDS]   (0 < SECONDS <= 60)\n");
        return 2;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        printf("peak: this CPU has no AVX2+FMA; nothing measured\n");
        return 0;
    }
    static const char *names[3] = {"fma32 (F32 MAC/s)", "i8dot (u8*s8 MAC/s, 32-bit sums)",
                                   "i8dot16 (u8*s8 MAC/s, 16-bit sums)"};
    for (int kind = 0; kind < 3; kind++)
        for (int threads = 1; threads <= 2; threads++)
            printf("%-36s %d thread%s  %8.1f G\n", names[kind], threads, threads > 1 ? "s" : " ",
                   measure(kind, threads, seconds) * 1e-9);
    return 0;
}
