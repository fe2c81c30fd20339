/* modelfile: parse and render Ollama Modelfiles (modelfile.h; spec ollama-cli.md §16). */
#include "store/modelfile.h"
#include "store/gofmt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

// ---------------------------------------------------------------------------------------------
// parameter table (ollama-cli.md §16.3; the option names of api.Options)

enum mf_ptype { MF_INT, MF_FLOAT, MF_BOOL, MF_STRINGS };

static const struct { const char *name; enum mf_ptype type; } mf_params[] = {
    { "num_ctx", MF_INT },          { "num_predict", MF_INT },     { "temperature", MF_FLOAT },
    { "top_k", MF_INT },            { "top_p", MF_FLOAT },         { "min_p", MF_FLOAT },
    { "typical_p", MF_FLOAT },      { "repeat_last_n", MF_INT },   { "repeat_penalty", MF_FLOAT },
    { "presence_penalty", MF_FLOAT }, { "frequency_penalty", MF_FLOAT }, { "seed", MF_INT },
    { "stop", MF_STRINGS },         { "num_keep", MF_INT },        { "num_batch", MF_INT },
    { "num_gpu", MF_INT },          { "main_gpu", MF_INT },        { "use_mmap", MF_BOOL },
    { "num_thread", MF_INT },       { "draft_num_predict", MF_INT },
};

/* Accepted, warned about and dropped (parser.go deprecatedParameters). */
static const char *const mf_deprecated[] = {
    "penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
    "mirostat", "mirostat_tau", "mirostat_eta",
};

static bool parse_go_int(const char *s, long long *out) {
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!*p) return false;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

/* strconv.ParseFloat(s, 32), then the value Ollama's server ends up with: the client sends the
 * float32 in its shortest decimal form and the server reads that as a float64. */
static bool parse_go_float32(const char *s, double *out) {
    if (!*s || strchr(s, '(') || strchr(s, '_')) return false;
    unsigned char c0 = (unsigned char)s[0];
    if (c0 == ' ' || (c0 >= '\t' && c0 <= '\r')) return false;
    errno = 0;
    char *end;
    float f = strtof(s, &end);
    if (*end || end == s) return false;
    if (!isfinite(f)) return false;   /* overflow (Go: range error), inf and nan (JSON has none) */
    char tmp[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, (double)f);
        if (strtof(tmp, NULL) == f) break;
    }
    *out = strtod(tmp, NULL);
    return true;
}

static bool parse_go_bool(const char *s, bool *out) {
    static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
    static const char *const f[] = { "0", "f", "F", "FALSE", "false", "False" };
    for (size_t i = 0; i < 6; i++) {
        if (!strcmp(s, t[i])) { *out = true; return true; }
        if (!strcmp(s, f[i])) { *out = false; return true; }
    }
    return false;
}

ll_status ll_modelfile_set_param(json_t **params, const char *name, const char *value,
                                 bool *deprecated, ll_error *err) {
    if (deprecated) *deprecated = false;
    for (size_t i = 0; i < sizeof mf_deprecated / sizeof mf_deprecated[0]; i++)
        if (!strcmp(name, mf_deprecated[i])) {
            if (deprecated) *deprecated = true;
            return LL_OK;
        }
    size_t k = 0, n_params = sizeof mf_params / sizeof mf_params[0];
    while (k < n_params && strcmp(name, mf_params[k].name)) k++;
    if (k == n_params) return ll_fail(err, LL_ERR_FORMAT, "unknown parameter '%s'", name);

    json_t *v = NULL;
    switch (mf_params[k].type) {
    case MF_INT: {
        long long x;
        if (!parse_go_int(value, &x)) return ll_fail(err, LL_ERR_FORMAT, "invalid int value [%s]", value);
        v = json_integer(x);
        break;
    }
    case MF_FLOAT: {
        double x;
        if (!parse_go_float32(value, &x))
            return ll_fail(err, LL_ERR_FORMAT, "invalid float value [%s]", value);
        v = json_real(x);
        break;
    }
    case MF_BOOL: {
        bool x;
        if (!parse_go_bool(value, &x)) return ll_fail(err, LL_ERR_FORMAT, "invalid bool value [%s]", value);
        v = json_boolean(x);
        break;
    }
    case MF_STRINGS:
        v = json_string_nocheck(value);
        break;
    }
    if (!v) return ll_fail(err, LL_ERR_NOMEM, "out of memory setting parameter '%s'", name);
    if (!*params && !(*params = json_object())) {
        json_decref(v);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory setting parameter '%s'", name);
    }
    if (mf_params[k].type == MF_STRINGS) {
        json_t *arr = json_object_get(*params, name);
        if (!json_is_array(arr)) {
            arr = json_array();
            if (!arr || json_object_set_new(*params, name, arr)) {
                json_decref(v);
                return ll_fail(err, LL_ERR_NOMEM, "out of memory setting parameter '%s'", name);
            }
        }
        if (json_array_append_new(arr, v))
            return ll_fail(err, LL_ERR_NOMEM, "out of memory setting parameter '%s'", name);
        return LL_OK;
    }
    if (json_object_set_new(*params, name, v))
        return ll_fail(err, LL_ERR_NOMEM, "out of memory setting parameter '%s'", name);
    return LL_OK;
}

// ---------------------------------------------------------------------------------------------
// semver for REQUIRES (golang.org/x/mod/semver.IsValid, "v" prefix optional in the Modelfile)

static bool semver_num(const char **p, bool *ok) {
    const char *s = *p;
    if (*s < '0' || *s > '9') return *ok = false;
    if (*s == '0' && s[1] >= '0' && s[1] <= '9') return *ok = false;   /* no leading zeros */
    while (*s >= '0' && *s <= '9') s++;
    *p = s;
    return true;
}

static bool semver_ids(const char **p, bool numeric_rule) {
    const char *s = *p;
    for (;;) {
        const char *start = s;
        bool all_digits = true;
        while ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '-') {
            if (*s < '0' || *s > '9') all_digits = false;
            s++;
        }
        if (s == start) return false;
        if (numeric_rule && all_digits && *start == '0' && s - start > 1) return false;
        if (*s != '.') break;
        s++;
    }
    *p = s;
    return true;
}

static bool semver_valid(const char *v) {
    const char *p = v;
    bool ok = true;
    if (*p++ != 'v') return false;
    if (!semver_num(&p, &ok)) return false;
    if (!*p) return true;                           /* v1 */
    if (*p++ != '.' || !semver_num(&p, &ok)) return false;
    if (!*p) return true;                           /* v1.2 */
    if (*p++ != '.' || !semver_num(&p, &ok)) return false;
    if (*p == '-') { p++; if (!semver_ids(&p, true)) return false; }
    if (*p == '+') { p++; if (!semver_ids(&p, false)) return false; }
    return *p == 0;
}

// ---------------------------------------------------------------------------------------------
// the lexer: Ollama's rune state machine (parser.go ParseFile / parseRuneForState)

enum mf_state { ST_NIL, ST_NAME, ST_VALUE, ST_PARAMETER, ST_MESSAGE, ST_COMMENT };

enum mf_cmd { CMD_MODEL, CMD_LICENSE, CMD_TEMPLATE, CMD_SYSTEM, CMD_ADAPTER, CMD_DRAFT,
              CMD_RENDERER, CMD_PARSER, CMD_PARAMETER, CMD_MESSAGE, CMD_REQUIRES };

static const char *const mf_cmd_names[] = { "from", "license", "template", "system", "adapter",
    "draft", "renderer", "parser", "parameter", "message", "requires" };

#define MF_ERR_COMMAND "command must be one of \"from\", \"license\", \"template\", \"system\", " \
    "\"adapter\", \"draft\", \"renderer\", \"parser\", \"parameter\", \"message\", or \"requires\""
#define MF_ERR_ROLE "message role must be one of \"system\", \"user\", or \"assistant\""

typedef struct {
    enum mf_cmd cmd;
    char *name;     /* PARAMETER name or MESSAGE role; NULL otherwise */
    char *args;
    int   line;
} mf_command;

typedef struct {
    mf_command *v;
    size_t n, cap;
} mf_commands;

static void commands_free(mf_commands *c) {
    for (size_t i = 0; i < c->n; i++) { ll_free(c->v[i].name); ll_free(c->v[i].args); }
    ll_free(c->v);
}

static bool is_space(int32_t r) { return r == ' ' || r == '\t'; }
static bool is_newline(int32_t r) { return r == '\r' || r == '\n'; }
static bool is_alpha(int32_t r) { return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'); }
static bool is_digit(int32_t r) { return r >= '0' && r <= '9'; }

/* strconv.IsPrint, approximated: Go keeps letters, marks, numbers, punctuation, symbols and the
 * ASCII space. We drop the control, format, separator and private-use code points that matter
 * in practice; unassigned code points are kept (Go drops them). */
static bool is_print(int32_t r) {
    if (r < 0x20 || r == 0x7F || (r >= 0x80 && r <= 0xA0) || r == 0xAD) return false;
    if (r == 0x1680 || r == 0x180E || (r >= 0x2000 && r <= 0x200F) || (r >= 0x2028 && r <= 0x202F))
        return false;
    if ((r >= 0x205F && r <= 0x206F) || r == 0x3000 || r == 0xFEFF || (r >= 0xFFF9 && r <= 0xFFFB))
        return false;
    if ((r >= 0xE000 && r <= 0xF8FF) || r >= 0xF0000) return false;
    return true;
}

/* One code point of UTF-8; invalid bytes decode to U+FFFD, as Go's decoder does. */
static size_t next_rune(const unsigned char *s, size_t n, int32_t *r) {
    unsigned c = s[0];
    if (c < 0x80) { *r = (int32_t)c; return 1; }
    size_t len; uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *r = 0xFFFD; return 1; }
    if (n < len) { *r = 0xFFFD; return 1; }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *r = 0xFFFD; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *r = 0xFFFD; return 1; }
    *r = (int32_t)v;
    return len;
}

static void put_rune(gobuf *b, int32_t r) {
    unsigned char u[4];
    size_t n;
    uint32_t v = (uint32_t)r;
    if (v < 0x80) { u[0] = (unsigned char)v; n = 1; }
    else if (v < 0x800) { u[0] = (unsigned char)(0xC0 | (v >> 6)); u[1] = (unsigned char)(0x80 | (v & 0x3F)); n = 2; }
    else if (v < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (v >> 12)); u[1] = (unsigned char)(0x80 | ((v >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (v & 0x3F)); n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | (v >> 18)); u[1] = (unsigned char)(0x80 | ((v >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((v >> 6) & 0x3F)); u[3] = (unsigned char)(0x80 | (v & 0x3F)); n = 4;
    }
    gobuf_put(b, u, n);
}

/* UTF-16 text after a BOM, converted to UTF-8 (unpaired surrogates become U+FFFD). */
static char *utf16_to_utf8(const unsigned char *s, size_t n, bool big_endian, size_t *out_n) {
    gobuf b = {0};
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint32_t u = big_endian ? (uint32_t)(s[i] << 8 | s[i + 1]) : (uint32_t)(s[i + 1] << 8 | s[i]);
        if (u >= 0xD800 && u <= 0xDBFF && i + 3 < n) {
            uint32_t lo = big_endian ? (uint32_t)(s[i + 2] << 8 | s[i + 3]) : (uint32_t)(s[i + 3] << 8 | s[i + 2]);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                put_rune(&b, (int32_t)(0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)));
                i += 2;
                continue;
            }
        }
        if (u >= 0xD800 && u <= 0xDFFF) u = 0xFFFD;
        put_rune(&b, (int32_t)u);
    }
    if (n % 2) put_rune(&b, 0xFFFD);
    return gobuf_take(&b, out_n);
}

/* parser.go unquote: """…""" or "…" around the whole (trimmed) value, else the value as is. */
static bool unquote(const char *s, size_t n, size_t *off, size_t *len) {
    if (n >= 3 && !memcmp(s, "\"\"\"", 3)) {
        if (n >= 6 && !memcmp(s + n - 3, "\"\"\"", 3)) { *off = 3; *len = n - 6; return true; }
        return false;
    }
    if (n >= 1 && s[0] == '"') {
        if (n >= 2 && s[n - 1] == '"') { *off = 1; *len = n - 2; return true; }
        return false;
    }
    *off = 0;
    *len = n;
    return true;
}

static void trim_space(const char *s, size_t n, size_t *off, size_t *len) {
    size_t a = 0, e = n;
    while (a < e && (s[a] == ' ' || (s[a] >= '\t' && s[a] <= '\r'))) a++;
    while (e > a && (s[e - 1] == ' ' || (s[e - 1] >= '\t' && s[e - 1] <= '\r'))) e--;
    *off = a;
    *len = e - a;
}

static ll_status lex(const char *text, size_t n, mf_commands *out, ll_error *err) {
    enum mf_state curr = ST_NIL;
    int line = 1, cmd_line = 1;
    gobuf b = {0};
    enum mf_cmd cmd = CMD_MODEL;
    char *name = NULL;          /* PARAMETER name or MESSAGE role of the command being read */
    ll_status st = LL_OK;
    int32_t prev = 0;
    const unsigned char *u = (const unsigned char *)text;

    for (size_t i = 0; i < n;) {
        int32_t r;
        i += next_rune(u + i, n - i, &r);
        if (is_newline(r) && !(r == '\n' && prev == '\r')) line++;
        prev = r;
        /* the line a failure on this rune belongs to: a newline ends the line before it */
        int here = is_newline(r) ? line - 1 : line;

        /* parseRuneForState */
        enum mf_state next = curr;
        int32_t keep = r;
        switch (curr) {
        case ST_NIL:
            if (r == '#') { next = ST_COMMENT; keep = 0; }
            else if (is_space(r) || is_newline(r)) { next = ST_NIL; keep = 0; }
            else { next = ST_NAME; cmd_line = here; }
            break;
        case ST_NAME:
            if (is_alpha(r)) break;
            if (is_space(r)) { next = ST_VALUE; keep = 0; break; }
            st = ll_fail(err, LL_ERR_FORMAT, "(line %d): " MF_ERR_COMMAND, here);
            goto done;
        case ST_VALUE:
            if (is_newline(r) || is_space(r)) next = ST_NIL;
            break;
        case ST_PARAMETER:
        case ST_MESSAGE:
            if (is_alpha(r) || (curr == ST_PARAMETER && (is_digit(r) || r == '_'))) break;
            if (is_space(r)) {
                if (b.n == 0) { keep = 0; break; }   /* a second space: skip (Ollama: empty name) */
                next = ST_VALUE; keep = 0; break;
            }
            st = ll_fail(err, LL_ERR_FORMAT, "unexpected EOF: %s", b.p ? b.p : "");
            goto done;
        case ST_COMMENT:
            if (is_newline(r)) next = ST_NIL;
            keep = 0;
            break;
        }

        if (next != curr) {
            switch (curr) {
            case ST_NAME: {
                size_t k = 0, n_cmds = sizeof mf_cmd_names / sizeof mf_cmd_names[0];
                while (k < n_cmds && strcasecmp(b.p ? b.p : "", mf_cmd_names[k])) k++;
                if (k == n_cmds) {
                    st = ll_fail(err, LL_ERR_FORMAT, "(line %d): " MF_ERR_COMMAND, here);
                    goto done;
                }
                cmd = (enum mf_cmd)k;
                if (cmd == CMD_PARAMETER) next = ST_PARAMETER;
                else if (cmd == CMD_MESSAGE) next = ST_MESSAGE;
                break;
            }
            case ST_PARAMETER:
            case ST_MESSAGE:
                if (curr == ST_MESSAGE && strcmp(b.p, "system") && strcmp(b.p, "user") &&
                    strcmp(b.p, "assistant")) {
                    st = ll_fail(err, LL_ERR_FORMAT, "(line %d): " MF_ERR_ROLE, here);
                    goto done;
                }
                ll_free(name);
                if (!(name = ll_str_dup((ll_str){ b.p, b.n }))) goto oom;
                break;
            case ST_VALUE: {
                size_t t_off, t_len, q_off, q_len;
                trim_space(b.p ? b.p : "", b.n, &t_off, &t_len);
                bool ok = unquote(b.p ? b.p + t_off : "", t_len, &q_off, &q_len);
                if (!ok || is_space(r)) {
                    put_rune(&b, r);
                    if (b.oom) goto oom;
                    if (b.n > LL_MODELFILE_MAX_BYTES) goto limit;
                    continue;
                }
                if (out->n == out->cap) {
                    size_t cap = out->cap ? out->cap * 2 : 16;
                    if (cap > LL_MODELFILE_MAX_COMMANDS) cap = LL_MODELFILE_MAX_COMMANDS;
                    if (out->n == cap) goto limit;
                    mf_command *v = ll_realloc(out->v, cap * sizeof *v);
                    if (!v) goto oom;
                    out->v = v;
                    out->cap = cap;
                }
                char *args = ll_str_dup((ll_str){ b.p + t_off + q_off, q_len });
                if (!args) goto oom;
                out->v[out->n++] = (mf_command){ cmd, name, args, cmd_line };
                name = NULL;
                break;
            }
            case ST_NIL:
            case ST_COMMENT:
                break;
            }
            b.n = 0;
            if (b.p) b.p[0] = 0;
            curr = next;
        }
        if (keep && is_print(keep)) {
            put_rune(&b, keep);
            if (b.oom) goto oom;
        }
    }

    /* flush */
    switch (curr) {
    case ST_NIL:
    case ST_COMMENT:
        break;
    case ST_VALUE: {
        size_t t_off, t_len, q_off, q_len;
        trim_space(b.p ? b.p : "", b.n, &t_off, &t_len);
        if (!unquote(b.p ? b.p + t_off : "", t_len, &q_off, &q_len)) {
            st = ll_fail(err, LL_ERR_FORMAT, "unexpected EOF");
            goto done;
        }
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap + 1 : 1;
            if (cap > LL_MODELFILE_MAX_COMMANDS) goto limit;
            mf_command *v = ll_realloc(out->v, cap * sizeof *v);
            if (!v) goto oom;
            out->v = v;
            out->cap = cap;
        }
        char *args = ll_str_dup((ll_str){ b.p ? b.p + t_off + q_off : "", q_len });
        if (!args) goto oom;
        out->v[out->n++] = (mf_command){ cmd, name, args, cmd_line };
        name = NULL;
        break;
    }
    default:
        st = ll_fail(err, LL_ERR_FORMAT, "unexpected EOF");
        goto done;
    }
    goto done;

oom:
    st = ll_fail(err, LL_ERR_NOMEM, "out of memory parsing Modelfile at line %d", line);
    goto done;
limit:
    st = ll_fail(err, LL_ERR_LIMIT, "Modelfile exceeds %u commands or %u bytes (line %d)",
                 LL_MODELFILE_MAX_COMMANDS, LL_MODELFILE_MAX_BYTES, line);
done:
    ll_free(name);
    gobuf_free(&b);
    return st;
}

// ---------------------------------------------------------------------------------------------
// commands -> ll_modelfile (parser.go CreateRequest, minus the file hashing)

ll_modelfile *ll_modelfile_new(void) { return ll_calloc(1, sizeof(ll_modelfile)); }

static void free_strs(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) ll_free(v[i]);
    ll_free(v);
}

void ll_modelfile_free(ll_modelfile *mf) {
    if (!mf) return;
    free_strs(mf->from, mf->n_from);
    free_strs(mf->adapters, mf->n_adapters);
    free_strs(mf->licenses, mf->n_licenses);
    free_strs(mf->deprecated, mf->n_deprecated);
    for (size_t i = 0; i < mf->n_messages; i++) {
        ll_free(mf->messages[i].role);
        ll_free(mf->messages[i].content);
    }
    ll_free(mf->messages);
    ll_free(mf->template_text);
    ll_free(mf->system);
    ll_free(mf->draft);
    ll_free(mf->renderer);
    ll_free(mf->parser);
    ll_free(mf->requires);
    json_decref(mf->params);
    ll_free(mf);
}

/* Append s (taken over) to a string list. */
static bool push_str(char ***v, size_t *n, char *s) {
    char **nv = ll_realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv) { ll_free(s); return false; }
    nv[(*n)++] = s;
    *v = nv;
    return true;
}

static void replace_str(char **dst, char *s) { ll_free(*dst); *dst = s; }

ll_status ll_modelfile_parse(ll_modelfile **out, const char *text, size_t n, ll_error *err) {
    *out = NULL;
    if (n > LL_MODELFILE_MAX_BYTES)
        return ll_fail(err, LL_ERR_LIMIT, "Modelfile is %zu bytes, the limit is %u", n,
                       LL_MODELFILE_MAX_BYTES);
    char *conv = NULL;
    const unsigned char *u = (const unsigned char *)text;
    if (n >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) { text += 3; n -= 3; }
    else if (n >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF))) {
        if (!(conv = utf16_to_utf8(u + 2, n - 2, u[0] == 0xFE, &n)))
            return ll_fail(err, LL_ERR_NOMEM, "out of memory decoding a UTF-16 Modelfile");
        text = conv;
    }

    mf_commands cmds = {0};
    ll_modelfile *mf = NULL;
    ll_status st = lex(text, n, &cmds, err);
    if (st != LL_OK) goto fail;
    bool has_from = false;
    for (size_t i = 0; i < cmds.n; i++) has_from |= cmds.v[i].cmd == CMD_MODEL;
    if (!has_from) { st = ll_fail(err, LL_ERR_FORMAT, "no FROM line"); goto fail; }

    if (!(mf = ll_modelfile_new())) goto oom;
    for (size_t i = 0; i < cmds.n; i++) {
        mf_command *c = &cmds.v[i];
        char *a = c->args;
        c->args = NULL;       /* taken over below (or freed) */
        switch (c->cmd) {
        case CMD_MODEL: if (!push_str(&mf->from, &mf->n_from, a)) goto oom; break;
        case CMD_ADAPTER: if (!push_str(&mf->adapters, &mf->n_adapters, a)) goto oom; break;
        case CMD_LICENSE: if (!push_str(&mf->licenses, &mf->n_licenses, a)) goto oom; break;
        case CMD_TEMPLATE: replace_str(&mf->template_text, a); break;
        case CMD_SYSTEM: replace_str(&mf->system, a); break;
        case CMD_DRAFT: replace_str(&mf->draft, a); break;
        case CMD_RENDERER: replace_str(&mf->renderer, a); break;
        case CMD_PARSER: replace_str(&mf->parser, a); break;
        case CMD_REQUIRES: {
            char v[96];
            snprintf(v, sizeof v, "%s%s", a[0] == 'v' ? "" : "v", a);
            bool ok = strlen(a) < 90 && semver_valid(v);
            ll_free(a);
            if (!ok) { st = ll_fail(err, LL_ERR_FORMAT, "requires must be a valid semver (e.g. 0.14.0)"); goto fail; }
            replace_str(&mf->requires, ll_str_dup(ll_str_c(v + 1)));
            if (!mf->requires) goto oom;
            break;
        }
        case CMD_MESSAGE: {
            ll_mf_message *m = ll_realloc(mf->messages, (mf->n_messages + 1) * sizeof *m);
            if (!m) { ll_free(a); goto oom; }
            mf->messages = m;
            m[mf->n_messages++] = (ll_mf_message){ c->name, a };
            c->name = NULL;
            break;
        }
        case CMD_PARAMETER: {
            bool dep;
            st = ll_modelfile_set_param(&mf->params, c->name, a, &dep, err);
            ll_free(a);
            if (st != LL_OK) goto fail;
            if (dep) {
                char *d = ll_str_dup(ll_str_c(c->name));
                if (!d || !push_str(&mf->deprecated, &mf->n_deprecated, d)) goto oom;
            }
            break;
        }
        }
    }
    commands_free(&cmds);
    ll_free(conv);
    *out = mf;
    return LL_OK;

oom:
    st = ll_fail(err, LL_ERR_NOMEM, "out of memory building the Modelfile");
fail:
    commands_free(&cmds);
    ll_modelfile_free(mf);
    ll_free(conv);
    return st;
}

// ---------------------------------------------------------------------------------------------
// rendering (ollama show --modelfile; parser.go Command.String and quote)

static void put_quoted(gobuf *b, const char *s) {
    size_t n = strlen(s);
    bool wrap = strchr(s, '\n') || (n && (s[0] == ' ' || s[n - 1] == ' '));
    if (!wrap) { gobuf_put(b, s, n); return; }
    const char *q = strchr(s, '"') ? "\"\"\"" : "\"";
    gobuf_puts(b, q);
    gobuf_put(b, s, n);
    gobuf_puts(b, q);
}

char *ll_modelfile_quote(const char *s) {
    gobuf b = {0};
    put_quoted(&b, s);
    return gobuf_take(&b, NULL);
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted keys of a JSON object (borrowed strings), or NULL with *n = 0. */
static const char **sorted_keys(const json_t *obj, size_t *n, bool *oom) {
    *n = 0;
    *oom = false;
    if (!json_is_object(obj) || json_object_size(obj) == 0) return NULL;
    const char **keys = ll_malloc_array(json_object_size(obj), sizeof *keys);
    if (!keys) { *oom = true; return NULL; }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) keys[(*n)++] = k;
    qsort(keys, *n, sizeof *keys, cmp_cstr);
    return keys;
}

/* One value in Go %v form (Modelfile) or %#v form (parameters); NULL values are skipped. */
static void put_value(gobuf *b, const json_t *v, bool go_literal) {
    if (json_is_integer(v)) gobuf_printf(b, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) gobuf_v_num(b, json_real_value(v));
    else if (json_is_true(v)) gobuf_puts(b, "true");
    else if (json_is_false(v)) gobuf_puts(b, "false");
    else if (json_is_string(v)) {
        if (go_literal) gobuf_go_quote(b, json_string_value(v), json_string_length(v));
        else put_quoted(b, json_string_value(v));
    }
}

char *ll_modelfile_render(const ll_modelfile *mf, const char *display_name) {
    gobuf b = {0};
    gobuf_puts(&b, "# Modelfile generated by \"ollama show\"\n");
    gobuf_puts(&b, "# To build a new Modelfile based on this, replace FROM with:\n");
    gobuf_printf(&b, "# FROM %s\n\n", display_name ? display_name : "");
    if (mf->n_from) gobuf_printf(&b, "FROM %s\n", mf->from[0]);
    for (size_t i = 0; i < mf->n_adapters; i++) {
        gobuf_puts(&b, "ADAPTER ");
        put_quoted(&b, mf->adapters[i]);
        gobuf_puts(&b, "\n");
    }
    if (mf->draft) { gobuf_puts(&b, "DRAFT "); put_quoted(&b, mf->draft); gobuf_puts(&b, "\n"); }
    for (size_t i = 1; i < mf->n_from; i++) gobuf_printf(&b, "FROM %s\n", mf->from[i]);
    gobuf_puts(&b, "TEMPLATE ");
    put_quoted(&b, mf->template_text && *mf->template_text ? mf->template_text : "{{ .Prompt }}");
    gobuf_puts(&b, "\n");
    if (mf->system && *mf->system) { gobuf_puts(&b, "SYSTEM "); put_quoted(&b, mf->system); gobuf_puts(&b, "\n"); }
    if (mf->renderer) { gobuf_puts(&b, "RENDERER "); put_quoted(&b, mf->renderer); gobuf_puts(&b, "\n"); }
    if (mf->parser) { gobuf_puts(&b, "PARSER "); put_quoted(&b, mf->parser); gobuf_puts(&b, "\n"); }
    size_t nk;
    bool oom;
    const char **keys = sorted_keys(mf->params, &nk, &oom);
    if (oom) b.oom = true;
    for (size_t i = 0; i < nk; i++) {
        json_t *v = json_object_get(mf->params, keys[i]);
        size_t n_vals = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t j = 0; j < n_vals; j++) {
            json_t *e = json_is_array(v) ? json_array_get(v, j) : v;
            if (json_is_null(e) || json_is_array(e) || json_is_object(e)) continue;
            gobuf_printf(&b, "PARAMETER %s ", keys[i]);
            put_value(&b, e, false);
            gobuf_puts(&b, "\n");
        }
    }
    ll_free(keys);
    for (size_t i = 0; i < mf->n_licenses; i++) {
        gobuf_puts(&b, "LICENSE ");
        put_quoted(&b, mf->licenses[i]);
        gobuf_puts(&b, "\n");
    }
    for (size_t i = 0; i < mf->n_messages; i++) {
        gobuf_printf(&b, "MESSAGE %s ", mf->messages[i].role);
        put_quoted(&b, mf->messages[i].content);
        gobuf_puts(&b, "\n");
    }
    return gobuf_take(&b, NULL);
}

char *ll_modelfile_render_parameters(const json_t *params) {
    gobuf b = {0};
    size_t nk;
    bool oom;
    const char **keys = sorted_keys(params, &nk, &oom);
    if (oom) b.oom = true;
    bool first = true;
    for (size_t i = 0; i < nk; i++) {
        json_t *v = json_object_get(params, keys[i]);
        size_t n_vals = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t j = 0; j < n_vals; j++) {
            json_t *e = json_is_array(v) ? json_array_get(v, j) : v;
            if (json_is_null(e) || json_is_array(e) || json_is_object(e)) continue;
            gobuf_printf(&b, "%s%-30s ", first ? "" : "\n", keys[i]);
            put_value(&b, e, true);
            first = false;
        }
    }
    ll_free(keys);
    return gobuf_take(&b, NULL);
}
