/* regex: the subset of ECMA/Python regular expressions that JSON Schema `pattern` and our
 * format and number-range compilers need, compiled into grammar rules.
 *
 * Supported: literal characters (any UTF-8), escapes \\ \/ \. \- \^ \$ \| \? \* \+ \( \) \[ \]
 * \{ \} \n \t \r \f \v, classes [...] and [^...] with ranges, \d \w \s and their negations
 * (ASCII sets: a subset of what Python matches, so every string we produce still matches), `.`
 * (any character but newline), groups (...) and (?:...), alternation |, quantifiers ? * + {m}
 * {m,} {m,n} (lazy forms the same), `^` only at the very start and `$` only at the very end.
 * Anything else (lookaround, backreferences, named groups, flags, \b) fails with the offset.
 *
 * json_string mode: the language is the *decoded* string, so each character is emitted as
 * JSON string content: `"` as \", `\` as \\, control characters as their short escape or
 * \u00XX. Unanchored ends get any-string padding (search semantics, as `pattern` has).
 */
#include "grammar/grammar.h"

#include <stdio.h>
#include <stdlib.h>

#define RX_MAX_NEST 64
#define RX_MAX_REPEAT 1000
#define RX_MAX_RANGES 512

typedef struct {
    gr_builder *b;
    const char *p, *end, *start;
    bool json;          /* emit JSON string content */
    int nest;
    const char *what;   /* for messages: "pattern" or "format ..." */
} rx;

typedef struct { uint32_t r[RX_MAX_RANGES][2]; int n; bool neg_ascii; } rx_class;

static void rx_fail(rx *x, const char *msg) {
    gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "%s: %s at offset %d", x->what, msg, (int)(x->p - x->start));
}

static bool cls_add(rx *x, rx_class *c, uint32_t lo, uint32_t hi) {
    if (c->n >= RX_MAX_RANGES) { rx_fail(x, "character class too large"); return false; }
    c->r[c->n][0] = lo;
    c->r[c->n][1] = hi;
    c->n++;
    return true;
}

static int cmp_range(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Sort and merge overlapping ranges. */
static void cls_norm(rx_class *c) {
    qsort(c->r, (size_t)c->n, sizeof c->r[0], cmp_range);
    int w = 0;
    for (int i = 0; i < c->n; i++) {
        if (w && c->r[i][0] <= c->r[w - 1][1] + 1) {
            if (c->r[i][1] > c->r[w - 1][1]) c->r[w - 1][1] = c->r[i][1];
        } else {
            c->r[w][0] = c->r[i][0];
            c->r[w][1] = c->r[i][1];
            w++;
        }
    }
    c->n = w;
}

static void cls_negate(rx_class *c, uint32_t top) {
    cls_norm(c);
    rx_class o;
    o.n = 0;
    uint32_t next = 0;
    for (int i = 0; i < c->n; i++) {
        if (c->r[i][0] > next) { o.r[o.n][0] = next; o.r[o.n][1] = c->r[i][0] - 1; o.n++; }
        next = c->r[i][1] + 1;
    }
    if (next <= top) { o.r[o.n][0] = next; o.r[o.n][1] = top; o.n++; }
    memcpy(c->r, o.r, sizeof o.r[0] * (size_t)o.n);
    c->n = o.n;
}

/* Add the alternatives for one code point range to rule, with JSON escaping when needed. */
static void emit_range(rx *x, int32_t rule, uint32_t lo, uint32_t hi) {
    if (!x->json) { gr_utf8_range(x->b, rule, lo, hi, -1); return; }
    gr_seq s = {0};
    for (uint32_t c = lo; c <= hi && c < 0x20; c++) {
        char buf[8];
        const char *e = NULL;
        switch (c) {
        case '\n': e = "\\n"; break;
        case '\t': e = "\\t"; break;
        case '\r': e = "\\r"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        default: snprintf(buf, sizeof buf, "\\u%04x", c); e = buf;
        }
        gr_seq_clear(&s);
        gr_seq_lit(x->b, &s, e, strlen(e));
        gr_add_alt(x->b, rule, &s);
    }
    if (lo <= '"' && '"' <= hi) { gr_seq_clear(&s); gr_seq_lit(x->b, &s, "\\\"", 2); gr_add_alt(x->b, rule, &s); }
    if (lo <= '\\' && '\\' <= hi) { gr_seq_clear(&s); gr_seq_lit(x->b, &s, "\\\\", 2); gr_add_alt(x->b, rule, &s); }
    gr_seq_free(&s);
    /* the raw part: [lo, hi] minus controls, '"' and '\' */
    uint32_t cuts[3][2] = { { 0x20, '"' - 1 }, { '"' + 1, '\\' - 1 }, { '\\' + 1, 0x10FFFF } };
    for (int i = 0; i < 3; i++) {
        uint32_t a = lo > cuts[i][0] ? lo : cuts[i][0], z = hi < cuts[i][1] ? hi : cuts[i][1];
        if (a <= z) gr_utf8_range(x->b, rule, a, z, -1);
    }
}

static int32_t class_rule(rx *x, rx_class *c) {
    cls_norm(c);
    int32_t r = gr_rule(x->b, x->what);
    for (int i = 0; i < c->n; i++) emit_range(x, r, c->r[i][0], c->r[i][1]);
    return r;
}

/* Decode one UTF-8 character at x->p. */
static bool rx_utf8(rx *x, uint32_t *cp) {
    const unsigned char *p = (const unsigned char *)x->p;
    size_t left = (size_t)(x->end - x->p);
    unsigned c = p[0];
    int n = c < 0x80 ? 1 : c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (n == 0 || (size_t)n > left) { rx_fail(x, "invalid UTF-8"); return false; }
    uint32_t v = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) { rx_fail(x, "invalid UTF-8"); return false; }
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { rx_fail(x, "invalid UTF-8"); return false; }
    x->p += n;
    *cp = v;
    return true;
}

/* \d \w \s and negations into c; returns false when e is not one of them. */
static bool class_escape(rx *x, rx_class *c, char e) {
    switch (e) {
    case 'd': cls_add(x, c, '0', '9'); return true;
    case 'w': cls_add(x, c, '0', '9'); cls_add(x, c, 'A', 'Z'); cls_add(x, c, 'a', 'z'); cls_add(x, c, '_', '_'); return true;
    /* Python's ASCII whitespace: \t-\r, the separators \x1c-\x1f and space */
    case 's': cls_add(x, c, '\t', '\r'); cls_add(x, c, 0x1C, ' '); return true;
    case 'D': case 'W': case 'S': {
        rx_class t;
        t.n = 0;
        class_escape(x, &t, (char)(e + 32));
        cls_negate(&t, 0x7F);   /* ASCII only: Python's \D etc. exclude non-ASCII digits too */
        for (int i = 0; i < t.n; i++) cls_add(x, c, t.r[i][0], t.r[i][1]);
        c->neg_ascii = true;
        return true;
    }
    }
    return false;
}

static bool simple_escape(char e, uint32_t *cp) {
    switch (e) {
    case 'n': *cp = '\n'; return true;
    case 't': *cp = '\t'; return true;
    case 'r': *cp = '\r'; return true;
    case 'f': *cp = '\f'; return true;
    case 'v': *cp = '\v'; return true;
    case '0': *cp = 0; return true;
    }
    if (strchr("\\/.-^$|?*+()[]{}\"'", e) && e) { *cp = (unsigned char)e; return true; }
    return false;
}

static int32_t rx_alt(rx *x);

static int32_t rx_class_atom(rx *x) {
    rx_class c;
    c.n = 0;
    c.neg_ascii = false;
    x->p++;   /* '[' */
    bool neg = false, has_shorthand = false;
    if (x->p < x->end && *x->p == '^') { neg = true; x->p++; }
    bool first = true;
    while (x->p < x->end && (*x->p != ']' || first)) {
        first = false;
        uint32_t lo;
        if (*x->p == '\\') {
            if (x->p + 1 >= x->end) { rx_fail(x, "trailing backslash"); return -1; }
            char e = x->p[1];
            x->p += 2;
            if (class_escape(x, &c, e)) { has_shorthand = true; continue; }
            if (!simple_escape(e, &lo)) { rx_fail(x, "unsupported escape in class"); return -1; }
        } else if (*x->p == '[' && x->p + 1 < x->end && x->p[1] == ':') {
            rx_fail(x, "POSIX classes are not supported");
            return -1;
        } else if (!rx_utf8(x, &lo)) {
            return -1;
        }
        uint32_t hi = lo;
        if (x->p + 1 < x->end && *x->p == '-' && x->p[1] != ']') {
            x->p++;
            if (*x->p == '\\') {
                if (x->p + 1 >= x->end || !simple_escape(x->p[1], &hi)) { rx_fail(x, "bad range end"); return -1; }
                x->p += 2;
            } else if (!rx_utf8(x, &hi)) {
                return -1;
            }
            if (hi < lo) { rx_fail(x, "range out of order"); return -1; }
        }
        if (!cls_add(x, &c, lo, hi)) return -1;
    }
    if (x->p >= x->end) { rx_fail(x, "unterminated ["); return -1; }
    x->p++;
    if (neg) cls_negate(&c, (has_shorthand || c.neg_ascii) ? 0x7F : 0x10FFFF);
    return class_rule(x, &c);
}

static int32_t rx_atom(rx *x) {
    char ch = *x->p;
    rx_class c;
    c.n = 0;
    c.neg_ascii = false;
    if (ch == '(') {
        x->p++;
        if (x->p < x->end && *x->p == '?') {
            if (x->p + 1 < x->end && x->p[1] == ':') x->p += 2;
            else { rx_fail(x, "lookaround, named groups and flags are not supported"); return -1; }
        }
        if (++x->nest > RX_MAX_NEST) { rx_fail(x, "groups nested too deep"); return -1; }
        int32_t r = rx_alt(x);
        x->nest--;
        if (r < 0) return -1;
        if (x->p >= x->end || *x->p != ')') { rx_fail(x, "missing )"); return -1; }
        x->p++;
        return r;
    }
    if (ch == '[') return rx_class_atom(x);
    if (ch == '.') {
        x->p++;
        cls_add(x, &c, 0, '\n' - 1);
        cls_add(x, &c, '\n' + 1, 0x10FFFF);
        return class_rule(x, &c);
    }
    if (ch == '^' || ch == '$') { rx_fail(x, "^ and $ are supported only at the start and end"); return -1; }
    if (ch == '*' || ch == '+' || ch == '?' || ch == '{') { rx_fail(x, "quantifier without an atom"); return -1; }
    uint32_t cp;
    if (ch == '\\') {
        if (x->p + 1 >= x->end) { rx_fail(x, "trailing backslash"); return -1; }
        char e = x->p[1];
        x->p += 2;
        if (class_escape(x, &c, e)) return class_rule(x, &c);
        if (!simple_escape(e, &cp)) { rx_fail(x, "unsupported escape (backreference, \\b, \\u...)"); return -1; }
    } else if (!rx_utf8(x, &cp)) {
        return -1;
    }
    cls_add(x, &c, cp, cp);
    return class_rule(x, &c);
}

static bool rx_int(rx *x, long *v) {
    if (x->p >= x->end || *x->p < '0' || *x->p > '9') return false;
    long n = 0;
    while (x->p < x->end && *x->p >= '0' && *x->p <= '9') {
        n = n * 10 + (*x->p++ - '0');
        if (n > RX_MAX_REPEAT) { rx_fail(x, "repetition count over 1000"); return false; }
    }
    *v = n;
    return true;
}

static int32_t rx_concat(rx *x) {
    int32_t r = gr_rule(x->b, x->what);
    gr_seq s = {0};
    while (x->b->st == LL_OK && x->p < x->end && *x->p != '|' && *x->p != ')') {
        if (*x->p == '$' && x->p + 1 == x->end && x->nest == 0) break;
        int32_t a = rx_atom(x);
        if (a < 0) break;
        long lo = 1, hi = 1;
        if (x->p < x->end) {
            char q = *x->p;
            if (q == '?') { lo = 0; hi = 1; x->p++; }
            else if (q == '*') { lo = 0; hi = -1; x->p++; }
            else if (q == '+') { lo = 1; hi = -1; x->p++; }
            else if (q == '{') {
                const char *save = x->p;
                x->p++;
                if (!rx_int(x, &lo)) { if (x->b->st == LL_OK) rx_fail(x, "bad {m,n}"); break; }
                hi = lo;
                if (x->p < x->end && *x->p == ',') {
                    x->p++;
                    if (x->p < x->end && *x->p == '}') hi = -1;
                    else if (!rx_int(x, &hi)) { if (x->b->st == LL_OK) rx_fail(x, "bad {m,n}"); break; }
                }
                if (x->p >= x->end || *x->p != '}' || (hi >= 0 && hi < lo)) { x->p = save; rx_fail(x, "bad {m,n}"); break; }
                x->p++;
            }
            if (x->p < x->end && *x->p == '?' && !(lo == 1 && hi == 1)) x->p++;   /* lazy */
        }
        if (lo != 1 || hi != 1) a = gr_rule_repeat(x->b, x->what, a, lo, hi, -1);
        gr_seq_ref(x->b, &s, a);
    }
    gr_add_alt(x->b, r, &s);
    gr_seq_free(&s);
    return x->b->st == LL_OK ? r : -1;
}

static int32_t rx_alt(rx *x) {
    int32_t r = gr_rule(x->b, x->what);
    gr_seq s = {0};
    for (;;) {
        int32_t c = rx_concat(x);
        if (c < 0) break;
        gr_seq_clear(&s);
        gr_seq_ref(x->b, &s, c);
        gr_add_alt(x->b, r, &s);
        if (x->p < x->end && *x->p == '|') { x->p++; continue; }
        break;
    }
    gr_seq_free(&s);
    return x->b->st == LL_OK ? r : -1;
}

/* Compile pattern p[0..n) into a rule. json_string: the rule matches the JSON-escaped content
 * of a string (no quotes) and unanchored ends are padded with any_rule (which must match any
 * string content); otherwise the pattern must match the whole text and any_rule is unused. */
int32_t gr_regex(gr_builder *b, const char *what, const char *p, size_t n, bool json_string,
                 int32_t any_rule) {
    rx x = { b, p, p + n, p, json_string, 0, what };
    bool head = n > 0 && p[0] == '^';
    size_t bs = 0;   /* backslashes right before a final '$': an odd count escapes it */
    while (n >= bs + 2 && p[n - 2 - bs] == '\\') bs++;
    bool tail = n > 0 && p[n - 1] == '$' && bs % 2 == 0;
    if (head) x.p++;
    int32_t r = rx_alt(&x);
    if (r < 0) return -1;
    if (tail && x.p < x.end && *x.p == '$') x.p++;
    if (x.p != x.end) { rx_fail(&x, *x.p == ')' ? "unbalanced )" : "unexpected character"); return -1; }
    if (!json_string) return r;
    int32_t out = gr_rule(b, what);
    gr_seq s = {0};
    if (!head) gr_seq_ref(b, &s, any_rule);
    gr_seq_ref(b, &s, r);
    if (!tail) gr_seq_ref(b, &s, any_rule);
    gr_add_alt(b, out, &s);
    gr_seq_free(&s);
    return b->st == LL_OK ? out : -1;
}
