/* server/runners.c: loaded models, keep-alive and eviction (runners.h).
 *
 * mu guards the list and every runner's bookkeeping fields; loading and unloading (seconds of
 * I/O and allocation) happen outside it. A runner being loaded sits in the list with
 * `loading` set, so a second request for it waits on cv instead of loading it again (R11).
 * Waiting requests are woken by any change (a load ending, a release, an unload). */
#include "server/runners.h"

#include "core/core.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { RUNNER_GRAMMARS = 16 };   /* compiled format grammars kept per loaded model */

struct ll_runner {
    char        key[512];
    char        path[1024];
    int32_t     n_ctx_req;        /* as requested (0: default) */
    ll_model   *m;
    ll_sched   *s;
    bool        loading;
    bool        unload_when_idle;
    int32_t     in_flight;
    int64_t     expires_ns;       /* 0 while in use; INT64_MAX never */
    int64_t     session_ns;       /* keep-alive of the latest request holding it */
    bool        has_session;
    uint64_t    last_used;
    ll_runner  *next;
    /* compiled format grammars, most recently used first (gmu) */
    pthread_mutex_t gmu;
    struct gcache { char *key; ll_grammar *g; } grammars[RUNNER_GRAMMARS];
    int32_t     n_grammars;
};

struct ll_runners {
    ll_runners_params p;
    pthread_mutex_t mu;
    pthread_cond_t  cv;           /* list changes */
    pthread_cond_t  reap_cv;      /* wakes the reaper early (shutdown) */
    ll_runner      *list;         /* guarded by mu */
    uint64_t        tick;         /* guarded by mu */
    bool            stopping;     /* guarded by mu */
    pthread_t       reaper;
    bool            reaper_started;
};

static int64_t now_real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void runner_destroy(ll_runner *r) {
    if (!r) return;
    ll_sched_free(r->s);          /* cancels anything left, joins its thread */
    for (int32_t i = 0; i < r->n_grammars; i++) {
        ll_grammar_free(r->grammars[i].g);
        free(r->grammars[i].key);
    }
    pthread_mutex_destroy(&r->gmu);
    ll_model_free(r->m);
    free(r);
}

ll_status ll_runner_grammar(ll_runner *r, const char *key, ll_grammar **out, ll_error *err) {
    *out = NULL;
    pthread_mutex_lock(&r->gmu);
    for (int32_t i = 0; i < r->n_grammars; i++) {
        if (strcmp(r->grammars[i].key, key) != 0) continue;
        struct gcache hit = r->grammars[i];
        memmove(&r->grammars[1], &r->grammars[0], (size_t)i * sizeof hit);
        r->grammars[0] = hit;
        ll_status st = ll_grammar_clone(out, hit.g, err);
        pthread_mutex_unlock(&r->gmu);
        return st;
    }
    pthread_mutex_unlock(&r->gmu);
    /* Compiled outside the lock: other requests of this model go on meanwhile. */
    const ll_vocab *v = ll_model_vocab(r->m);
    ll_grammar *g = NULL;
    ll_status st = !strcmp(key, "json") ? ll_grammar_init_json(&g, v, true, err)
                 : !strncmp(key, "tools:", 6) ? ll_grammar_init_tools(&g, v, key + 6, strlen(key + 6), err)
                                        : ll_grammar_init_schema(&g, v, key, strlen(key), err);
    if (st != LL_OK) return st;
    char *k = strdup(key);
    if (!k || (st = ll_grammar_clone(out, g, err)) != LL_OK) {
        free(k);
        ll_grammar_free(g);
        return k ? st : ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_lock(&r->gmu);
    if (r->n_grammars == RUNNER_GRAMMARS) {
        r->n_grammars--;
        ll_grammar_free(r->grammars[r->n_grammars].g);
        free(r->grammars[r->n_grammars].key);
    }
    memmove(&r->grammars[1], &r->grammars[0], (size_t)r->n_grammars * sizeof r->grammars[0]);
    r->grammars[0] = (struct gcache){ k, g };
    r->n_grammars++;
    pthread_mutex_unlock(&r->gmu);
    return LL_OK;
}

static void list_remove(ll_runners *rs, ll_runner *r) {
    for (ll_runner **pp = &rs->list; *pp; pp = &(*pp)->next)
        if (*pp == r) { *pp = r->next; r->next = NULL; return; }
}

static ll_runner *list_find(ll_runners *rs, const char *key) {
    for (ll_runner *r = rs->list; r; r = r->next)
        if (!strcmp(r->key, key)) return r;
    return NULL;
}

static void *reaper_main(void *arg) {
    ll_runners *rs = arg;
    pthread_mutex_lock(&rs->mu);
    while (!rs->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + rs->p.reap_interval_ms * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&rs->reap_cv, &rs->mu, &ts);
        const int64_t now = now_real_ns();
        ll_runner *dead = NULL;
        for (ll_runner *r = rs->list, *n; r; r = n) {
            n = r->next;
            if (r->loading || r->in_flight > 0 || r->expires_ns == 0 || r->expires_ns > now) continue;
            list_remove(rs, r);
            r->next = dead;
            dead = r;
        }
        if (dead) {
            pthread_cond_broadcast(&rs->cv);
            pthread_mutex_unlock(&rs->mu);
            while (dead) { ll_runner *n = dead->next; runner_destroy(dead); dead = n; }
            pthread_mutex_lock(&rs->mu);
        }
    }
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

ll_status ll_runners_init(ll_runners **out, const ll_runners_params *p, ll_error *err) {
    *out = NULL;
    ll_runners *rs = calloc(1, sizeof *rs);
    if (!rs) return ll_fail(err, LL_ERR_NOMEM, "out of memory for the model registry");
    if (p) rs->p = *p;
    if (rs->p.max_loaded <= 0) rs->p.max_loaded = 3;
    if (rs->p.n_parallel <= 0) rs->p.n_parallel = 4;
    if (rs->p.reap_interval_ms <= 0) rs->p.reap_interval_ms = 250;
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cv, NULL);
    pthread_cond_init(&rs->reap_cv, NULL);
    if (pthread_create(&rs->reaper, NULL, reaper_main, rs) != 0) {
        ll_runners_free(rs);
        return ll_fail(err, LL_ERR_NOMEM, "cannot start the keep-alive thread");
    }
    rs->reaper_started = true;
    *out = rs;
    return LL_OK;
}

void ll_runners_free(ll_runners *rs) {
    if (!rs) return;
    pthread_mutex_lock(&rs->mu);
    rs->stopping = true;
    pthread_cond_broadcast(&rs->reap_cv);
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    if (rs->reaper_started) pthread_join(rs->reaper, NULL);
    while (rs->list) {
        ll_runner *r = rs->list;
        rs->list = r->next;
        runner_destroy(r);
    }
    pthread_cond_destroy(&rs->reap_cv);
    pthread_cond_destroy(&rs->cv);
    pthread_mutex_destroy(&rs->mu);
    free(rs);
}

/* Load the model and start its scheduler (outside the lock). */
static ll_status runner_load(ll_runners *rs, ll_runner *r, ll_error *err) {
    ll_status st = ll_model_load(&r->m, r->path, NULL, err);
    if (st != LL_OK) return st;
    ll_sched_params sp = { .n_parallel = rs->p.n_parallel, .n_ctx = r->n_ctx_req,
                           .type_k = rs->p.type_k, .type_v = rs->p.type_v, .pool = rs->p.pool };
    if ((st = ll_sched_init(&r->s, r->m, &sp, err)) != LL_OK) return st;
    /* §5 D4: the chosen context is reported, not left for the user to guess. */
    LL_INFO("loaded %s: context %d tokens per slot, %d slots, KV cache %.1f MiB", r->key,
            (int)ll_sched_n_ctx(r->s), (int)ll_sched_n_parallel(r->s), (double)ll_sched_kv_bytes(r->s) / (1 << 20));
    return LL_OK;
}

ll_status ll_runners_acquire(ll_runners *rs, const char *key, const char *path, int32_t n_ctx,
                             ll_runner **out, ll_error *err) {
    *out = NULL;
    if (strlen(key) >= sizeof ((ll_runner *)0)->key || strlen(path) >= sizeof ((ll_runner *)0)->path)
        return ll_fail(err, LL_ERR_ARG, "model name or path too long");
    pthread_mutex_lock(&rs->mu);
    for (;;) {
        if (rs->stopping) {
            pthread_mutex_unlock(&rs->mu);
            return ll_fail(err, LL_ERR_CANCELLED, "server shutting down");
        }
        ll_runner *r = list_find(rs, key);
        if (r && r->loading) { pthread_cond_wait(&rs->cv, &rs->mu); continue; }
        if (r && ((n_ctx > 0 && n_ctx != ll_sched_n_ctx(r->s)) || strcmp(r->path, path) != 0)) {
            /* Another context size or file: reload once the runner is idle. */
            if (r->in_flight > 0) { pthread_cond_wait(&rs->cv, &rs->mu); continue; }
            list_remove(rs, r);
            pthread_mutex_unlock(&rs->mu);
            runner_destroy(r);
            pthread_mutex_lock(&rs->mu);
            pthread_cond_broadcast(&rs->cv);
            continue;
        }
        if (r) {
            r->in_flight++;
            r->expires_ns = 0;
            r->last_used = ++rs->tick;
            r->unload_when_idle = false;
            pthread_mutex_unlock(&rs->mu);
            *out = r;
            return LL_OK;
        }
        /* Not loaded. At the limit, evict the least recently used idle runner (or wait). */
        int32_t n = 0;
        ll_runner *lru = NULL;
        for (ll_runner *q = rs->list; q; q = q->next) {
            n++;
            if (!q->loading && q->in_flight == 0 && (!lru || q->last_used < lru->last_used)) lru = q;
        }
        if (n >= rs->p.max_loaded) {
            if (!lru) { pthread_cond_wait(&rs->cv, &rs->mu); continue; }
            list_remove(rs, lru);
            pthread_mutex_unlock(&rs->mu);
            runner_destroy(lru);
            pthread_mutex_lock(&rs->mu);
            pthread_cond_broadcast(&rs->cv);
            continue;
        }
        r = calloc(1, sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&rs->mu);
            return ll_fail(err, LL_ERR_NOMEM, "out of memory loading '%s'", key);
        }
        pthread_mutex_init(&r->gmu, NULL);
        snprintf(r->key, sizeof r->key, "%s", key);
        snprintf(r->path, sizeof r->path, "%s", path);
        r->n_ctx_req = n_ctx;
        r->loading = true;
        r->next = rs->list;
        rs->list = r;
        pthread_mutex_unlock(&rs->mu);

        ll_status st = runner_load(rs, r, err);

        pthread_mutex_lock(&rs->mu);
        r->loading = false;
        pthread_cond_broadcast(&rs->cv);
        if (st != LL_OK) {
            list_remove(rs, r);
            pthread_mutex_unlock(&rs->mu);
            runner_destroy(r);
            return st;
        }
        r->in_flight = 1;
        r->last_used = ++rs->tick;
        pthread_mutex_unlock(&rs->mu);
        *out = r;
        return LL_OK;
    }
}

void ll_runners_set_session(ll_runners *rs, ll_runner *r, int64_t keep_alive_ns) {
    pthread_mutex_lock(&rs->mu);
    r->session_ns = keep_alive_ns;
    r->has_session = true;
    pthread_mutex_unlock(&rs->mu);
}

void ll_runners_release(ll_runners *rs, ll_runner *r, int64_t keep_alive_ns) {
    ll_runner *dead = NULL;
    pthread_mutex_lock(&rs->mu);
    if (r->in_flight > 0) r->in_flight--;
    r->last_used = ++rs->tick;
    if (keep_alive_ns == 0) r->unload_when_idle = true;
    if (r->in_flight == 0) {
        if (r->unload_when_idle) {
            list_remove(rs, r);
            dead = r;
        } else {
            r->expires_ns = keep_alive_ns < 0 ? INT64_MAX : now_real_ns() + keep_alive_ns;
        }
    }
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    runner_destroy(dead);
}

void ll_runners_unload(ll_runners *rs, const char *key) {
    ll_runner *dead = NULL;
    pthread_mutex_lock(&rs->mu);
    ll_runner *r = list_find(rs, key);
    if (r && !r->loading) {
        if (r->in_flight == 0) { list_remove(rs, r); dead = r; }
        else r->unload_when_idle = true;
    }
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    runner_destroy(dead);
}

size_t ll_runners_list(ll_runners *rs, ll_runner_info *out, size_t cap) {
    size_t n = 0;
    pthread_mutex_lock(&rs->mu);
    for (ll_runner *r = rs->list; r; r = r->next) {
        if (r->loading) continue;
        if (n < cap) {
            ll_runner_info *i = &out[n];
            memset(i, 0, sizeof *i);
            snprintf(i->key, sizeof i->key, "%s", r->key);
            snprintf(i->path, sizeof i->path, "%s", r->path);
            i->n_ctx = ll_sched_n_ctx(r->s);
            i->n_parallel = ll_sched_n_parallel(r->s);
            i->in_flight = r->in_flight;
            i->size_bytes = ll_model_size_bytes(r->m) + ll_sched_kv_bytes(r->s);
            i->expires_at_ns = r->expires_ns;
            if (r->expires_ns == 0 && r->has_session)
                i->expires_at_ns = r->session_ns < 0 ? INT64_MAX : now_real_ns() + r->session_ns;
            i->last_used = r->last_used;
        }
        n++;
    }
    pthread_mutex_unlock(&rs->mu);
    /* Most recently used first: an insertion sort of a handful of copies. */
    const size_t m = n < cap ? n : cap;
    for (size_t i = 1; i < m; i++)
        for (size_t k = i; k > 0 && out[k].last_used > out[k - 1].last_used; k--) {
            ll_runner_info t = out[k];
            out[k] = out[k - 1];
            out[k - 1] = t;
        }
    return n;
}

ll_sched *ll_runner_sched(ll_runner *r) { return r->s; }
const ll_model *ll_runner_model(ll_runner *r) { return r->m; }
