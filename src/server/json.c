/* server/json: lenient request parsing and Go-compatible output over jansson (json.h). */
#include "server/json.h"

#include "core/core.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- growable byte buffer ------------------------------------------------------------------ */

typedef struct { char *p; size_t n, cap; int oom; } jbuf;

static int jb_reserve(jbuf *b, size_t more) {
    if (b->oom) return 0;
    size_t need;
    if (!ll_add_size(b->n, more, &need) || !ll_add_size(need, 1, &need)) { b->oom = 1; return 0; }
    if (need <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { cap = need; break; }
        cap *= 2;
    }
    char *np = ll_realloc(b->p, cap);
    if (!np) { b->oom = 1; return 0; }
    b->p = np;
    b->cap = cap;
    return 1;
}

static void jb_put(jbuf *b, const void *p, size_t n) {
    if (!jb_reserve(b, n)) return;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void jb_putc(jbuf *b, char c) { jb_put(b, &c, 1); }
static void jb_puts(jbuf *b, const char *s) { jb_put(b, s, strlen(s)); }

/* ---- UTF-8 -------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4) and its code point, or 0 when the bytes are
 * not a valid sequence (overlong, surrogate, past U+10FFFF, truncated: RFC 3629). */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned c = p[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0)      { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* ---- parsing: one iterative validating pass, then jansson ---------------------------------- */

typedef struct {
    char kind;            /* '{' or '[' */
    size_t key_off, key_n;/* last key seen in an object (raw bytes between the quotes) */
    int64_t index;        /* element index in an array */
} scan_level;

typedef struct {
    const unsigned char *p;
    size_t n, pos;
    jbuf out;             /* the cleaned copy handed to jansson */
    scan_level st[LL_JSON_MAX_DEPTH];
    int depth;
    ll_error *err;
} scanner;

static int is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void sc_skip_ws(scanner *s) {
    size_t start = s->pos;
    while (s->pos < s->n && is_ws(s->p[s->pos])) s->pos++;
    jb_put(&s->out, s->p + start, s->pos - start);
}

/* "messages[3].content" for the current position (keys shortened; escaped later by ll_fail). */
static void sc_path(const scanner *s, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < s->depth && k + 1 < cap; i++) {
        const scan_level *l = &s->st[i];
        int w;
        if (l->kind == '{')
            w = snprintf(buf + k, cap - k, "%s%.*s", k ? "." : "",
                         (int)(l->key_n > 64 ? 64 : l->key_n), (const char *)s->p + l->key_off);
        else
            w = snprintf(buf + k, cap - k, "[%" PRId64 "]", l->index);
        if (w < 0) break;
        k += (size_t)w;
        if (k >= cap) { k = cap - 1; break; }
    }
}

static ll_status sc_fail(scanner *s, size_t at, const char *what) {
    return ll_fail(s->err, LL_ERR_FORMAT, "invalid JSON at byte %zu: %s", at, what);
}

static ll_status sc_fail_char(scanner *s, size_t at, const char *ctx) {
    if (at >= s->n) return sc_fail(s, at, "unexpected end of input");
    unsigned char c = s->p[at];
    if (c >= 0x20 && c < 0x7F)
        return ll_fail(s->err, LL_ERR_FORMAT, "invalid JSON at byte %zu: unexpected character '%c' %s",
                       at, c, ctx);
    return ll_fail(s->err, LL_ERR_FORMAT, "invalid JSON at byte %zu: unexpected byte 0x%02x %s",
                   at, c, ctx);
}

static int hex4(const unsigned char *p, uint32_t *v) {
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        r = r << 4 | d;
    }
    *v = r;
    return 1;
}

/* A string starting at the opening quote. Copies it to out, with invalid UTF-8 bytes and lone
 * surrogate escapes replaced by U+FFFD (H27). Raw control bytes are an error (RFC 8259 §7). */
static ll_status sc_string(scanner *s, size_t *raw_off, size_t *raw_n) {
    size_t start = s->pos;
    jb_putc(&s->out, '"');
    s->pos++;
    *raw_off = s->pos;
    for (;;) {
        if (s->pos >= s->n) return sc_fail(s, start, "unterminated string");
        unsigned char c = s->p[s->pos];
        if (c == '"') {
            *raw_n = s->pos - *raw_off;
            jb_putc(&s->out, '"');
            s->pos++;
            return LL_OK;
        }
        if (c == '\\') {
            if (s->pos + 1 >= s->n) return sc_fail(s, start, "unterminated string");
            unsigned char e = s->p[s->pos + 1];
            if (strchr("\"\\/bfnrt", e) && e) {
                jb_put(&s->out, s->p + s->pos, 2);
                s->pos += 2;
                continue;
            }
            uint32_t u;
            if (e != 'u' || s->pos + 6 > s->n || !hex4(s->p + s->pos + 2, &u))
                return sc_fail(s, s->pos, "invalid escape in string");
            if (u >= 0xD800 && u <= 0xDBFF) {
                uint32_t lo;
                if (s->pos + 12 <= s->n && s->p[s->pos + 6] == '\\' && s->p[s->pos + 7] == 'u' &&
                    hex4(s->p + s->pos + 8, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    jb_put(&s->out, s->p + s->pos, 12);
                    s->pos += 12;
                } else {
                    jb_puts(&s->out, "\\ufffd");
                    s->pos += 6;
                }
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                jb_puts(&s->out, "\\ufffd");
                s->pos += 6;
            } else {
                jb_put(&s->out, s->p + s->pos, 6);
                s->pos += 6;
            }
            continue;
        }
        if (c < 0x20) return sc_fail_char(s, s->pos, "(control character in string)");
        if (c < 0x80) {
            size_t k = s->pos;
            while (k < s->n && s->p[k] >= 0x20 && s->p[k] < 0x80 && s->p[k] != '"' && s->p[k] != '\\') k++;
            jb_put(&s->out, s->p + s->pos, k - s->pos);
            s->pos = k;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_decode(s->p + s->pos, s->n - s->pos, &cp);
        if (len) {
            jb_put(&s->out, s->p + s->pos, len);
            s->pos += len;
        } else {
            jb_put(&s->out, "\xEF\xBF\xBD", 3);   /* one U+FFFD per bad byte, as Go */
            s->pos++;
        }
    }
}

static ll_status sc_number(scanner *s) {
    size_t start = s->pos, k = s->pos;
    int is_int = 1;
    if (k < s->n && s->p[k] == '-') k++;
    if (k >= s->n) return sc_fail(s, k, "unexpected end of input in number");
    if (s->p[k] == '0') k++;
    else if (s->p[k] >= '1' && s->p[k] <= '9') while (k < s->n && s->p[k] >= '0' && s->p[k] <= '9') k++;
    else return sc_fail_char(s, k, "in number");
    if (k < s->n && s->p[k] == '.') {
        is_int = 0;
        k++;
        if (k >= s->n || s->p[k] < '0' || s->p[k] > '9') return sc_fail_char(s, k, "after decimal point");
        while (k < s->n && s->p[k] >= '0' && s->p[k] <= '9') k++;
    }
    if (k < s->n && (s->p[k] == 'e' || s->p[k] == 'E')) {
        is_int = 0;
        k++;
        if (k < s->n && (s->p[k] == '+' || s->p[k] == '-')) k++;
        if (k >= s->n || s->p[k] < '0' || s->p[k] > '9') return sc_fail_char(s, k, "in exponent");
        while (k < s->n && s->p[k] >= '0' && s->p[k] <= '9') k++;
    }
    size_t len = k - start;
    /* Range check (H26): jansson refuses integers past int64 and reals past DBL_MAX; we say
     * which field. Long literals get a heap copy; strtod needs a NUL. */
    char small[64], *txt = small;
    if (len >= sizeof small) {
        txt = ll_malloc(len + 1);
        if (!txt) return ll_fail(s->err, LL_ERR_NOMEM, "out of memory parsing a number");
    }
    memcpy(txt, s->p + start, len);
    txt[len] = 0;
    int bad, big_int = 0;
    errno = 0;
    if (is_int) {
        (void)strtoll(txt, NULL, 10);
        big_int = errno == ERANGE;   /* fine as a real, as Go reads it into a float64 field */
        bad = big_int && isinf(strtod(txt, NULL));
    } else {
        double d = strtod(txt, NULL);
        bad = isinf(d);
    }
    if (txt != small) ll_free(txt);
    if (bad) {
        char path[192];
        sc_path(s, path, sizeof path);
        return ll_fail(s->err, LL_ERR_FORMAT,
                       "invalid JSON at byte %zu: number %.*s%s out of range for field '%s' "
                       "(larger than a double)",
                       start, (int)(len > 32 ? 32 : len), (const char *)s->p + start,
                       len > 32 ? "..." : "", path[0] ? path : "(top level)");
    }
    jb_put(&s->out, s->p + start, len);
    if (big_int) jb_put(&s->out, ".0", 2);   /* jansson takes it as a real, not "too big integer" */
    s->pos = k;
    return LL_OK;
}

static ll_status sc_literal(scanner *s) {
    static const char *lits[] = { "true", "false", "null" };
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(lits[i]);
        if (s->n - s->pos >= l && !memcmp(s->p + s->pos, lits[i], l)) {
            jb_put(&s->out, lits[i], l);
            s->pos += l;
            return LL_OK;
        }
    }
    return sc_fail_char(s, s->pos, "(expected a JSON value)");
}

static ll_status sc_push(scanner *s, char kind) {
    if (s->depth >= LL_JSON_MAX_DEPTH)
        return ll_fail(s->err, LL_ERR_LIMIT, "invalid JSON at byte %zu: nesting deeper than %d",
                       s->pos, LL_JSON_MAX_DEPTH);
    scan_level *l = &s->st[s->depth++];
    l->kind = kind;
    l->key_off = l->key_n = 0;
    l->index = 0;
    jb_putc(&s->out, kind);
    s->pos++;
    return LL_OK;
}

static ll_status json_scan(scanner *s) {
    enum { VALUE, KEY, AFTER } mode = VALUE;
    ll_status st;
    for (;;) {
        sc_skip_ws(s);
        if (s->out.oom) return ll_fail(s->err, LL_ERR_NOMEM, "out of memory parsing JSON");
        if (mode == VALUE) {
            if (s->pos >= s->n) return sc_fail(s, s->pos, "unexpected end of input");
            unsigned char c = s->p[s->pos];
            if (c == '{' || c == '[') {
                if ((st = sc_push(s, (char)c)) != LL_OK) return st;
                sc_skip_ws(s);
                if (s->pos < s->n && s->p[s->pos] == (c == '{' ? '}' : ']')) {
                    jb_putc(&s->out, (char)s->p[s->pos]);
                    s->pos++;
                    s->depth--;
                    mode = AFTER;
                } else {
                    mode = c == '{' ? KEY : VALUE;
                }
                continue;
            }
            size_t off, n;
            if (c == '"') st = sc_string(s, &off, &n);
            else if (c == '-' || (c >= '0' && c <= '9')) st = sc_number(s);
            else st = sc_literal(s);
            if (st != LL_OK) return st;
            mode = AFTER;
        } else if (mode == KEY) {
            if (s->pos >= s->n) return sc_fail(s, s->pos, "unexpected end of input");
            if (s->p[s->pos] != '"') return sc_fail_char(s, s->pos, "(expected a string key)");
            scan_level *l = &s->st[s->depth - 1];
            if ((st = sc_string(s, &l->key_off, &l->key_n)) != LL_OK) return st;
            sc_skip_ws(s);
            if (s->pos >= s->n || s->p[s->pos] != ':') return sc_fail_char(s, s->pos, "(expected ':')");
            jb_putc(&s->out, ':');
            s->pos++;
            mode = VALUE;
        } else {
            if (s->depth == 0) {
                if (s->pos < s->n)
                    return sc_fail(s, s->pos, "unexpected data after JSON");   /* H24 */
                return LL_OK;
            }
            if (s->pos >= s->n) return sc_fail(s, s->pos, "unexpected end of input");
            scan_level *l = &s->st[s->depth - 1];
            unsigned char c = s->p[s->pos];
            char close = l->kind == '{' ? '}' : ']';
            if (c == ',') {
                jb_putc(&s->out, ',');
                s->pos++;
                if (l->kind == '[') l->index++;
                mode = l->kind == '{' ? KEY : VALUE;
            } else if (c == close) {
                jb_putc(&s->out, close);
                s->pos++;
                s->depth--;
            } else {
                return sc_fail_char(s, s->pos, l->kind == '{' ? "(expected ',' or '}')"
                                                              : "(expected ',' or ']')");
            }
        }
    }
}

ll_status ll_json_parse(const char *p, size_t n, json_t **out, ll_error *err) {
    *out = NULL;
    size_t i = 0;
    while (i < n && is_ws((unsigned char)p[i])) i++;
    if (i == n) return ll_fail(err, LL_ERR_FORMAT, "missing request body");
    scanner *s = ll_calloc(1, sizeof *s);
    if (!s) return ll_fail(err, LL_ERR_NOMEM, "out of memory parsing JSON");
    s->p = (const unsigned char *)p;
    s->n = n;
    s->err = err;
    ll_status st = json_scan(s);
    if (st == LL_OK && s->out.oom) st = ll_fail(err, LL_ERR_NOMEM, "out of memory parsing JSON");
    if (st == LL_OK) {
        json_error_t je;
        json_t *v = json_loadb(s->out.p, s->out.n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!v) {
            /* Not expected after the scan; jansson's own limits or allocation failure. */
            st = ll_fail(err, LL_ERR_FORMAT, "invalid JSON at byte %d: %s", je.position, je.text);
        } else {
            *out = v;
        }
    }
    ll_free(s->out.p);
    ll_free(s);
    return st;
}

/* ---- getters -------------------------------------------------------------------------------- */

json_t *ll_json_field(const json_t *obj, const char *key) {
    if (!json_is_object(obj)) return NULL;
    json_t *v = json_object_get(obj, key);
    if (!v) {
        /* Go's decoder: each input key maps to the field it equals ignoring case; the last one
         * in document order wins. Only reached when there is no exact match. */
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)obj, k, x)
            if (!strcasecmp(k, key)) v = x;
    }
    return json_is_null(v) ? NULL : v;
}

ll_str ll_json_str(const json_t *s) {
    ll_str r = { "", 0 };
    if (json_is_string(s)) { r.p = json_string_value(s); r.n = json_string_length(s); }
    return r;
}

static ll_status type_err(ll_error *err, const char *key, const char *what) {
    return ll_fail(err, LL_ERR_ARG, "field '%s' must be %s", key, what);
}

ll_status ll_json_get_str(const json_t *obj, const char *key, ll_str *out, bool *present, ll_error *err) {
    json_t *v = ll_json_field(obj, key);
    if (present) *present = v != NULL;
    if (!v) return LL_OK;
    if (!json_is_string(v)) return type_err(err, key, "a string");
    *out = ll_json_str(v);
    return LL_OK;
}

ll_status ll_json_get_bool(const json_t *obj, const char *key, bool *out, bool *present, ll_error *err) {
    json_t *v = ll_json_field(obj, key);
    if (present) *present = v != NULL;
    if (!v) return LL_OK;
    if (!json_is_boolean(v)) return type_err(err, key, "a boolean");
    *out = json_is_true(v);
    return LL_OK;
}

ll_status ll_json_get_int(const json_t *obj, const char *key, int64_t min, int64_t max,
                          int64_t *out, bool *present, ll_error *err) {
    json_t *v = ll_json_field(obj, key);
    if (present) *present = v != NULL;
    if (!v) return LL_OK;
    int64_t r;
    if (json_is_integer(v)) {
        r = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != floor(d) || !(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
            return type_err(err, key, "an integer");
        r = (int64_t)d;
    } else {
        return type_err(err, key, "an integer");
    }
    if (r < min || r > max)
        return ll_fail(err, LL_ERR_ARG, "field '%s' must be between %" PRId64 " and %" PRId64
                       " (got %" PRId64 ")", key, min, max, r);
    *out = r;
    return LL_OK;
}

ll_status ll_json_get_num(const json_t *obj, const char *key, double *out, bool *present, ll_error *err) {
    json_t *v = ll_json_field(obj, key);
    if (present) *present = v != NULL;
    if (!v) return LL_OK;
    if (!json_is_number(v)) return type_err(err, key, "a number");
    *out = json_number_value(v);
    return LL_OK;
}

ll_status ll_json_get_array(const json_t *obj, const char *key, json_t **out, ll_error *err) {
    json_t *v = ll_json_field(obj, key);
    *out = NULL;
    if (!v) return LL_OK;
    if (!json_is_array(v)) return type_err(err, key, "an array");
    *out = v;
    return LL_OK;
}

ll_status ll_json_get_object(const json_t *obj, const char *key, json_t **out, ll_error *err) {
    json_t *v = ll_json_field(obj, key);
    *out = NULL;
    if (!v) return LL_OK;
    if (!json_is_object(v)) return type_err(err, key, "an object");
    *out = v;
    return LL_OK;
}

/* A numeric string per D9 ("0.7", " 3 "); the whole string must be one finite number. */
static int numeric_string(const json_t *v, double *d) {
    if (!json_is_string(v)) return 0;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > 64 || strlen(s) != n) return 0;
    char *end;
    errno = 0;
    double r = strtod(s, &end);
    while (*end == ' ') end++;
    if (end == s || *end || errno == ERANGE || !isfinite(r)) return 0;
    /* strtod also takes hex floats and "inf"; JSON-ish decimals only. */
    for (const char *q = s; *q; q++)
        if (!strchr("0123456789+-.eE ", *q)) return 0;
    *d = r;
    return 1;
}

static json_t *opt_get(const json_t *opts, const char *name) {
    json_t *v = json_is_object(opts) ? json_object_get(opts, name) : NULL;
    return json_is_null(v) ? NULL : v;
}

ll_status ll_json_opt_int(const json_t *opts, const char *name, int64_t *out, bool *present, ll_error *err) {
    json_t *v = opt_get(opts, name);
    if (present) *present = v != NULL;
    if (!v) return LL_OK;
    double d;
    if (json_is_integer(v)) { *out = json_integer_value(v); return LL_OK; }
    if (json_is_real(v)) d = json_real_value(v);
    else if (!numeric_string(v, &d))
        return ll_fail(err, LL_ERR_ARG, "option \"%s\" must be of type integer", name);
    d = trunc(d);
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return ll_fail(err, LL_ERR_ARG, "option \"%s\" is out of range", name);
    *out = (int64_t)d;
    return LL_OK;
}

ll_status ll_json_opt_float(const json_t *opts, const char *name, double *out, bool *present, ll_error *err) {
    json_t *v = opt_get(opts, name);
    if (present) *present = v != NULL;
    if (!v) return LL_OK;
    double d;
    if (json_is_number(v)) d = json_number_value(v);
    else if (!numeric_string(v, &d))
        return ll_fail(err, LL_ERR_ARG, "option \"%s\" must be of type float32", name);
    *out = d;
    return LL_OK;
}

ll_status ll_json_opt_bool(const json_t *opts, const char *name, bool *out, bool *present, ll_error *err) {
    json_t *v = opt_get(opts, name);
    if (present) *present = v != NULL;
    if (!v) return LL_OK;
    if (!json_is_boolean(v))
        return ll_fail(err, LL_ERR_ARG, "option \"%s\" must be of type boolean", name);
    *out = json_is_true(v);
    return LL_OK;
}

ll_status ll_json_opt_strlist(const json_t *opts, const char *name, json_t **out, ll_error *err) {
    json_t *v = opt_get(opts, name);
    *out = NULL;
    if (!v) return LL_OK;
    if (json_is_string(v)) { *out = v; return LL_OK; }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
            if (!json_is_string(x))
                return ll_fail(err, LL_ERR_ARG, "option \"%s\" must be of type an array of strings", name);
        *out = v;
        return LL_OK;
    }
    return ll_fail(err, LL_ERR_ARG, "option \"%s\" must be of type an array of strings", name);
}

size_t ll_json_strlist_n(const json_t *list) {
    if (json_is_string(list)) return 1;
    return json_is_array(list) ? json_array_size(list) : 0;
}

ll_str ll_json_strlist_at(const json_t *list, size_t i) {
    if (json_is_string(list)) return i == 0 ? ll_json_str(list) : (ll_str){ "", 0 };
    return ll_json_str(json_array_get(list, i));
}

/* ---- durations ------------------------------------------------------------------------------ */

static const struct { const char *unit; int64_t ns; } go_units[] = {
    { "ns", 1 }, { "us", 1000 }, { "\xC2\xB5s", 1000 }, { "\xCE\xBCs", 1000 },
    { "ms", 1000000 }, { "s", 1000000000 }, { "m", 60000000000LL }, { "h", 3600000000000LL },
};

/* time.ParseDuration, Go's algorithm and error texts. */
static ll_status go_parse_duration(const char *s0, size_t n, int64_t *ns, ll_error *err) {
    const char *s = s0, *end = s0 + n;
    int neg = 0;
    uint64_t d = 0;
    if (s < end && (*s == '-' || *s == '+')) { neg = *s == '-'; s++; }
    if (end - s == 1 && *s == '0') { *ns = 0; return LL_OK; }
    if (s == end) goto invalid;
    while (s < end) {
        uint64_t v = 0, f = 0;
        double scale = 1;
        if (!(*s == '.' || (*s >= '0' && *s <= '9'))) goto invalid;
        const char *q = s;
        while (s < end && *s >= '0' && *s <= '9') {
            if (v > (UINT64_MAX - 9) / 10) goto invalid;
            v = v * 10 + (uint64_t)(*s++ - '0');
        }
        int pre = s != q, post = 0;
        if (s < end && *s == '.') {
            s++;
            q = s;
            while (s < end && *s >= '0' && *s <= '9') {
                if (f <= (UINT64_MAX - 9) / 10) { f = f * 10 + (uint64_t)(*s - '0'); scale *= 10; }
                s++;
            }
            post = s != q;
        }
        if (!pre && !post) goto invalid;
        q = s;
        while (s < end && *s != '.' && !(*s >= '0' && *s <= '9')) s++;
        if (s == q)
            return ll_fail(err, LL_ERR_ARG, "time: missing unit in duration \"%.*s\"", (int)n, s0);
        int64_t unit = 0;
        for (size_t i = 0; i < sizeof go_units / sizeof go_units[0]; i++)
            if (strlen(go_units[i].unit) == (size_t)(s - q) && !memcmp(go_units[i].unit, q, (size_t)(s - q)))
                unit = go_units[i].ns;
        if (!unit)
            return ll_fail(err, LL_ERR_ARG, "time: unknown unit \"%.*s\" in duration \"%.*s\"",
                           (int)(s - q), q, (int)n, s0);
        uint64_t term;
        if (!ll_mul_u64(v, (uint64_t)unit, &term)) goto invalid;
        if (f) term += (uint64_t)((double)f * ((double)unit / scale));
        if (!ll_add_u64(d, term, &d) || d > (uint64_t)INT64_MAX) goto invalid;
    }
    *ns = neg ? -(int64_t)d : (int64_t)d;
    return LL_OK;
invalid:
    return ll_fail(err, LL_ERR_ARG, "time: invalid duration \"%.*s\"", (int)n, s0);
}

static int seconds_to_ns(double sec, int64_t *ns) {
    if (!isfinite(sec)) return 0;
    double v = sec * 1e9;
    if (v >= 9.2e18) *ns = INT64_MAX;
    else if (v <= -9.2e18) *ns = -1;
    else *ns = (int64_t)v;
    return 1;
}

/* ISO 8601 duration (D8): [-]P[nW][nD][T[nH][nM][nS]], the last number may be fractional. */
static int iso_duration(const char *s, size_t n, int64_t *ns) {
    size_t i = 0;
    int neg = 0, in_t = 0, any = 0;
    double total = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    if (i >= n || (s[i] != 'P' && s[i] != 'p')) return 0;
    i++;
    while (i < n) {
        if ((s[i] == 'T' || s[i] == 't') && !in_t) { in_t = 1; i++; continue; }
        size_t st = i;
        while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == ',')) i++;
        if (i == st || i >= n || i - st > 30) return 0;
        char num[32];
        memcpy(num, s + st, i - st);
        num[i - st] = 0;
        for (char *c = num; *c; c++) if (*c == ',') *c = '.';
        char *e;
        double v = strtod(num, &e);
        if (*e) return 0;
        char u = (char)(s[i] | 0x20);
        i++;
        double mul;
        if (!in_t && u == 'w') mul = 604800;
        else if (!in_t && u == 'd') mul = 86400;
        else if (in_t && u == 'h') mul = 3600;
        else if (in_t && u == 'm') mul = 60;
        else if (in_t && u == 's') mul = 1;
        else return 0;
        total += v * mul;
        any = 1;
    }
    if (!any) return 0;
    return seconds_to_ns(neg ? -total : total, ns);
}

ll_status ll_parse_duration(const char *s, size_t n, int64_t *ns, ll_error *err) {
    /* D8: a plain decimal number is seconds. */
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') { i++; digits++; }
    if (i < n && s[i] == '.') { i++; while (i < n && s[i] >= '0' && s[i] <= '9') { i++; digits++; } }
    if (digits && i == n && n < 40) {
        char tmp[48];
        memcpy(tmp, s, n);
        tmp[n] = 0;
        if (seconds_to_ns(strtod(tmp, NULL), ns)) return LL_OK;
    }
    if (iso_duration(s, n, ns)) return LL_OK;
    return go_parse_duration(s, n, ns, err);
}

ll_status ll_json_keep_alive(const json_t *v, int64_t *ns, ll_error *err) {
    int64_t r;
    if (json_is_number(v)) {
        if (!seconds_to_ns(json_number_value(v), &r))
            return ll_fail(err, LL_ERR_ARG, "keep_alive is out of range");
    } else if (json_is_string(v)) {
        ll_str s = ll_json_str(v);
        ll_status st = ll_parse_duration(s.p, s.n, &r, err);
        if (st != LL_OK) return st;
    } else {
        const char *kind = json_is_boolean(v) ? "bool" : json_is_array(v) ? "slice"
                         : json_is_object(v) ? "map" : "invalid";
        return ll_fail(err, LL_ERR_ARG, "Unsupported type: '%s'", kind);
    }
    *ns = r < 0 ? -1 : r;
    return LL_OK;
}

/* Go's fmtFrac: v's low prec digits as ".ddd" with trailing zeros dropped. */
static size_t fmt_frac(char *buf, uint64_t v, int prec, uint64_t *rest) {
    char tmp[24];
    size_t w = 0;
    int print = 0;
    for (int i = 0; i < prec; i++) {
        int digit = (int)(v % 10);
        print = print || digit != 0;
        if (print) tmp[w++] = (char)('0' + digit);
        v /= 10;
    }
    size_t k = 0;
    if (print) {
        buf[k++] = '.';
        while (w) buf[k++] = tmp[--w];
    }
    *rest = v;
    return k;
}

char *ll_fmt_go_duration(char *buf, size_t cap, int64_t ns) {
    uint64_t u = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    char out[64];
    size_t k = 0;
    if (ns < 0) out[k++] = '-';
    if (u == 0) {
        snprintf(buf, cap, "0s");
        return buf;
    }
    if (u < 1000000000ULL) {
        int prec;
        const char *unit;
        if (u < 1000) { prec = 0; unit = "ns"; }
        else if (u < 1000000) { prec = 3; unit = "\xC2\xB5s"; }
        else { prec = 6; unit = "ms"; }
        uint64_t whole;
        char frac[24];
        size_t fn = fmt_frac(frac, u, prec, &whole);
        k += (size_t)snprintf(out + k, sizeof out - k, "%" PRIu64 "%.*s%s", whole, (int)fn, frac, unit);
    } else {
        uint64_t secs;
        char frac[24];
        size_t fn = fmt_frac(frac, u, 9, &secs);
        uint64_t h = secs / 3600, m = secs / 60 % 60, s = secs % 60;
        if (h) k += (size_t)snprintf(out + k, sizeof out - k, "%" PRIu64 "h", h);
        if (h || m) k += (size_t)snprintf(out + k, sizeof out - k, "%" PRIu64 "m", m);
        k += (size_t)snprintf(out + k, sizeof out - k, "%" PRIu64 "%.*ss", s, (int)fn, frac);
    }
    snprintf(buf, cap, "%s", out);
    return buf;
}

/* ---- numbers and times ---------------------------------------------------------------------- */

/* Lay out the "%.*e" text sci (shortest digits) the way strconv.FormatFloat(v, fmt, -1) does. */
static size_t go_float_layout(char *buf, const char *sci, int efmt) {
    const char *p = sci;
    size_t k = 0;
    if (*p == '-') { buf[k++] = '-'; p++; }
    char digits[32];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < sizeof digits - 1) digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int x = *p == 'e' ? atoi(p + 1) : 0;
    if (efmt) {
        buf[k++] = digits[0];
        if (nd > 1) {
            buf[k++] = '.';
            memcpy(buf + k, digits + 1, nd - 1);
            k += nd - 1;
        }
        /* strconv writes at least two exponent digits; encoding/json then turns e-07 into e-7 */
        k += (size_t)sprintf(buf + k, x < 0 ? "e-%d" : "e+%02d", x < 0 ? -x : x);
    } else if (x >= 0) {
        for (int i = 0; i <= x; i++) buf[k++] = (size_t)i < nd ? digits[i] : '0';
        if ((size_t)x + 1 < nd) {
            buf[k++] = '.';
            for (size_t i = (size_t)x + 1; i < nd; i++) buf[k++] = digits[i];
        }
    } else {
        buf[k++] = '0';
        buf[k++] = '.';
        for (int i = 0; i < -x - 1; i++) buf[k++] = '0';
        memcpy(buf + k, digits, nd);
        k += nd;
    }
    buf[k] = 0;
    return k;
}

size_t ll_json_fmt_f64(char *buf, double v) {
    if (!isfinite(v)) v = 0;
    if (v == 0) return (size_t)sprintf(buf, signbit(v) ? "-0" : "0");
    char sci[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, v);
        if (strtod(sci, NULL) == v) break;
    }
    double a = fabs(v);
    return go_float_layout(buf, sci, a < 1e-6 || a >= 1e21);
}

size_t ll_json_fmt_f32(char *buf, float v) {
    if (!isfinite(v)) v = 0;
    if (v == 0) return (size_t)sprintf(buf, signbit(v) ? "-0" : "0");
    char sci[40];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, (double)v);
        if (strtof(sci, NULL) == v) break;
    }
    float a = fabsf(v);
    return go_float_layout(buf, sci, a < 1e-6f || a >= 1e21f);
}

int64_t ll_time_unix_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

size_t ll_json_fmt_time(char *buf, size_t cap, int64_t unix_ns, bool utc) {
    if (cap < 40) { if (cap) buf[0] = 0; return 0; }
    if (unix_ns == LL_TIME_ZERO) return (size_t)snprintf(buf, cap, "0001-01-01T00:00:00Z");
    int64_t sec = unix_ns / 1000000000, nsec = unix_ns % 1000000000;
    if (nsec < 0) { nsec += 1000000000; sec--; }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!(utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm))) return (size_t)snprintf(buf, cap, "0001-01-01T00:00:00Z");
    size_t k = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    if (nsec) {
        char f[16];
        int w = snprintf(f, sizeof f, "%09" PRId64, nsec);
        while (w > 0 && f[w - 1] == '0') w--;
        k += (size_t)snprintf(buf + k, cap - k, ".%.*s", w, f);
    }
    long off = utc ? 0 : tm.tm_gmtoff;
    if (off == 0) k += (size_t)snprintf(buf + k, cap - k, "Z");
    else {
        long a = off < 0 ? -off : off;
        k += (size_t)snprintf(buf + k, cap - k, "%c%02ld:%02ld", off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
    }
    return k;
}

/* ---- encoding ------------------------------------------------------------------------------- */

static const char hexd[] = "0123456789abcdef";

static void dump_string(jbuf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    jb_putc(b, '"');
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned c = p[i];
        const char *esc = NULL;
        char u[8];
        size_t len = 1;
        if (c < 0x80) {
            switch (c) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '<': case '>': case '&':
                snprintf(u, sizeof u, "\\u00%c%c", hexd[c >> 4], hexd[c & 15]); esc = u; break;
            default:
                if (c < 0x20) { snprintf(u, sizeof u, "\\u00%c%c", hexd[c >> 4], hexd[c & 15]); esc = u; }
            }
        } else {
            uint32_t cp;
            len = utf8_decode(p + i, n - i, &cp);
            if (!len) { esc = "\\ufffd"; len = 1; }
            else if (cp == 0x2028 || cp == 0x2029 || cp == 0x85) {
                snprintf(u, sizeof u, "\\u%04x", (unsigned)cp);
                esc = u;
            }
        }
        if (esc) {
            jb_put(b, s + i - run, run);
            run = 0;
            jb_puts(b, esc);
        } else {
            run += len;
        }
        i += len;
    }
    jb_put(b, s + n - run, run);
    jb_putc(b, '"');
}

static int dump_value(jbuf *b, const json_t *v, int flags, int depth) {
    if (depth > 1024) return 0;
    char num[40];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        jb_putc(b, '{');
        int first = 1;
        for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
            if (!first) jb_putc(b, ',');
            first = 0;
            dump_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
            jb_putc(b, ':');
            if (!dump_value(b, json_object_iter_value(it), flags, depth + 1)) return 0;
        }
        jb_putc(b, '}');
        return 1;
    }
    case JSON_ARRAY:
        jb_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) jb_putc(b, ',');
            if (!dump_value(b, json_array_get(v, i), flags, depth + 1)) return 0;
        }
        jb_putc(b, ']');
        return 1;
    case JSON_STRING: dump_string(b, json_string_value(v), json_string_length(v)); return 1;
    case JSON_INTEGER:
        jb_put(b, num, (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
        return 1;
    case JSON_REAL:
        jb_put(b, num, flags & LL_JSON_F32 ? ll_json_fmt_f32(num, (float)json_real_value(v))
                                           : ll_json_fmt_f64(num, json_real_value(v)));
        return 1;
    case JSON_TRUE: jb_puts(b, "true"); return 1;
    case JSON_FALSE: jb_puts(b, "false"); return 1;
    default: jb_puts(b, "null"); return 1;
    }
}

ll_status ll_json_dump(const json_t *v, int flags, char **out, size_t *n, ll_error *err) {
    jbuf b = { 0 };
    *out = NULL;
    *n = 0;
    if (!jb_reserve(&b, 64)) return ll_fail(err, LL_ERR_NOMEM, "out of memory writing JSON");
    b.p[0] = 0;
    int ok = v ? dump_value(&b, v, flags, 0) : (jb_puts(&b, "null"), 1);
    if (ok && (flags & LL_JSON_NEWLINE)) jb_putc(&b, '\n');
    if (!ok || b.oom) {
        ll_free(b.p);
        return ok ? ll_fail(err, LL_ERR_NOMEM, "out of memory writing JSON")
                  : ll_fail(err, LL_ERR_LIMIT, "JSON output nested deeper than 1024");
    }
    *out = b.p;
    *n = b.n;
    return LL_OK;
}
