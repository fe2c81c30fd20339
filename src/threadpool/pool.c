/* threadpool: persistent compute workers (pool.h).
 *
 * A job is published by bumping `gen` (a generation counter) after storing fn/arg; workers
 * wait for gen to move, run their share, and decrement `pending`. The caller runs share 0
 * itself and then waits for pending to reach 0. Waiting is spin-then-sleep: a forward pass
 * issues a few hundred jobs per token, each a few microseconds to a millisecond long, so a
 * short spin catches the next job without a syscall; then a waiter yields its core a few times
 * (when threads outnumber free cores, the thread it waits for may need exactly this core),
 * and after LL_POOL_SPIN + LL_POOL_YIELD rounds it sleeps on a condition variable so an idle
 * pool costs no CPU.
 *
 * Several threads may call ll_pool_run on one pool (contexts sharing it): run_mu makes them
 * take turns job by job; each job still runs on every worker. An uncontended lock costs tens
 * of nanoseconds against jobs of microseconds or more.
 *
 * Memory order: fn/arg are written before the seq_cst increment of gen and read after the
 * acquire-load that sees it; each worker's writes to its output are published to the caller
 * by the decrement of pending and the caller's acquire-load of 0. The two sleep handshakes
 * (n_sleeping vs gen, caller_sleeping vs pending) are store-then-load on both sides, so they
 * use seq_cst: either the sleeper sees the new value or the waker sees the sleeper.
 */
#include "threadpool/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

#define LL_POOL_SPIN  2000   /* pause rounds first: a few microseconds */
#define LL_POOL_YIELD 64     /* then sched_yield rounds, then sleep */

/* One round of waiting: pause while the wait is young, then yield the CPU (on a machine with
 * more runnable threads than cores the thread we wait for may need this core), and report
 * when it is time to sleep. */
static inline bool pool_wait_round(int *spins) {
    if (++*spins < LL_POOL_SPIN) { cpu_relax(); return true; }
    if (*spins < LL_POOL_SPIN + LL_POOL_YIELD) { sched_yield(); return true; }
    return false;
}

struct worker {
    struct ll_pool *pool;
    int             ith;
    pthread_t       thread;
};

struct ll_pool {
    int            n_threads;     /* including the caller (thread 0); immutable */
    struct worker *workers;       /* n_threads - 1 entries; immutable */
    int            n_started;     /* threads actually created (for cleanup) */

    ll_pool_fn     fn;            /* current job: written by the caller before gen moves */
    void          *arg;
    atomic_uint    gen;           /* job generation; release-store publishes fn/arg */
    atomic_int     pending;       /* workers still running the current job */
    atomic_bool    stop;          /* set once by ll_pool_free */

    pthread_mutex_t run_mu;       /* held by the caller of ll_pool_run for the whole job:
                                   * contexts on other threads sharing the pool take turns */
    pthread_mutex_t mu;           /* guards the sleeping handshakes below, nothing else */
    pthread_cond_t  wake;         /* workers sleep here waiting for gen to move */
    pthread_cond_t  done;         /* the caller sleeps here waiting for pending == 0 */
    atomic_int      n_sleeping;   /* workers blocked (or about to block) on wake */
    atomic_bool     caller_sleeping;
};

static void *pool_worker_main(void *p) {
    struct worker *w = p;
    struct ll_pool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        /* Wait for a new generation: spin, then sleep. */
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->gen, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&pool->stop, memory_order_acquire)) {
            if (pool_wait_round(&spins)) continue;
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while (atomic_load(&pool->gen) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mu);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->mu);
            spins = 0;
        }
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) break;
        seen = g;
        pool->fn(pool->arg, w->ith, pool->n_threads);
        if (atomic_fetch_sub(&pool->pending, 1) == 1 &&   /* seq_cst: pairs with caller_sleeping */
            atomic_load(&pool->caller_sleeping)) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mu);
        }
    }
    return NULL;
}

int ll_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) return 1;
    if (n > 1024) return 1024;
    return (int)n;
}

ll_status ll_pool_init(ll_pool **out, int n_threads, ll_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return ll_fail(err, LL_ERR_ARG, "thread count %d out of range [1, 1024]", n_threads);
    ll_pool *p = ll_calloc(1, sizeof *p);
    if (!p) return ll_fail(err, LL_ERR_NOMEM, "out of memory allocating the thread pool");
    p->n_threads = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->caller_sleeping, false);
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads > 1) {
        p->workers = ll_calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            ll_pool_free(p);
            return ll_fail(err, LL_ERR_NOMEM, "out of memory allocating %d workers", n_threads - 1);
        }
        for (int i = 1; i < n_threads; i++) {
            struct worker *w = &p->workers[i - 1];
            w->pool = p;
            w->ith = i;
            int rc = pthread_create(&w->thread, NULL, pool_worker_main, w);
            if (rc != 0) {
                ll_pool_free(p);
                return ll_fail(err, LL_ERR_NOMEM, "cannot start worker thread %d of %d (error %d)",
                               i, n_threads, rc);
            }
            p->n_started++;
        }
    }
    *out = p;
    return LL_OK;
}

void ll_pool_free(ll_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->workers[i].thread, NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_mu);
    ll_free(p->workers);
    ll_free(p);
}

int ll_pool_n_threads(const ll_pool *p) { return p ? p->n_threads : 1; }

void ll_pool_run(ll_pool *p, ll_pool_fn fn, void *arg) {
    if (p->n_threads == 1) { fn(arg, 0, 1); return; }   /* no shared state to guard */
    pthread_mutex_lock(&p->run_mu);
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1);   /* seq_cst: pairs with n_sleeping (Dekker) */
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }

    fn(arg, 0, p->n_threads);

    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
        if (pool_wait_round(&spins)) continue;
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_sleeping, true);
        while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->caller_sleeping, false);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->run_mu);
}
