/* core: errors, allocation with failure injection, logging, time. */
#include "core/core.h"

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
    }
    return "unknown";
}

ll_status ll_fail(ll_error *err, ll_status code, const char *fmt, ...) {
    if (!err || err->code != LL_OK) return code;      /* keep the root cause */
    char raw[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* Escape anything that is not printable ASCII so a hostile key or path cannot put
     * control bytes into a terminal or a log line. */
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p && o + 5 < sizeof err->msg; p++) {
        if (*p >= 0x20 && *p < 0x7f) err->msg[o++] = (char)*p;
        else o += (size_t)snprintf(err->msg + o, sizeof err->msg - o, "\\x%02x", *p);
    }
    err->msg[o] = 0;
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

/* ---- logging ---- */

static int log_level = -1;

void ll_log_set_level(int level) { log_level = level; }

int ll_log_level(void) {
    if (log_level < 0) {
        const char *e = getenv("LOCALLAMA_LOG_LEVEL");
        log_level = e ? atoi(e) : 1;
    }
    return log_level;
}

void ll_log(int level, const char *fmt, ...) {
    if (level > ll_log_level()) return;
    static const char *names[] = { "error", "warning", "info", "debug" };
    fprintf(stderr, "locallama: %s: ", names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

uint64_t ll_time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
