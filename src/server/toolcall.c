/* server/toolcall.c: tool calls in generated text (toolcall.h, ollama-api.md §1.2.5).
 *
 * Three states. LOOK: no marker yet; text is content, except a tail that could still become
 * the marker (held) and, for a bare-JSON marker, leading whitespace (held until the first
 * other character decides). CALL: the marker was seen; bytes are buffered and each complete
 * JSON object (brace matching that skips strings and escapes) is tried as a call. PASS: the
 * output is not a tool call (bare marker after other text); everything is content. */
#include "server/toolcall.h"

#include "server/json.h"

#include <string.h>

typedef enum { TC_LOOK, TC_CALL, TC_PASS } tc_state;

typedef struct { char *p; size_t n, cap; } tc_buf;

struct ll_toolcall {
    char    **names;      /* (n_names) the request's tool names */
    size_t    n_names;
    char     *marker;
    size_t    n_marker;
    bool      bare;       /* marker "{" or "[": a call must open the output */
    tc_state  st;
    tc_buf    buf;        /* held bytes (LOOK: whitespace / partial marker; CALL: after it) */
    size_t    scan;       /* CALL: buf[0, scan) holds objects already found not to be calls */
    tc_buf    out;        /* content released by the current ll_toolcall_add */
    size_t    n_calls;
};

static bool buf_add(tc_buf *b, const char *src, size_t k) {
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + k + 1) cap *= 2;
        char *p = ll_realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    if (k) memcpy(b->p + b->n, src, k);
    b->n += k;
    b->p[b->n] = 0;
    return true;
}

static void buf_drop(tc_buf *b, size_t k) {   /* remove the first k bytes */
    memmove(b->p, b->p + k, b->n - k);
    b->n -= k;
    if (b->p) b->p[b->n] = 0;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

ll_status ll_toolcall_init(ll_toolcall **out, const json_t *tools, const char *marker, ll_error *err) {
    *out = NULL;
    ll_toolcall *p = ll_calloc(1, sizeof *p);
    if (!p) return ll_fail(err, LL_ERR_NOMEM, "out of memory for the tool-call parser");
    size_t n = json_array_size(tools);
    if (n && !(p->names = ll_calloc(n, sizeof *p->names))) goto nomem;
    for (size_t i = 0; i < n; i++) {
        const json_t *fn = ll_json_field(json_array_get(tools, i), "function");
        const char *name = json_string_value(ll_json_field(fn, "name"));
        if (!name || !*name) continue;
        if (!(p->names[p->n_names] = ll_str_dup(ll_str_c(name)))) goto nomem;
        p->n_names++;
    }
    if (!marker || !*marker) marker = "{";
    if (!(p->marker = ll_str_dup(ll_str_c(marker)))) goto nomem;
    p->n_marker = strlen(marker);
    p->bare = !strcmp(marker, "{") || !strcmp(marker, "[");
    p->st = TC_LOOK;
    *out = p;
    return LL_OK;
nomem:
    ll_toolcall_free(p);
    return ll_fail(err, LL_ERR_NOMEM, "out of memory for the tool-call parser");
}

void ll_toolcall_free(ll_toolcall *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_names; i++) ll_free(p->names[i]);
    ll_free(p->names);
    ll_free(p->marker);
    ll_free(p->buf.p);
    ll_free(p->out.p);
    ll_free(p);
}

size_t ll_toolcall_count(const ll_toolcall *p) { return p->n_calls; }

/* ---- finding a call --------------------------------------------------------------------------- */

/* End (one past the closing brace) of the JSON object that opens at s[0] == '{', or 0 when it
 * is not complete within n bytes. Braces inside strings do not count. */
static size_t object_end(const char *s, size_t n) {
    int64_t depth = 0;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '{') depth++;
        else if (c == '}' && --depth == 0) return i + 1;
    }
    return 0;
}

/* An object-valued argument field: an object, or a string that holds one (new reference). */
static json_t *args_value(const json_t *v) {
    if (json_is_object(v)) return json_incref((json_t *)v);
    if (json_is_string(v)) {
        json_t *o = NULL;
        ll_error e = { 0 };
        if (ll_json_parse(json_string_value(v), json_string_length(v), &o, &e) == LL_OK) {
            if (json_is_object(o)) return o;
            json_decref(o);
        }
    }
    return NULL;
}

/* The arguments inside v by the rules of §1.2.5 A, searched depth first (new reference). */
static json_t *find_args(const json_t *v, const char *name) {
    if (json_is_object(v)) {
        if (json_object_get(v, "name")) {
            json_t *a = args_value(json_object_get(v, "arguments"));
            if (!a) a = args_value(json_object_get(v, "parameters"));
            if (a) return a;
        }
        json_t *under = json_object_get(v, name);
        if (json_is_object(under)) return json_incref(under);
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            json_t *a = find_args(x, name);
            if (a) return a;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *a = find_args(json_array_get(v, i), name);
            if (a) return a;
        }
    }
    return NULL;
}

/* The tool a call in s[0, n) names: the object's own "name" when it is a tool, else the
 * earliest tool name in the text (the longest on a tie). NULL when none. */
static const char *find_name(const ll_toolcall *p, const json_t *obj, const char *s, size_t n) {
    const char *own = json_string_value(json_object_get(obj, "name"));
    for (size_t i = 0; own && i < p->n_names; i++)
        if (!strcmp(own, p->names[i])) return p->names[i];
    const char *best = NULL;
    size_t best_at = SIZE_MAX, best_len = 0;
    for (size_t i = 0; i < p->n_names; i++) {
        size_t len = strlen(p->names[i]);
        const char *at = memmem(s, n, p->names[i], len);
        if (!at) continue;
        size_t off = (size_t)(at - s);
        if (off < best_at || (off == best_at && len > best_len)) { best = p->names[i]; best_at = off; best_len = len; }
    }
    return best;
}

/* Try the next complete object of the buffer. 1: a call was appended and consumed; 0: no
 * complete object yet; -1: out of memory. Objects that are no call stay (scan moves on). */
static int next_call(ll_toolcall *p, json_t *calls) {
    for (;;) {
        const char *s = p->buf.p;
        const char *open = p->buf.n > p->scan ? memchr(s + p->scan, '{', p->buf.n - p->scan) : NULL;
        if (!open) return 0;
        size_t at = (size_t)(open - s);
        size_t len = object_end(open, p->buf.n - at);
        if (!len) return 0;
        json_t *obj = NULL;
        ll_error e = { 0 };
        const char *name = NULL;
        if (ll_json_parse(open, len, &obj, &e) == LL_OK && json_is_object(obj))
            name = find_name(p, obj, s, at + len);
        if (!name) {                                 /* no call: look past this object */
            json_decref(obj);
            p->scan = at + len;
            continue;
        }
        json_t *args = find_args(obj, name);
        if (!args) {
            /* An object that names the tool but carries no arguments is a call without any. */
            const char *own = json_string_value(json_object_get(obj, "name"));
            args = own && !strcmp(own, name) ? json_object() : json_incref(obj);
        }
        json_decref(obj);
        json_t *call = json_pack("{s:s, s:o}", "name", name, "arguments", args);
        if (!call || json_array_append_new(calls, call) != 0) return -1;
        p->n_calls++;
        buf_drop(&p->buf, at + len);
        p->scan = 0;
        return 1;
    }
}

/* ---- feeding ---------------------------------------------------------------------------------- */

static bool release(ll_toolcall *p, size_t k) {   /* the first k held bytes become content */
    if (!buf_add(&p->out, p->buf.p, k)) return false;
    buf_drop(&p->buf, k);
    return true;
}

/* LOOK: decide what of the buffer is content and whether the marker has started. */
static bool look(ll_toolcall *p, bool final) {
    if (p->bare) {
        size_t i = 0;
        while (i < p->buf.n && is_ws(p->buf.p[i])) i++;
        if (i == p->buf.n) return final ? release(p, p->buf.n) : true;   /* only whitespace yet */
        if (p->buf.p[i] == '{' || p->buf.p[i] == '[') { p->st = TC_CALL; return true; }
        p->st = TC_PASS;
        return release(p, p->buf.n);
    }
    const char *at = memmem(p->buf.p, p->buf.n, p->marker, p->n_marker);
    if (at) {
        size_t k = (size_t)(at - p->buf.p);
        if (!release(p, k)) return false;
        buf_drop(&p->buf, p->n_marker);             /* the marker itself is not content */
        p->st = TC_CALL;
        return true;
    }
    size_t keep = 0;   /* the longest tail that could still grow into the marker */
    for (size_t t = p->n_marker - 1 < p->buf.n ? p->n_marker - 1 : p->buf.n; t > 0 && !final; t--)
        if (!memcmp(p->buf.p + p->buf.n - t, p->marker, t)) { keep = t; break; }
    return release(p, p->buf.n - keep);
}

ll_status ll_toolcall_add(ll_toolcall *p, const char *text, size_t n, bool final, ll_str *content,
                          json_t *calls, ll_error *err) {
    p->out.n = 0;
    *content = (ll_str){ "", 0 };
    if (p->st == TC_PASS) {
        *content = (ll_str){ text, n };
        return LL_OK;
    }
    if (p->buf.n + n > LL_TOOLCALL_MAX_BUFFER)
        return ll_fail(err, LL_ERR_LIMIT, "tool call longer than %zu bytes", LL_TOOLCALL_MAX_BUFFER);
    if (!buf_add(&p->buf, text, n)) goto nomem;
    if (p->st == TC_LOOK && !look(p, final)) goto nomem;
    if (p->st == TC_CALL) {
        int r;
        while ((r = next_call(p, calls)) == 1) {}
        if (r < 0) goto nomem;
        if (final) {
            /* Leftovers: with a bare marker and no call at all, it was JSON content. */
            if (p->bare && p->n_calls == 0 && !release(p, p->buf.n)) goto nomem;
            p->buf.n = 0;
        }
    }
    if (p->out.n) *content = (ll_str){ p->out.p, p->out.n };
    return LL_OK;
nomem:
    return ll_fail(err, LL_ERR_NOMEM, "out of memory parsing tool calls");
}

/* ---- the marker of a template ----------------------------------------------------------------- */

static char *render_turn(const ll_tmpl *t, bool with_call) {
    json_t *asst = with_call
        ? json_pack("{s:s, s:s, s:[{s:{s:s, s:{s:i}}}]}", "role", "assistant", "content", "", "tool_calls",
                    "function", "name", "ll_probe_tool", "arguments", "ll_probe_arg", 7)
        : json_pack("{s:s, s:s}", "role", "assistant", "content", "\x01");
    json_t *v = json_pack("{s:[{s:s, s:s}, o], s:[{s:s, s:{s:s, s:s, s:{s:s, s:{}}}}]}",
                          "Messages", "role", "user", "content", "hi", asst,
                          "Tools", "type", "function", "function", "name", "ll_probe_tool", "description", "probe",
                          "parameters", "type", "object", "properties");
    char *out = NULL;
    size_t n = 0;
    ll_error e = { 0 };
    if (!v || ll_tmpl_execute(t, v, NULL, &out, &n, &e) != LL_OK) out = NULL;
    json_decref(v);
    return out;
}

char *ll_toolcall_marker(const ll_tmpl *t) {
    char *a = NULL, *b = NULL, *m = NULL;
    if (!t || !ll_tmpl_uses(t, "toolcalls")) goto bare;
    a = render_turn(t, false);
    b = render_turn(t, true);
    if (!a || !b) goto bare;
    size_t l = 0;
    while (a[l] && a[l] == b[l]) l++;
    const char *s = b + l, *e = s;
    while (*e && *e != '{' && strncmp(e, "ll_probe_tool", 13)) e++;
    while (s < e && is_ws(*s)) s++;
    while (e > s && is_ws(e[-1])) e--;
    if (e == s) goto bare;
    m = ll_str_dup((ll_str){ s, (size_t)(e - s) });
    ll_free(a);
    ll_free(b);
    return m;
bare:
    ll_free(a);
    ll_free(b);
    return ll_str_dup(ll_str_c("{"));
}

/* ---- the JSON shape of a call (for constraining it) -------------------------------------------- */

/* The key of obj whose value equals want; NULL when none. */
static const char *key_with(const json_t *obj, const json_t *want) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) if (json_equal(v, want)) return k;
    return NULL;
}

void ll_toolcall_syntax_of(const ll_tmpl *t, ll_toolcall_syntax *out) {
    memset(out, 0, sizeof *out);
    char *a = NULL, *b = NULL, *m = ll_toolcall_marker(t);
    json_t *call = NULL, *probe_name = json_string("ll_probe_tool"), *probe_args = json_pack("{s:i}", "ll_probe_arg", 7);
    out->marker = m;
    out->bare = m && (!strcmp(m, "{") || !strcmp(m, "["));
    if (!m || !probe_name || !probe_args || !t || !ll_tmpl_uses(t, "toolcalls")) goto done;
    a = render_turn(t, false);
    b = render_turn(t, true);
    if (!a || !b) goto done;
    size_t l = 0;
    while (a[l] && a[l] == b[l]) l++;
    /* the call's JSON: the first '{' or '[' from the marker on (a bare marker is its start) */
    const char *at = strstr(b + l, m);
    if (!at) goto done;
    if (!out->bare) at += strlen(m);
    const char *js = at;
    while (*js && is_ws(*js)) js++;
    if (*js != '{' && *js != '[') goto done;
    json_error_t je;
    call = json_loadb(js, strlen(js), JSON_DISABLE_EOF_CHECK, &je);
    if (json_is_array(call) && json_array_size(call) >= 1 && json_is_object(json_array_get(call, 0))) {
        out->array = true;
        json_t *first = json_incref(json_array_get(call, 0));
        json_decref(call);
        call = first;
    }
    if (!json_is_object(call) || json_object_size(call) != 2) goto done;
    const char *nk = key_with(call, probe_name), *ak = key_with(call, probe_args);
    if (!nk || !ak || strlen(nk) >= sizeof out->name_key || strlen(ak) >= sizeof out->args_key) goto done;
    strcpy(out->name_key, nk);
    strcpy(out->args_key, ak);
    /* key order as written: find both quoted keys in the text */
    char qn[80], qa[80];
    snprintf(qn, sizeof qn, "\"%s\"", nk);
    snprintf(qa, sizeof qa, "\"%s\"", ak);
    const char *pn = strstr(js, qn), *pa = strstr(js, qa);
    out->args_first = pn && pa && pa < pn;
    out->json = true;
done:
    json_decref(call);
    json_decref(probe_name);
    json_decref(probe_args);
    ll_free(a);
    ll_free(b);
}

void ll_toolcall_syntax_clear(ll_toolcall_syntax *s) {
    ll_free(s->marker);
    memset(s, 0, sizeof *s);
}

bool ll_toolcall_calling(const ll_toolcall *p) { return p->st == TC_CALL; }

ll_str ll_toolcall_held(const ll_toolcall *p) {
    if (p->st != TC_CALL || !p->buf.p) return (ll_str){ "", 0 };
    size_t i = 0;
    if (p->bare) while (i < p->buf.n && is_ws(p->buf.p[i])) i++;
    return (ll_str){ p->buf.p + i, p->buf.n - i };
}
