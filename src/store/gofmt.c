/* gofmt: Go's JSON string/number encoding and %v / strconv.Quote, byte for byte (gofmt.h). */
#include "store/gofmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

// ---------------------------------------------------------------------------------------------
// growable buffer

void gobuf_free(gobuf *b) {
    ll_free(b->p);
    *b = (gobuf){0};
}

static bool gobuf_reserve(gobuf *b, size_t extra) {
    size_t need;
    if (b->oom || !ll_add_size(b->n, extra, &need) || !ll_add_size(need, 1, &need)) {
        b->oom = true;
        return false;
    }
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (!ll_mul_size(cap, 2, &cap)) { b->oom = true; return false; }
    }
    char *p = ll_realloc(b->p, cap);
    if (!p) { b->oom = true; return false; }
    b->p = p;
    b->cap = cap;
    return true;
}

void gobuf_put(gobuf *b, const void *s, size_t n) {
    if (!gobuf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void gobuf_puts(gobuf *b, const char *s) { gobuf_put(b, s, strlen(s)); }

void gobuf_printf(gobuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) { b->oom = true; return; }
    if ((size_t)n < sizeof tmp) { gobuf_put(b, tmp, (size_t)n); return; }
    if (!gobuf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

char *gobuf_take(gobuf *b, size_t *n) {
    if (!b->oom && !b->p && gobuf_reserve(b, 0)) b->p[0] = 0;   /* never written: an empty string */
    if (b->oom) { gobuf_free(b); if (n) *n = 0; return NULL; }
    char *p = b->p;
    if (n) *n = b->n;
    *b = (gobuf){0};
    return p;
}

// ---------------------------------------------------------------------------------------------
// UTF-8

/* Decode one UTF-8 sequence at s (n > 0 bytes left). Returns its length and sets *cp, or
 * returns 1 with *cp = -1 for an invalid byte (overlong, surrogate, out of range, truncated),
 * the way Go's range-over-string does. */
static size_t utf8_next(const unsigned char *s, size_t n, int32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = (int32_t)c; return 1; }
    size_t len; uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = -1; return 1; }
    if (n < len) { *cp = -1; return 1; }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = -1; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = -1; return 1; }
    *cp = (int32_t)v;
    return len;
}

// ---------------------------------------------------------------------------------------------
// encoding/json strings (encode.go appendString with escapeHTML = true)

void gobuf_json_str(gobuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    gobuf_put(b, "\"", 1);
    size_t start = 0, i = 0;
    while (i < n) {
        unsigned c = u[i];
        if (c < 0x80) {
            bool safe = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&';
            if (safe) { i++; continue; }
            gobuf_put(b, s + start, i - start);
            switch (c) {
            case '"': gobuf_puts(b, "\\\""); break;
            case '\\': gobuf_puts(b, "\\\\"); break;
            case '\b': gobuf_puts(b, "\\b"); break;
            case '\f': gobuf_puts(b, "\\f"); break;
            case '\n': gobuf_puts(b, "\\n"); break;
            case '\r': gobuf_puts(b, "\\r"); break;
            case '\t': gobuf_puts(b, "\\t"); break;
            default: {
                char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
                gobuf_put(b, e, 6);
            }
            }
            i++;
            start = i;
            continue;
        }
        int32_t cp;
        size_t len = utf8_next(u + i, n - i, &cp);
        if (cp < 0 || cp == 0x2028 || cp == 0x2029) {
            gobuf_put(b, s + start, i - start);
            gobuf_puts(b, cp < 0 ? "\\ufffd" : cp == 0x2028 ? "\\u2028" : "\\u2029");
            i += len;
            start = i;
            continue;
        }
        i += len;
    }
    gobuf_put(b, s + start, n - start);
    gobuf_put(b, "\"", 1);
}

// ---------------------------------------------------------------------------------------------
// numbers

int gofmt_shortest(double v, char d[24], int *exp10) {
    char tmp[40];
    v = fabs(v);
    if (v == 0) { d[0] = '0'; d[1] = 0; *exp10 = 1; return 1; }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) != v && prec < 17) continue;
        /* tmp = "D.DDDDe±XX" */
        int nd = 0;
        char *p = tmp;
        for (; *p && *p != 'e'; p++)
            if (*p >= '0' && *p <= '9') d[nd++] = *p;
        int e = atoi(p + 1);
        while (nd > 1 && d[nd - 1] == '0') nd--;
        d[nd] = 0;
        *exp10 = e + 1;
        return nd;
    }
    return 0; /* unreachable: 17 digits always round-trip */
}

/* Fixed notation of the shortest digits (strconv 'f', -1). */
static void put_fixed(gobuf *b, const char *d, int nd, int dp) {
    if (dp <= 0) {
        gobuf_puts(b, "0.");
        for (int i = 0; i < -dp; i++) gobuf_put(b, "0", 1);
        gobuf_put(b, d, (size_t)nd);
    } else if (dp >= nd) {
        gobuf_put(b, d, (size_t)nd);
        for (int i = nd; i < dp; i++) gobuf_put(b, "0", 1);
    } else {
        gobuf_put(b, d, (size_t)dp);
        gobuf_put(b, ".", 1);
        gobuf_put(b, d + dp, (size_t)(nd - dp));
    }
}

/* Exponent notation of the shortest digits (strconv 'e', -1): d[.ddd]e±XX, two digits min. */
static void put_exp(gobuf *b, const char *d, int nd, int dp, bool trim_exp_zero) {
    gobuf_put(b, d, 1);
    if (nd > 1) { gobuf_put(b, ".", 1); gobuf_put(b, d + 1, (size_t)(nd - 1)); }
    int e = dp - 1;
    if (trim_exp_zero && e < 0 && e > -10) gobuf_printf(b, "e-%d", -e);
    else gobuf_printf(b, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
}

void gobuf_json_num(gobuf *b, double v) {
    char d[24];
    int dp, nd = gofmt_shortest(v, d, &dp);
    if (v < 0) gobuf_put(b, "-", 1);
    double a = fabs(v);
    if (a != 0 && (a < 1e-6 || a >= 1e21)) put_exp(b, d, nd, dp, true);
    else put_fixed(b, d, nd, dp);
}

void gobuf_v_num(gobuf *b, double v) {
    char d[24];
    int dp, nd = gofmt_shortest(v, d, &dp);
    if (v < 0) gobuf_put(b, "-", 1);
    int e = dp - 1;
    if (v != 0 && (e < -4 || e >= 21)) put_exp(b, d, nd, dp, false);
    else put_fixed(b, d, nd, dp);
}

// ---------------------------------------------------------------------------------------------
// strconv.Quote (ASCII letters, digits, punctuation and printable non-ASCII kept)

void gobuf_go_quote(gobuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    gobuf_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c < 0x80) {
            switch (c) {
            case '"': gobuf_puts(b, "\\\""); break;
            case '\\': gobuf_puts(b, "\\\\"); break;
            case '\a': gobuf_puts(b, "\\a"); break;
            case '\b': gobuf_puts(b, "\\b"); break;
            case '\f': gobuf_puts(b, "\\f"); break;
            case '\n': gobuf_puts(b, "\\n"); break;
            case '\r': gobuf_puts(b, "\\r"); break;
            case '\t': gobuf_puts(b, "\\t"); break;
            case '\v': gobuf_puts(b, "\\v"); break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
                    gobuf_put(b, e, 4);
                } else {
                    gobuf_put(b, s + i, 1);
                }
            }
            i++;
            continue;
        }
        int32_t cp;
        size_t len = utf8_next(u + i, n - i, &cp);
        if (cp < 0) {
            char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
            gobuf_put(b, e, 4);
        } else if (cp < 0xA0 || cp == 0xAD || cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF) {
            /* C1 controls and the few format characters Go does not print (an approximation
             * of unicode.IsPrint that covers what turns up in stop strings) */
            gobuf_printf(b, "\\u%04x", (unsigned)cp);
        } else {
            gobuf_put(b, s + i, len);
        }
        i += len;
    }
    gobuf_put(b, "\"", 1);
}
