/* gotmpl_exec: runs a parsed template over a JSON data tree with Go's text/template semantics
 * (exec.go, funcs.go) and fmt's printing, plus Ollama's json / toTypeScriptType / dates.
 *
 * Values are small structs (tval) that point into the data tree, the template's arena, or the
 * per-render scratch arena; nothing is reference counted and everything a render allocates is
 * freed at its end. Every loop is metered by a step budget, every output by a byte cap, the
 * scratch arena by its own cap, every recursion (nested blocks, template calls, printing of
 * nested data) by a depth bound. */
#include "template/gotmpl_impl.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define EXEC_MAX_DEPTH   1000   /* nested blocks + template calls + parens, all together */
#define VALUE_MAX_DEPTH  128    /* nesting of data printed or marshalled */
#define FMT_MAX_WIDTH    4096   /* T7 */

const tm_func tm_funcs[] = {
    { "and", 1, -1 }, { "or", 1, -1 }, { "not", 1, 1 }, { "len", 1, 1 }, { "index", 1, -1 },
    { "slice", 1, -1 }, { "eq", 1, -1 }, { "ne", 2, 2 }, { "lt", 2, 2 }, { "le", 2, 2 },
    { "gt", 2, 2 }, { "ge", 2, 2 }, { "print", 0, -1 }, { "printf", 1, -1 },
    { "println", 0, -1 }, { "html", 0, -1 }, { "js", 0, -1 }, { "urlquery", 0, -1 },
    { "call", 1, -1 }, { "json", 1, 1 }, { "currentDate", 0, -1 }, { "yesterdayDate", 0, -1 },
    { "toTypeScriptType", 1, 1 },
};
enum { F_AND, F_OR, F_NOT, F_LEN, F_INDEX, F_SLICE, F_EQ, F_NE, F_LT, F_LE, F_GT, F_GE,
       F_PRINT, F_PRINTF, F_PRINTLN, F_HTML, F_JS, F_URLQUERY, F_CALL, F_JSON, F_CURDATE,
       F_YESTERDAY, F_TSTYPE, F_COUNT };
_Static_assert(sizeof tm_funcs / sizeof tm_funcs[0] == F_COUNT, "function table");

int tm_func_find(const char *name, size_t n) {
    for (int i = 0; i < F_COUNT; i++)
        if (strlen(tm_funcs[i].name) == n && memcmp(tm_funcs[i].name, name, n) == 0) return i;
    return -1;
}

/* functions whose Go parameters are reflect.Value (nil literals and missing values rejected) */
static bool func_takes_values(int fn) {
    return fn <= F_GE || fn == F_CALL;
}

/* ---- values ---- */

enum { V_INVALID, V_NILIF, V_BOOL, V_INT, V_FLOAT, V_STR, V_OBJ };

typedef struct {
    uint8_t k;
    const tm_type *t;     /* V_OBJ */
    const json_t *j;      /* V_OBJ: NULL = nil slice/map/pointer, zero struct */
    size_t off, n;        /* V_OBJ slices: elements [off, off + n) of the array */
    bool b; int64_t i; double f;
    const char *s; size_t sn;
} tval;

static tval v_invalid(void) { tval v = { 0 }; return v; }
static tval v_nilif(void) { tval v = { 0 }; v.k = V_NILIF; return v; }
static tval v_bool(bool b) { tval v = { 0 }; v.k = V_BOOL; v.b = b; return v; }
static tval v_int(int64_t i) { tval v = { 0 }; v.k = V_INT; v.i = i; return v; }
static tval v_float(double f) { tval v = { 0 }; v.k = V_FLOAT; v.f = f; return v; }
static tval v_str(const char *s, size_t n) { tval v = { 0 }; v.k = V_STR; v.s = s; v.sn = n; return v; }

/* the Go value of JSON j seen as type t (a mismatch is the zero value) */
static tval resolve(const json_t *j, const tm_type *t) {
    tval v = { 0 };
    if (j && json_is_null(j)) j = NULL;
    switch (t->kind) {
    case TY_ANY:
        if (!j) return v_nilif();
        if (json_is_string(j)) return v_str(json_string_value(j), json_string_length(j));
        if (json_is_boolean(j)) return v_bool(json_is_true(j));
        if (json_is_number(j)) return v_float(json_number_value(j));
        if (json_is_object(j)) { v.k = V_OBJ; v.t = &tm_t_map_any; v.j = j; return v; }
        v.k = V_OBJ; v.t = &tm_t_slice_any; v.j = j; v.n = json_array_size(j);
        return v;
    case TY_STRING: return json_is_string(j) ? v_str(json_string_value(j), json_string_length(j)) : v_str("", 0);
    case TY_BOOL: return v_bool(json_is_true(j));
    case TY_INT: return v_int(json_is_integer(j) ? json_integer_value(j) : 0);
    case TY_FLOAT: return v_float(json_is_number(j) ? json_number_value(j) : 0);
    default: break;
    }
    v.k = V_OBJ; v.t = t;
    switch (t->kind) {
    case TY_SLICE:
        if (json_is_array(j)) { v.j = j; v.n = json_array_size(j); }
        break;
    case TY_PROPTYPE:
        if (json_is_string(j)) { v.j = j; v.n = 1; }
        else if (json_is_array(j)) { v.j = j; v.n = json_array_size(j); }
        break;
    case TY_BYTES: if (json_is_string(j)) v.j = j; break;
    default: if (json_is_object(j)) v.j = j; break;   /* MAP, OMAP, STRUCT */
    }
    return v;
}

static bool is_slice(const tval *v) {
    return v->k == V_OBJ && (v->t->kind == TY_SLICE || v->t->kind == TY_PROPTYPE);
}
static bool is_map(const tval *v) { return v->k == V_OBJ && (v->t->kind == TY_MAP || v->t->kind == TY_OMAP); }

static tval slice_elem(const tval *v, size_t i) {
    if (v->t->kind == TY_PROPTYPE && json_is_string(v->j)) return resolve(v->j, &tm_t_string);
    return resolve(json_array_get(v->j, v->off + i), v->t->elem);
}

/* map value for key (typed root keys, else the element type); *found says whether present */
static tval map_get(const tval *m, const char *key, bool *found) {
    const json_t *j = m->j ? json_object_get(m->j, key) : NULL;
    *found = j != NULL;
    for (size_t i = 0; i < m->t->n_fields; i++)
        if (!strcmp(m->t->fields[i].key, key)) return j ? resolve(j, m->t->fields[i].t) : v_nilif();
    return resolve(j, m->t->elem);
}

/* ---- base64 (ImageData prints as its bytes) ---- */

static int b64v(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* ---- executor state ---- */

typedef struct { ll_str name; tval v; } xvar;

typedef struct {
    const ll_tmpl *t;
    ll_error *err;
    ll_status st;
    tm_buf out;
    tm_arena scratch;
    uint64_t steps, max_steps;
    int64_t now;
    xvar *vars; size_t n_vars, cap_vars;
    int depth, calls;
    int brk;                 /* 1 break, 2 continue, pending */
    const tm_node *at;       /* for error positions */
} ex;

static ll_status xfail(ex *e, ll_status code, const char *fmt, ...) LL_PRINTF(3, 4);
static ll_status xfail(ex *e, ll_status code, const char *fmt, ...) {
    if (e->st) return e->st;
    char m[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    e->st = ll_fail(e->err, code, "template: %u:%u: %s", e->at ? e->at->line : 0, e->at ? e->at->col : 0, m);
    return e->st;
}

static ll_status buf_fail(ex *e, int r, const tm_buf *b) {
    if (r == -1) return xfail(e, LL_ERR_NOMEM, "out of memory");
    if (b == &e->out) return xfail(e, LL_ERR_LIMIT, "rendered prompt exceeds %zu MiB", e->out.max >> 20);
    return xfail(e, LL_ERR_LIMIT, "intermediate value exceeds %zu bytes", b->max);
}
#define PUT(e, b, s, n) do { int _r = tm_buf_put((b), (s), (n)); if (_r) return buf_fail((e), _r, (b)); } while (0)
#define PUTS(e, b, s) do { const char *_s = (s); PUT(e, b, _s, strlen(_s)); } while (0)

static bool step(ex *e) {
    if (++e->steps > e->max_steps) {
        xfail(e, LL_ERR_LIMIT, "template execution exceeds %llu steps", (unsigned long long)e->max_steps);
        return false;
    }
    return true;
}

/* copy bytes into the scratch arena (bounded) */
static ll_status scratch_fail(ex *e) {
    if (!e->scratch.over_cap) return xfail(e, LL_ERR_NOMEM, "out of memory");
    return xfail(e, LL_ERR_LIMIT, "template scratch memory exceeds %zu bytes", e->scratch.cap_bytes);
}

static const char *keep(ex *e, const char *s, size_t n) {
    char *p = tm_alloc(&e->scratch, n + 1);
    if (!p) { scratch_fail(e); return NULL; }
    memcpy(p, s, n);
    return p;
}

static void scratch_buf(ex *e, tm_buf *b) {
    memset(b, 0, sizeof *b);
    b->max = e->out.max;   /* no single intermediate string may exceed the output cap */
}
/* moves a buffer's bytes into the arena as a string value */
static bool buf_to_str(ex *e, tm_buf *b, tval *v) {
    const char *s = keep(e, b->p ? b->p : "", b->n);
    size_t n = b->n;
    ll_free(b->p);
    memset(b, 0, sizeof *b);
    if (!s) return false;
    *v = v_str(s, n);
    return true;
}

/* ---- Go number formatting ---- */

/* shortest digits that round-trip: value = 0.d[0]d[1]... * 10^dp */
static void float_digits(double f, char *d, int *nd, int *dp) {
    char buf[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    int k = 0;
    const char *p = buf;
    for (; *p && *p != 'e'; p++) if (isdigit((unsigned char)*p)) d[k++] = *p;
    int exp = atoi(p + 1);
    while (k > 1 && d[k - 1] == '0') k--;
    d[k] = 0;
    *nd = k; *dp = exp + 1;
}

/* Go's float formatting, shortest digits: fmt %v is strconv 'g' with precision -1, which
 * switches to an exponent when exp < -4 || exp >= 6 (so 1e6 prints "1e+06", as Helm users
 * know); encoding/json uses %f unless |f| < 1e-6 or >= 1e21, and trims "e-07" to "e-7". */
static void go_float(double f, bool json, char *out, size_t cap) {
    if (isnan(f)) { snprintf(out, cap, "NaN"); return; }
    if (isinf(f)) { snprintf(out, cap, f > 0 ? "+Inf" : "-Inf"); return; }
    if (f == 0) { snprintf(out, cap, signbit(f) && !json ? "-0" : "0"); return; }
    char d[32]; int nd, dp;
    bool neg = f < 0;
    float_digits(fabs(f), d, &nd, &dp);
    int exp = dp - 1;
    bool use_e = json ? (fabs(f) < 1e-6 || fabs(f) >= 1e21) : (exp < -4 || exp >= 6);
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (use_e) {
        out[o++] = d[0];
        if (nd > 1) { out[o++] = '.'; for (int i = 1; i < nd; i++) out[o++] = d[i]; }
        snprintf(out + o, cap - o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        if (json) {   /* encoding/json: e-07 -> e-7 */
            char *e = strchr(out, 'e');
            if (e && e[2] == '0' && e[3]) memmove(e + 2, e + 3, strlen(e + 3) + 1);
        }
        return;
    }
    if (dp <= 0) {
        out[o++] = '0'; out[o++] = '.';
        for (int i = 0; i < -dp; i++) out[o++] = '0';
        for (int i = 0; i < nd; i++) out[o++] = d[i];
    } else {
        for (int i = 0; i < dp; i++) out[o++] = i < nd ? d[i] : '0';
        if (nd > dp) { out[o++] = '.'; for (int i = dp; i < nd; i++) out[o++] = d[i]; }
    }
    out[o] = 0;
}

/* ---- JSON (Go's encoding/json with HTML escaping) ---- */

static ll_status json_str(ex *e, tm_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    PUT(e, b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') { i++; continue; }
            PUT(e, b, s + start, i - start);
            char esc[8];
            switch (c) {
            case '"': case '\\': esc[0] = '\\'; esc[1] = (char)c; PUT(e, b, esc, 2); break;
            case '\b': PUT(e, b, "\\b", 2); break;
            case '\f': PUT(e, b, "\\f", 2); break;
            case '\n': PUT(e, b, "\\n", 2); break;
            case '\r': PUT(e, b, "\\r", 2); break;
            case '\t': PUT(e, b, "\\t", 2); break;
            default:
                memcpy(esc, "\\u00", 4); esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
                PUT(e, b, esc, 6);
            }
            start = ++i;
            continue;
        }
        /* multi-byte: validate; invalid -> \ufffd; U+2028/2029 escaped */
        size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        bool ok = k && i + k <= n;
        for (size_t j = 1; ok && j < k; j++) ok = ((unsigned char)s[i + j] & 0xC0) == 0x80;
        uint32_t r = 0;
        if (ok) {
            r = k == 2 ? (c & 31u) : k == 3 ? (c & 15u) : (c & 7u);
            for (size_t j = 1; j < k; j++) r = (r << 6) | ((unsigned char)s[i + j] & 0x3Fu);
            if ((k == 3 && (r < 0x800 || (r >= 0xD800 && r < 0xE000))) || (k == 4 && (r < 0x10000 || r > 0x10FFFF))) ok = false;
        }
        if (!ok) { PUT(e, b, s + start, i - start); PUT(e, b, "\\ufffd", 6); start = ++i; continue; }
        if (r == 0x2028 || r == 0x2029) {
            PUT(e, b, s + start, i - start);
            PUT(e, b, r == 0x2028 ? "\\u2028" : "\\u2029", 6);
            start = i + k;
        }
        i += k;
    }
    PUT(e, b, s + start, n - start);
    PUT(e, b, "\"", 1);
    return LL_OK;
}

static int key_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* sorted keys of an object, in the scratch arena */
static const char **sorted_keys(ex *e, const json_t *o, size_t *n) {
    *n = json_object_size(o);
    const char **keys = tm_alloc(&e->scratch, (*n ? *n : 1) * sizeof *keys);
    if (!keys) { scratch_fail(e); return NULL; }
    size_t i = 0;
    const char *k; json_t *v;
    json_object_foreach((json_t *)o, k, v) { (void)v; keys[i++] = k; }
    qsort(keys, *n, sizeof *keys, key_cmp);
    return keys;
}

static bool is_empty_value(const tval *v) {
    switch (v->k) {
    case V_INVALID: case V_NILIF: return true;
    case V_BOOL: return !v->b;
    case V_INT: return v->i == 0;
    case V_FLOAT: return v->f == 0;
    case V_STR: return v->sn == 0;
    default:
        if (v->t->kind == TY_STRUCT) return v->t->ptr && !v->j;
        if (is_slice(v)) return v->n == 0;
        if (v->t->kind == TY_BYTES) return !v->j || json_string_length(v->j) == 0;
        if (v->t->kind == TY_OMAP) return !v->j;
        return !v->j || json_object_size(v->j) == 0;
    }
}

/* JSON as received, keys in their order, strings escaped as Go's encoder does: the schema
 * keywords Ollama's struct would drop (ollama-api.md §1.2.1, §5 D10). */
static ll_status json_raw(ex *e, tm_buf *b, const json_t *j, int depth) {
    if (depth > VALUE_MAX_DEPTH) return xfail(e, LL_ERR_LIMIT, "json: value nested deeper than %d", VALUE_MAX_DEPTH);
    char num[64];
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        PUT(e, b, "{", 1);
        const char *k;
        json_t *x;
        bool first = true;
        json_object_foreach((json_t *)j, k, x) {
            if (!first) PUT(e, b, ",", 1);
            first = false;
            if (json_str(e, b, k, strlen(k))) return e->st;
            PUT(e, b, ":", 1);
            if (json_raw(e, b, x, depth + 1)) return e->st;
        }
        PUT(e, b, "}", 1);
        return LL_OK;
    }
    case JSON_ARRAY:
        PUT(e, b, "[", 1);
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (i) PUT(e, b, ",", 1);
            if (json_raw(e, b, json_array_get(j, i), depth + 1)) return e->st;
        }
        PUT(e, b, "]", 1);
        return LL_OK;
    case JSON_STRING: return json_str(e, b, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: snprintf(num, sizeof num, "%lld", (long long)json_integer_value(j)); PUTS(e, b, num); return LL_OK;
    case JSON_REAL: go_float(json_real_value(j), true, num, sizeof num); PUTS(e, b, num); return LL_OK;
    case JSON_TRUE: PUTS(e, b, "true"); return LL_OK;
    case JSON_FALSE: PUTS(e, b, "false"); return LL_OK;
    default: PUTS(e, b, "null"); return LL_OK;
    }
}

static ll_status json_val(ex *e, tm_buf *b, const tval *v, int depth) {
    if (depth > VALUE_MAX_DEPTH) return xfail(e, LL_ERR_LIMIT, "json: value nested deeper than %d", VALUE_MAX_DEPTH);
    char num[64];
    switch (v->k) {
    case V_INVALID: case V_NILIF: PUTS(e, b, "null"); return LL_OK;
    case V_BOOL: PUTS(e, b, v->b ? "true" : "false"); return LL_OK;
    case V_INT: snprintf(num, sizeof num, "%lld", (long long)v->i); PUTS(e, b, num); return LL_OK;
    case V_FLOAT: go_float(v->f, true, num, sizeof num); PUTS(e, b, num); return LL_OK;
    case V_STR: return json_str(e, b, v->s, v->sn);
    }
    switch (v->t->kind) {
    case TY_BYTES:
        if (!v->j) { PUTS(e, b, "null"); return LL_OK; }
        return json_str(e, b, json_string_value(v->j), json_string_length(v->j));
    case TY_PROPTYPE:
        if (v->n == 1) { tval s = slice_elem(v, 0); return json_val(e, b, &s, depth + 1); }
        /* an array of strings (nil -> null) */
        __attribute__((fallthrough));
    case TY_SLICE:
        if (!v->j) { PUTS(e, b, "null"); return LL_OK; }
        PUT(e, b, "[", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i) PUT(e, b, ",", 1);
            tval x = slice_elem(v, i);
            if (json_val(e, b, &x, depth + 1)) return e->st;
        }
        PUT(e, b, "]", 1);
        return LL_OK;
    case TY_MAP: case TY_OMAP: {
        if (!v->j) { PUTS(e, b, "null"); return LL_OK; }
        size_t n;
        const char **keys;
        if (v->t->kind == TY_MAP) { if (!(keys = sorted_keys(e, v->j, &n))) return e->st; }
        else {   /* ordered map: insertion order */
            n = json_object_size(v->j);
            if (!(keys = tm_alloc(&e->scratch, (n ? n : 1) * sizeof *keys))) return scratch_fail(e);
            size_t i = 0; const char *k; json_t *x;
            json_object_foreach((json_t *)v->j, k, x) { (void)x; keys[i++] = k; }
        }
        PUT(e, b, "{", 1);
        for (size_t i = 0; i < n; i++) {
            if (i) PUT(e, b, ",", 1);
            if (json_str(e, b, keys[i], strlen(keys[i]))) return e->st;
            PUT(e, b, ":", 1);
            bool found;
            tval x = map_get(v, keys[i], &found);
            if (json_val(e, b, &x, depth + 1)) return e->st;
        }
        PUT(e, b, "}", 1);
        return LL_OK;
    }
    case TY_STRUCT: {
        /* §5 D10: a tool's schema keeps every keyword. The keywords of Ollama's struct come
         * first, in its order (so prompts stay byte-identical to Ollama's where it keeps
         * everything), then the ones it would drop, as received; an empty or absent schema
         * is an empty object schema instead of {"type":"","properties":null}. */
        const bool schema = v->t == &tm_t_params || v->t == &tm_t_property;
        if (v->t == &tm_t_params && !(v->j && json_is_object(v->j) && json_object_size(v->j))) {
            PUTS(e, b, "{\"type\":\"object\",\"properties\":{}}");
            return LL_OK;
        }
        if (v->t->ptr && !v->j) { PUTS(e, b, "null"); return LL_OK; }
        PUT(e, b, "{", 1);
        bool first = true;
        for (size_t i = 0; i < v->t->n_fields; i++) {
            const tm_field *f = &v->t->fields[i];
            tval x = resolve(v->j ? json_object_get(v->j, f->key) : NULL, f->t);
            if (f->omitempty && is_empty_value(&x)) continue;
            if (!first) PUT(e, b, ",", 1);
            first = false;
            if (json_str(e, b, f->jkey, strlen(f->jkey))) return e->st;
            PUT(e, b, ":", 1);
            if (json_val(e, b, &x, depth + 1)) return e->st;
        }
        if (schema && v->j && json_is_object(v->j)) {
            const char *k;
            json_t *x;
            json_object_foreach((json_t *)v->j, k, x) {
                bool known = false;
                for (size_t i = 0; i < v->t->n_fields && !known; i++) known = !strcmp(v->t->fields[i].key, k);
                if (known) continue;
                if (!first) PUT(e, b, ",", 1);
                first = false;
                if (json_str(e, b, k, strlen(k))) return e->st;
                PUT(e, b, ":", 1);
                if (json_raw(e, b, x, depth + 1)) return e->st;
            }
        }
        PUT(e, b, "}", 1);
        return LL_OK;
    }
    }
    PUTS(e, b, "null");
    return LL_OK;
}

/* ---- fmt %v ---- */

static ll_status fmt_v(ex *e, tm_buf *b, const tval *v, int depth);

/* String() of the types that have one; *done false when v has none */
static ll_status stringer(ex *e, tm_buf *b, const tval *v, bool *done) {
    *done = false;
    if (v->k != V_OBJ || v->t->stringer == STR_NONE) return LL_OK;
    *done = true;
    switch (v->t->stringer) {
    case STR_JSON_NILOBJ:
        if (!v->j) { PUTS(e, b, "{}"); return LL_OK; }
        return json_val(e, b, v, 0);
    case STR_JSON: return json_val(e, b, v, 0);
    case STR_PROPTYPE:
        if (v->n == 0) return LL_OK;
        if (v->n == 1) { tval s = slice_elem(v, 0); PUT(e, b, s.s, s.sn); return LL_OK; }
        PUT(e, b, "[", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i) PUT(e, b, " ", 1);
            tval s = slice_elem(v, i);
            PUT(e, b, s.s, s.sn);
        }
        PUT(e, b, "]", 1);
        return LL_OK;
    }
    return LL_OK;
}

static ll_status fmt_v(ex *e, tm_buf *b, const tval *v, int depth) {
    if (depth > VALUE_MAX_DEPTH) return xfail(e, LL_ERR_LIMIT, "print: value nested deeper than %d", VALUE_MAX_DEPTH);
    char num[64];
    switch (v->k) {
    case V_INVALID: case V_NILIF: PUTS(e, b, "<nil>"); return LL_OK;
    case V_BOOL: PUTS(e, b, v->b ? "true" : "false"); return LL_OK;
    case V_INT: snprintf(num, sizeof num, "%lld", (long long)v->i); PUTS(e, b, num); return LL_OK;
    case V_FLOAT: go_float(v->f, false, num, sizeof num); PUTS(e, b, num); return LL_OK;
    case V_STR: PUT(e, b, v->s, v->sn); return LL_OK;
    }
    bool done;
    if (stringer(e, b, v, &done) || done) return e->st;
    switch (v->t->kind) {
    case TY_SLICE: case TY_PROPTYPE:
        PUT(e, b, "[", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i) PUT(e, b, " ", 1);
            tval x = slice_elem(v, i);
            if (fmt_v(e, b, &x, depth + 1)) return e->st;
        }
        PUT(e, b, "]", 1);
        return LL_OK;
    case TY_BYTES: {
        PUT(e, b, "[", 1);
        if (v->j) {
            const char *s = json_string_value(v->j);
            size_t n = json_string_length(v->j), bits = 0, k = 0;
            uint32_t acc = 0;
            for (size_t i = 0; i < n; i++) {
                int d = b64v((unsigned char)s[i]);
                if (d < 0) continue;
                acc = (acc << 6) | (uint32_t)d; bits += 6;
                if (bits >= 8) {
                    bits -= 8;
                    snprintf(num, sizeof num, k++ ? " %u" : "%u", (acc >> bits) & 0xFF);
                    PUTS(e, b, num);
                }
            }
        }
        PUT(e, b, "]", 1);
        return LL_OK;
    }
    case TY_MAP: case TY_OMAP: {
        PUTS(e, b, v->t->kind == TY_OMAP ? "&map[" : "map[");
        size_t n = 0;
        const char **keys = v->j ? sorted_keys(e, v->j, &n) : NULL;
        if (v->j && !keys) return e->st;
        for (size_t i = 0; i < n; i++) {
            if (i) PUT(e, b, " ", 1);
            PUTS(e, b, keys[i]);
            PUT(e, b, ":", 1);
            bool found;
            tval x = map_get(v, keys[i], &found);
            if (fmt_v(e, b, &x, depth + 1)) return e->st;
        }
        PUT(e, b, "]", 1);
        return LL_OK;
    }
    case TY_STRUCT:
        if (v->t->ptr && !v->j) { PUTS(e, b, "<nil>"); return LL_OK; }
        if (v->t->ptr) PUT(e, b, "&", 1);   /* Go prints a nested pointer as its address */
        PUT(e, b, "{", 1);
        for (size_t i = 0; i < v->t->n_fields; i++) {
            if (i) PUT(e, b, " ", 1);
            tval x = resolve(v->j ? json_object_get(v->j, v->t->fields[i].key) : NULL, v->t->fields[i].t);
            if (fmt_v(e, b, &x, depth + 1)) return e->st;
        }
        PUT(e, b, "}", 1);
        return LL_OK;
    }
    return LL_OK;
}

static const char *type_name(const tval *v) {
    switch (v->k) {
    case V_INVALID: case V_NILIF: return "<nil>";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float64";
    case V_STR: return "string";
    default: return v->t->go_name;
    }
}

/* ---- truth, comparison ---- */

static bool truth(const tval *v) {
    switch (v->k) {
    case V_INVALID: case V_NILIF: return false;
    case V_BOOL: return v->b;
    case V_INT: return v->i != 0;
    case V_FLOAT: return v->f != 0;
    case V_STR: return v->sn > 0;
    default:
        if (v->t->kind == TY_STRUCT) return !v->t->ptr || v->j;   /* structs are always true */
        if (is_slice(v)) return v->n > 0;
        if (v->t->kind == TY_BYTES) return v->j && json_string_length(v->j) > 0;
        if (v->t->kind == TY_OMAP) return v->j != NULL;           /* a pointer */
        return v->j && json_object_size(v->j) > 0;
    }
}

enum { BK_INVALID, BK_BOOL, BK_INT, BK_FLOAT, BK_STRING };
static int basic_kind(const tval *v) {
    switch (v->k) {
    case V_BOOL: return BK_BOOL;
    case V_INT: return BK_INT;
    case V_FLOAT: return BK_FLOAT;
    case V_STR: return BK_STRING;
    default: return BK_INVALID;
    }
}

/* Go's eq for one pair; returns -1 after setting an error */
static int eq2(ex *e, const tval *a, const tval *b) {
    int ka = basic_kind(a), kb = basic_kind(b);
    bool va = a->k != V_INVALID && a->k != V_NILIF, vb = b->k != V_INVALID && b->k != V_NILIF;
    if (ka != kb) {
        if (va && vb) { xfail(e, LL_ERR_FORMAT, "error calling eq: incompatible types for comparison"); return -1; }
        return 0;
    }
    switch (ka) {
    case BK_BOOL: return a->b == b->b;
    case BK_INT: return a->i == b->i;
    case BK_FLOAT: return a->f == b->f;
    case BK_STRING: return a->sn == b->sn && memcmp(a->s, b->s, a->sn) == 0;
    }
    if (!va || !vb) return !va && !vb;
    /* composite: only pointers (messages) compare, by identity */
    if (a->t->kind == TY_STRUCT && a->t->ptr && a->t == b->t) return a->j == b->j;
    if (a->t->kind == TY_STRUCT && a->t->ptr && b->t->kind == TY_STRUCT && b->t->ptr) return 0;
    xfail(e, LL_ERR_FORMAT, "error calling eq: non-comparable type %s", type_name(a));
    return -1;
}

/* Go's lt; -1 on error */
static int lt2(ex *e, const char *fn, const tval *a, const tval *b) {
    int ka = basic_kind(a), kb = basic_kind(b);
    if (ka == BK_INVALID || kb == BK_INVALID || ka == BK_BOOL || kb == BK_BOOL) {
        xfail(e, LL_ERR_FORMAT, "error calling %s: invalid type for comparison", fn);
        return -1;
    }
    if (ka != kb) { xfail(e, LL_ERR_FORMAT, "error calling %s: incompatible types for comparison", fn); return -1; }
    switch (ka) {
    case BK_INT: return a->i < b->i;
    case BK_FLOAT: return a->f < b->f;
    default: {
        size_t n = a->sn < b->sn ? a->sn : b->sn;
        int c = n ? memcmp(a->s, b->s, n) : 0;
        return c < 0 || (c == 0 && a->sn < b->sn);
    }
    }
}

/* ---- output ---- */

static ll_status out_put(ex *e, const char *s, size_t n) {
    PUT(e, &e->out, s, n);
    return LL_OK;
}

/* text/template's printValue: missing prints "<no value>", a pointer is dereferenced */
static ll_status print_action(ex *e, const tval *v) {
    if (v->k == V_INVALID || v->k == V_NILIF) return out_put(e, "<no value>", 10);
    if (v->k == V_OBJ && v->t->kind == TY_STRUCT && v->t->ptr && v->j) {
        tval x = *v;
        tm_buf *b = &e->out;
        PUT(e, b, "{", 1);
        for (size_t i = 0; i < x.t->n_fields; i++) {
            if (i) PUT(e, b, " ", 1);
            tval f = resolve(json_object_get(x.j, x.t->fields[i].key), x.t->fields[i].t);
            if (fmt_v(e, b, &f, 1)) return e->st;
        }
        PUT(e, b, "}", 1);
        return LL_OK;
    }
    return fmt_v(e, &e->out, v, 0);
}

/* ---- variables ---- */

static ll_status var_push(ex *e, ll_str name, tval v) {
    if (e->n_vars == e->cap_vars) {
        size_t nc = e->cap_vars ? e->cap_vars * 2 : 16;
        xvar *m = ll_realloc(e->vars, nc * sizeof *m);
        if (!m) return xfail(e, LL_ERR_NOMEM, "out of memory");
        e->vars = m; e->cap_vars = nc;
    }
    e->vars[e->n_vars++] = (xvar){ name, v };
    return LL_OK;
}
static xvar *var_find(ex *e, ll_str name) {
    for (size_t i = e->n_vars; i-- > 0;) if (ll_str_eq(e->vars[i].name, name)) return &e->vars[i];
    return NULL;
}

/* ---- evaluation ---- */

static ll_status tm_ts_type(ex *e, const tval *p, tm_buf *b, int depth);
static ll_status tm_call(ex *e, tval dot, const tm_node *fnn, const tm_node *const *argn,
                         size_t n_argn, const tval *final, tval *out);
static size_t tm_utf8_put(char *o, uint32_t r);
static ll_status eval_pipeline(ex *e, tval dot, const tm_node *pipe, tval *out);
static ll_status walk(ex *e, tval dot, const tm_node *n);

/* Go's evalField: receiver.name */
static ll_status eval_field(ex *e, tval recv, ll_str name, bool has_args, tval *out) {
    char key[256];
    if (name.n >= sizeof key) return xfail(e, LL_ERR_FORMAT, "field name too long");
    memcpy(key, name.p, name.n); key[name.n] = 0;
    if (recv.k == V_INVALID) { *out = v_invalid(); return LL_OK; }
    if (recv.k == V_NILIF) return xfail(e, LL_ERR_FORMAT, "nil pointer evaluating interface {}.%s", key);
    if (recv.k != V_OBJ) return xfail(e, LL_ERR_FORMAT, "can't evaluate field %s in type %s", key, type_name(&recv));
    /* the methods Ollama's types have */
    if (!strcmp(key, "String") && recv.t->stringer != STR_NONE) {
        tm_buf b; scratch_buf(e, &b);
        bool done;
        if (stringer(e, &b, &recv, &done)) { ll_free(b.p); return e->st; }
        return buf_to_str(e, &b, out) ? LL_OK : e->st;
    }
    if (!strcmp(key, "ToTypeScriptType") && recv.t == &tm_t_property) {
        tm_buf b; scratch_buf(e, &b);
        if (tm_ts_type(e, &recv, &b, 0)) { ll_free(b.p); return e->st; }
        return buf_to_str(e, &b, out) ? LL_OK : e->st;
    }
    switch (recv.t->kind) {
    case TY_STRUCT:
        for (size_t i = 0; i < recv.t->n_fields; i++)
            if (!strcmp(recv.t->fields[i].go, key)) {
                if (recv.t->ptr && !recv.j)
                    return xfail(e, LL_ERR_FORMAT, "nil pointer evaluating %s.%s", recv.t->go_name, key);
                if (has_args) return xfail(e, LL_ERR_FORMAT, "%s has arguments but cannot be invoked as function", key);
                *out = resolve(recv.j ? json_object_get(recv.j, recv.t->fields[i].key) : NULL, recv.t->fields[i].t);
                return LL_OK;
            }
        return xfail(e, LL_ERR_FORMAT, "%s has no field '%s'", recv.t->what ? recv.t->what : recv.t->go_name, key);
    case TY_MAP: {
        if (has_args) return xfail(e, LL_ERR_FORMAT, "%s is not a method but has arguments", key);
        bool found;
        *out = map_get(&recv, key, &found);   /* missingkey=zero: the element type's zero */
        return LL_OK;
    }
    case TY_OMAP:
        if (!recv.j) return xfail(e, LL_ERR_FORMAT, "nil pointer evaluating %s.%s", recv.t->go_name, key);
        return xfail(e, LL_ERR_FORMAT, "%s has no field '%s'", recv.t->what, key);
    default:
        return xfail(e, LL_ERR_FORMAT, "can't evaluate field %s in type %s", key, type_name(&recv));
    }
}

static ll_status eval_chain(ex *e, tval recv, const ll_str *ids, size_t n, bool has_args, tval *out) {
    for (size_t i = 0; i < n; i++)
        if (eval_field(e, recv, ids[i], has_args && i + 1 == n, &recv)) return e->st;
    *out = recv;
    return LL_OK;
}

static tval number_value(const tm_node *n) {
    bool floaty = false;
    for (size_t i = 0; i < n->sn; i++) if (strchr(".eEpP", n->s[i])) floaty = true;
    bool hex = n->sn > 1 && (n->s[0] == '0' || ((n->s[0] == '-' || n->s[0] == '+') && n->s[1] == '0')) &&
               memchr(n->s, 'x', n->sn) && !memchr(n->s, 'p', n->sn) && !memchr(n->s, 'P', n->sn);
    if (n->is_float && floaty && !hex && n->s[0] != '\'') return v_float(n->f);
    if (n->is_int) return v_int(n->i);
    return v_float(n->f);
}

/* an argument of a function call (Go's evalArg) */
static ll_status eval_arg(ex *e, tval dot, const tm_node *n, bool values, tval *out) {
    const tm_node *saved = e->at;
    e->at = n;
    ll_status st = LL_OK;
    switch (n->kind) {
    case TN_DOT: *out = dot; break;
    case TN_NIL:
        if (values) st = xfail(e, LL_ERR_FORMAT, "cannot assign nil to reflect.Value");
        *out = v_nilif();
        break;
    case TN_FIELD: st = eval_chain(e, dot, n->ids, n->n_ids, false, out); break;
    case TN_VAR: {
        xvar *x = var_find(e, n->ids[0]);
        if (!x) { st = xfail(e, LL_ERR_FORMAT, "undefined variable: %.*s", (int)n->ids[0].n, n->ids[0].p); break; }
        st = eval_chain(e, x->v, n->ids + 1, n->n_ids - 1, false, out);
        break;
    }
    case TN_PIPE: st = eval_pipeline(e, dot, n, out); break;
    case TN_CHAIN: {
        tval base;
        if (n->pipe->kind == TN_NIL) { st = xfail(e, LL_ERR_FORMAT, "indirection through explicit nil"); break; }
        if ((st = eval_arg(e, dot, n->pipe, false, &base))) break;
        if (base.k == V_NILIF) base = v_invalid();
        st = eval_chain(e, base, n->ids, n->n_ids, false, out);
        break;
    }
    case TN_FUNC: {
        st = tm_call(e, dot, n, NULL, 0, NULL, out);
        break;
    }
    case TN_BOOL: *out = v_bool(n->b); break;
    case TN_NUM: *out = number_value(n); break;
    case TN_STR: *out = v_str(n->s, n->sn); break;
    default: st = xfail(e, LL_ERR_FORMAT, "can't handle argument");
    }
    if (!st && values && out->k == V_INVALID && n->kind != TN_NIL)
        st = xfail(e, LL_ERR_FORMAT, "invalid value; expected reflect.Value");
    e->at = saved;
    return st;
}

/* ---- printf (Go's fmt, the verbs templates use) ---- */

typedef struct { bool minus, plus, space, zero, sharp; int width, prec; } fmtspec;

static size_t utf8_count(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) if (((unsigned char)s[i] & 0xC0) != 0x80) k++;
    return k;
}

static ll_status pad_put(ex *e, tm_buf *b, const fmtspec *f, const char *s, size_t n, bool numeric) {
    size_t w = utf8_count(s, n);
    size_t padn = f->width > 0 && (size_t)f->width > w ? (size_t)f->width - w : 0;
    if (!f->minus && padn) {
        char c = f->zero && numeric ? '0' : ' ';
        size_t sign = numeric && f->zero && n && (s[0] == '-' || s[0] == '+') ? 1 : 0;
        if (sign) { PUT(e, b, s, 1); s++; n--; }
        for (size_t i = 0; i < padn; i++) PUT(e, b, &c, 1);
    }
    PUT(e, b, s, n);
    if (f->minus) for (size_t i = 0; i < padn; i++) PUT(e, b, " ", 1);
    return LL_OK;
}

static ll_status bad_verb(ex *e, tm_buf *b, char verb, const tval *v) {
    char head[8] = { '%', '!', verb, '(', 0 };
    PUTS(e, b, head);
    if (v->k == V_INVALID || v->k == V_NILIF) { PUTS(e, b, "<nil>)"); return LL_OK; }
    PUTS(e, b, type_name(v));
    PUT(e, b, "=", 1);
    if (fmt_v(e, b, v, 0)) return e->st;
    PUT(e, b, ")", 1);
    return LL_OK;
}

static ll_status quote_go(ex *e, tm_buf *b, const char *s, size_t n) {
    PUT(e, b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        switch (c) {
        case '"': PUTS(e, b, "\\\""); continue;
        case '\\': PUTS(e, b, "\\\\"); continue;
        case '\a': PUTS(e, b, "\\a"); continue;
        case '\b': PUTS(e, b, "\\b"); continue;
        case '\f': PUTS(e, b, "\\f"); continue;
        case '\n': PUTS(e, b, "\\n"); continue;
        case '\r': PUTS(e, b, "\\r"); continue;
        case '\t': PUTS(e, b, "\\t"); continue;
        case '\v': PUTS(e, b, "\\v"); continue;
        }
        if (c < 0x20 || c == 0x7f) { snprintf(esc, sizeof esc, "\\x%02x", c); PUTS(e, b, esc); continue; }
        PUT(e, b, s + i, 1);
    }
    PUT(e, b, "\"", 1);
    return LL_OK;
}

static ll_status fmt_one(ex *e, tm_buf *b, const fmtspec *f, char verb, const tval *v) {
    char tmp[4200 + 64], cf[32];
    switch (verb) {
    case 'v': {
        if (v->k == V_FLOAT || v->k == V_INT || v->k == V_BOOL || v->k == V_STR || v->k == V_INVALID || v->k == V_NILIF) {
            tm_buf s; scratch_buf(e, &s);
            if (fmt_v(e, &s, v, 0)) { ll_free(s.p); return e->st; }
            ll_status st = pad_put(e, b, f, s.p ? s.p : "", s.n, v->k == V_INT || v->k == V_FLOAT);
            ll_free(s.p);
            return st;
        }
        return fmt_v(e, b, v, 0);
    }
    case 's': case 'q': case 'x': case 'X': {
        bool done = false;
        tm_buf s; scratch_buf(e, &s);
        tval str = *v;
        if (v->k == V_OBJ) {
            if (stringer(e, &s, v, &done)) { ll_free(s.p); return e->st; }
            if (done) str = v_str(s.p ? s.p : "", s.n);
        }
        if (str.k == V_STR) {
            const char *p = str.s; size_t n = str.sn;
            if (f->prec >= 0 && verb == 's') {   /* precision counts runes */
                size_t k = 0, r = 0;
                while (k < n && r < (size_t)f->prec) { k++; while (k < n && ((unsigned char)p[k] & 0xC0) == 0x80) k++; r++; }
                n = k;
            }
            ll_status st = LL_OK;
            if (verb == 's') st = pad_put(e, b, f, p, n, false);
            else if (verb == 'q') {
                tm_buf q; scratch_buf(e, &q);
                if (!quote_go(e, &q, p, n)) st = pad_put(e, b, f, q.p, q.n, false);
                else st = e->st;
                ll_free(q.p);
            } else {
                tm_buf h; scratch_buf(e, &h);
                for (size_t i = 0; i < n && !st; i++) {
                    char hx[4];
                    snprintf(hx, sizeof hx, verb == 'x' ? "%02x" : "%02X", (unsigned char)p[i]);
                    int r = tm_buf_put(&h, hx, 2);
                    if (r) st = buf_fail(e, r, &h);
                }
                if (!st) st = pad_put(e, b, f, h.p ? h.p : "", h.n, false);
                ll_free(h.p);
            }
            ll_free(s.p);
            return st;
        }
        ll_free(s.p);
        if ((verb == 'x' || verb == 'X') && v->k == V_INT) {
            snprintf(cf, sizeof cf, "%%%s%s%s%s*.*ll%c", f->minus ? "-" : "", f->zero ? "0" : "", f->sharp ? "#" : "", f->plus ? "+" : "", verb);
            snprintf(tmp, sizeof tmp, cf, f->width, f->prec, (long long)v->i);
            PUTS(e, b, tmp);
            return LL_OK;
        }
        if (v->k == V_OBJ && (is_slice(v) || is_map(v) || v->t->kind == TY_STRUCT)) return fmt_v(e, b, v, 0);
        if (verb == 'q' && v->k == V_INT) {
            char u[8] = { 0 };
            size_t k = v->i >= 0 && v->i <= 0x10FFFF ? tm_utf8_put(u, (uint32_t)v->i) : tm_utf8_put(u, 0xFFFD);
            PUT(e, b, "'", 1); PUT(e, b, u, k); PUT(e, b, "'", 1);
            return LL_OK;
        }
        return bad_verb(e, b, verb, v);
    }
    case 'd': case 'o': case 'b': case 'c': case 'U':
        if (v->k != V_INT) {
            if (v->k == V_OBJ && is_slice(v)) return fmt_v(e, b, v, 0);
            return bad_verb(e, b, verb, v);
        }
        if (verb == 'c') {
            char u[8];
            size_t k = v->i >= 0 && v->i <= 0x10FFFF ? tm_utf8_put(u, (uint32_t)v->i) : tm_utf8_put(u, 0xFFFD);
            return pad_put(e, b, f, u, k, false);
        }
        if (verb == 'U') { snprintf(tmp, sizeof tmp, "U+%04llX", (unsigned long long)v->i); return pad_put(e, b, f, tmp, strlen(tmp), false); }
        if (verb == 'b') {
            char bits[72]; int k = 0;
            uint64_t u = v->i < 0 ? (uint64_t)0 - (uint64_t)v->i : (uint64_t)v->i;
            do { bits[k++] = (char)('0' + (u & 1)); u >>= 1; } while (u);
            size_t o = 0;
            if (v->i < 0) tmp[o++] = '-';
            while (k) tmp[o++] = bits[--k];
            return pad_put(e, b, f, tmp, o, true);
        }
        snprintf(cf, sizeof cf, "%%%s%s%s%s%s*.*ll%c", f->minus ? "-" : "", f->zero && f->prec < 0 ? "0" : "",
                 f->plus ? "+" : "", f->space ? " " : "", f->sharp && verb == 'o' ? "#" : "", verb == 'd' ? 'd' : 'o');
        snprintf(tmp, sizeof tmp, cf, f->width, f->prec, (long long)v->i);
        PUTS(e, b, tmp);
        return LL_OK;
    case 'f': case 'F': case 'e': case 'E': case 'g': case 'G':
        if (v->k != V_FLOAT) return v->k == V_OBJ && is_slice(v) ? fmt_v(e, b, v, 0) : bad_verb(e, b, verb, v);
        if ((verb == 'g' || verb == 'G') && f->prec < 0) {
            go_float(v->f, false, tmp, sizeof tmp);
            return pad_put(e, b, f, tmp, strlen(tmp), true);
        }
        snprintf(cf, sizeof cf, "%%%s%s%s%s%s*.*%c", f->minus ? "-" : "", f->zero ? "0" : "", f->plus ? "+" : "",
                 f->space ? " " : "", f->sharp ? "#" : "", verb);
        snprintf(tmp, sizeof tmp, cf, f->width, f->prec < 0 ? 6 : f->prec, v->f);
        PUTS(e, b, tmp);
        return LL_OK;
    case 't':
        if (v->k != V_BOOL) return bad_verb(e, b, verb, v);
        return pad_put(e, b, f, v->b ? "true" : "false", v->b ? 4 : 5, false);
    case 'T': {
        const char *tn = type_name(v);
        return pad_put(e, b, f, tn, strlen(tn), false);
    }
    default:
        return bad_verb(e, b, verb, v);
    }
}

static ll_status go_sprintf(ex *e, tm_buf *b, const char *fm, size_t fn, const tval *args, size_t n) {
    size_t ai = 0;
    for (size_t i = 0; i < fn;) {
        if (fm[i] != '%') {
            size_t j = i;
            while (j < fn && fm[j] != '%') j++;
            PUT(e, b, fm + i, j - i);
            i = j;
            continue;
        }
        i++;
        fmtspec f = { .prec = -1 };
        for (; i < fn; i++) {
            char c = fm[i];
            if (c == '-') { f.minus = true; f.zero = false; }
            else if (c == '+') f.plus = true;
            else if (c == ' ') f.space = true;
            else if (c == '0') f.zero = !f.minus;
            else if (c == '#') f.sharp = true;
            else break;
        }
        /* width */
        if (i < fn && fm[i] == '*') {
            i++;
            if (ai >= n || args[ai].k != V_INT) { PUTS(e, b, "%!(BADWIDTH)"); if (ai < n) ai++; }
            else {
                int64_t w = args[ai++].i;
                if (w < -FMT_MAX_WIDTH || w > FMT_MAX_WIDTH) return xfail(e, LL_ERR_LIMIT, "printf width %lld exceeds %d", (long long)w, FMT_MAX_WIDTH);
                if (w < 0) { f.minus = true; f.zero = false; w = -w; }
                f.width = (int)w;
            }
        } else {
            int64_t w = 0;
            while (i < fn && isdigit((unsigned char)fm[i])) {
                w = w * 10 + (fm[i++] - '0');
                if (w > FMT_MAX_WIDTH) return xfail(e, LL_ERR_LIMIT, "printf width exceeds %d", FMT_MAX_WIDTH);
            }
            f.width = (int)w;
        }
        if (i < fn && fm[i] == '.') {
            i++;
            if (i < fn && fm[i] == '*') {
                i++;
                if (ai >= n || args[ai].k != V_INT) { PUTS(e, b, "%!(BADPREC)"); if (ai < n) ai++; }
                else {
                    int64_t p = args[ai++].i;
                    if (p > FMT_MAX_WIDTH) return xfail(e, LL_ERR_LIMIT, "printf precision %lld exceeds %d", (long long)p, FMT_MAX_WIDTH);
                    f.prec = p < 0 ? -1 : (int)p;
                }
            } else {
                int64_t p = 0;
                while (i < fn && isdigit((unsigned char)fm[i])) {
                    p = p * 10 + (fm[i++] - '0');
                    if (p > FMT_MAX_WIDTH) return xfail(e, LL_ERR_LIMIT, "printf precision exceeds %d", FMT_MAX_WIDTH);
                }
                f.prec = (int)p;
            }
        }
        if (i >= fn) { PUTS(e, b, "%!(NOVERB)"); break; }
        char verb = fm[i++];
        if (verb == '%') { PUT(e, b, "%", 1); continue; }
        if ((unsigned char)verb >= 0x80) {   /* a multi-byte verb: copy the rune */
            size_t s = i - 1;
            while (i < fn && ((unsigned char)fm[i] & 0xC0) == 0x80) i++;
            PUTS(e, b, "%!");
            PUT(e, b, fm + s, i - s);
            PUTS(e, b, "(BADVERB)");
            continue;
        }
        if (ai >= n) { char m[16]; snprintf(m, sizeof m, "%%!%c(MISSING)", verb); PUTS(e, b, m); continue; }
        if (fmt_one(e, b, &f, verb, &args[ai++])) return e->st;
    }
    if (ai < n) {
        PUTS(e, b, "%!(EXTRA ");
        for (size_t k = ai; k < n; k++) {
            if (k > ai) PUTS(e, b, ", ");
            PUTS(e, b, type_name(&args[k]));
            PUT(e, b, "=", 1);
            if (fmt_v(e, b, &args[k], 0)) return e->st;
        }
        PUT(e, b, ")", 1);
    }
    return LL_OK;
}

/* fmt.Sprint: a space between operands when neither is a string */
static ll_status go_sprint(ex *e, tm_buf *b, const tval *args, size_t n, bool ln) {
    for (size_t i = 0; i < n; i++) {
        if (i && (ln || (args[i].k != V_STR && args[i - 1].k != V_STR))) PUT(e, b, " ", 1);
        if (fmt_v(e, b, &args[i], 0)) return e->st;
    }
    if (ln) PUT(e, b, "\n", 1);
    return LL_OK;
}

/* api.ToolProperty.ToTypeScriptType */
static const char *ts_map(const tval *s) {
    static const struct { const char *j, *t; } m[] = {
        { "string", "string" }, { "number", "number" }, { "integer", "number" },
        { "boolean", "boolean" }, { "array", "any[]" }, { "object", "Record<string, any>" },
        { "null", "null" },
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (s->k == V_STR && s->sn == strlen(m[i].j) && !memcmp(s->s, m[i].j, s->sn)) return m[i].t;
    return "any";
}
static ll_status tm_ts_type(ex *e, const tval *p, tm_buf *b, int depth) {
    if (depth > VALUE_MAX_DEPTH) return xfail(e, LL_ERR_LIMIT, "toTypeScriptType: nested deeper than %d", VALUE_MAX_DEPTH);
    tval any_of = resolve(p->j ? json_object_get(p->j, "anyOf") : NULL, p->t->fields[0].t);
    if (any_of.n > 0) {
        for (size_t i = 0; i < any_of.n; i++) {
            if (i) PUTS(e, b, " | ");
            tval x = slice_elem(&any_of, i);
            if (tm_ts_type(e, &x, b, depth + 1)) return e->st;
        }
        return LL_OK;
    }
    tval ty = resolve(p->j ? json_object_get(p->j, "type") : NULL, p->t->fields[1].t);
    if (ty.n == 0) { PUTS(e, b, "any"); return LL_OK; }
    for (size_t i = 0; i < ty.n; i++) {
        if (i) PUTS(e, b, " | ");
        tval s = slice_elem(&ty, i);
        PUTS(e, b, ts_map(&s));
    }
    return LL_OK;
}

/* html / js / urlquery take their arguments as Go's evalArgs does */
static ll_status eval_args_str(ex *e, const tval *args, size_t n, tm_buf *b) {
    if (n == 1 && args[0].k == V_STR) { PUT(e, b, args[0].s, args[0].sn); return LL_OK; }
    for (size_t i = 0; i < n; i++) {
        bool str = args[i].k == V_STR, prev = i && args[i - 1].k == V_STR;
        if (i && !str && !prev) PUT(e, b, " ", 1);
        if (args[i].k == V_INVALID || args[i].k == V_NILIF) { PUTS(e, b, "<no value>"); continue; }
        if (fmt_v(e, b, &args[i], 0)) return e->st;
    }
    return LL_OK;
}

static ll_status escape_fn(ex *e, int fn, const tval *args, size_t n, tm_buf *b) {
    tm_buf in; scratch_buf(e, &in);
    if (eval_args_str(e, args, n, &in)) { ll_free(in.p); return e->st; }
    const unsigned char *s = (const unsigned char *)(in.p ? in.p : "");
    int r = 0;
    for (size_t i = 0; i < in.n && !r; i++) {
        unsigned char c = s[i];
        char tmp[16];
        const char *rep = NULL;
        if (fn == F_HTML) {
            switch (c) {
            case '"': rep = "&#34;"; break; case '\'': rep = "&#39;"; break;
            case '&': rep = "&amp;"; break; case '<': rep = "&lt;"; break;
            case '>': rep = "&gt;"; break; case 0: rep = "\xEF\xBF\xBD"; break;
            }
        } else if (fn == F_JS) {
            switch (c) {
            case '\\': rep = "\\\\"; break; case '\'': rep = "\\'"; break; case '"': rep = "\\\""; break;
            case '<': rep = "\\u003C"; break; case '>': rep = "\\u003E"; break;
            case '&': rep = "\\u0026"; break; case '=': rep = "\\u003D"; break;
            default: if (c < 0x20 || c == 0x7f) { snprintf(tmp, sizeof tmp, "\\u%04X", c); rep = tmp; }
            }
        } else {
            if (!(isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')) {
                if (c == ' ') rep = "+";
                else { snprintf(tmp, sizeof tmp, "%%%02X", c); rep = tmp; }
            }
        }
        r = rep ? tm_buf_put(b, rep, strlen(rep)) : tm_buf_put(b, s + i, 1);
    }
    ll_free(in.p);
    return r ? buf_fail(e, r, b) : LL_OK;
}

static int64_t index_arg(ex *e, const tval *x, size_t cap, bool *ok) {
    *ok = false;
    if (x->k == V_INVALID || x->k == V_NILIF) { xfail(e, LL_ERR_FORMAT, "error calling index: cannot index slice/array with nil"); return 0; }
    if (x->k != V_INT) { xfail(e, LL_ERR_FORMAT, "error calling index: cannot index slice/array with type %s", type_name(x)); return 0; }
    if (x->i < 0 || (uint64_t)x->i > cap) { xfail(e, LL_ERR_FORMAT, "error calling index: index out of range: %lld", (long long)x->i); return 0; }
    *ok = true;
    return x->i;
}

static size_t tm_utf8_put(char *o, uint32_t r) {
    if (r < 0x80) { o[0] = (char)r; return 1; }
    if (r < 0x800) { o[0] = (char)(0xC0 | (r >> 6)); o[1] = (char)(0x80 | (r & 0x3F)); return 2; }
    if (r < 0x10000) { o[0] = (char)(0xE0 | (r >> 12)); o[1] = (char)(0x80 | ((r >> 6) & 0x3F)); o[2] = (char)(0x80 | (r & 0x3F)); return 3; }
    o[0] = (char)(0xF0 | (r >> 18)); o[1] = (char)(0x80 | ((r >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((r >> 6) & 0x3F)); o[3] = (char)(0x80 | (r & 0x3F));
    return 4;
}

#define MAX_CALL_ARGS 64

/* a function call: fn node, its argument nodes, and the piped-in value (final, may be NULL) */
static ll_status tm_call(ex *e, tval dot, const tm_node *fnn, const tm_node *const *argn, size_t n_argn,
                  const tval *final, tval *out) {
    int fn = fnn->fn;
    if (fn < 0 || fn >= F_COUNT) return xfail(e, LL_ERR_FORMAT, "bad function");
    const tm_func *F = &tm_funcs[fn];
    const tm_node *saved = e->at;
    e->at = fnn;
    size_t n_in = n_argn + (final ? 1 : 0);
    if ((int)n_in < F->min_args || (F->max_args >= 0 && (int)n_in > F->max_args)) {
        if (F->max_args < 0)
            return xfail(e, LL_ERR_FORMAT, "wrong number of args for %s: want at least %d got %zu", F->name, F->min_args, n_in);
        return xfail(e, LL_ERR_FORMAT, "wrong number of args for %s: want %d got %zu", F->name, F->min_args, n_in);
    }
    if (n_in > MAX_CALL_ARGS) return xfail(e, LL_ERR_LIMIT, "call of %s with %zu arguments, limit %d", F->name, n_in, MAX_CALL_ARGS);
    bool values = func_takes_values(fn);
    tval a[MAX_CALL_ARGS];
    /* and/or short-circuit and return the deciding operand */
    if (fn == F_AND || fn == F_OR) {
        tval v = v_invalid();
        for (size_t i = 0; i < n_argn; i++) {
            if (eval_arg(e, dot, argn[i], true, &v)) return e->st;
            if (v.k == V_NILIF) v = v_invalid();
            if (truth(&v) == (fn == F_OR)) { *out = v; e->at = saved; return LL_OK; }
        }
        if (final) {
            if (final->k == V_INVALID) return xfail(e, LL_ERR_FORMAT, "invalid value; expected reflect.Value");
            v = *final;
        }
        *out = v;
        e->at = saved;
        return LL_OK;
    }
    for (size_t i = 0; i < n_argn; i++) {
        if (fn == F_PRINTF && i == 0 && argn[i]->kind != TN_STR && argn[i]->kind != TN_FIELD &&
            argn[i]->kind != TN_VAR && argn[i]->kind != TN_PIPE && argn[i]->kind != TN_CHAIN &&
            argn[i]->kind != TN_DOT && argn[i]->kind != TN_FUNC)
            return xfail(e, LL_ERR_FORMAT, "expected string; found %.*s", (int)(argn[i]->sn ? argn[i]->sn : 3), argn[i]->sn ? argn[i]->s : "nil");
        if (eval_arg(e, dot, argn[i], values, &a[i])) return e->st;
    }
    if (final) {
        if (values && final->k == V_INVALID) return xfail(e, LL_ERR_FORMAT, "invalid value; expected reflect.Value");
        a[n_argn] = *final;
    }
    size_t n = n_in;
    if (!values) for (size_t i = 0; i < n; i++) if (a[i].k == V_INVALID) a[i] = v_nilif();
    e->at = fnn;
    tm_buf b;
    switch (fn) {
    case F_NOT: *out = v_bool(!truth(&a[0])); break;
    case F_LEN: {
        const tval *x = &a[0];
        if (x->k == V_NILIF) return xfail(e, LL_ERR_FORMAT, "error calling len: len of nil pointer");
        if (x->k == V_STR) { *out = v_int((int64_t)x->sn); break; }
        if (x->k == V_OBJ && is_slice(x)) { *out = v_int((int64_t)x->n); break; }
        if (x->k == V_OBJ && x->t->kind == TY_MAP) { *out = v_int(x->j ? (int64_t)json_object_size(x->j) : 0); break; }
        if (x->k == V_OBJ && x->t->kind == TY_BYTES) {
            size_t k = 0;
            if (x->j) { const char *s = json_string_value(x->j); for (size_t i = 0; s[i]; i++) if (b64v((unsigned char)s[i]) >= 0) k++; }
            *out = v_int((int64_t)(k * 6 / 8));
            break;
        }
        if (x->k == V_OBJ && x->t->ptr && !x->j) return xfail(e, LL_ERR_FORMAT, "error calling len: len of nil pointer");
        return xfail(e, LL_ERR_FORMAT, "error calling len: len of type %s", type_name(x));
    }
    case F_INDEX: {
        tval item = a[0];
        if (item.k == V_NILIF || item.k == V_INVALID) return xfail(e, LL_ERR_FORMAT, "error calling index: index of untyped nil");
        for (size_t i = 1; i < n; i++) {
            tval *x = &a[i];
            bool ok;
            if (item.k == V_NILIF) return xfail(e, LL_ERR_FORMAT, "error calling index: index of nil pointer");
            if (item.k == V_STR) {
                int64_t k = index_arg(e, x, item.sn, &ok);
                if (!ok) return e->st;
                if ((size_t)k >= item.sn) return xfail(e, LL_ERR_FORMAT, "error calling index: index out of range: %lld", (long long)k);
                item = v_int((unsigned char)item.s[k]);   /* a byte */
            } else if (item.k == V_OBJ && is_slice(&item)) {
                int64_t k = index_arg(e, x, item.n, &ok);
                if (!ok) return e->st;
                if ((size_t)k >= item.n) return xfail(e, LL_ERR_FORMAT, "error calling index: index out of range: %lld", (long long)k);
                item = slice_elem(&item, (size_t)k);
            } else if (item.k == V_OBJ && item.t->kind == TY_MAP) {
                if (x->k != V_STR) {
                    if (x->k == V_INVALID || x->k == V_NILIF) return xfail(e, LL_ERR_FORMAT, "error calling index: value is nil; should be of type string");
                    return xfail(e, LL_ERR_FORMAT, "error calling index: value has type %s; should be string", type_name(x));
                }
                const char *key = keep(e, x->s, x->sn);
                if (!key) return e->st;
                bool found;
                item = memchr(x->s, 0, x->sn) ? resolve(NULL, item.t->elem) : map_get(&item, key, &found);
            } else {
                return xfail(e, LL_ERR_FORMAT, "error calling index: can't index item of type %s", type_name(&item));
            }
        }
        *out = item;
        break;
    }
    case F_SLICE: {
        tval item = a[0];
        if (item.k == V_NILIF || item.k == V_INVALID) return xfail(e, LL_ERR_FORMAT, "error calling slice: slice of untyped nil");
        if (n > 4) return xfail(e, LL_ERR_FORMAT, "error calling slice: too many slice indexes: %zu", n - 1);
        size_t len;
        if (item.k == V_STR) {
            if (n == 4) return xfail(e, LL_ERR_FORMAT, "error calling slice: cannot 3-index slice a string");
            len = item.sn;
        } else if (item.k == V_OBJ && item.t->kind == TY_SLICE) len = item.n;
        else return xfail(e, LL_ERR_FORMAT, "error calling slice: can't slice item of type %s", type_name(&item));
        size_t idx[3] = { 0, len, len };
        for (size_t i = 1; i < n; i++) {
            bool ok;
            idx[i - 1] = (size_t)index_arg(e, &a[i], len, &ok);
            if (!ok) return e->st;
        }
        if (idx[0] > idx[1]) return xfail(e, LL_ERR_FORMAT, "error calling slice: invalid slice index: %zu > %zu", idx[0], idx[1]);
        if (n == 4 && idx[1] > idx[2]) return xfail(e, LL_ERR_FORMAT, "error calling slice: invalid slice index: %zu > %zu", idx[1], idx[2]);
        if (item.k == V_STR) { item.s += idx[0]; item.sn = idx[1] - idx[0]; }
        else { item.off += idx[0]; item.n = idx[1] - idx[0]; }
        *out = item;
        break;
    }
    case F_EQ: {
        tval x = a[0];
        if (x.k == V_NILIF) x = v_invalid();
        if (n < 2) return xfail(e, LL_ERR_FORMAT, "error calling eq: missing argument for comparison");
        bool r = false;
        for (size_t i = 1; i < n && !r; i++) {
            tval y = a[i];
            if (y.k == V_NILIF) y = v_invalid();
            int c = eq2(e, &x, &y);
            if (c < 0) return e->st;
            r = c;
        }
        *out = v_bool(r);
        break;
    }
    case F_NE: {
        tval x = a[0], y = a[1];
        if (x.k == V_NILIF) x = v_invalid();
        if (y.k == V_NILIF) y = v_invalid();
        int c = eq2(e, &x, &y);
        if (c < 0) return e->st;
        *out = v_bool(!c);
        break;
    }
    case F_LT: case F_LE: case F_GT: case F_GE: {
        int l = lt2(e, F->name, &a[0], &a[1]);
        if (l < 0) return e->st;
        int q = 0;
        if (fn == F_LE || fn == F_GT) {
            if (!l) { q = eq2(e, &a[0], &a[1]); if (q < 0) return e->st; }
        }
        bool r = fn == F_LT ? l : fn == F_LE ? (l || q) : fn == F_GT ? !(l || q) : !l;
        *out = v_bool(r);
        break;
    }
    case F_PRINT: case F_PRINTLN: case F_PRINTF: case F_JSON: case F_TSTYPE:
    case F_HTML: case F_JS: case F_URLQUERY: case F_CURDATE: case F_YESTERDAY: {
        scratch_buf(e, &b);
        ll_status st = LL_OK;
        if (fn == F_PRINT || fn == F_PRINTLN) st = go_sprint(e, &b, a, n, fn == F_PRINTLN);
        else if (fn == F_PRINTF) {
            if (a[0].k != V_STR) { ll_free(b.p); return xfail(e, LL_ERR_FORMAT, "wrong type for value; expected string; got %s", type_name(&a[0])); }
            st = go_sprintf(e, &b, a[0].s, a[0].sn, a + 1, n - 1);
        } else if (fn == F_JSON) st = json_val(e, &b, &a[0], 0);
        else if (fn == F_TSTYPE) {
            if (a[0].k == V_OBJ && a[0].t == &tm_t_property) st = tm_ts_type(e, &a[0], &b, 0);
            else { int r = tm_buf_put(&b, "any", 3); if (r) st = buf_fail(e, r, &b); }
        } else if (fn == F_CURDATE || fn == F_YESTERDAY) {
            for (size_t i = 0; i < n; i++)
                if (a[i].k != V_STR) { ll_free(b.p); return xfail(e, LL_ERR_FORMAT, "wrong type for value; expected string; got %s", type_name(&a[i])); }
            time_t now = (time_t)e->now - (fn == F_YESTERDAY ? 86400 : 0);
            struct tm tmv;
            char d[32];
            if (!localtime_r(&now, &tmv)) { ll_free(b.p); return xfail(e, LL_ERR_FORMAT, "no local time"); }
            strftime(d, sizeof d, "%Y-%m-%d", &tmv);
            int r = tm_buf_put(&b, d, strlen(d));
            if (r) st = buf_fail(e, r, &b);
        } else st = escape_fn(e, fn, a, n, &b);
        if (st) { ll_free(b.p); return st; }
        if (!buf_to_str(e, &b, out)) return e->st;
        break;
    }
    case F_CALL:
        return xfail(e, LL_ERR_FORMAT, "error calling call: non-function of type %s", type_name(&a[0]));
    default:
        return xfail(e, LL_ERR_FORMAT, "function %s not implemented", F->name);
    }
    e->at = saved;
    return LL_OK;
}

/* one command of a pipeline (Go's evalCommand) */
static ll_status eval_command(ex *e, tval dot, const tm_node *cmd, const tval *final, tval *out) {
    const tm_node *first = cmd->kids[0];
    e->at = first;
    if (!step(e)) return e->st;
    bool has_args = cmd->n_kids > 1 || final;
    switch (first->kind) {
    case TN_FIELD: return eval_chain(e, dot, first->ids, first->n_ids, has_args, out);
    case TN_CHAIN: {
        tval base;
        if (first->pipe->kind == TN_NIL) return xfail(e, LL_ERR_FORMAT, "indirection through explicit nil");
        if (eval_arg(e, dot, first->pipe, false, &base)) return e->st;
        if (base.k == V_NILIF) base = v_invalid();
        e->at = first;
        return eval_chain(e, base, first->ids, first->n_ids, has_args, out);
    }
    case TN_VAR: {
        xvar *x = var_find(e, first->ids[0]);
        if (!x) return xfail(e, LL_ERR_FORMAT, "undefined variable: %.*s", (int)first->ids[0].n, first->ids[0].p);
        if (first->n_ids == 1) {
            if (has_args) return xfail(e, LL_ERR_FORMAT, "can't give argument to non-function %.*s", (int)first->ids[0].n, first->ids[0].p);
            *out = x->v;
            return LL_OK;
        }
        return eval_chain(e, x->v, first->ids + 1, first->n_ids - 1, has_args, out);
    }
    case TN_FUNC:
        return tm_call(e, dot, first, (const tm_node *const *)cmd->kids + 1, cmd->n_kids - 1, final, out);
    case TN_NIL: return xfail(e, LL_ERR_FORMAT, "nil is not a command");
    default: break;
    }
    if (has_args) return xfail(e, LL_ERR_FORMAT, "can't give argument to non-function");
    switch (first->kind) {
    case TN_PIPE: return eval_pipeline(e, dot, first, out);
    case TN_DOT: *out = dot; return LL_OK;
    case TN_BOOL: *out = v_bool(first->b); return LL_OK;
    case TN_NUM: *out = number_value(first); return LL_OK;
    case TN_STR: *out = v_str(first->s, first->sn); return LL_OK;
    default: return xfail(e, LL_ERR_FORMAT, "can't evaluate command");
    }
}

static ll_status eval_pipeline(ex *e, tval dot, const tm_node *pipe, tval *out) {
    if (++e->depth > EXEC_MAX_DEPTH) return xfail(e, LL_ERR_LIMIT, "template nesting exceeds %d", EXEC_MAX_DEPTH);
    tval v = v_invalid();
    for (size_t i = 0; i < pipe->n_kids; i++) {
        tval prev = v;
        if (eval_command(e, dot, pipe->kids[i], i ? &prev : NULL, &v)) return e->st;
        if (v.k == V_NILIF) v = v_invalid();   /* interface{} values are unwrapped */
    }
    for (size_t i = 0; i < pipe->n_decl; i++) {
        if (pipe->is_assign) {
            xvar *x = var_find(e, pipe->decl[i]);
            if (!x) return xfail(e, LL_ERR_FORMAT, "undefined variable: %.*s", (int)pipe->decl[i].n, pipe->decl[i].p);
            x->v = v;
        } else if (var_push(e, pipe->decl[i], v)) return e->st;
    }
    e->depth--;
    *out = v;
    return LL_OK;
}

static ll_status walk_list(ex *e, tval dot, const tm_node *list) {
    for (size_t i = 0; i < list->n_kids && !e->brk; i++)
        if (walk(e, dot, list->kids[i])) return e->st;
    return LL_OK;
}

static ll_status walk_range(ex *e, tval dot, const tm_node *n) {
    size_t mark = e->n_vars;
    tval val;
    if (eval_pipeline(e, dot, n->pipe, &val)) return e->st;
    e->at = n;
    size_t mark2 = e->n_vars;
    size_t count = 0;
    bool is_map_v = false, is_int = false;
    const char **keys = NULL;
    if (val.k == V_OBJ && is_slice(&val)) count = val.n;
    else if (val.k == V_OBJ && val.t->kind == TY_MAP) {
        is_map_v = true;
        if (val.j && !(keys = sorted_keys(e, val.j, &count))) return e->st;
    } else if (val.k == V_INT) { is_int = true; count = val.i > 0 ? (size_t)val.i : 0; }
    else if (val.k == V_INVALID) count = 0;
    else if (val.k == V_OBJ && val.t->kind == TY_STRUCT && val.t->ptr && !val.j) count = 0;
    else {
        tm_buf b; scratch_buf(e, &b);
        ll_status st = fmt_v(e, &b, &val, 0);
        if (!st) xfail(e, LL_ERR_FORMAT, "range can't iterate over %.60s", b.p ? b.p : "");
        ll_free(b.p);
        return e->st;
    }
    if (is_int && n->pipe->n_decl > 1) return xfail(e, LL_ERR_FORMAT, "can't use %lld to iterate over more than one variable", (long long)val.i);
    for (size_t i = 0; i < count; i++) {
        if (!step(e)) return e->st;
        tval key, elem;
        if (is_map_v) {
            bool found;
            key = v_str(keys[i], strlen(keys[i]));
            elem = map_get(&val, keys[i], &found);
        } else if (is_int) { key = v_int((int64_t)i); elem = key; }
        else { key = v_int((int64_t)i); elem = slice_elem(&val, i); }
        e->n_vars = mark2;
        const tm_node *p = n->pipe;
        if (p->n_decl > 0) {
            if (p->is_assign) {
                xvar *x0 = var_find(e, p->decl[0]);
                if (p->n_decl > 1) {
                    xvar *x1 = var_find(e, p->decl[1]);
                    if (x0) x0->v = key;
                    if (x1) x1->v = elem;
                } else if (x0) x0->v = elem;
            } else {
                e->vars[e->n_vars - 1].v = elem;
                if (p->n_decl > 1) e->vars[e->n_vars - 2].v = key;
            }
        }
        if (walk_list(e, elem, n->list)) return e->st;
        int brk = e->brk;
        e->brk = 0;
        if (brk == 1) break;
    }
    e->n_vars = mark2;
    if (count == 0 && n->elist && walk_list(e, dot, n->elist)) return e->st;
    e->n_vars = mark;
    return LL_OK;
}

static ll_status walk(ex *e, tval dot, const tm_node *n) {
    e->at = n;
    if (!step(e)) return e->st;
    switch (n->kind) {
    case TN_LIST: return walk_list(e, dot, n);
    case TN_TEXT: return out_put(e, n->s, n->sn);
    case TN_ACTION: {
        tval v;
        if (eval_pipeline(e, dot, n->pipe, &v)) return e->st;
        e->at = n;
        return n->pipe->n_decl ? LL_OK : print_action(e, &v);
    }
    case TN_IF: case TN_WITH: {
        if (++e->depth > EXEC_MAX_DEPTH) return xfail(e, LL_ERR_LIMIT, "template nesting exceeds %d", EXEC_MAX_DEPTH);
        size_t mark = e->n_vars;
        tval v;
        if (eval_pipeline(e, dot, n->pipe, &v)) return e->st;
        if (truth(&v)) {
            if (walk_list(e, n->kind == TN_WITH ? v : dot, n->list)) return e->st;
        } else if (n->elist) {
            if (walk_list(e, dot, n->elist)) return e->st;
        }
        e->n_vars = mark;
        e->depth--;
        return LL_OK;
    }
    case TN_RANGE: {
        if (++e->depth > EXEC_MAX_DEPTH) return xfail(e, LL_ERR_LIMIT, "template nesting exceeds %d", EXEC_MAX_DEPTH);
        if (walk_range(e, dot, n)) return e->st;
        e->depth--;
        return LL_OK;
    }
    case TN_BREAK: e->brk = 1; return LL_OK;
    case TN_CONTINUE: e->brk = 2; return LL_OK;
    case TN_TEMPLATE: {
        const tm_def *d = NULL;
        for (size_t i = 0; i < e->t->n_defs; i++)
            if (e->t->defs[i].name.n == n->sn && !memcmp(e->t->defs[i].name.p, n->s, n->sn)) d = &e->t->defs[i];
        if (!d) return xfail(e, LL_ERR_FORMAT, "no such template \"%.*s\"", (int)(n->sn > 40 ? 40 : n->sn), n->s);
        if (e->calls >= LL_TMPL_MAX_CALL_DEPTH)
            return xfail(e, LL_ERR_LIMIT, "template call depth exceeds %d", LL_TMPL_MAX_CALL_DEPTH);
        if (++e->depth > EXEC_MAX_DEPTH) return xfail(e, LL_ERR_LIMIT, "template nesting exceeds %d", EXEC_MAX_DEPTH);
        tval v = v_invalid();
        if (n->pipe && eval_pipeline(e, dot, n->pipe, &v)) return e->st;
        /* the callee sees only $ (= its dot): give it a fresh variable stack */
        xvar *saved = e->vars;
        size_t saved_n = e->n_vars, saved_cap = e->cap_vars;
        e->vars = NULL; e->n_vars = e->cap_vars = 0;
        ll_status st = var_push(e, (ll_str){ "$", 1 }, v);
        e->calls++;
        if (!st) st = walk_list(e, v, d->list);
        e->calls--;
        ll_free(e->vars);
        e->vars = saved; e->n_vars = saved_n; e->cap_vars = saved_cap;
        if (st) return st;
        e->depth--;
        return LL_OK;
    }
    default:
        return xfail(e, LL_ERR_FORMAT, "unknown node");
    }
}

/* ---- entry points ---- */

void *tm_exec_begin(const ll_tmpl *t, const ll_tmpl_limits *lim, ll_error *err);
ll_status tm_exec_run_data(const ll_tmpl *t, const tm_node *root, const json_t *data, void *exv);
ll_status tm_exec_end(void *exv, ll_status st, char **out, size_t *out_len);

void *tm_exec_begin(const ll_tmpl *t, const ll_tmpl_limits *lim, ll_error *err) {
    ex *e = ll_calloc(1, sizeof *e);
    if (!e) return NULL;
    e->t = t;
    e->err = err;
    e->out.max = lim && lim->max_output_bytes ? lim->max_output_bytes : (size_t)16 << 20;
    e->max_steps = lim && lim->max_steps ? lim->max_steps : 10000000;
    e->scratch.cap_bytes = lim && lim->max_scratch_bytes ? lim->max_scratch_bytes : (size_t)64 << 20;
    e->now = lim && lim->now_unix ? lim->now_unix : (int64_t)time(NULL);
    return e;
}

ll_status tm_exec_run_data(const ll_tmpl *t, const tm_node *root, const json_t *data, void *exv) {
    ex *e = exv;
    tval dot = { 0 };
    dot.k = V_OBJ; dot.t = &tm_t_root; dot.j = json_is_object(data) ? data : NULL;
    if (!data || json_is_null(data)) dot = v_invalid();
    else if (!json_is_object(data)) dot = resolve(data, &tm_t_any);
    e->n_vars = 0; e->brk = 0; e->depth = 0; e->calls = 0;
    if (var_push(e, (ll_str){ "$", 1 }, dot)) return e->st;
    (void)t;
    return walk(e, dot, root);
}

ll_status tm_exec_end(void *exv, ll_status st, char **out, size_t *out_len) {
    ex *e = exv;
    if (!st) {
        if (!e->out.p && tm_buf_put(&e->out, "", 0)) st = ll_fail(e->err, LL_ERR_NOMEM, "out of memory");
    }
    if (!st) {
        *out = e->out.p;
        if (out_len) *out_len = e->out.n;
    } else ll_free(e->out.p);
    tm_arena_free(&e->scratch);
    ll_free(e->vars);
    ll_free(e);
    return st;
}

ll_status ll_tmpl_render(const ll_tmpl *t, const json_t *data, const ll_tmpl_limits *lim,
                         char **out, size_t *out_len, ll_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t) return ll_fail(err, LL_ERR_ARG, "no template");
    void *e = tm_exec_begin(t, lim, err);
    if (!e) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    ll_status st = tm_exec_run_data(t, t->root_go, data, e);
    return tm_exec_end(e, st, out, out_len);
}
