/* json_schema: `format: "json"` and JSON Schema -> grammar (issue 11, spec §1.0.6).
 *
 * Shapes. Every value rule matches the value alone; containers put bounded whitespace (ws)
 * around their punctuation: `{` ws member (`,` ws member)* `}` with member = key ws `:` ws
 * value ws, and the same for arrays. ws is nothing, one space, or a newline followed by at
 * most 20 spaces or tabs, so a model can indent but cannot loop on whitespace (Ollama's own
 * grammar, llm/server.go grammarJSON, allows unbounded `([ \t\n] ws)?`). No whitespace before
 * or after the top-level value. Ollama's format "json" asks for an object at the top.
 *
 * Strings exclude raw control characters and DEL (as Ollama's grammar does); free text is one
 * right-recursive rule with every character form inlined, so the mask precompute sees a whole
 * string as one context-independent loop. Numbers have at most 16 integer digits, 16 fraction
 * digits and 2 exponent digits: valid JSON, and bounded.
 *
 * Soundness over completeness: where exact compilation is not possible the grammar produces a
 * subset of the valid instances (say, no \u escapes in length-limited strings, no undeclared
 * properties unless additionalProperties allows them, and then only plain ASCII names), never a
 * superset. A keyword that constrains values and that we do not implement is an error.
 */
#include "grammar/grammar.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define SC_MAX_SCHEMA_BYTES (1u << 20)   /* schema text */
#define SC_MAX_DEPTH        64           /* nested schema objects / merges */
#define SC_MAX_STRLEN       5000         /* longer maxLength is enforced as this (a subset) */
#define SC_MAX_ITEMS        1000         /* minItems / unrolled prefix cap */
#define SC_INT_CAP          1000000000000000000LL   /* |integer| < 10^18 (18 digits) */

typedef struct {
    gr_builder *b;
    json_t *root;
    json_t *keep;                 /* schemas we build (merges) stay alive here */
    struct { const json_t *s; int32_t r; } *memo;
    int32_t n_memo, cap_memo;
    int32_t ws, chars, string, value, number, integer, object, array, char1, keychars;
    int depth;
    bool lenient;                 /* tool arguments: a subschema with an unsupported keyword
                                   * becomes any JSON value instead of an error */
    char loose[64];               /* lenient: the first keyword loosened that way */
} sc;

static int32_t sc_schema(sc *x, json_t *s, const char *path);

/* ---- small helpers ------------------------------------------------------------------------- */

static bool failed(sc *x) { return x->b->st != LL_OK; }

static int32_t lit(sc *x, const char *p) { return gr_rule_lit(x->b, p, p, strlen(p)); }

static void alt_ref(sc *x, int32_t rule, int32_t ref) {
    gr_seq s = {0};
    gr_seq_ref(x->b, &s, ref);
    gr_add_alt(x->b, rule, &s);
    gr_seq_free(&s);
}

static int32_t regex_raw(sc *x, const char *what, const char *re) {
    return gr_regex(x->b, what, re, strlen(re), false, -1);
}

/* ---- the shared JSON rules ---------------------------------------------------------------- */

static int32_t r_ws(sc *x) {
    if (x->ws >= 0) return x->ws;
    uint64_t sp[4] = {0};
    gr_class_set(sp, ' ');
    gr_class_set(sp, '\t');
    gr_seq s = {0};
    int32_t item = gr_rule(x->b, "ws-char");
    gr_seq_char(x->b, &s, sp);
    gr_add_alt(x->b, item, &s);
    int32_t indent = gr_rule_repeat(x->b, "ws-indent", item, 0, 20, -1);
    int32_t r = gr_rule(x->b, "ws");
    gr_seq_clear(&s);
    gr_add_alt(x->b, r, &s);
    gr_seq_byte(x->b, &s, ' ');
    gr_add_alt(x->b, r, &s);
    gr_seq_clear(&s);
    gr_seq_byte(x->b, &s, '\n');
    gr_seq_ref(x->b, &s, indent);
    gr_add_alt(x->b, r, &s);
    gr_seq_free(&s);
    return x->ws = r;
}

/* chars ::= (char chars)?, every character form inlined (see the file comment). */
static int32_t r_chars(sc *x) {
    if (x->chars >= 0) return x->chars;
    int32_t r = x->chars = gr_rule(x->b, "chars");
    gr_utf8_range(x->b, r, 0x20, 0x21, r);
    gr_utf8_range(x->b, r, 0x23, 0x5B, r);
    gr_utf8_range(x->b, r, 0x5D, 0x7E, r);
    gr_utf8_range(x->b, r, 0x80, 0x10FFFF, r);
    gr_seq s = {0};
    uint64_t esc[4] = {0}, hex[4] = {0};
    for (const char *c = "\"\\/bfnrt"; *c; c++) gr_class_set(esc, (unsigned char)*c);
    gr_class_range(hex, '0', '9'); gr_class_range(hex, 'a', 'f'); gr_class_range(hex, 'A', 'F');
    gr_seq_byte(x->b, &s, '\\');
    gr_seq_char(x->b, &s, esc);
    gr_seq_ref(x->b, &s, r);
    gr_add_alt(x->b, r, &s);
    /* \uXXXX: a non-surrogate, or a high surrogate followed by a low one (a lone surrogate is
     * valid JSON text by the grammar of RFC 8259 but many parsers refuse it) */
    uint64_t h1[4] = {0}, d[4] = {0}, lo7[4] = {0}, hi_s[4] = {0}, lo_s[4] = {0};
    gr_class_range(h1, '0', '9'); gr_class_range(h1, 'a', 'c'); gr_class_range(h1, 'A', 'C');
    gr_class_range(h1, 'e', 'f'); gr_class_range(h1, 'E', 'F');
    gr_class_set(d, 'd'); gr_class_set(d, 'D');
    gr_class_range(lo7, '0', '7');
    gr_class_range(hi_s, '8', '9'); gr_class_range(hi_s, 'a', 'b'); gr_class_range(hi_s, 'A', 'B');
    gr_class_range(lo_s, 'c', 'f'); gr_class_range(lo_s, 'C', 'F');
    gr_seq_clear(&s);
    gr_seq_lit(x->b, &s, "\\u", 2);
    gr_seq_char(x->b, &s, h1);
    for (int i = 0; i < 3; i++) gr_seq_char(x->b, &s, hex);
    gr_seq_ref(x->b, &s, r);
    gr_add_alt(x->b, r, &s);
    gr_seq_clear(&s);
    gr_seq_lit(x->b, &s, "\\u", 2);
    gr_seq_char(x->b, &s, d);
    gr_seq_char(x->b, &s, lo7);
    for (int i = 0; i < 2; i++) gr_seq_char(x->b, &s, hex);
    gr_seq_ref(x->b, &s, r);
    gr_add_alt(x->b, r, &s);
    gr_seq_clear(&s);
    gr_seq_lit(x->b, &s, "\\u", 2);
    gr_seq_char(x->b, &s, d);
    gr_seq_char(x->b, &s, hi_s);
    for (int i = 0; i < 2; i++) gr_seq_char(x->b, &s, hex);
    gr_seq_lit(x->b, &s, "\\u", 2);
    gr_seq_char(x->b, &s, d);
    gr_seq_char(x->b, &s, lo_s);
    for (int i = 0; i < 2; i++) gr_seq_char(x->b, &s, hex);
    gr_seq_ref(x->b, &s, r);
    gr_add_alt(x->b, r, &s);
    gr_seq_clear(&s);
    gr_add_alt(x->b, r, &s);   /* end */
    gr_seq_free(&s);
    return r;
}

/* One character of a length-limited string: one code point each (no \u escapes, so a
 * surrogate pair can never count as two). */
static int32_t r_char1(sc *x) {
    if (x->char1 >= 0) return x->char1;
    int32_t r = x->char1 = gr_rule(x->b, "char");
    gr_utf8_range(x->b, r, 0x20, 0x21, -1);
    gr_utf8_range(x->b, r, 0x23, 0x5B, -1);
    gr_utf8_range(x->b, r, 0x5D, 0x7E, -1);
    gr_utf8_range(x->b, r, 0x80, 0x10FFFF, -1);
    gr_seq s = {0};
    uint64_t esc[4] = {0};
    for (const char *c = "\"\\/bfnrt"; *c; c++) gr_class_set(esc, (unsigned char)*c);
    gr_seq_byte(x->b, &s, '\\');
    gr_seq_char(x->b, &s, esc);
    gr_add_alt(x->b, r, &s);
    gr_seq_free(&s);
    return r;
}

static int32_t r_quoted(sc *x, const char *name, int32_t body) {
    int32_t r = gr_rule(x->b, name);
    gr_seq s = {0};
    gr_seq_byte(x->b, &s, '"');
    if (body >= 0) gr_seq_ref(x->b, &s, body);
    gr_seq_byte(x->b, &s, '"');
    gr_add_alt(x->b, r, &s);
    gr_seq_free(&s);
    return r;
}

static int32_t r_string(sc *x) {
    if (x->string < 0) x->string = r_quoted(x, "string", r_chars(x));
    return x->string;
}

static int32_t r_number(sc *x) {
    if (x->number < 0)
        x->number = regex_raw(x, "number", "-?(?:0|[1-9][0-9]{0,15})(?:\\.[0-9]{1,16})?(?:[eE][-+]?[0-9]{1,2})?");
    return x->number;
}

static int32_t r_integer(sc *x) {
    if (x->integer < 0) x->integer = regex_raw(x, "integer", "-?(?:0|[1-9][0-9]{0,15})");
    return x->integer;
}

static int32_t r_value(sc *x);

/* open ws (item ws (sep ws item ws)*)? close, with item any value or member */
static int32_t r_container(sc *x, const char *name, char open, char close, int32_t item) {
    int32_t ws = r_ws(x);
    gr_seq s = {0};
    int32_t more = gr_rule(x->b, name);   /* ("," ws item ws more)? */
    gr_seq_byte(x->b, &s, ',');
    gr_seq_ref(x->b, &s, ws);
    gr_seq_ref(x->b, &s, item);
    gr_seq_ref(x->b, &s, ws);
    gr_seq_ref(x->b, &s, more);
    gr_add_alt(x->b, more, &s);
    gr_seq_clear(&s);
    gr_add_alt(x->b, more, &s);
    int32_t r = gr_rule(x->b, name);
    gr_seq_clear(&s);
    gr_seq_byte(x->b, &s, (unsigned char)open);
    gr_seq_ref(x->b, &s, ws);
    gr_seq_byte(x->b, &s, (unsigned char)close);
    gr_add_alt(x->b, r, &s);
    gr_seq_clear(&s);
    gr_seq_byte(x->b, &s, (unsigned char)open);
    gr_seq_ref(x->b, &s, ws);
    gr_seq_ref(x->b, &s, item);
    gr_seq_ref(x->b, &s, ws);
    gr_seq_ref(x->b, &s, more);
    gr_seq_byte(x->b, &s, (unsigned char)close);
    gr_add_alt(x->b, r, &s);
    gr_seq_free(&s);
    return r;
}

static int32_t r_member(sc *x, int32_t key, int32_t value) {
    int32_t ws = r_ws(x);
    int32_t r = gr_rule(x->b, "member");
    gr_seq s = {0};
    gr_seq_ref(x->b, &s, key);
    gr_seq_ref(x->b, &s, ws);
    gr_seq_byte(x->b, &s, ':');
    gr_seq_ref(x->b, &s, ws);
    gr_seq_ref(x->b, &s, value);
    gr_add_alt(x->b, r, &s);
    gr_seq_free(&s);
    return r;
}

static int32_t r_object(sc *x) {
    if (x->object < 0) {
        x->object = gr_rule(x->b, "object");
        int32_t body = r_container(x, "object", '{', '}', r_member(x, r_string(x), r_value(x)));
        alt_ref(x, x->object, body);
    }
    return x->object;
}

static int32_t r_array(sc *x) {
    if (x->array < 0) {
        x->array = gr_rule(x->b, "array");
        int32_t body = r_container(x, "array", '[', ']', r_value(x));
        alt_ref(x, x->array, body);
    }
    return x->array;
}

static int32_t r_value(sc *x) {
    if (x->value >= 0) return x->value;
    int32_t r = x->value = gr_rule(x->b, "value");
    alt_ref(x, r, r_object(x));
    alt_ref(x, r, r_array(x));
    alt_ref(x, r, r_string(x));
    alt_ref(x, r, r_number(x));
    alt_ref(x, r, lit(x, "true"));
    alt_ref(x, r, lit(x, "false"));
    alt_ref(x, r, lit(x, "null"));
    return r;
}

static void sc_init(sc *x, gr_builder *b) {
    memset(x, 0, sizeof *x);
    x->b = b;
    x->ws = x->chars = x->string = x->value = x->number = x->integer = -1;
    x->object = x->array = x->char1 = x->keychars = -1;
}

ll_status gr_compile_json(gr_grammar *g, bool object_only, ll_error *err) {
    gr_builder b;
    gr_builder_init(&b, err);
    sc x;
    sc_init(&x, &b);
    int32_t root = object_only ? r_object(&x) : r_value(&x);
    return gr_build(&b, root, g);
}

/* ---- schema helpers ------------------------------------------------------------------------- */

static const char *const sc_annotations[] = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
    "readOnly", "writeOnly", "$defs", "definitions", "$anchor", "contentMediaType",
    "contentEncoding", "contentSchema", "nullable", "discriminator", "xml", "externalDocs",
    "example", "$vocabulary", NULL,
};
static const char *const sc_unsupported[] = {
    "multipleOf", "uniqueItems", "contains", "minContains", "maxContains", "patternProperties",
    "propertyNames", "minProperties", "maxProperties", "dependentRequired", "dependentSchemas",
    "dependencies", "if", "then", "else", "not", "unevaluatedProperties", "unevaluatedItems",
    "$dynamicRef", "$recursiveRef", "additionalItems", "$dynamicAnchor", "$recursiveAnchor", NULL,
};

static bool in_list(const char *const *l, const char *k) {
    for (; *l; l++) if (!strcmp(*l, k)) return true;
    return false;
}

static bool has_assertions(json_t *s, const char *skip) {
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v) {
        (void)v;
        if (skip && !strcmp(k, skip)) continue;
        if (!in_list(sc_annotations, k)) return true;
    }
    return false;
}

/* A copy of s without key (kept alive by x->keep). */
static json_t *without(sc *x, json_t *s, const char *key) {
    json_t *c = json_copy(s);
    if (!c || json_array_append_new(x->keep, c)) { gr_builder_fail(x->b, LL_ERR_NOMEM, "schema: out of memory"); return NULL; }
    json_object_del(c, key);
    return c;
}

static json_t *resolve_ref(sc *x, json_t *s, const char *path) {
    const char *ref = json_string_value(json_object_get(s, "$ref"));
    if (!ref) { gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: $ref at %s is not a string", path); return NULL; }
    if (ref[0] != '#') {
        gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: $ref '%.100s' at %s: only local references (#/...) are supported", ref, path);
        return NULL;
    }
    json_t *cur = x->root;
    const char *p = ref + 1;
    while (*p) {
        if (*p != '/') goto bad;
        p++;
        char tok[256];
        size_t n = 0;
        while (*p && *p != '/') {
            char c = *p++;
            if (c == '~') {
                if (*p == '0') c = '~';
                else if (*p == '1') c = '/';
                else goto bad;
                p++;
            }
            if (n + 1 >= sizeof tok) goto bad;
            tok[n++] = c;
        }
        tok[n] = 0;
        if (json_is_object(cur)) cur = json_object_get(cur, tok);
        else if (json_is_array(cur)) {
            char *e;
            long i = strtol(tok, &e, 10);
            cur = (*e || n == 0 || i < 0) ? NULL : json_array_get(cur, (size_t)i);
        } else cur = NULL;
        if (!cur) goto bad;
    }
    return cur;
bad:
    gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: $ref '%.100s' at %s does not resolve", ref, path);
    return NULL;
}

/* Types named by s as a bit set (1 null, 2 boolean, 4 object, 8 array, 16 string, 32 number,
 * 64 integer); 0 with an error when type is malformed. Without "type": the types its keywords
 * constrain, or all of them. */
enum { T_NULL = 1, T_BOOL = 2, T_OBJ = 4, T_ARR = 8, T_STR = 16, T_NUM = 32, T_INT = 64, T_ALL = 127 };

static int type_bit(const char *t) {
    static const char *const names[] = { "null", "boolean", "object", "array", "string", "number", "integer" };
    for (int i = 0; i < 7; i++) if (!strcmp(t, names[i])) return 1 << i;
    return 0;
}

static int sc_types(sc *x, json_t *s, const char *path) {
    json_t *t = json_object_get(s, "type");
    if (!t) {
        int m = 0;
        if (json_object_get(s, "properties") || json_object_get(s, "required") || json_object_get(s, "additionalProperties")) m |= T_OBJ;
        if (json_object_get(s, "items") || json_object_get(s, "prefixItems") || json_object_get(s, "minItems") || json_object_get(s, "maxItems")) m |= T_ARR;
        if (json_object_get(s, "minLength") || json_object_get(s, "maxLength") || json_object_get(s, "pattern") || json_object_get(s, "format")) m |= T_STR;
        if (json_object_get(s, "minimum") || json_object_get(s, "maximum") || json_object_get(s, "exclusiveMinimum") || json_object_get(s, "exclusiveMaximum")) m |= T_NUM;
        return m ? m : T_ALL;
    }
    int m = 0;
    if (json_is_string(t)) m = type_bit(json_string_value(t));
    else if (json_is_array(t)) {
        size_t i;
        json_t *v;
        json_array_foreach(t, i, v) {
            int bit = json_is_string(v) ? type_bit(json_string_value(v)) : 0;
            if (!bit) { m = 0; break; }
            m |= bit;
        }
    }
    if (!m) gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: bad 'type' at %s", path);
    return m;
}

static bool value_has_type(json_t *v, int types) {
    switch (json_typeof(v)) {
    case JSON_NULL: return types & T_NULL;
    case JSON_TRUE: case JSON_FALSE: return types & T_BOOL;
    case JSON_OBJECT: return types & T_OBJ;
    case JSON_ARRAY: return types & T_ARR;
    case JSON_STRING: return types & T_STR;
    case JSON_INTEGER: return types & (T_NUM | T_INT);
    case JSON_REAL: {
        double d = json_real_value(v);
        return (types & T_NUM) || ((types & T_INT) && d == floor(d));
    }
    }
    return false;
}

/* ---- allOf: merge two schemas into one ------------------------------------------------------ */

static json_t *deref(sc *x, json_t *s, const char *path);
static json_t *merge(sc *x, json_t *a, json_t *b, const char *path);

static json_t *types_json(int m) {
    static const char *const names[] = { "null", "boolean", "object", "array", "string", "number", "integer" };
    json_t *a = json_array();
    for (int i = 0; i < 7 && a; i++) if (m & (1 << i)) json_array_append_new(a, json_string(names[i]));
    return a;
}

static json_t *merge(sc *x, json_t *a, json_t *b, const char *path) {
    if (++x->depth > SC_MAX_DEPTH) { gr_builder_fail(x->b, LL_ERR_LIMIT, "schema: allOf/$ref nested deeper than %d at %s", SC_MAX_DEPTH, path); return NULL; }
    a = deref(x, a, path);
    b = deref(x, b, path);
    json_t *m = NULL;
    if (!a || !b) goto out;
    if (json_is_true(a) || (json_is_object(a) && json_object_size(a) == 0)) { m = b; goto out; }
    if (json_is_true(b) || (json_is_object(b) && json_object_size(b) == 0)) { m = a; goto out; }
    if (!json_is_object(a) || !json_is_object(b)) {
        gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: allOf at %s combines a false schema", path);
        goto out;
    }
    m = json_deep_copy(a);
    if (!m || json_array_append_new(x->keep, m)) { m = NULL; gr_builder_fail(x->b, LL_ERR_NOMEM, "schema: out of memory"); goto out; }
    const char *k;
    json_t *vb;
    json_object_foreach(b, k, vb) {
        json_t *va = json_object_get(m, k);
        if (!va) { json_object_set(m, k, vb); continue; }
        if (!strcmp(k, "properties") && json_is_object(va) && json_is_object(vb)) {
            json_t *props = json_copy(va);
            const char *pk;
            json_t *pv;
            json_object_foreach(vb, pk, pv) {
                json_t *pa = json_object_get(props, pk);
                json_t *pm = pa ? merge(x, pa, pv, path) : pv;
                if (!pm) { json_decref(props); m = NULL; goto out; }
                json_object_set(props, pk, pm);
            }
            json_object_set_new(m, k, props);
        } else if (!strcmp(k, "required") && json_is_array(va) && json_is_array(vb)) {
            json_t *req = json_copy(va);
            size_t i;
            json_t *r;
            json_array_foreach(vb, i, r) {
                bool dup = false;
                size_t j;
                json_t *q;
                json_array_foreach(req, j, q) dup = dup || json_equal(q, r);
                if (!dup) json_array_append(req, r);
            }
            json_object_set_new(m, k, req);
        } else if (!strcmp(k, "type")) {
            int ta = sc_types(x, a, path), tb = sc_types(x, b, path);
            int t = ta & tb;
            if ((ta & T_NUM) && (tb & T_INT)) t |= T_INT;
            if ((tb & T_NUM) && (ta & T_INT)) t |= T_INT;
            if (!t) { gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: allOf at %s has no type in common", path); m = NULL; goto out; }
            json_object_set_new(m, k, types_json(t));
        } else if (json_is_number(va) && json_is_number(vb) &&
                   (!strcmp(k, "minimum") || !strcmp(k, "exclusiveMinimum") || !strcmp(k, "minLength") || !strcmp(k, "minItems"))) {
            if (json_number_value(vb) > json_number_value(va)) json_object_set(m, k, vb);
        } else if (json_is_number(va) && json_is_number(vb) &&
                   (!strcmp(k, "maximum") || !strcmp(k, "exclusiveMaximum") || !strcmp(k, "maxLength") || !strcmp(k, "maxItems"))) {
            if (json_number_value(vb) < json_number_value(va)) json_object_set(m, k, vb);
        } else if (in_list(sc_annotations, k) || json_equal(va, vb)) {
            /* keep a's */
        } else {
            gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: allOf at %s: cannot combine two different '%s'", path, k);
            m = NULL;
            goto out;
        }
    }
out:
    x->depth--;
    return m;
}

/* s with a top-level $ref and allOf folded in, so merge sees plain keywords. */
static json_t *deref(sc *x, json_t *s, const char *path) {
    if (failed(x)) return NULL;
    if (!json_is_object(s)) return s;
    if (++x->depth > SC_MAX_DEPTH) {
        gr_builder_fail(x->b, LL_ERR_LIMIT, "schema: $ref/allOf nested deeper than %d at %s (a $ref cycle?)", SC_MAX_DEPTH, path);
        x->depth--;
        return NULL;
    }
    json_t *out = s;
    if (json_object_get(s, "$ref")) {
        json_t *t = resolve_ref(x, s, path);
        json_t *rest = t ? without(x, s, "$ref") : NULL;
        out = !rest ? NULL : has_assertions(rest, NULL) ? merge(x, t, rest, path) : deref(x, t, path);
    } else if (json_object_get(s, "allOf")) {
        json_t *all = json_object_get(s, "allOf");
        if (!json_is_array(all) || json_array_size(all) == 0) {
            gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: allOf at %s must be a non-empty array", path);
            out = NULL;
        } else {
            json_t *acc = without(x, s, "allOf");
            size_t i;
            json_t *v;
            json_array_foreach(all, i, v) {
                if (!acc) break;
                acc = merge(x, acc, v, path);
            }
            out = acc;
        }
    }
    x->depth--;
    return out;
}

/* ---- numbers: integer ranges as regular expressions ---------------------------------------- */

typedef struct { char *p; size_t n, cap; bool oom; } sbuf;

static void sb_put(sbuf *b, const char *s) {
    size_t n = strlen(s);
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *q = ll_realloc(b->p, nc);
        if (!q) { b->oom = true; return; }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n + 1);
    b->n += n;
}

static void sb_fmt(sbuf *b, const char *fmt, long long v) {
    char t[48];
    snprintf(t, sizeof t, fmt, v);
    sb_put(b, t);
}

static long long pow10ll(int n) { long long p = 1; while (n-- > 0) p *= 10; return p; }
static int ndigits(long long v) { int d = 1; while (v >= 10) { v /= 10; d++; } return d; }

/* n-digit strings (leading zeros allowed) for values lo..hi. */
static void re_fixed(sbuf *b, long long lo, long long hi, int n) {
    if (n == 0) return;
    long long p = pow10ll(n - 1);
    long long a = lo / p, z = hi / p, rl = lo % p, rh = hi % p;
    if (a == z) { sb_fmt(b, "%lld", a); re_fixed(b, rl, rh, n - 1); return; }
    if (rl == 0 && rh == p - 1) {
        sb_fmt(b, "[%lld-", a); sb_fmt(b, "%lld]", z);
        if (n > 1) sb_fmt(b, "[0-9]{%lld}", n - 1);
        return;
    }
    sb_put(b, "(?:");
    long long start = a, end = z;
    bool first = true;
    if (rl != 0) { sb_fmt(b, "%lld", a); re_fixed(b, rl, p - 1, n - 1); start = a + 1; first = false; }
    if (rh != p - 1) end = z - 1;
    if (start <= end) {
        if (!first) sb_put(b, "|");
        sb_fmt(b, "[%lld-", start); sb_fmt(b, "%lld]", end);
        if (n > 1) sb_fmt(b, "[0-9]{%lld}", n - 1);
        first = false;
    }
    if (rh != p - 1) {
        if (!first) sb_put(b, "|");
        sb_fmt(b, "%lld", z); re_fixed(b, 0, rh, n - 1);
    }
    sb_put(b, ")");
}

/* Non-negative integers in [lo, hi] (hi < 0: unbounded, at most 18 digits), no leading zeros. */
static void re_nonneg(sbuf *b, long long lo, long long hi) {
    int d0 = ndigits(lo), d1 = hi < 0 ? 18 : ndigits(hi);
    sb_put(b, "(?:");
    bool first = true;
    for (int d = d0; d <= d1; d++) {
        long long L = d == 1 ? 0 : pow10ll(d - 1), H = pow10ll(d) - 1;
        if (L < lo) L = lo;
        if (hi >= 0 && H > hi) H = hi;
        if (L > H) continue;
        if (!first) sb_put(b, "|");
        first = false;
        re_fixed(b, L, H, d);
    }
    sb_put(b, ")");
}

/* Bounds of s as integers. For integers: the exact integer bounds; for numbers (round_out
 * false): a sub-range with integer ends (ceil of the lower, floor of the upper). */
static bool int_bounds(sc *x, json_t *s, const char *path, bool *has_lo, long long *lo,
                       bool *has_hi, long long *hi) {
    *has_lo = *has_hi = false;
    *lo = *hi = 0;
    static const char *const keys[4] = { "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum" };
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(s, keys[i]);
        if (!v) continue;
        if (!json_is_number(v)) {
            gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: '%s' at %s must be a number (draft-4 boolean form is not supported)", keys[i], path);
            return false;
        }
        double d = json_number_value(v);
        if (!isfinite(d)) { gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: bad '%s' at %s", keys[i], path); return false; }
        double c = i == 0 ? ceil(d) : i == 1 ? floor(d) + 1 : i == 2 ? floor(d) : ceil(d) - 1;
        if (i < 2) {
            if (c >= (double)SC_INT_CAP) {
                gr_builder_fail(x->b, LL_ERR_LIMIT, "schema: '%s' at %s is beyond the 18-digit integers we generate", keys[i], path);
                return false;
            }
            if (c <= -(double)SC_INT_CAP) continue;   /* every value we generate satisfies it */
            long long v2 = (long long)c;
            if (!*has_lo || v2 > *lo) *lo = v2;
            *has_lo = true;
        } else {
            if (c <= -(double)SC_INT_CAP) {
                gr_builder_fail(x->b, LL_ERR_LIMIT, "schema: '%s' at %s is beyond the 18-digit integers we generate", keys[i], path);
                return false;
            }
            if (c >= (double)SC_INT_CAP) continue;
            long long v2 = (long long)c;
            if (!*has_hi || v2 < *hi) *hi = v2;
            *has_hi = true;
        }
    }
    if (*has_lo && *has_hi && *lo > *hi) {
        gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: minimum/maximum at %s leave no %s value", path, "integer");
        return false;
    }
    return true;
}

static int32_t sc_integer(sc *x, json_t *s, const char *path) {
    bool hl, hh;
    long long lo, hi;
    if (!int_bounds(x, s, path, &hl, &lo, &hh, &hi)) return -1;
    if (!hl && !hh) return r_integer(x);
    sbuf b = {0};
    sb_put(&b, "(?:");
    bool any = false;
    if (!hh || hi >= 0) { re_nonneg(&b, hl && lo > 0 ? lo : 0, hh ? hi : -1); any = true; }
    if (!hl || lo < 0) {
        if (any) sb_put(&b, "|");
        sb_put(&b, "-");
        re_nonneg(&b, hh && hi < 0 ? -hi : 1, hl ? -lo : -1);
    }
    sb_put(&b, ")");
    int32_t r = b.oom ? (gr_builder_fail(x->b, LL_ERR_NOMEM, "schema: out of memory"), -1) : regex_raw(x, "integer-range", b.p);
    ll_free(b.p);
    return r;
}

static int32_t sc_number(sc *x, json_t *s, const char *path) {
    json_t *emin = json_object_get(s, "exclusiveMinimum");
    if (emin && json_is_number(emin) && json_number_value(emin) == 0 && !json_object_get(s, "minimum") &&
        !json_object_get(s, "maximum") && !json_object_get(s, "exclusiveMaximum"))
        return regex_raw(x, "positive", "(?:[1-9][0-9]{0,15}(?:\\.[0-9]{1,15})?|0\\.[0-9]{0,14}[1-9])");
    bool hl, hh;
    long long lo, hi;
    if (!int_bounds(x, s, path, &hl, &lo, &hh, &hi)) return -1;
    if (!hl && !hh) return r_number(x);
    const char *frac = "(?:\\.[0-9]{1,15})?";
    sbuf b = {0};
    sb_put(&b, "(?:");
    bool any = false;
    if (!hh || hi >= 0) {   /* x >= 0: integer part a, any fraction while a < hi */
        long long L = hl && lo > 0 ? lo : 0;
        if (!hh) { re_nonneg(&b, L, -1); sb_put(&b, frac); any = true; }
        else {
            if (L <= hi - 1) { re_nonneg(&b, L, hi - 1); sb_put(&b, frac); any = true; }
            if (hi >= L) { if (any) sb_put(&b, "|"); sb_fmt(&b, "%lld", hi); any = true; }
        }
    }
    if (!hl || lo < 0) {    /* x < 0: -a.f with a.f in [-hi, -lo] */
        long long amin = hh && hi < 0 ? -hi : 0;
        if (!hl) { if (any) sb_put(&b, "|"); sb_put(&b, "-"); re_nonneg(&b, amin, -1); sb_put(&b, frac); any = true; }
        else {
            if (amin <= -lo - 1) { if (any) sb_put(&b, "|"); sb_put(&b, "-"); re_nonneg(&b, amin, -lo - 1); sb_put(&b, frac); any = true; }
            if (-lo >= amin && -lo > 0) { if (any) sb_put(&b, "|"); sb_fmt(&b, "-%lld", -lo); any = true; }
        }
    }
    sb_put(&b, ")");
    int32_t r = -1;
    if (b.oom) gr_builder_fail(x->b, LL_ERR_NOMEM, "schema: out of memory");
    else if (!any) gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: minimum/maximum at %s leave no %s value", path, "number");
    else r = regex_raw(x, "number-range", b.p);
    ll_free(b.p);
    return r;
}

/* ---- strings --------------------------------------------------------------------------------- */

static const struct { const char *name, *re; } sc_formats[] = {
    { "date", "[1-9][0-9]{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))" },
    { "time", "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])" },
    { "date-time", "[1-9][0-9]{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])" },
    { "uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" },
    /* RFC 5321 sizes: local part <= 64 octets (32 + two more dot-atoms of <= 15), domain labels
     * <= 63, the domain <= 255 and the whole address <= 254 (the 256-octet path less its angle
     * brackets): 63 + four more labels of <= 30 is 187. A subset of valid addresses, but a
     * bounded one: a model cannot loop inside an email field, the grammar ends it. */
    { "email", "[A-Za-z0-9_+-]{1,32}(?:\\.[A-Za-z0-9_+-]{1,15}){0,2}@[A-Za-z0-9-]{1,63}(?:\\.[A-Za-z0-9-]{1,30}){1,4}" },
};

static int32_t sc_string(sc *x, json_t *s, const char *path) {
    json_t *fmt = json_object_get(s, "format"), *pat = json_object_get(s, "pattern");
    json_t *mn = json_object_get(s, "minLength"), *mx = json_object_get(s, "maxLength");
    int n_kinds = (fmt != NULL) + (pat != NULL) + (mn || mx);
    if (n_kinds > 1) {
        gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: at %s, '%s' together with '%s' is not supported", path,
                        fmt ? "format" : "pattern", pat && fmt ? "pattern" : mn ? "minLength" : "maxLength");
        return -1;
    }
    if (fmt) {
        const char *f = json_string_value(fmt);
        if (!f) { gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: 'format' at %s must be a string", path); return -1; }
        for (size_t i = 0; i < sizeof sc_formats / sizeof sc_formats[0]; i++)
            if (!strcmp(f, sc_formats[i].name))
                return r_quoted(x, f, regex_raw(x, f, sc_formats[i].re));
        gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: unsupported keyword 'format: %.40s' at %s "
                        "(supported: date, time, date-time, uuid, email)", f, path);
        return -1;
    }
    if (pat) {
        const char *p = json_string_value(pat);
        if (!p) { gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: 'pattern' at %s must be a string", path); return -1; }
        char what[96];
        snprintf(what, sizeof what, "pattern at %.80s", path);
        return r_quoted(x, "pattern", gr_regex(x->b, what, p, strlen(p), true, r_chars(x)));
    }
    if (mn || mx) {
        if ((mn && !json_is_integer(mn)) || (mx && !json_is_integer(mx)) ||
            (mn && json_integer_value(mn) < 0) || (mx && json_integer_value(mx) < 0)) {
            gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: minLength/maxLength at %s must be non-negative integers", path);
            return -1;
        }
        long long lo = mn ? json_integer_value(mn) : 0, hi = mx ? json_integer_value(mx) : -1;
        if (hi >= 0 && lo > hi) { gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: minLength > maxLength at %s", path); return -1; }
        if (lo > SC_MAX_STRLEN) { gr_builder_fail(x->b, LL_ERR_LIMIT, "schema: minLength %lld at %s over the cap %d", lo, path, SC_MAX_STRLEN); return -1; }
        if (hi > SC_MAX_STRLEN) hi = SC_MAX_STRLEN;   /* shorter strings only: still valid */
        return r_quoted(x, "string-len", gr_rule_repeat(x->b, "string-len", r_char1(x), lo, hi, -1));
    }
    return r_string(x);
}

/* ---- objects ------------------------------------------------------------------------------- */

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static bool key_char_ok(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/* Key bytes after the opening quote, for undeclared properties: plain ASCII names
 * ([A-Za-z0-9_.-]*) that differ from every declared name (names[0..n), sorted, sharing
 * their first depth bytes), then the closing quote. */
static int32_t key_rule(sc *x, const char **names, size_t n, size_t depth) {
    if (n == 0) return x->keychars;
    int32_t r = gr_rule(x->b, "extra-key");
    gr_seq s = {0};
    bool terminal = false;
    uint64_t rest[4] = {0};
    for (int c = 0; c < 256; c++) if (key_char_ok((unsigned char)c)) gr_class_set(rest, (unsigned)c);
    size_t i = 0;
    while (i < n && !failed(x)) {
        if (strlen(names[i]) == depth) { terminal = true; i++; continue; }
        unsigned char c = (unsigned char)names[i][depth];
        size_t j = i;
        while (j < n && strlen(names[j]) > depth && (unsigned char)names[j][depth] == c) j++;
        rest[c >> 6] &= ~(1ull << (c & 63));
        int32_t child = key_rule(x, names + i, j - i, depth + 1);
        gr_seq_clear(&s);
        gr_seq_byte(x->b, &s, c);
        gr_seq_ref(x->b, &s, child);
        gr_add_alt(x->b, r, &s);
        i = j;
    }
    if (!terminal) { gr_seq_clear(&s); gr_seq_byte(x->b, &s, '"'); gr_add_alt(x->b, r, &s); }
    gr_seq_clear(&s);
    gr_seq_char(x->b, &s, rest);
    gr_seq_ref(x->b, &s, x->keychars);
    gr_add_alt(x->b, r, &s);
    gr_seq_free(&s);
    return r;
}

static int32_t extra_key(sc *x, json_t *decl) {
    if (x->keychars < 0) {   /* [A-Za-z0-9_.-]* '"' */
        int32_t r = x->keychars = gr_rule(x->b, "key-chars");
        uint64_t ok[4] = {0};
        for (int c = 0; c < 256; c++) if (key_char_ok((unsigned char)c)) gr_class_set(ok, (unsigned)c);
        gr_seq s = {0};
        gr_seq_char(x->b, &s, ok);
        gr_seq_ref(x->b, &s, r);
        gr_add_alt(x->b, r, &s);
        gr_seq_clear(&s);
        gr_seq_byte(x->b, &s, '"');
        gr_add_alt(x->b, r, &s);
        gr_seq_free(&s);
    }
    size_t n = json_array_size(decl);
    const char **names = ll_calloc(n ? n : 1, sizeof *names);
    if (!names) { gr_builder_fail(x->b, LL_ERR_NOMEM, "schema: out of memory"); return -1; }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *nm = json_string_value(json_array_get(decl, i));
        bool plain = true;
        for (const char *c = nm; *c; c++) plain = plain && key_char_ok((unsigned char)*c);
        if (plain) names[k++] = nm;   /* other names cannot be spelled without escapes anyway */
    }
    qsort(names, k, sizeof *names, cmp_cstr);
    int32_t body = key_rule(x, names, k, 0);
    ll_free(names);
    int32_t r = gr_rule(x->b, "extra-key");
    gr_seq s = {0};
    gr_seq_byte(x->b, &s, '"');
    gr_seq_ref(x->b, &s, body);
    gr_add_alt(x->b, r, &s);
    gr_seq_free(&s);
    return r;
}

static int32_t sc_object(sc *x, json_t *s, const char *path) {
    json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    json_t *addl = json_object_get(s, "additionalProperties");
    if ((props && !json_is_object(props)) || (req && !json_is_array(req))) {
        gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: bad properties/required at %s", path);
        return -1;
    }
    if (!props && !req && (!addl || json_is_true(addl))) return r_object(x);
    /* declared names (properties order, then required-only names), their schemas, required flags */
    json_t *names = json_array(), *schemas = json_array();
    if (!names || !schemas || json_array_append_new(x->keep, names) || json_array_append_new(x->keep, schemas)) {
        gr_builder_fail(x->b, LL_ERR_NOMEM, "schema: out of memory");
        return -1;
    }
    const char *k;
    json_t *v;
    if (props) json_object_foreach(props, k, v) { json_array_append_new(names, json_string(k)); json_array_append(schemas, v); }
    size_t i;
    json_array_foreach(req, i, v) {
        if (!json_is_string(v)) { gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: 'required' at %s must list strings", path); return -1; }
        if (props && json_object_get(props, json_string_value(v))) continue;
        bool dup = false;
        size_t j;
        json_t *q;
        json_array_foreach(names, j, q) dup = dup || json_equal(q, v);
        if (dup) continue;
        if (json_is_false(addl)) {
            gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: required property '%.60s' at %s is forbidden by additionalProperties: false", json_string_value(v), path);
            return -1;
        }
        json_array_append(names, v);
        json_array_append_new(schemas, addl && json_is_object(addl) ? json_incref(addl) : json_true());
    }
    size_t n = json_array_size(names);
    int32_t ws = r_ws(x);
    /* extras: allowed only when additionalProperties says so (true or a schema) */
    int32_t extra = -1;
    if (addl && !json_is_false(addl)) {
        char sub[512];
        snprintf(sub, sizeof sub, "%.400s/additionalProperties", path);
        int32_t val = json_is_true(addl) ? r_value(x) : sc_schema(x, addl, sub);
        extra = r_member(x, extra_key(x, names), val);
    }
    gr_seq sq = {0};
    /* E ::= ("," ws extra ws E)? ; after the declared properties, something already emitted */
    int32_t tail_more = -1, tail_first = -1;
    if (extra >= 0) {
        tail_more = gr_rule(x->b, "extra");
        gr_seq_byte(x->b, &sq, ',');
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_ref(x->b, &sq, extra);
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_ref(x->b, &sq, tail_more);
        gr_add_alt(x->b, tail_more, &sq);
        gr_seq_clear(&sq);
        gr_add_alt(x->b, tail_more, &sq);
        tail_first = gr_rule(x->b, "extra");   /* nothing emitted yet */
        gr_seq_clear(&sq);
        gr_seq_ref(x->b, &sq, extra);
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_ref(x->b, &sq, tail_more);
        gr_add_alt(x->b, tail_first, &sq);
        gr_seq_clear(&sq);
        gr_add_alt(x->b, tail_first, &sq);
    }
    int32_t S = tail_more >= 0 ? tail_more : gr_rule(x->b, "props-end");
    int32_t R = tail_first >= 0 ? tail_first : S;
    if (tail_more < 0) { gr_seq_clear(&sq); gr_add_alt(x->b, S, &sq); }
    /* build from the last property back: S_i (something emitted), R_i (nothing yet) */
    for (size_t idx = n; idx-- > 0 && !failed(x);) {
        const char *name = json_string_value(json_array_get(names, idx));
        bool required = false;
        json_array_foreach(req, i, v) required = required || !strcmp(json_string_value(v), name);
        char sub[512];
        snprintf(sub, sizeof sub, "%.300s/properties/%.150s", path, name);
        int32_t val = sc_schema(x, json_array_get(schemas, idx), sub);
        char *key = json_dumps(json_array_get(names, idx), JSON_ENCODE_ANY | JSON_COMPACT);
        if (!key) { gr_builder_fail(x->b, LL_ERR_NOMEM, "schema: out of memory"); break; }
        int32_t kv = r_member(x, gr_rule_lit(x->b, name, key, strlen(key)), val);
        free(key);
        int32_t S2 = gr_rule(x->b, "props"), R2 = gr_rule(x->b, "props");
        gr_seq_clear(&sq);   /* S2 ::= "," ws kv ws S */
        gr_seq_byte(x->b, &sq, ',');
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_ref(x->b, &sq, kv);
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_ref(x->b, &sq, S);
        gr_add_alt(x->b, S2, &sq);
        gr_seq_clear(&sq);   /* R2 ::= kv ws S */
        gr_seq_ref(x->b, &sq, kv);
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_ref(x->b, &sq, S);
        gr_add_alt(x->b, R2, &sq);
        if (!required) { alt_ref(x, S2, S); alt_ref(x, R2, R); }
        S = S2;
        R = R2;
    }
    int32_t r = gr_rule(x->b, "object");
    gr_seq_clear(&sq);
    gr_seq_byte(x->b, &sq, '{');
    gr_seq_ref(x->b, &sq, ws);
    gr_seq_ref(x->b, &sq, R);
    gr_seq_byte(x->b, &sq, '}');
    gr_add_alt(x->b, r, &sq);
    gr_seq_free(&sq);
    return r;
}

/* ---- arrays -------------------------------------------------------------------------------- */

static int32_t sc_array(sc *x, json_t *s, const char *path) {
    json_t *items = json_object_get(s, "items"), *prefix = json_object_get(s, "prefixItems");
    json_t *jmin = json_object_get(s, "minItems"), *jmax = json_object_get(s, "maxItems");
    if ((items && json_is_array(items))) {
        gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: unsupported keyword 'items' as an array at %s (use prefixItems)", path);
        return -1;
    }
    if ((prefix && !json_is_array(prefix)) || (jmin && (!json_is_integer(jmin) || json_integer_value(jmin) < 0)) ||
        (jmax && (!json_is_integer(jmax) || json_integer_value(jmax) < 0))) {
        gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: bad prefixItems/minItems/maxItems at %s", path);
        return -1;
    }
    if (!prefix && !jmin && !jmax && (!items || json_is_true(items))) return r_array(x);
    long long mn = jmin ? json_integer_value(jmin) : 0, mx = jmax ? json_integer_value(jmax) : -1;
    long long np = prefix ? (long long)json_array_size(prefix) : 0;
    bool items_none = items && json_is_false(items);
    if (items_none && (mx < 0 || mx > np)) mx = np;
    if (mx >= 0 && mn > mx) { gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: minItems > maxItems at %s (or more than prefixItems allow)", path); return -1; }
    if (mn > SC_MAX_ITEMS || np > SC_MAX_ITEMS) { gr_builder_fail(x->b, LL_ERR_LIMIT, "schema: minItems/prefixItems at %s over the cap %d", path, SC_MAX_ITEMS); return -1; }
    if (mx > SC_MAX_ITEMS && mx > mn) mx = SC_MAX_ITEMS > mn ? SC_MAX_ITEMS : mn;   /* fewer items: still valid */
    int32_t ws = r_ws(x);
    char sub[512];
    int32_t item = -1;
    if (!items_none) {
        snprintf(sub, sizeof sub, "%.400s/items", path);
        item = items ? sc_schema(x, items, sub) : r_value(x);
    }
    /* elem(i) and the chain T_i = "i elements emitted so far" */
    long long explicit_n = np > mn ? np : mn;
    if (mx >= 0 && explicit_n > mx) explicit_n = mx;
    gr_seq sq = {0};
    /* T_explicit: the homogeneous rest, ("," ws item ws){0, mx - explicit_n} */
    int32_t T;
    if (item >= 0 && (mx < 0 || mx > explicit_n)) {
        int32_t one = gr_rule(x->b, "item");
        gr_seq_byte(x->b, &sq, ',');
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_ref(x->b, &sq, item);
        gr_seq_ref(x->b, &sq, ws);
        gr_add_alt(x->b, one, &sq);
        T = gr_rule_repeat(x->b, "items", one, 0, mx < 0 ? -1 : mx - explicit_n, -1);
    } else {
        T = gr_rule(x->b, "items-end");
        gr_seq_clear(&sq);
        gr_add_alt(x->b, T, &sq);
    }
    int32_t first_elem = -1;
    for (long long i = explicit_n; i-- > 0 && !failed(x);) {
        int32_t e;
        if (i < np) {
            snprintf(sub, sizeof sub, "%.400s/prefixItems/%lld", path, i);
            e = sc_schema(x, json_array_get(prefix, (size_t)i), sub);
        } else if (item >= 0) {
            e = item;
        } else {
            gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: minItems at %s needs more items than prefixItems and items allow", path);
            break;
        }
        if (i == 0) { first_elem = e; break; }
        int32_t T2 = gr_rule(x->b, "items");
        gr_seq_clear(&sq);
        gr_seq_byte(x->b, &sq, ',');
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_ref(x->b, &sq, e);
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_ref(x->b, &sq, T);
        gr_add_alt(x->b, T2, &sq);
        if (i >= mn) { gr_seq_clear(&sq); gr_add_alt(x->b, T2, &sq); }
        T = T2;
    }
    int32_t r = gr_rule(x->b, "array");
    if (explicit_n == 0) {
        /* no explicit elements: "[" ws "]" or "[" ws item ws T' "]" with T' one fewer */
        gr_seq_clear(&sq);
        gr_seq_byte(x->b, &sq, '[');
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_byte(x->b, &sq, ']');
        gr_add_alt(x->b, r, &sq);
        if (item >= 0 && mx != 0) {
            int32_t one = gr_rule(x->b, "item");
            gr_seq_clear(&sq);
            gr_seq_byte(x->b, &sq, ',');
            gr_seq_ref(x->b, &sq, ws);
            gr_seq_ref(x->b, &sq, item);
            gr_seq_ref(x->b, &sq, ws);
            gr_add_alt(x->b, one, &sq);
            int32_t rest = gr_rule_repeat(x->b, "items", one, 0, mx < 0 ? -1 : mx - 1, -1);
            gr_seq_clear(&sq);
            gr_seq_byte(x->b, &sq, '[');
            gr_seq_ref(x->b, &sq, ws);
            gr_seq_ref(x->b, &sq, item);
            gr_seq_ref(x->b, &sq, ws);
            gr_seq_ref(x->b, &sq, rest);
            gr_seq_byte(x->b, &sq, ']');
            gr_add_alt(x->b, r, &sq);
        }
    } else {
        if (mn == 0) {
            gr_seq_clear(&sq);
            gr_seq_byte(x->b, &sq, '[');
            gr_seq_ref(x->b, &sq, ws);
            gr_seq_byte(x->b, &sq, ']');
            gr_add_alt(x->b, r, &sq);
        }
        gr_seq_clear(&sq);
        gr_seq_byte(x->b, &sq, '[');
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_ref(x->b, &sq, first_elem);
        gr_seq_ref(x->b, &sq, ws);
        gr_seq_ref(x->b, &sq, T);
        gr_seq_byte(x->b, &sq, ']');
        gr_add_alt(x->b, r, &sq);
    }
    gr_seq_free(&sq);
    return r;
}

/* ---- oneOf: only branches that cannot both match ------------------------------------------ */

/* Types a (dereferenced) branch admits; integers are numbers too. */
static int branch_types(sc *x, json_t *s, const char *path) {
    if (json_is_true(s)) return T_ALL;
    if (!json_is_object(s)) return 0;
    json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    int m = 0;
    if (cn) m = value_has_type(cn, T_NULL) ? T_NULL : value_has_type(cn, T_BOOL) ? T_BOOL :
                value_has_type(cn, T_OBJ) ? T_OBJ : value_has_type(cn, T_ARR) ? T_ARR :
                value_has_type(cn, T_STR) ? T_STR : (T_NUM | T_INT);
    else if (json_is_array(en)) {
        size_t i;
        json_t *v;
        json_array_foreach(en, i, v) {
            json_t *one = json_pack("{sO}", "const", v);
            if (one) m |= branch_types(x, one, path);
            json_decref(one);
        }
    } else if (json_object_get(s, "anyOf") || json_object_get(s, "oneOf")) m = T_ALL;
    else m = sc_types(x, s, path);
    if (m & (T_NUM | T_INT)) m |= T_NUM | T_INT;
    return m;
}

/* The values of const/enum of s as an array (new reference), NULL when neither is given. */
static json_t *value_set(json_t *s) {
    json_t *cn = json_object_get(s, "const"), *en = json_object_get(s, "enum");
    if (cn) return json_pack("[O]", cn);
    if (json_is_array(en)) return json_incref(en);
    return NULL;
}

static bool values_disjoint(json_t *a, json_t *b) {
    json_t *va = value_set(a), *vb = value_set(b);
    bool dis = va && vb;
    size_t i, j;
    json_t *p, *q;
    if (dis) json_array_foreach(va, i, p) json_array_foreach(vb, j, q) if (json_equal(p, q)) dis = false;
    json_decref(va);
    json_decref(vb);
    return dis;
}

static bool in_required(json_t *s, const char *k) {
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(s, "required"), i, v) if (json_is_string(v) && !strcmp(json_string_value(v), k)) return true;
    return false;
}

/* Conservative: true only when no instance can match both (different types, different
 * const/enum values, or objects whose required tag property has different const values). */
static bool branches_disjoint(sc *x, json_t *a, json_t *b, const char *path) {
    a = deref(x, a, path);
    b = deref(x, b, path);
    if (!a || !b) return true;   /* the error is already recorded */
    if (!(branch_types(x, a, path) & branch_types(x, b, path))) return true;
    if (!json_is_object(a) || !json_is_object(b)) return false;
    if (values_disjoint(a, b)) return true;
    json_t *pa = json_object_get(a, "properties"), *pb = json_object_get(b, "properties");
    const char *k;
    json_t *v;
    if (json_is_object(pa) && json_is_object(pb))
        json_object_foreach(pa, k, v) {
            json_t *w = json_object_get(pb, k);
            if (!w || !in_required(a, k) || !in_required(b, k)) continue;
            json_t *dv = deref(x, v, path), *dw = deref(x, w, path);
            if (dv && dw && json_is_object(dv) && json_is_object(dw) && values_disjoint(dv, dw)) return true;
        }
    return false;
}

/* ---- one schema ------------------------------------------------------------------------------ */

static int32_t sc_literal(sc *x, json_t *v) {
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!t) { gr_builder_fail(x->b, LL_ERR_NOMEM, "schema: out of memory"); return -1; }
    int32_t r = gr_rule_lit(x->b, "literal", t, strlen(t));
    free(t);
    return r;
}

static int32_t sc_schema(sc *x, json_t *s, const char *path) {
    if (failed(x)) return -1;
    if (json_is_true(s)) return r_value(x);
    if (json_is_false(s)) return gr_rule(x->b, "false");   /* no alternatives: no value */
    if (!json_is_object(s)) {
        gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: the schema at %s must be an object or a boolean", path);
        return -1;
    }
    for (int32_t i = 0; i < x->n_memo; i++) if (x->memo[i].s == s) return x->memo[i].r;
    if (x->depth > SC_MAX_DEPTH) {
        gr_builder_fail(x->b, LL_ERR_LIMIT, "schema: nested deeper than %d at %s", SC_MAX_DEPTH, path);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v) {
        (void)v;
        if (in_list(sc_unsupported, k)) {
            if (x->lenient) {
                if (!x->loose[0]) snprintf(x->loose, sizeof x->loose, "%s", k);
                return r_value(x);
            }
            gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: unsupported keyword '%s' at %s", k, path);
            return -1;
        }
    }
    int32_t r = gr_rule(x->b, "schema");
    if (r < 0) return -1;
    if (x->n_memo == x->cap_memo) {
        int32_t nc = x->cap_memo ? x->cap_memo * 2 : 64;
        void *m = ll_realloc(x->memo, (size_t)nc * sizeof *x->memo);
        if (!m) { gr_builder_fail(x->b, LL_ERR_NOMEM, "schema: out of memory"); return -1; }
        x->memo = m;
        x->cap_memo = nc;
    }
    x->memo[x->n_memo].s = s;
    x->memo[x->n_memo++].r = r;
    x->depth++;

    json_t *any = json_object_get(s, "anyOf"), *one = json_object_get(s, "oneOf");
    if (json_object_get(s, "$ref") || json_object_get(s, "allOf")) {
        json_t *t = deref(x, s, path);
        if (t) alt_ref(x, r, sc_schema(x, t, path));
    } else if (any || one) {
        const char *kw = any ? "anyOf" : "oneOf";
        json_t *list = any ? any : one;
        if (any && one) gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: anyOf together with oneOf at %s", path);
        else if (!json_is_array(list) || json_array_size(list) == 0)
            gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: %s at %s must be a non-empty array", kw, path);
        else {
            json_t *rest = without(x, s, kw);
            bool with_rest = rest && has_assertions(rest, NULL);
            size_t i;
            /* oneOf compiles as a union, which is exact only when no value matches two
             * branches; otherwise refuse rather than allow an instance that fails oneOf */
            for (size_t a1 = 0; one && a1 < json_array_size(list) && !failed(x); a1++)
                for (size_t a2 = a1 + 1; a2 < json_array_size(list) && !failed(x); a2++)
                    if (!branches_disjoint(x, json_array_get(list, a1), json_array_get(list, a2), path))
                        gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: oneOf at %s: branches %zu and %zu may "
                                        "both match (we enforce oneOf only for disjoint branches; use anyOf)", path, a1, a2);
            json_array_foreach(list, i, v) {
                if (failed(x)) break;
                char sub[512];
                snprintf(sub, sizeof sub, "%.400s/%s/%zu", path, kw, i);
                json_t *br = with_rest ? merge(x, rest, v, sub) : v;
                if (!br) break;
                alt_ref(x, r, sc_schema(x, br, sub));
            }
        }
    } else if (json_object_get(s, "enum") || json_object_get(s, "const")) {
        json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
        int types = json_object_get(s, "type") ? sc_types(x, s, path) : T_ALL;
        json_object_foreach(s, k, v) {
            if (!strcmp(k, "enum") || !strcmp(k, "const") || !strcmp(k, "type") || in_list(sc_annotations, k)) continue;
            gr_builder_fail(x->b, LL_ERR_UNSUPPORTED, "schema: unsupported keyword '%s' together with enum/const at %s", k, path);
            break;
        }
        if (en && !json_is_array(en)) gr_builder_fail(x->b, LL_ERR_FORMAT, "schema: 'enum' at %s must be an array", path);
        size_t i;
        if (cn) {
            if (en) {   /* both: const, if it is in the enum */
                bool found = false;
                json_array_foreach(en, i, v) found = found || json_equal(v, cn);
                if (found && value_has_type(cn, types)) alt_ref(x, r, sc_literal(x, cn));
            } else if (value_has_type(cn, types)) {
                alt_ref(x, r, sc_literal(x, cn));
            }
        } else if (en) {
            json_array_foreach(en, i, v) if (value_has_type(v, types)) alt_ref(x, r, sc_literal(x, v));
        }
    } else {
        int types = sc_types(x, s, path);
        if (types == T_ALL && !json_object_get(s, "type")) alt_ref(x, r, r_value(x));
        else {
            if (types & T_NULL) alt_ref(x, r, lit(x, "null"));
            if (types & T_BOOL) { alt_ref(x, r, lit(x, "true")); alt_ref(x, r, lit(x, "false")); }
            if (types & T_OBJ) alt_ref(x, r, sc_object(x, s, path));
            if (types & T_ARR) alt_ref(x, r, sc_array(x, s, path));
            if (types & T_STR) alt_ref(x, r, sc_string(x, s, path));
            if (types & T_NUM) alt_ref(x, r, sc_number(x, s, path));
            else if (types & T_INT) alt_ref(x, r, sc_integer(x, s, path));
        }
    }
    x->depth--;
    return failed(x) ? -1 : r;
}

ll_status gr_compile_schema(gr_grammar *g, const char *text, size_t len, ll_error *err) {
    memset(g, 0, sizeof *g);
    if (len > SC_MAX_SCHEMA_BYTES)
        return ll_fail(err, LL_ERR_LIMIT, "schema: %zu bytes, over the cap of %u", len, SC_MAX_SCHEMA_BYTES);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!root) return ll_fail(err, LL_ERR_FORMAT, "schema: invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
    if (!json_is_object(root) && !json_is_boolean(root)) {
        json_decref(root);
        return ll_fail(err, LL_ERR_FORMAT, "schema: must be a JSON object");
    }
    gr_builder b;
    gr_builder_init(&b, err);
    sc x;
    sc_init(&x, &b);
    x.root = root;
    x.keep = json_array();
    if (!x.keep) gr_builder_fail(&b, LL_ERR_NOMEM, "schema: out of memory");
    int32_t r = sc_schema(&x, root, "#");
    ll_status st = gr_build(&b, r, g);   /* "can never complete": no value satisfies it */
    ll_free(x.memo);
    json_decref(x.keep);
    json_decref(root);
    return st;
}

/* ---- tool calls ------------------------------------------------------------------------------
 * The call a template's tool syntax expects, over the request's tools (spec: grammar.h,
 * gr_compile_tools). Each tool's parameters are compiled exactly when they can be; otherwise
 * (a tool that is not strict) with every subschema that uses an unsupported keyword loosened
 * to any JSON value, and failing that the arguments are any JSON object. */

/* How a tool's parameters compile on their own: 0 exactly, 1 loosened, 2 not at all. */
static int tool_mode(json_t *params, bool strict, const char *name, char *loose, size_t cap, ll_error *err) {
    for (int lenient = 0; lenient < 2; lenient++) {
        ll_error e = { 0 };
        gr_builder b;
        gr_builder_init(&b, &e);
        sc x;
        sc_init(&x, &b);
        x.root = params;
        x.lenient = lenient;
        x.keep = json_array();
        if (!x.keep) gr_builder_fail(&b, LL_ERR_NOMEM, "schema: out of memory");
        int32_t r = sc_schema(&x, params, "#");
        gr_grammar g;
        memset(&g, 0, sizeof g);
        ll_status st = gr_build(&b, r, &g);
        gr_grammar_free(&g);
        ll_free(x.memo);
        json_decref(x.keep);
        if (st == LL_OK) {
            if (lenient) snprintf(loose, cap, "%s", x.loose);
            return lenient;
        }
        if (st == LL_ERR_NOMEM) { ll_fail(err, st, "%s", e.msg); return -1; }
        if (strict) { ll_fail(err, st, "tool '%.100s': %s", name, e.msg); return -1; }
        if (!lenient) snprintf(loose, cap, "%.60s", e.msg);
    }
    return 2;
}

ll_status gr_compile_tools(gr_grammar *g, const char *text, size_t len, ll_error *err) {
    memset(g, 0, sizeof *g);
    if (len > SC_MAX_SCHEMA_BYTES)
        return ll_fail(err, LL_ERR_LIMIT, "tools: %zu bytes of tool schemas, over the cap of %u", len, SC_MAX_SCHEMA_BYTES);
    json_error_t je;
    json_t *spec = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!spec) return ll_fail(err, LL_ERR_FORMAT, "tools: invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
    json_t *tools = json_object_get(spec, "tools");
    const char *name_key = json_string_value(json_object_get(spec, "name_key"));
    const char *args_key = json_string_value(json_object_get(spec, "args_key"));
    const char *prefix = json_string_value(json_object_get(spec, "prefix"));
    bool lead_ws = json_is_true(json_object_get(spec, "lead_ws"));
    bool args_first = json_is_true(json_object_get(spec, "args_first"));
    bool array = json_is_true(json_object_get(spec, "array"));
    if (!json_is_array(tools) || !json_array_size(tools) || !name_key || !args_key) {
        json_decref(spec);
        return ll_fail(err, LL_ERR_FORMAT, "tools: the spec needs tools, name_key and args_key");
    }
    gr_builder b;
    gr_builder_init(&b, err);
    sc x;
    sc_init(&x, &b);
    x.keep = json_array();
    if (!x.keep) gr_builder_fail(&b, LL_ERR_NOMEM, "schema: out of memory");
    int32_t ws = r_ws(&x);
    char *nk = json_dumps(json_object_get(spec, "name_key"), JSON_ENCODE_ANY | JSON_COMPACT);
    char *ak = json_dumps(json_object_get(spec, "args_key"), JSON_ENCODE_ANY | JSON_COMPACT);
    if (!nk || !ak) gr_builder_fail(&b, LL_ERR_NOMEM, "schema: out of memory");
    int32_t call = gr_rule(&b, "call");
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        if (failed(&x)) break;
        json_t *jn = json_object_get(t, "name"), *params = json_object_get(t, "parameters");
        const char *name = json_string_value(jn);
        bool strict = json_is_true(json_object_get(t, "strict"));
        if (!name || !*name) { gr_builder_fail(&b, LL_ERR_FORMAT, "tools: tool %zu has no name", i); break; }
        char loose[128] = "";
        int mode = 2;
        if (params && (json_is_object(params) || json_is_boolean(params))) {
            ll_error e = { 0 };
            mode = tool_mode(params, strict, name, loose, sizeof loose, &e);
            if (mode < 0) { gr_builder_fail(&b, e.code, "%s", e.msg); break; }
        } else if (params && strict) {
            gr_builder_fail(&b, LL_ERR_FORMAT, "tool '%.100s': parameters must be a JSON Schema object", name);
            break;
        }
        if (mode == 1) LL_INFO("tool '%s': arguments constrained loosely (any JSON where '%s' is used)", name, loose);
        if (mode == 2 && params) LL_INFO("tool '%s': arguments constrained to any JSON object (%s)", name, loose);
        int32_t args;
        if (mode == 2) args = r_object(&x);
        else {
            x.root = params;
            x.lenient = mode == 1;
            args = sc_schema(&x, params, "#");
        }
        char *nv = json_dumps(jn, JSON_ENCODE_ANY | JSON_COMPACT);
        if (!nv) { gr_builder_fail(&b, LL_ERR_NOMEM, "schema: out of memory"); break; }
        int32_t name_m = r_member(&x, gr_rule_lit(&b, "name-key", nk, strlen(nk)), gr_rule_lit(&b, name, nv, strlen(nv)));
        int32_t args_m = r_member(&x, gr_rule_lit(&b, "args-key", ak, strlen(ak)), args);
        free(nv);
        gr_seq s = {0};   /* "{" ws first ws "," ws second ws "}" */
        gr_seq_byte(&b, &s, '{');
        gr_seq_ref(&b, &s, ws);
        gr_seq_ref(&b, &s, args_first ? args_m : name_m);
        gr_seq_ref(&b, &s, ws);
        gr_seq_byte(&b, &s, ',');
        gr_seq_ref(&b, &s, ws);
        gr_seq_ref(&b, &s, args_first ? name_m : args_m);
        gr_seq_ref(&b, &s, ws);
        gr_seq_byte(&b, &s, '}');
        gr_add_alt(&b, call, &s);
        gr_seq_free(&s);
    }
    int32_t value = call;
    gr_seq s = {0};
    if (array) {   /* "[" ws call ws more "]", more ::= ("," ws call ws more)?: one call at least */
        int32_t more = gr_rule(&b, "calls");
        gr_seq_byte(&b, &s, ',');
        gr_seq_ref(&b, &s, ws);
        gr_seq_ref(&b, &s, call);
        gr_seq_ref(&b, &s, ws);
        gr_seq_ref(&b, &s, more);
        gr_add_alt(&b, more, &s);
        gr_seq_clear(&s);
        gr_add_alt(&b, more, &s);
        value = gr_rule(&b, "calls");
        gr_seq_byte(&b, &s, '[');
        gr_seq_ref(&b, &s, ws);
        gr_seq_ref(&b, &s, call);
        gr_seq_ref(&b, &s, ws);
        gr_seq_ref(&b, &s, more);
        gr_seq_byte(&b, &s, ']');
        gr_add_alt(&b, value, &s);
        gr_seq_clear(&s);
    }
    int32_t root = gr_rule(&b, "tool-call");
    if (prefix && *prefix) gr_seq_lit(&b, &s, prefix, strlen(prefix));
    if (lead_ws) gr_seq_ref(&b, &s, ws);
    gr_seq_ref(&b, &s, value);
    gr_add_alt(&b, root, &s);
    gr_seq_free(&s);
    free(nk);
    free(ak);
    ll_status st = gr_build(&b, root, g);
    ll_free(x.memo);
    json_decref(x.keep);
    json_decref(spec);
    return st;
}
