/* threadpool: a persistent pool of compute workers, shareable by contexts (locallama.h).
 * ll_pool_run() runs fn(arg, ith, nth) on every thread (the caller is thread 0) and returns
 * when all have finished. Workers only compute: no allocation, no I/O, no locks in the loop;
 * between jobs they spin briefly, then sleep on a condition variable. */
#ifndef LL_POOL_H
#define LL_POOL_H

#include "core/core.h"

typedef struct ll_pool ll_pool;
typedef void (*ll_pool_fn)(void *arg, int ith, int nth);

ll_status ll_pool_init(ll_pool **out, int n_threads, ll_error *err);  /* public: locallama.h */
void      ll_pool_free(ll_pool *p);                                   /* NULL-safe */
int       ll_pool_n_threads(const ll_pool *p);
void      ll_pool_run(ll_pool *p, ll_pool_fn fn, void *arg);
int       ll_cpu_count(void);                                         /* online CPUs, >= 1 */

#endif
