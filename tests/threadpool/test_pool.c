/* threadpool tests: every thread runs its share once per job, with its own index; many
 * back-to-back jobs see the previous job's writes; a one-thread pool runs on the caller;
 * several threads sharing one pool take turns, each job whole. */
#include "threadpool/pool.h"
#include "../test.h"

#include <pthread.h>
#include <stdatomic.h>

struct job {
    atomic_int calls[16];     /* calls per thread index */
    int        nth_seen[16];
    pthread_t  who[16];
    long       sum[16];       /* per-thread partial sums of the current job */
    const long *data;
    long       n;
};

static void job_count(void *arg, int ith, int nth) {
    struct job *j = arg;
    atomic_fetch_add(&j->calls[ith], 1);
    j->nth_seen[ith] = nth;
    j->who[ith] = pthread_self();
}

static void test_every_thread_runs_once(void) {
    for (int n = 1; n <= 4; n++) {
        ll_error err = {0};
        ll_pool *p;
        CHECK(ll_pool_init(&p, n, &err) == LL_OK);
        CHECK_EQ_INT(ll_pool_n_threads(p), n);
        struct job j;
        memset(&j, 0, sizeof j);
        ll_pool_run(p, job_count, &j);
        for (int i = 0; i < n; i++) {
            CHECK_EQ_INT(atomic_load(&j.calls[i]), 1);
            CHECK_EQ_INT(j.nth_seen[i], n);
        }
        for (int i = n; i < 16; i++) CHECK_EQ_INT(atomic_load(&j.calls[i]), 0);
        /* The caller is thread 0; the others are distinct threads. */
        CHECK(pthread_equal(j.who[0], pthread_self()));
        for (int a = 1; a < n; a++) {
            CHECK(!pthread_equal(j.who[a], pthread_self()));
            for (int b = a + 1; b < n; b++) CHECK(!pthread_equal(j.who[a], j.who[b]));
        }
        ll_pool_free(p);
    }
}

/* Each thread sums its slice of data; the caller adds the partial sums after ll_pool_run.
 * Run many times with changing data: a lost wake-up hangs, a missing barrier gives a wrong sum. */
static void job_sum(void *arg, int ith, int nth) {
    struct job *j = arg;
    long r0 = j->n * ith / nth, r1 = j->n * (ith + 1) / nth, s = 0;
    for (long i = r0; i < r1; i++) s += j->data[i];
    j->sum[ith] = s;
}

static void test_back_to_back_runs(void) {
    enum { N = 1000, RUNS = 4000 };
    static long data[N];
    ll_error err = {0};
    ll_pool *p;
    CHECK(ll_pool_init(&p, 3, &err) == LL_OK);
    struct job j;
    memset(&j, 0, sizeof j);
    j.data = data;
    j.n = N;
    int bad = 0;
    for (int r = 0; r < RUNS; r++) {
        long want = 0;
        for (int i = 0; i < N; i++) { data[i] = (long)i * (r + 1) % 9973; want += data[i]; }
        ll_pool_run(p, job_sum, &j);
        long got = j.sum[0] + j.sum[1] + j.sum[2];
        if (got != want) bad++;
        /* Every few hundred runs, pause long enough for the workers to fall asleep. */
        if (r % 500 == 499) { struct timespec ts = { 0, 2000000 }; nanosleep(&ts, NULL); }
    }
    CHECK_EQ_INT(bad, 0);
    ll_pool_free(p);
}

static void test_one_thread_runs_on_caller(void) {
    ll_error err = {0};
    ll_pool *p;
    CHECK(ll_pool_init(&p, 1, &err) == LL_OK);
    struct job j;
    memset(&j, 0, sizeof j);
    for (int r = 0; r < 100; r++) ll_pool_run(p, job_count, &j);
    CHECK_EQ_INT(atomic_load(&j.calls[0]), 100);
    CHECK(pthread_equal(j.who[0], pthread_self()));
    ll_pool_free(p);
}

static void test_bad_thread_count_refused(void) {
    ll_error err = {0};
    ll_pool *p = (ll_pool *)&err;
    CHECK(ll_pool_init(&p, 0, &err) == LL_ERR_ARG);
    CHECK(p == NULL);
    CHECK(ll_cpu_count() >= 1);
    ll_pool_free(NULL);
}

/* Two caller threads share one 3-thread pool (as two contexts on one server do): each runs
 * thousands of summing jobs on its own data; every job must see all its shares done, with
 * nothing of the other caller's job mixed in. TSan checks the hand-over (make tsan). */
struct caller {
    ll_pool *p;
    long     base;
    int      bad;
};

static void *caller_main(void *arg) {
    struct caller *c = arg;
    enum { N = 300, RUNS = 1500 };
    long *data = malloc(N * sizeof *data);
    if (!data) { c->bad = 1; return NULL; }
    struct job j;
    memset(&j, 0, sizeof j);
    j.data = data;
    j.n = N;
    for (int r = 0; r < RUNS; r++) {
        long want = 0;
        for (long i = 0; i < N; i++) want += data[i] = c->base + r + i;
        ll_pool_run(c->p, job_sum, &j);
        long got = 0;
        for (int t = 0; t < 3; t++) got += j.sum[t];
        if (got != want) c->bad++;
    }
    free(data);
    return NULL;
}

static void test_shared_by_two_callers(void) {
    ll_error err = {0};
    ll_pool *p = NULL;
    CHECK(ll_pool_init(&p, 3, &err) == LL_OK);
    if (!p) return;
    struct caller c[2] = { { p, 1000000, 0 }, { p, -7000000, 0 } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, caller_main, &c[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(c[0].bad, 0);
    CHECK_EQ_INT(c[1].bad, 0);
    ll_pool_free(p);
}

static void test_alloc_failure_frees_everything(void) {
    for (long n = 0; n < 4; n++) {
        ll_error err = {0};
        ll_pool *p = NULL;
        ll_alloc_fail_after(n);
        ll_status s = ll_pool_init(&p, 4, &err);
        ll_alloc_fail_after(-1);
        if (s == LL_OK) { CHECK(p != NULL); ll_pool_free(p); }
        else { CHECK(s == LL_ERR_NOMEM); CHECK(p == NULL); }
    }
}

int main(void) {
    RUN(test_every_thread_runs_once);
    RUN(test_back_to_back_runs);
    RUN(test_one_thread_runs_on_caller);
    RUN(test_bad_thread_count_refused);
    RUN(test_shared_by_two_callers);
    RUN(test_alloc_failure_frees_everything);
    return test_summary();
}
