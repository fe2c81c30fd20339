/* core: errors, allocation with failure injection, logging, time. */
#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

const char *ll_status_name(ll_status s) {
    switch (s) {
    case LL_OK: return "ok";
    case LL_ERR_IO: return "io";
    case LL_ERR_FORMAT: return "format";
    case LL_ERR_UNSUPPORTED: return "unsupported";
    case LL_ERR_LIMIT: return "limit";
    case LL_ERR_NOMEM: return "nomem";
    case LL_ERR_CANCELLED: return "cancelled";
    case LL_ERR_ARG: return "argument";
    case LL_ERR_MASKED: return "masked";
    }
    return "unknown";
}

/* Copy src into dst (cap bytes, NUL-terminated), escaping anything that is not printable
 * ASCII as \xNN so a hostile key or path cannot put control bytes into a terminal or a log
 * line. Truncates at a whole character or escape. */
static void escape_printable(char *dst, size_t cap, const char *src) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p && o + 5 < cap; p++) {
        if (*p >= 0x20 && *p < 0x7f) dst[o++] = (char)*p;
        else o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", *p);
    }
    dst[o] = 0;
}

ll_status ll_fail(ll_error *err, ll_status code, const char *fmt, ...) {
    if (!err || err->code != LL_OK) return code;      /* keep the root cause */
    char raw[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    escape_printable(err->msg, sizeof err->msg, raw);
    err->code = code;
    return code;
}

/* ---- allocation ---- */

static atomic_long alloc_budget = -1;   /* < 0: no injection */

static int alloc_allowed(void) {
    long b = atomic_load(&alloc_budget);
    while (b >= 0) {
        if (b == 0) return 0;
        if (atomic_compare_exchange_weak(&alloc_budget, &b, b - 1)) return 1;
    }
    return 1;
}

void ll_alloc_fail_after(long n) { atomic_store(&alloc_budget, n); }

void *ll_malloc(size_t n) { return alloc_allowed() ? malloc(n ? n : 1) : NULL; }
void *ll_calloc(size_t n, size_t size) {
    size_t t;
    if (!ll_mul_size(n, size, &t) || !alloc_allowed()) return NULL;
    return calloc(t ? t : 1, 1);
}
void *ll_realloc(void *p, size_t n) { return alloc_allowed() ? realloc(p, n ? n : 1) : NULL; }
void *ll_malloc_array(size_t n, size_t size) {
    size_t t;
    if (!ll_mul_size(n, size, &t)) return NULL;
    return ll_malloc(t);
}
void ll_free(void *p) { free(p); }

void *ll_malloc_aligned(size_t n) {
    if (!alloc_allowed()) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    return p;
}
void ll_free_aligned(void *p) { free(p); }

char *ll_str_dup(ll_str s) {
    char *r = ll_malloc(s.n + 1);
    if (!r) return NULL;
    if (s.n) memcpy(r, s.p, s.n);
    r[s.n] = 0;
    return r;
}

/* ---- logging ----
 * A library inside a server: any thread may log while another changes the level or the
 * callback. The level is an atomic read on every call (LOCALLAMA_LOG_LEVEL is read once,
 * under pthread_once). The callback and its user pointer change together under log_mu,
 * which ll_log also holds while it calls the callback: a mutex per message is nothing next
 * to formatting it (logging is rare and never in a hot loop), calls never interleave, and
 * once ll_log_set_callback returns the old callback has finished and will not be called
 * again, so its user data may be freed. The cost: the callback must not call
 * ll_log_set_callback (deadlock); a message it logs itself goes straight to stderr. */

static atomic_int log_level = 1;                  /* guarded: atomic, set after log_once */
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static ll_log_fn log_fn;                          /* guarded by log_mu; NULL: stderr */
static void *log_user;                            /* guarded by log_mu */
static _Thread_local int log_in_callback;         /* this thread is inside log_fn */

static void log_read_env(void) {
    const char *e = getenv("LOCALLAMA_LOG_LEVEL");
    if (e) atomic_store(&log_level, atoi(e));
}

void ll_log_set_level(int level) {
    pthread_once(&log_once, log_read_env);       /* so a later first read cannot undo this */
    atomic_store(&log_level, level);
}

int ll_log_level(void) {
    pthread_once(&log_once, log_read_env);
    return atomic_load(&log_level);
}

void ll_log_set_callback(ll_log_fn fn, void *user) {
    pthread_mutex_lock(&log_mu);
    log_fn = fn;
    log_user = user;
    pthread_mutex_unlock(&log_mu);
}

static void log_write_stderr(int level, const char *msg) {
    static const char *const names[] = { "error", "warning", "info", "debug" };
    fprintf(stderr, "locallama: %s: %s\n", names[level], msg);
}

void ll_log(int level, const char *fmt, ...) {
    if (level > ll_log_level()) return;
    level = level < 0 ? 0 : level > 3 ? 3 : level;
    /* One line in a bounded buffer: a long message is cut, not allocated for. */
    char raw[1024], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    size_t n = strlen(raw);
    while (n > 0 && raw[n - 1] == '\n') raw[--n] = 0;
    escape_printable(msg, sizeof msg, raw);

    if (log_in_callback) { log_write_stderr(level, msg); return; }
    pthread_mutex_lock(&log_mu);
    if (log_fn) {
        log_in_callback = 1;
        log_fn(level, msg, log_user);
        log_in_callback = 0;
    } else {
        log_write_stderr(level, msg);
    }
    pthread_mutex_unlock(&log_mu);
}

uint64_t ll_time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
