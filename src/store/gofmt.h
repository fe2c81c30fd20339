/* gofmt: byte-exact imitations of the few Go formatting routines whose output Ollama stores
 * or shows, so that what we write is what Ollama would have written (spec ollama-api.md §4.2,
 * §4.3, §4.7.4, §4.7.5). Internal to src/store/.
 *
 *   encoding/json strings   "\u003c|eot_id|\u003e"   (HTML-safe escaping, U+2028/9 escaped)
 *   encoding/json float64   0.7, 4096, 1e-7, 1e+21    (shortest digits; exponent outside [1e-6, 1e21))
 *   fmt %v float64          0.7, 4096, 1e-07, 1e+21   (shortest digits; %e when exp < -4 or >= 21)
 *   strconv.Quote           "\n", "\x01"              (the `parameters` field of /api/show)
 *
 * All of them append to a growable buffer that records the first allocation failure. */
#ifndef LL_STORE_GOFMT_H
#define LL_STORE_GOFMT_H

#include "core/core.h"

typedef struct {
    char  *p;      /* NUL-terminated while ok */
    size_t n, cap;
    bool   oom;    /* an append failed; p is still valid up to n */
} gobuf;

void gobuf_free(gobuf *b);
void gobuf_put(gobuf *b, const void *s, size_t n);
void gobuf_puts(gobuf *b, const char *s);
void gobuf_printf(gobuf *b, const char *fmt, ...) LL_PRINTF(2, 3);
/* Hand the buffer over (caller ll_frees it); NULL when an append failed. */
char *gobuf_take(gobuf *b, size_t *n);

/* A JSON string literal as Go's encoding/json writes it. Invalid UTF-8 becomes \ufffd. */
void gobuf_json_str(gobuf *b, const char *s, size_t n);
/* A float64 as encoding/json writes it (finite values only). */
void gobuf_json_num(gobuf *b, double v);
/* A float64 as fmt's %v writes it. */
void gobuf_v_num(gobuf *b, double v);
/* strconv.Quote(s). */
void gobuf_go_quote(gobuf *b, const char *s, size_t n);

/* Shortest decimal digits of v that parse back to v: digits into d (no dot, no sign),
 * returns their count and sets *exp10 so that v = 0.d * 10^exp10. */
int  gofmt_shortest(double v, char d[24], int *exp10);

#endif
