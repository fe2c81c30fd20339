/* membw: read bandwidth of main memory, STREAM-style, for 1 and 2 threads (`make bench`).
 *
 *     build/bench/membw [MIB] [REPS]      (defaults: 512 MiB, 10 repetitions)
 *
 * Token generation reads every weight once per token, so on a CPU it is bound by this number:
 * tg tokens/s can never beat bandwidth / model bytes. Each thread sums its own contiguous
 * slice of one buffer much larger than the caches (four independent accumulators, so the
 * loop is not latency bound and the compiler vectorizes it at -O2); the best of REPS runs is
 * reported, as STREAM does, because a slower run only measures interference from elsewhere.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const uint64_t *p;   /* this thread's slice */
    size_t n;            /* words in it */
    uint64_t sum;        /* result, so the reads cannot be optimised away */
} slice;

static void *read_slice(void *arg) {
    slice *s = arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= s->n; i += 4) {
        a += s->p[i];
        b += s->p[i + 1];
        c += s->p[i + 2];
        d += s->p[i + 3];
    }
    for (; i < s->n; i++) a += s->p[i];
    s->sum = a + b + c + d;
    return NULL;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Seconds for n_threads to read the whole buffer once. */
static double read_once(const uint64_t *buf, size_t n_words, int n_threads, uint64_t *sink) {
    pthread_t th[64];
    slice sl[64];
    size_t per = n_words / (size_t)n_threads;
    for (int t = 0; t < n_threads; t++) {
        sl[t].p = buf + (size_t)t * per;
        sl[t].n = t == n_threads - 1 ? n_words - (size_t)t * per : per;
    }
    double t0 = now_s();
    for (int t = 1; t < n_threads; t++) pthread_create(&th[t], NULL, read_slice, &sl[t]);
    read_slice(&sl[0]);
    for (int t = 1; t < n_threads; t++) pthread_join(th[t], NULL);
    double t1 = now_s();
    for (int t = 0; t < n_threads; t++) *sink += sl[t].sum;
    return t1 - t0;
}

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 512;
    int reps = argc > 2 ? atoi(argv[2]) : 10;
    if (mib < 16 || mib > 65536 || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: membw [MIB 16..65536] [REPS 1..1000]\n");
        return 2;
    }
    size_t bytes = (size_t)mib << 20, n_words = bytes / sizeof(uint64_t);
    uint64_t *buf = aligned_alloc(64, bytes);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < n_words; i++) buf[i] = i;   /* touch every page before timing */

    uint64_t sink = 0;
    printf("read bandwidth, %ld MiB buffer, best of %d\n", mib, reps);
    for (int n_threads = 1; n_threads <= 2; n_threads++) {
        double best = 1e30;
        read_once(buf, n_words, n_threads, &sink);   /* warm-up */
        for (int r = 0; r < reps; r++) {
            double s = read_once(buf, n_words, n_threads, &sink);
            if (s < best) best = s;
        }
        printf("threads %d: %.2f GB/s\n", n_threads, bytes / best / 1e9);
    }
    free(buf);
    return sink == 42 ? 3 : 0;   /* practically never; keeps the sums alive */
}
