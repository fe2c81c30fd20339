/* core: status + error buffer, checked math, allocation with failure injection, logging.
 * Everything else in the engine includes this; it includes nothing of ours but the API. */
#ifndef LL_CORE_H
#define LL_CORE_H

#include "locallama.h"

#include <stdarg.h>
#include <string.h>

#if defined(__GNUC__)
#define LL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LL_PRINTF(a, b)
#endif

/* Keeps the first failure (the root cause), formats the message with non-printable bytes
 * escaped as \xNN, and returns code. err may be NULL. */
ll_status ll_fail(ll_error *err, ll_status code, const char *fmt, ...) LL_PRINTF(3, 4);

/* ---- checked arithmetic: true when the result fits ---- */
static inline int ll_mul_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline int ll_add_u64(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }
static inline int ll_mul_size(size_t a, size_t b, size_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline int ll_add_size(size_t a, size_t b, size_t *r) { return !__builtin_add_overflow(a, b, r); }

/* ---- allocation ----
 * All engine allocations go through these so tests can make the Nth call fail
 * (ll_alloc_fail_after) and prove every error path frees what it built. */
void *ll_malloc(size_t n);
void *ll_calloc(size_t n, size_t size);          /* overflow-checked */
void *ll_realloc(void *p, size_t n);
void *ll_malloc_array(size_t n, size_t size);    /* overflow-checked malloc */
void  ll_free(void *p);
/* 64-byte aligned, for SIMD buffers; free with ll_free_aligned. */
void *ll_malloc_aligned(size_t n);
void  ll_free_aligned(void *p);
/* Test hook: after n more successful allocations every allocation fails; n < 0 disables. */
void  ll_alloc_fail_after(long n);

/* ---- strings ---- */
static inline ll_str ll_str_c(const char *s) { ll_str r = { s, s ? strlen(s) : 0 }; return r; }
static inline int ll_str_eq(ll_str a, ll_str b) { return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0); }
static inline int ll_str_eq_c(ll_str a, const char *b) { return ll_str_eq(a, ll_str_c(b)); }
/* Copy into a NUL-terminated heap string (ll_free it); NULL on allocation failure. */
char *ll_str_dup(ll_str s);

/* ---- logging ----
 * Library code may log warnings; it never prints anything else. Level, callback and
 * LOCALLAMA_LOG_LEVEL are public (locallama.h); this is the internal entry. The message is
 * formatted into a bounded buffer, escaped like ll_fail, and passed on as one line. */
void ll_log(int level, const char *fmt, ...) LL_PRINTF(2, 3);
#define LL_WARN(...)  ll_log(1, __VA_ARGS__)
#define LL_INFO(...)  ll_log(2, __VA_ARGS__)
#define LL_DEBUG(...) ll_log(3, __VA_ARGS__)

/* ---- time ---- */
uint64_t ll_time_ns(void);   /* monotonic */

#endif
