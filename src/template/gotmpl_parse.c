/* gotmpl_parse: Go text/template source -> syntax tree, following Go's text/template/parse
 * (lex.go, parse.go) closely enough that templates parse, and fail, where Go's do.
 *
 * The lexer is pulled one token at a time (no token array: a 1 MiB source could hold a
 * million tokens). Spaces inside actions are not tokens; each token records whether space
 * preceded it, which is all the parser needs (Go's "missing space?" and `(x).Field` chains).
 * Recursion: list -> action -> control -> list, and pipeline -> command -> operand ->
 * (pipeline); every level of either kind counts against LL_TMPL_MAX_NESTING (T4), so the C
 * stack use is bounded whatever the input. */
#include "template/gotmpl_impl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- arena and buffer ---- */

void *tm_alloc(tm_arena *a, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n == 0) n = sizeof(max_align_t);
    if (a->cap_bytes && (n > a->cap_bytes || a->total > a->cap_bytes - n)) { a->over_cap = true; return NULL; }
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        tm_blk *b = ll_malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head; b->used = 0; b->cap = cap;
        a->head = b;
    }
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

void tm_arena_free(tm_arena *a) {
    for (tm_blk *b = a->head, *nx; b; b = nx) { nx = b->next; ll_free(b); }
    a->head = NULL; a->total = 0;
}

int tm_buf_put(tm_buf *b, const void *s, size_t n) {
    if (n > b->max || b->n > b->max - n) return -2;
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n + 1) cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        char *p = ll_realloc(b->p, cap);
        if (!p) return -1;
        b->p = p; b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int tm_buf_printf(tm_buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return -1;
    return tm_buf_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* ---- lexer (Go's lex.go) ---- */

enum {
    K_EOF, K_ERROR, K_TEXT, K_LEFT, K_RIGHT, K_PIPE, K_LPAREN, K_RPAREN, K_DECLARE, K_ASSIGN,
    K_COMMA, K_CHAR_OTHER, K_FIELD, K_VAR, K_IDENT, K_STRING, K_RAW, K_CHAR, K_NUMBER, K_BOOL,
    K_NIL, K_DOT,
    K_IF, K_ELSE, K_END, K_RANGE, K_WITH, K_DEFINE, K_TEMPLATE, K_BLOCK, K_BREAK, K_CONTINUE,
};

typedef struct {
    int k;
    const char *p; size_t n;     /* token text (TEXT: already trimmed) */
    uint32_t line, col;
    bool sp;                     /* space before it (inside an action) */
} tok;

typedef struct {
    const char *src; size_t n, pos;
    bool in_action, trim_text;
    int paren;
    size_t lc_pos; uint32_t lc_line, lc_col;   /* forward-only line/column tracker */
} lexer;

static bool is_space(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
/* Go's isAlphaNumeric is Unicode-aware; bytes >= 0x80 count as letters here. */
static bool is_alnum(int c) { return c == '_' || isalnum(c) || c >= 0x80; }

static void lex_where(lexer *l, size_t pos, uint32_t *line, uint32_t *col) {
    if (pos < l->lc_pos) { l->lc_pos = 0; l->lc_line = 1; l->lc_col = 1; }
    for (; l->lc_pos < pos; l->lc_pos++) {
        if (l->src[l->lc_pos] == '\n') { l->lc_line++; l->lc_col = 1; }
        else if (((unsigned char)l->src[l->lc_pos] & 0xC0) != 0x80) l->lc_col++;
    }
    *line = l->lc_line; *col = l->lc_col;
}

static bool has_prefix(const lexer *l, size_t pos, const char *s) {
    size_t k = strlen(s);
    return pos <= l->n && l->n - pos >= k && memcmp(l->src + pos, s, k) == 0;
}

/* "}}" or " -}}" at pos; *trim says which */
static bool at_right_delim(const lexer *l, size_t pos, bool *trim) {
    if (pos + 1 < l->n && is_space((unsigned char)l->src[pos]) && l->src[pos + 1] == '-' &&
        has_prefix(l, pos + 2, "}}")) { *trim = true; return true; }
    *trim = false;
    return has_prefix(l, pos, "}}");
}

static bool at_terminator(const lexer *l, size_t pos) {
    if (pos >= l->n) return true;
    int c = (unsigned char)l->src[pos];
    if (is_space(c)) return true;
    if (strchr(".,|:)(", c)) return true;
    return has_prefix(l, pos, "}}");
}

static const struct { const char *w; int k; } lex_keys[] = {
    { "if", K_IF }, { "else", K_ELSE }, { "end", K_END }, { "range", K_RANGE },
    { "with", K_WITH }, { "define", K_DEFINE }, { "template", K_TEMPLATE }, { "block", K_BLOCK },
    { "break", K_BREAK }, { "continue", K_CONTINUE }, { "nil", K_NIL }, { "true", K_BOOL },
    { "false", K_BOOL },
};

/* Fills *t; on K_ERROR, t->p is a static message or one in msg. */
static void lex_next(lexer *l, tok *t, char *msg, size_t msg_cap) {
    memset(t, 0, sizeof *t);
    if (!l->in_action) {
        for (;;) {
            size_t start = l->pos;
            if (l->trim_text) {
                while (start < l->n && is_space((unsigned char)l->src[start])) start++;
                l->trim_text = false;
                l->pos = start;
            }
            if (start >= l->n) { t->k = K_EOF; lex_where(l, l->n, &t->line, &t->col); return; }
            const char *hit = memmem(l->src + start, l->n - start, "{{", 2);
            size_t at = hit ? (size_t)(hit - l->src) : l->n;
            bool ltrim = hit && at + 3 < l->n + 0 && l->src[at + 2] == '-' &&
                         is_space((unsigned char)l->src[at + 3]);
            size_t end = at;
            if (ltrim) while (end > start && is_space((unsigned char)l->src[end - 1])) end--;
            if (end > start) {
                t->k = K_TEXT; t->p = l->src + start; t->n = end - start;
                lex_where(l, start, &t->line, &t->col);
                l->pos = at;
                return;
            }
            if (!hit) { l->pos = l->n; continue; }
            size_t after = at + 2 + (ltrim ? 2 : 0);
            if (has_prefix(l, after, "/*")) {
                const char *e = after + 2 <= l->n ? memmem(l->src + after + 2, l->n - after - 2, "*/", 2) : NULL;
                if (!e) { t->k = K_ERROR; t->p = "unclosed comment"; lex_where(l, at, &t->line, &t->col); return; }
                size_t q = (size_t)(e - l->src) + 2;
                bool rtrim;
                if (!at_right_delim(l, q, &rtrim)) {
                    t->k = K_ERROR; t->p = "comment ends before closing delimiter";
                    lex_where(l, at, &t->line, &t->col);
                    return;
                }
                l->pos = q + (rtrim ? 2 : 0) + 2;
                l->trim_text = rtrim;
                continue;
            }
            t->k = K_LEFT; t->p = l->src + at; t->n = 2;
            lex_where(l, at, &t->line, &t->col);
            l->pos = after; l->in_action = true; l->paren = 0;
            return;
        }
    }
    bool sp = false;
    for (;;) {
        bool trim;
        if (at_right_delim(l, l->pos, &trim)) {
            lex_where(l, l->pos, &t->line, &t->col);
            if (l->paren > 0) { t->k = K_ERROR; t->p = "unclosed left paren"; return; }
            t->k = K_RIGHT; t->sp = sp || trim;
            l->pos += (trim ? 2 : 0) + 2;
            l->in_action = false; l->trim_text = trim;
            return;
        }
        if (l->pos >= l->n) {
            t->k = K_ERROR; t->p = "unclosed action"; lex_where(l, l->n, &t->line, &t->col);
            return;
        }
        if (!is_space((unsigned char)l->src[l->pos])) break;
        size_t q = l->pos;
        while (q < l->n && is_space((unsigned char)l->src[q])) q++;
        /* the last space may belong to " -}}" */
        if (q < l->n && l->src[q] == '-' && has_prefix(l, q + 1, "}}")) {
            if (q - 1 > l->pos) sp = true;
            l->pos = q - 1;
            continue;
        }
        sp = true;
        l->pos = q;
    }
    size_t s = l->pos;
    int c = (unsigned char)l->src[s];
    t->sp = sp; t->p = l->src + s;
    lex_where(l, s, &t->line, &t->col);
    size_t q = s + 1;
    switch (c) {
    case '=': t->k = K_ASSIGN; break;
    case ':':
        if (q < l->n && l->src[q] == '=') { t->k = K_DECLARE; q++; }
        else { t->k = K_ERROR; t->p = "expected :="; return; }
        break;
    case '|': t->k = K_PIPE; break;
    case '(': t->k = K_LPAREN; l->paren++; break;
    case ')':
        if (--l->paren < 0) { t->k = K_ERROR; t->p = "unexpected right paren"; return; }
        t->k = K_RPAREN;
        break;
    case ',': t->k = K_COMMA; break;
    case '"': case '\'': {
        for (;;) {
            if (q >= l->n || l->src[q] == '\n') {
                t->k = K_ERROR;
                t->p = c == '"' ? "unterminated quoted string" : "unterminated character constant";
                return;
            }
            if (l->src[q] == '\\') { q += 2; continue; }
            if (l->src[q++] == c) break;
        }
        t->k = c == '"' ? K_STRING : K_CHAR;
        break;
    }
    case '`': {
        const char *e = q <= l->n ? memchr(l->src + q, '`', l->n - q) : NULL;
        if (!e) { t->k = K_ERROR; t->p = "unterminated raw quoted string"; return; }
        q = (size_t)(e - l->src) + 1;
        t->k = K_RAW;
        break;
    }
    case '$': case '.':
        if (c == '.' && q < l->n && isdigit((unsigned char)l->src[q])) goto number;
        if (at_terminator(l, q)) { t->k = c == '$' ? K_VAR : K_DOT; break; }
        while (q < l->n && is_alnum((unsigned char)l->src[q])) q++;
        if (!at_terminator(l, q)) { t->k = K_ERROR; snprintf(msg, msg_cap, "bad character %#x", (unsigned char)l->src[q]); t->p = msg; return; }
        t->k = c == '$' ? K_VAR : K_FIELD;
        break;
    default:
        if (c == '+' || c == '-' || isdigit(c)) {
        number:
            q = s;
            if (q < l->n && (l->src[q] == '+' || l->src[q] == '-')) q++;
            const char *digits = "0123456789_";
            if (q < l->n && l->src[q] == '0') {
                q++;
                if (q < l->n && (l->src[q] == 'x' || l->src[q] == 'X')) { q++; digits = "0123456789abcdefABCDEF_"; }
                else if (q < l->n && (l->src[q] == 'o' || l->src[q] == 'O')) { q++; digits = "01234567_"; }
                else if (q < l->n && (l->src[q] == 'b' || l->src[q] == 'B')) { q++; digits = "01_"; }
            }
            while (q < l->n && l->src[q] && strchr(digits, l->src[q])) q++;
            if (q < l->n && l->src[q] == '.') { q++; while (q < l->n && l->src[q] && strchr(digits, l->src[q])) q++; }
            if (strlen(digits) == 11 && q < l->n && (l->src[q] == 'e' || l->src[q] == 'E')) {
                q++;
                if (q < l->n && (l->src[q] == '+' || l->src[q] == '-')) q++;
                while (q < l->n && (isdigit((unsigned char)l->src[q]) || l->src[q] == '_')) q++;
            }
            if (strlen(digits) == 23 && q < l->n && (l->src[q] == 'p' || l->src[q] == 'P')) {
                q++;
                if (q < l->n && (l->src[q] == '+' || l->src[q] == '-')) q++;
                while (q < l->n && (isdigit((unsigned char)l->src[q]) || l->src[q] == '_')) q++;
            }
            if (q < l->n && l->src[q] == 'i') q++;
            if (q < l->n && is_alnum((unsigned char)l->src[q])) {
                snprintf(msg, msg_cap, "bad number syntax: \"%.*s\"", (int)(q + 1 - s > 40 ? 40 : q + 1 - s), l->src + s);
                t->k = K_ERROR; t->p = msg;
                return;
            }
            t->k = K_NUMBER;
            break;
        }
        if (is_alnum(c)) {
            while (q < l->n && is_alnum((unsigned char)l->src[q])) q++;
            if (!at_terminator(l, q)) { t->k = K_ERROR; snprintf(msg, msg_cap, "bad character %#x", (unsigned char)l->src[q]); t->p = msg; return; }
            t->k = K_IDENT;
            for (size_t i = 0; i < sizeof lex_keys / sizeof lex_keys[0]; i++)
                if (strlen(lex_keys[i].w) == q - s && memcmp(lex_keys[i].w, l->src + s, q - s) == 0)
                    t->k = lex_keys[i].k;
            break;
        }
        if (c < 0x80 && isprint(c)) { t->k = K_CHAR_OTHER; break; }
        t->k = K_ERROR;
        snprintf(msg, msg_cap, "unrecognized character in action: %#x", c);
        t->p = msg;
        return;
    }
    t->n = q - s;
    l->pos = q;
}

/* ---- parser (Go's parse.go) ---- */

typedef struct {
    lexer lx;
    tok la[3]; int n_la;          /* look-ahead stack (pushed back tokens, last = next) */
    char lexmsg[3][96]; int slot;
    ll_tmpl *t;
    ll_error *err;
    ll_status st;
    int depth, range_depth;
    ll_str *vars; size_t n_vars, cap_vars;
} parser;

static tok next(parser *p) {
    if (p->n_la > 0) return p->la[--p->n_la];
    tok t;
    p->slot = (p->slot + 1) % 3;
    lex_next(&p->lx, &t, p->lexmsg[p->slot], sizeof p->lexmsg[p->slot]);
    return t;
}
static void backup(parser *p, tok t) { p->la[p->n_la++] = t; }
static tok peek(parser *p) { tok t = next(p); backup(p, t); return t; }

static ll_status perr(parser *p, const tok *at, ll_status code, const char *fmt, ...) LL_PRINTF(4, 5);
static ll_status perr(parser *p, const tok *at, ll_status code, const char *fmt, ...) {
    if (p->st != LL_OK) return p->st;
    char m[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    p->st = ll_fail(p->err, code, "template: %u:%u: %s", at ? at->line : 0, at ? at->col : 0, m);
    return p->st;
}
static ll_status nomem(parser *p) {
    if (p->st == LL_OK) p->st = ll_fail(p->err, LL_ERR_NOMEM, "template: out of memory");
    return p->st;
}

static const char *tok_desc(const tok *t, char *buf, size_t cap) {
    switch (t->k) {
    case K_EOF: return "EOF";
    case K_RIGHT: return "\"}}\"";
    case K_LEFT: return "\"{{\"";
    case K_END: return "{{end}}";
    case K_ELSE: return "{{else}}";
    case K_ERROR: return t->p;
    default:
        snprintf(buf, cap, "\"%.*s\"", (int)(t->n > 40 ? 40 : t->n), t->p);
        return buf;
    }
}
static ll_status unexpected(parser *p, const tok *t, const char *context) {
    if (t->k == K_ERROR) return perr(p, t, LL_ERR_FORMAT, "%s", t->p);
    char b[64];
    return perr(p, t, LL_ERR_FORMAT, "unexpected %s in %s", tok_desc(t, b, sizeof b), context);
}

static tm_node *new_node(parser *p, int kind, const tok *at) {
    tm_node *n = tm_alloc(&p->t->arena, sizeof *n);
    if (!n) { nomem(p); return NULL; }
    n->kind = (uint8_t)kind;
    if (at) { n->line = at->line; n->col = at->col; }
    return n;
}

/* append to a node's kids; capacity doubles inside the arena (old arrays are left behind:
 * total waste is at most the final size) */
static bool add_kid(parser *p, tm_node *n, tm_node *kid, size_t *cap) {
    if (n->n_kids == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        tm_node **k = tm_alloc(&p->t->arena, nc * sizeof *k);
        if (!k) { nomem(p); return false; }
        if (n->n_kids) memcpy(k, n->kids, n->n_kids * sizeof *k);
        n->kids = k; *cap = nc;
    }
    n->kids[n->n_kids++] = kid;
    return true;
}

static bool enter(parser *p, const tok *at) {
    if (++p->depth > LL_TMPL_MAX_NESTING) {
        perr(p, at, LL_ERR_LIMIT, "nesting deeper than %d", LL_TMPL_MAX_NESTING);
        return false;
    }
    return true;
}

static bool push_var(parser *p, ll_str name) {
    if (p->n_vars == p->cap_vars) {
        size_t nc = p->cap_vars ? p->cap_vars * 2 : 16;
        ll_str *v = ll_realloc(p->vars, nc * sizeof *v);
        if (!v) { nomem(p); return false; }
        p->vars = v; p->cap_vars = nc;
    }
    p->vars[p->n_vars++] = name;
    return true;
}

/* Go's strconv.Unquote for "..." and '...'; raw strings lose their \r. */
static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
static size_t utf8_put(char *o, uint32_t r) {
    if (r < 0x80) { o[0] = (char)r; return 1; }
    if (r < 0x800) { o[0] = (char)(0xC0 | (r >> 6)); o[1] = (char)(0x80 | (r & 0x3F)); return 2; }
    if (r < 0x10000) { o[0] = (char)(0xE0 | (r >> 12)); o[1] = (char)(0x80 | ((r >> 6) & 0x3F)); o[2] = (char)(0x80 | (r & 0x3F)); return 3; }
    o[0] = (char)(0xF0 | (r >> 18)); o[1] = (char)(0x80 | ((r >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((r >> 6) & 0x3F)); o[3] = (char)(0x80 | (r & 0x3F));
    return 4;
}
/* returns decoded length or -1; out has room for n bytes (escapes never grow the text) */
static long unquote(const char *s, size_t n, char quote, char *out, uint32_t *first_rune, size_t *n_runes) {
    size_t o = 0, runes = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t r;
        if (c != '\\') {
            if (c == (unsigned char)quote || c == '\n') return -1;
            size_t k = 1;
            if (c >= 0x80) { while (i + k < n && ((unsigned char)s[i + k] & 0xC0) == 0x80 && k < 4) k++; }
            if (runes == 0 && first_rune) {
                r = c;
                if (c >= 0xF0 && k == 4) r = ((c & 7u) << 18) | ((s[i+1] & 0x3Fu) << 12) | ((s[i+2] & 0x3Fu) << 6) | (s[i+3] & 0x3Fu);
                else if (c >= 0xE0 && k >= 3) r = ((c & 15u) << 12) | ((s[i+1] & 0x3Fu) << 6) | (s[i+2] & 0x3Fu);
                else if (c >= 0xC0 && k >= 2) r = ((c & 31u) << 6) | (s[i+1] & 0x3Fu);
                *first_rune = r;
            }
            memcpy(out + o, s + i, k); o += k; i += k; runes++;
            continue;
        }
        if (++i >= n) return -1;
        c = (unsigned char)s[i++];
        switch (c) {
        case 'a': r = 7; break;   case 'b': r = 8; break;   case 'f': r = 12; break;
        case 'n': r = 10; break;  case 'r': r = 13; break;  case 't': r = 9; break;
        case 'v': r = 11; break;  case '\\': r = '\\'; break;
        case '\'': case '"': if (c != (unsigned char)quote) return -1; r = c; break;
        case 'x': case 'u': case 'U': {
            int k = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            if (n - i < (size_t)k) return -1;
            r = 0;
            for (int j = 0; j < k; j++) { int h = hexval((unsigned char)s[i + j]); if (h < 0) return -1; r = r * 16 + (uint32_t)h; }
            i += (size_t)k;
            if (c == 'x') { out[o++] = (char)r; if (runes++ == 0 && first_rune) *first_rune = r; continue; }
            if (r > 0x10FFFF || (r >= 0xD800 && r < 0xE000)) return -1;
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                if (n - i < 2) return -1;
                r = (uint32_t)(c - '0');
                for (int j = 0; j < 2; j++) { int d = s[i + j] - '0'; if (d < 0 || d > 7) return -1; r = r * 8 + (uint32_t)d; }
                i += 2;
                if (r > 255) return -1;
                out[o++] = (char)r;
                if (runes++ == 0 && first_rune) *first_rune = r;
                continue;
            }
            return -1;
        }
        if (runes++ == 0 && first_rune) *first_rune = r;
        o += utf8_put(out + o, r);
    }
    if (n_runes) *n_runes = runes;
    return (long)o;
}

static tm_node *string_node(parser *p, const tok *t) {
    tm_node *n = new_node(p, TN_STR, t);
    if (!n) return NULL;
    char *o = tm_alloc(&p->t->arena, t->n + 1);
    if (!o) { nomem(p); return NULL; }
    if (t->k == K_RAW) {
        size_t k = 0;
        for (size_t i = 1; i + 1 < t->n; i++) if (t->p[i] != '\r') o[k++] = t->p[i];
        n->s = o; n->sn = k;
        return n;
    }
    long k = unquote(t->p + 1, t->n - 2, '"', o, NULL, NULL);
    if (k < 0) {
        perr(p, t, LL_ERR_FORMAT, "invalid syntax in string %.*s", (int)(t->n > 40 ? 40 : t->n), t->p);
        return NULL;
    }
    n->s = o; n->sn = (size_t)k;
    return n;
}

/* Go's parse.newNumber, without complex numbers */
static bool parse_int(const char *s, size_t n, int64_t *out) {
    char buf[96];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < sizeof buf; i++) if (s[i] != '_') buf[k++] = s[i];
    if (k + 1 >= sizeof buf) return false;
    buf[k] = 0;
    const char *q = buf;
    bool neg = false;
    if (*q == '+' || *q == '-') neg = *q++ == '-';
    int base = 10;
    if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) { base = 16; q += 2; }
    else if (q[0] == '0' && (q[1] == 'o' || q[1] == 'O')) { base = 8; q += 2; }
    else if (q[0] == '0' && (q[1] == 'b' || q[1] == 'B')) { base = 2; q += 2; }
    else if (q[0] == '0' && q[1]) { base = 8; q += 1; }
    if (!*q) return base == 8 && q > buf && q[-1] == '0' ? (*out = 0, true) : false;
    uint64_t v = 0;
    for (; *q; q++) {
        int d = hexval((unsigned char)*q);
        if (d < 0 || d >= base) return false;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return false;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static tm_node *number_node(parser *p, const tok *t) {
    tm_node *n = new_node(p, TN_NUM, t);
    if (!n) return NULL;
    n->s = t->p; n->sn = t->n;
    if (t->k == K_CHAR) {
        char tmp[64];
        uint32_t r = 0; size_t runes = 0;
        long k = t->n >= 2 && t->n - 2 < sizeof tmp ? unquote(t->p + 1, t->n - 2, '\'', tmp, &r, &runes) : -1;
        if (k < 0 || runes != 1) { perr(p, t, LL_ERR_FORMAT, "malformed character constant: %.*s", (int)(t->n > 20 ? 20 : t->n), t->p); return NULL; }
        n->is_int = n->is_float = true; n->i = r; n->f = r;
        return n;
    }
    if (t->n && t->p[t->n - 1] == 'i') { perr(p, t, LL_ERR_FORMAT, "complex numbers are not supported"); return NULL; }
    if (parse_int(t->p, t->n, &n->i)) { n->is_int = n->is_float = true; n->f = (double)n->i; return n; }
    char buf[96];
    size_t k = 0;
    for (size_t i = 0; i < t->n && k + 1 < sizeof buf; i++) if (t->p[i] != '_') buf[k++] = t->p[i];
    buf[k] = 0;
    char *end;
    errno = 0;
    double f = strtod(buf, &end);
    if (k == 0 || *end || k + 1 >= sizeof buf) {
        perr(p, t, LL_ERR_FORMAT, "illegal number syntax: \"%.*s\"", (int)(t->n > 40 ? 40 : t->n), t->p);
        return NULL;
    }
    bool floaty = false;
    for (size_t i = 0; i < t->n; i++) if (strchr(".eEpP", t->p[i])) floaty = true;
    if (!floaty) { perr(p, t, LL_ERR_FORMAT, "integer overflow: \"%.*s\"", (int)(t->n > 40 ? 40 : t->n), t->p); return NULL; }
    n->is_float = true; n->f = f;
    if (f >= -9.2233720368547758e18 && f < 9.2233720368547758e18 && (double)(int64_t)f == f) { n->is_int = true; n->i = (int64_t)f; }
    return n;
}

static tm_node *parse_pipeline(parser *p, const char *context, int end_kind, bool decl_ok);

/* term: a literal, variable, field, function name or parenthesized pipeline; NULL with st OK
 * when the token is not a term (pushed back) */
static tm_node *parse_term(parser *p) {
    tok t = next(p);
    tm_node *n;
    switch (t.k) {
    case K_IDENT: {
        int fn = tm_func_find(t.p, t.n);
        if (fn < 0) { perr(p, &t, LL_ERR_FORMAT, "function \"%.*s\" not defined", (int)(t.n > 40 ? 40 : t.n), t.p); return NULL; }
        if (!(n = new_node(p, TN_FUNC, &t))) return NULL;
        n->fn = fn; n->s = t.p; n->sn = t.n;
        return n;
    }
    case K_DOT: return new_node(p, TN_DOT, &t);
    case K_NIL: return new_node(p, TN_NIL, &t);
    case K_VAR: {
        bool found = false;
        for (size_t i = p->n_vars; i-- > 0;)
            if (p->vars[i].n == t.n && memcmp(p->vars[i].p, t.p, t.n) == 0) { found = true; break; }
        if (!found) { perr(p, &t, LL_ERR_FORMAT, "undefined variable \"%.*s\"", (int)(t.n > 40 ? 40 : t.n), t.p); return NULL; }
        if (!(n = new_node(p, TN_VAR, &t))) return NULL;
        if (!(n->ids = tm_alloc(&p->t->arena, sizeof *n->ids))) { nomem(p); return NULL; }
        n->ids[0] = (ll_str){ t.p, t.n }; n->n_ids = 1;
        return n;
    }
    case K_FIELD:
        if (!(n = new_node(p, TN_FIELD, &t))) return NULL;
        if (!(n->ids = tm_alloc(&p->t->arena, sizeof *n->ids))) { nomem(p); return NULL; }
        n->ids[0] = (ll_str){ t.p + 1, t.n - 1 }; n->n_ids = 1;
        return n;
    case K_BOOL:
        if (!(n = new_node(p, TN_BOOL, &t))) return NULL;
        n->b = t.n == 4;
        return n;
    case K_CHAR: case K_NUMBER: return number_node(p, &t);
    case K_STRING: case K_RAW: return string_node(p, &t);
    case K_LPAREN:
        if (!enter(p, &t)) return NULL;
        n = parse_pipeline(p, "parenthesized pipeline", K_RPAREN, false);
        p->depth--;
        return n;
    default:
        backup(p, t);
        return NULL;
    }
}

/* operand: term followed by .Field chains written without space */
static tm_node *parse_operand(parser *p) {
    tm_node *n = parse_term(p);
    if (!n) return NULL;
    tok t = peek(p);
    if (t.k != K_FIELD || t.sp) return n;
    size_t n_ids = 0, cap = 4;
    ll_str *ids = tm_alloc(&p->t->arena, cap * sizeof *ids);
    if (!ids) { nomem(p); return NULL; }
    while ((t = peek(p)).k == K_FIELD && !t.sp) {
        next(p);
        if (n_ids == cap) {
            ll_str *m = tm_alloc(&p->t->arena, 2 * cap * sizeof *m);
            if (!m) { nomem(p); return NULL; }
            memcpy(m, ids, n_ids * sizeof *m); ids = m; cap *= 2;
        }
        ids[n_ids++] = (ll_str){ t.p + 1, t.n - 1 };
    }
    switch (n->kind) {
    case TN_FIELD: case TN_VAR: {   /* fold into one chain, as Go does */
        ll_str *all = tm_alloc(&p->t->arena, (n->n_ids + n_ids) * sizeof *all);
        if (!all) { nomem(p); return NULL; }
        memcpy(all, n->ids, n->n_ids * sizeof *all);
        memcpy(all + n->n_ids, ids, n_ids * sizeof *all);
        n->ids = all; n->n_ids += n_ids;
        return n;
    }
    case TN_BOOL: case TN_STR: case TN_NUM: case TN_NIL: case TN_DOT:
        perr(p, &t, LL_ERR_FORMAT, "unexpected . after term");
        return NULL;
    default: {
        tm_node *c = new_node(p, TN_CHAIN, NULL);
        if (!c) return NULL;
        c->line = n->line; c->col = n->col;
        c->pipe = n; c->ids = ids; c->n_ids = n_ids;
        return c;
    }
    }
}

static tm_node *parse_command(parser *p) {
    tok first = peek(p);
    tm_node *cmd = new_node(p, TN_CMD, &first);
    size_t cap = 0;
    if (!cmd) return NULL;
    for (;;) {
        tm_node *op = parse_operand(p);
        if (p->st) return NULL;
        if (!op) { tok t = next(p); unexpected(p, &t, "operand"); return NULL; }
        if (!add_kid(p, cmd, op, &cap)) return NULL;
        tok t = peek(p);
        if (t.k == K_RIGHT || t.k == K_RPAREN) break;
        if (t.k == K_PIPE) { next(p); break; }
        if (t.k == K_ERROR) { unexpected(p, &t, "operand"); return NULL; }
        if (!t.sp) { next(p); unexpected(p, &t, "operand"); return NULL; }
    }
    return cmd;
}

/* pipeline up to end_kind (RIGHT or RPAREN), with optional declarations ($x :=, $i, $v :=) */
static tm_node *parse_pipeline(parser *p, const char *context, int end_kind, bool decl_ok) {
    tok first = peek(p);
    tm_node *pipe = new_node(p, TN_PIPE, &first);
    if (!pipe) return NULL;
    size_t cap = 0;
    bool is_range = strcmp(context, "range") == 0;
    if (decl_ok) {
        for (;;) {
            tok v = next(p);
            if (v.k != K_VAR) { backup(p, v); break; }
            tok nx = peek(p);
            if (nx.k == K_DECLARE || nx.k == K_ASSIGN || nx.k == K_COMMA) {
                next(p);
                ll_str *d = tm_alloc(&p->t->arena, (pipe->n_decl + 1) * sizeof *d);
                if (!d) { nomem(p); return NULL; }
                if (pipe->n_decl) memcpy(d, pipe->decl, pipe->n_decl * sizeof *d);
                d[pipe->n_decl++] = (ll_str){ v.p, v.n };
                pipe->decl = d;
                if (!push_var(p, (ll_str){ v.p, v.n })) return NULL;
                if (nx.k != K_COMMA) { pipe->is_assign = nx.k == K_ASSIGN; break; }
                if (!is_range || pipe->n_decl >= 2) { perr(p, &nx, LL_ERR_FORMAT, "too many declarations in %s", context); return NULL; }
                tok v2 = peek(p);
                if (v2.k != K_VAR) { perr(p, &v2, LL_ERR_FORMAT, "range can only initialize variables"); return NULL; }
                continue;
            }
            backup(p, v);
            break;
        }
        if (pipe->n_decl == 2) {
            /* "$i, $v" must end with := */
        }
    }
    for (;;) {
        tok t = peek(p);
        if (t.k == end_kind) {
            next(p);
            if (pipe->n_kids == 0) { perr(p, &t, LL_ERR_FORMAT, "missing value for %s", context); return NULL; }
            for (size_t i = 1; i < pipe->n_kids; i++) {
                int k = pipe->kids[i]->kids[0]->kind;
                if (k == TN_BOOL || k == TN_DOT || k == TN_NIL || k == TN_NUM || k == TN_STR) {
                    perr(p, &t, LL_ERR_FORMAT, "non executable command in pipeline stage %zu", i + 1);
                    return NULL;
                }
            }
            return pipe;
        }
        switch (t.k) {
        case K_BOOL: case K_CHAR: case K_DOT: case K_FIELD: case K_IDENT: case K_NUMBER:
        case K_NIL: case K_RAW: case K_STRING: case K_VAR: case K_LPAREN: {
            tm_node *c = parse_command(p);
            if (!c || !add_kid(p, pipe, c, &cap)) return NULL;
            break;
        }
        default:
            next(p);
            unexpected(p, &t, context);
            return NULL;
        }
    }
}

typedef enum { IT_NODE, IT_END, IT_ELSE } item_end;

static tm_node *parse_list(parser *p, item_end *ended, tok *end_tok);
static tm_node *parse_action(parser *p, const tok *left, item_end *ended, tok *end_tok);

/* if / range / with: pipeline, list, optional else (else if / else with chain), end */
static tm_node *parse_control(parser *p, int kind, const char *context, const tok *kw) {
    if (!enter(p, kw)) return NULL;
    size_t mark = p->n_vars;
    tm_node *n = new_node(p, kind, kw);
    if (!n) return NULL;
    if (!(n->pipe = parse_pipeline(p, context, K_RIGHT, true))) return NULL;
    if (kind == TN_RANGE) p->range_depth++;
    item_end e; tok et;
    n->list = parse_list(p, &e, &et);
    if (kind == TN_RANGE) p->range_depth--;
    if (!n->list) return NULL;
    if (e == IT_ELSE) {
        tok t = peek(p);
        if ((kind == TN_IF && t.k == K_IF) || (kind == TN_WITH && t.k == K_WITH)) {
            next(p);
            n->elist = new_node(p, TN_LIST, &t);
            if (!n->elist) return NULL;
            size_t cap = 0;
            tm_node *nested = parse_control(p, kind, context, &t);
            if (!nested || !add_kid(p, n->elist, nested, &cap)) return NULL;
        } else {
            n->elist = parse_list(p, &e, &et);
            if (!n->elist) return NULL;
            if (e != IT_END) { perr(p, &et, LL_ERR_FORMAT, "expected end; found {{else}}"); return NULL; }
        }
    }
    p->n_vars = mark;
    p->depth--;
    return n;
}

static tm_node *parse_template_call(parser *p, const tok *kw, const char *context) {
    tok name = next(p);
    if (name.k != K_STRING && name.k != K_RAW) { unexpected(p, &name, context); return NULL; }
    tm_node *s = string_node(p, &name);
    if (!s) return NULL;
    tm_node *n = new_node(p, TN_TEMPLATE, kw);
    if (!n) return NULL;
    n->s = s->s; n->sn = s->sn;
    tok t = peek(p);
    if (t.k != K_RIGHT) {
        if (!(n->pipe = parse_pipeline(p, context, K_RIGHT, false))) return NULL;
    } else next(p);
    return n;
}

static bool add_def(parser *p, ll_str name, tm_node *list, const tok *at) {
    for (size_t i = 0; i < p->t->n_defs; i++)
        if (ll_str_eq(p->t->defs[i].name, name)) {
            if (p->t->defs[i].list->n_kids && list->n_kids) {
                perr(p, at, LL_ERR_FORMAT, "template: multiple definition of template \"%.*s\"", (int)(name.n > 40 ? 40 : name.n), name.p);
                return false;
            }
            if (list->n_kids) p->t->defs[i].list = list;
            return true;
        }
    tm_def *d = tm_alloc(&p->t->arena, (p->t->n_defs + 1) * sizeof *d);
    if (!d) { nomem(p); return false; }
    if (p->t->n_defs) memcpy(d, p->t->defs, p->t->n_defs * sizeof *d);
    d[p->t->n_defs++] = (tm_def){ name, list };
    p->t->defs = d;
    return true;
}

/* {{define "name"}} ... {{end}}, top level only; {{block}} defines and calls */
static bool parse_define_body(parser *p, const tok *kw, ll_str name) {
    if (!enter(p, kw)) return false;
    size_t mark = p->n_vars;
    ll_str dollar = { "$", 1 };
    if (!push_var(p, dollar)) return false;
    int saved_range = p->range_depth;
    p->range_depth = 0;
    item_end e; tok et;
    tm_node *list = parse_list(p, &e, &et);
    p->range_depth = saved_range;
    p->n_vars = mark;
    p->depth--;
    if (!list) return false;
    if (e != IT_END) { perr(p, &et, LL_ERR_FORMAT, "unexpected {{else}} in define clause"); return false; }
    return add_def(p, name, list, kw);
}

static tm_node *parse_action(parser *p, const tok *left, item_end *ended, tok *end_tok) {
    tok t = next(p);
    switch (t.k) {
    case K_BLOCK: {
        tm_node *call = parse_template_call(p, &t, "block clause");
        if (!call) return NULL;
        if (!parse_define_body(p, &t, (ll_str){ call->s, call->sn })) return NULL;
        return call;
    }
    case K_BREAK: case K_CONTINUE: {
        bool brk = t.k == K_BREAK;
        if (p->range_depth == 0) {
            perr(p, &t, LL_ERR_FORMAT, "{{%s}} outside {{range}}", brk ? "break" : "continue");
            return NULL;
        }
        tok r = next(p);
        if (r.k != K_RIGHT) { unexpected(p, &r, brk ? "{{break}}" : "{{continue}}"); return NULL; }
        return new_node(p, brk ? TN_BREAK : TN_CONTINUE, &t);
    }
    case K_ELSE: {
        tok nx = peek(p);
        if (nx.k != K_IF && nx.k != K_WITH) {
            tok r = next(p);
            if (r.k != K_RIGHT) { unexpected(p, &r, "else"); return NULL; }
        }
        *ended = IT_ELSE; *end_tok = *left;
        return NULL;
    }
    case K_END: {
        tok r = next(p);
        if (r.k != K_RIGHT) { unexpected(p, &r, "end"); return NULL; }
        *ended = IT_END; *end_tok = *left;
        return NULL;
    }
    case K_IF: return parse_control(p, TN_IF, "if", &t);
    case K_RANGE: return parse_control(p, TN_RANGE, "range", &t);
    case K_WITH: return parse_control(p, TN_WITH, "with", &t);
    case K_TEMPLATE: return parse_template_call(p, &t, "template clause");
    case K_DEFINE:
        perr(p, &t, LL_ERR_FORMAT, "unexpected <define> in command");
        return NULL;
    default: {
        backup(p, t);
        tm_node *a = new_node(p, TN_ACTION, left);
        if (!a) return NULL;
        if (!(a->pipe = parse_pipeline(p, "command", K_RIGHT, true))) return NULL;
        return a;
    }
    }
}

/* items until {{end}}, {{else}} or EOF (EOF is an error here) */
static tm_node *parse_list(parser *p, item_end *ended, tok *end_tok) {
    tok first = peek(p);
    tm_node *list = new_node(p, TN_LIST, &first);
    size_t cap = 0;
    if (!list) return NULL;
    for (;;) {
        tok t = next(p);
        if (t.k == K_EOF) { perr(p, &t, LL_ERR_FORMAT, "unexpected EOF"); return NULL; }
        if (t.k == K_ERROR) { perr(p, &t, LL_ERR_FORMAT, "%s", t.p); return NULL; }
        if (t.k == K_TEXT) {
            tm_node *n = new_node(p, TN_TEXT, &t);
            if (!n) return NULL;
            n->s = t.p; n->sn = t.n;
            if (!add_kid(p, list, n, &cap)) return NULL;
            continue;
        }
        if (t.k != K_LEFT) { unexpected(p, &t, "input"); return NULL; }
        item_end e = IT_NODE;
        tm_node *n = parse_action(p, &t, &e, end_tok);
        if (p->st) return NULL;
        if (e != IT_NODE) { *ended = e; return list; }
        if (n && !add_kid(p, list, n, &cap)) return NULL;
    }
}

/* ---- tree walks: Ollama's Identifiers and deleteNode ---- */

static bool add_ident(ll_tmpl *t, ll_str s, size_t *cap) {
    for (size_t i = 0; i < t->n_idents; i++)
        if (t->idents[i].n == s.n && strncasecmp(t->idents[i].p, s.p, s.n) == 0) return true;
    if (t->n_idents == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        ll_str *m = tm_alloc(&t->arena, nc * sizeof *m);
        if (!m) return false;
        if (t->n_idents) memcpy(m, t->idents, t->n_idents * sizeof *m);
        t->idents = m; *cap = nc;
    }
    char *low = tm_alloc(&t->arena, s.n + 1);
    if (!low) return false;
    for (size_t i = 0; i < s.n; i++) low[i] = (char)tolower((unsigned char)s.p[i]);
    t->idents[t->n_idents++] = (ll_str){ low, s.n };
    return true;
}

/* Ollama's Identifiers: fields and variables in pipelines (including parenthesized ones) of
 * actions, branches and template calls; chains are not descended, as in Ollama. */
static bool collect_idents(ll_tmpl *t, const tm_node *n, size_t *cap) {
    if (!n) return true;
    switch (n->kind) {
    case TN_LIST:
        for (size_t i = 0; i < n->n_kids; i++) if (!collect_idents(t, n->kids[i], cap)) return false;
        return true;
    case TN_ACTION: case TN_TEMPLATE: return collect_idents(t, n->pipe, cap);
    case TN_IF: case TN_RANGE: case TN_WITH:
        return collect_idents(t, n->pipe, cap) && collect_idents(t, n->list, cap) &&
               collect_idents(t, n->elist, cap);
    case TN_PIPE:
        for (size_t i = 0; i < n->n_kids; i++)
            for (size_t j = 0; j < n->kids[i]->n_kids; j++)
                if (!collect_idents(t, n->kids[i]->kids[j], cap)) return false;
        return true;
    case TN_FIELD: case TN_VAR:
        for (size_t i = 0; i < n->n_ids; i++) if (!add_ident(t, n->ids[i], cap)) return false;
        return true;
    default: return true;
    }
}

bool ll_tmpl_uses(const ll_tmpl *t, const char *ident) {
    if (!t || !ident) return false;
    size_t k = strlen(ident);
    for (size_t i = 0; i < t->n_idents; i++)
        if (t->idents[i].n == k && strncasecmp(t->idents[i].p, ident, k) == 0) return true;
    return false;
}

typedef struct { ll_tmpl *t; bool cut, fails, oom; } cutter;

static bool is_response_field(const tm_node *n) {
    if (n->kind != TN_FIELD) return false;
    for (size_t i = 0; i < n->n_ids; i++) if (ll_str_eq_c(n->ids[i], "Response")) return true;
    return false;
}

static tm_node *copy_node(cutter *c, const tm_node *n) {
    tm_node *m = tm_alloc(&c->t->arena, sizeof *m);
    if (!m) { c->oom = true; return NULL; }
    *m = *n;
    return m;
}

/* Ollama's deleteNode with the predicate of Template.Execute: keep everything up to and
 * including the first {{ .Response }} field of an action, delete everything after it.
 * Returns NULL for a deleted node. Copies what it changes; the original tree is untouched. */
static tm_node *cut_walk(cutter *c, tm_node *n) {
    if (c->oom) return NULL;
    if (is_response_field(n)) { c->cut = true; return n; }
    if (c->cut) return NULL;
    switch (n->kind) {
    case TN_LIST: {
        tm_node *m = copy_node(c, n);
        if (!m) return NULL;
        m->kids = n->n_kids ? tm_alloc(&c->t->arena, n->n_kids * sizeof *m->kids) : NULL;
        if (n->n_kids && !m->kids) { c->oom = true; return NULL; }
        m->n_kids = 0;
        for (size_t i = 0; i < n->n_kids; i++) {
            tm_node *k = cut_walk(c, n->kids[i]);
            if (k) m->kids[m->n_kids++] = k;
        }
        return m;
    }
    case TN_IF: case TN_RANGE: case TN_WITH: {
        tm_node *m = copy_node(c, n);
        if (!m) return NULL;
        m->list = cut_walk(c, n->list);
        if (n->elist) {
            if (c->cut) { c->fails = true; m->elist = NULL; }   /* Go: nil type assertion panics */
            else m->elist = cut_walk(c, n->elist);
        }
        return m;
    }
    case TN_ACTION: {
        tm_node *pipe = cut_walk(c, n->pipe);
        if (!pipe) return NULL;
        tm_node *m = copy_node(c, n);
        if (m) m->pipe = pipe;
        return m;
    }
    case TN_PIPE: {
        tm_node *m = copy_node(c, n);
        if (!m) return NULL;
        m->kids = tm_alloc(&c->t->arena, (n->n_kids ? n->n_kids : 1) * sizeof *m->kids);
        if (!m->kids) { c->oom = true; return NULL; }
        m->n_kids = 0;
        for (size_t i = 0; i < n->n_kids; i++) {
            tm_node *cmd = copy_node(c, n->kids[i]);
            if (!cmd) return NULL;
            cmd->kids = tm_alloc(&c->t->arena, (cmd->n_kids ? cmd->n_kids : 1) * sizeof *cmd->kids);
            if (!cmd->kids) { c->oom = true; return NULL; }
            cmd->n_kids = 0;
            for (size_t j = 0; j < n->kids[i]->n_kids; j++) {
                tm_node *a = cut_walk(c, n->kids[i]->kids[j]);
                if (a) cmd->kids[cmd->n_kids++] = a;
            }
            if (cmd->n_kids == 0) return NULL;
            m->kids[m->n_kids++] = cmd;
        }
        return m->n_kids ? m : NULL;
    }
    default: return n;
    }
}

/* ---- entry points ---- */

ll_tmpl *ll_tmpl_ref(ll_tmpl *t) {
    if (t) atomic_fetch_add(&t->refs, 1);
    return t;
}

void ll_tmpl_free(ll_tmpl *t) {
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
    tm_arena_free(&t->arena);
    ll_free(t);
}

ll_status ll_tmpl_parse(ll_tmpl **out, const char *src, size_t n, ll_error *err) {
    *out = NULL;
    if (n > LL_TMPL_MAX_SOURCE_BYTES)
        return ll_fail(err, LL_ERR_LIMIT, "template source is %zu bytes, limit %zu", n,
                       LL_TMPL_MAX_SOURCE_BYTES);
    if (n == 0 || !src) { src = "{{ .Prompt }}"; n = strlen(src); }   /* T2: Ollama's default */
    ll_tmpl *t = ll_calloc(1, sizeof *t);
    if (!t) return ll_fail(err, LL_ERR_NOMEM, "template: out of memory");
    atomic_init(&t->refs, 1);
    /* keep our own copy: tokens and text nodes point into it */
    char *copy = tm_alloc(&t->arena, n + 1);
    if (!copy) { ll_free(t); return ll_fail(err, LL_ERR_NOMEM, "template: out of memory"); }
    memcpy(copy, src, n);
    parser p = { .lx = { .src = copy, .n = n, .lc_line = 1, .lc_col = 1 }, .t = t, .err = err };
    ll_status st = LL_OK;
    if (!push_var(&p, (ll_str){ "$", 1 })) goto fail;
    tok first = peek(&p);
    t->root = new_node(&p, TN_LIST, &first);
    size_t cap = 0;
    if (!t->root) goto fail;
    for (;;) {
        tok tk = next(&p);
        if (tk.k == K_EOF) break;
        if (tk.k == K_ERROR) { perr(&p, &tk, LL_ERR_FORMAT, "%s", tk.p); goto fail; }
        if (tk.k == K_TEXT) {
            tm_node *x = new_node(&p, TN_TEXT, &tk);
            if (!x) goto fail;
            x->s = tk.p; x->sn = tk.n;
            if (!add_kid(&p, t->root, x, &cap)) goto fail;
            continue;
        }
        if (tk.k != K_LEFT) { unexpected(&p, &tk, "input"); goto fail; }
        tok kw = peek(&p);
        if (kw.k == K_DEFINE) {
            next(&p);
            tok name = next(&p);
            if (name.k != K_STRING && name.k != K_RAW) { unexpected(&p, &name, "define clause"); goto fail; }
            tm_node *s = string_node(&p, &name);
            if (!s) goto fail;
            tok r = next(&p);
            if (r.k != K_RIGHT) { unexpected(&p, &r, "define clause"); goto fail; }
            if (!parse_define_body(&p, &kw, (ll_str){ s->s, s->sn })) goto fail;
            continue;
        }
        item_end e = IT_NODE; tok et;
        tm_node *x = parse_action(&p, &tk, &e, &et);
        if (p.st) goto fail;
        if (e != IT_NODE) {
            perr(&p, &et, LL_ERR_FORMAT, "unexpected %s", e == IT_END ? "{{end}}" : "{{else}}");
            goto fail;
        }
        if (x && !add_kid(&p, t->root, x, &cap)) goto fail;
    }
    /* Ollama's Parse: no Messages and no Response -> append {{ .Response }} (to a copy of
     * the root list: ll_tmpl_render runs the tree as Go parsed it) */
    if (!(t->root_go = new_node(&p, TN_LIST, NULL))) goto fail;
    *t->root_go = *t->root;
    size_t icap = 0;
    for (size_t i = 0; i < t->n_defs; i++)
        if (!collect_idents(t, t->defs[i].list, &icap)) { nomem(&p); goto fail; }
    if (!collect_idents(t, t->root, &icap)) { nomem(&p); goto fail; }
    if (!ll_tmpl_uses(t, "messages") && !ll_tmpl_uses(t, "response")) {
        tm_node *a = new_node(&p, TN_ACTION, NULL), *pipe = new_node(&p, TN_PIPE, NULL),
                *cmd = new_node(&p, TN_CMD, NULL), *f = new_node(&p, TN_FIELD, NULL);
        if (!a || !pipe || !cmd || !f) goto fail;
        f->ids = tm_alloc(&t->arena, sizeof *f->ids);
        pipe->kids = tm_alloc(&t->arena, sizeof *pipe->kids);
        cmd->kids = tm_alloc(&t->arena, sizeof *cmd->kids);
        if (!f->ids || !pipe->kids || !cmd->kids) { nomem(&p); goto fail; }
        f->ids[0] = ll_str_c("Response"); f->n_ids = 1;
        cmd->kids[0] = f; cmd->n_kids = 1;
        pipe->kids[0] = cmd; pipe->n_kids = 1;
        a->pipe = pipe;
        if (!add_kid(&p, t->root, a, &cap)) goto fail;
        if (!add_ident(t, ll_str_c("Response"), &icap)) { nomem(&p); goto fail; }
    }
    cutter c = { .t = t };
    t->root_cut = cut_walk(&c, t->root);
    if (c.oom) { nomem(&p); goto fail; }
    t->cut_fails = c.fails;
    ll_free(p.vars);
    *out = t;
    return LL_OK;
fail:
    st = p.st != LL_OK ? p.st : ll_fail(err, LL_ERR_NOMEM, "template: out of memory");
    ll_free(p.vars);
    ll_tmpl_free(t);
    return st;
}
