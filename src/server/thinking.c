/* server/thinking.c: the thinking splitter (thinking.h, ollama-api.md §1.2.4).
 *
 * States: START (only whitespace so far, held), OPEN_WS (just past the opening tag: whitespace
 * is dropped), THINK (trace text; a tail that may be the closing tag, and whitespace before
 * it, is held: the trace is returned without trailing whitespace), CLOSE_WS (just
 * past the closing tag: whitespace is dropped), CONTENT (everything passes). */
#include "server/thinking.h"

#include <string.h>

typedef enum { TH_START, TH_OPEN_WS, TH_THINK, TH_CLOSE_WS, TH_CONTENT } th_state;

typedef struct { char *p; size_t n, cap; } th_buf;

struct ll_think {
    char    *open, *close;
    size_t   n_open, n_close;
    th_state st;
    th_buf   hold;            /* bytes not yet decided */
    th_buf   think, content;  /* what the current call releases */
};

static bool tb_add(th_buf *b, const char *src, size_t k) {
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
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

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

ll_status ll_think_init(ll_think **out, const char *open, const char *close, bool in_thinking, ll_error *err) {
    *out = NULL;
    if (!open || !*open || !close || !*close) return ll_fail(err, LL_ERR_ARG, "thinking tags must not be empty");
    ll_think *p = ll_calloc(1, sizeof *p);
    if (!p || !(p->open = ll_str_dup(ll_str_c(open))) || !(p->close = ll_str_dup(ll_str_c(close)))) {
        ll_think_free(p);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory for the thinking parser");
    }
    p->n_open = strlen(open);
    p->n_close = strlen(close);
    p->st = in_thinking ? TH_OPEN_WS : TH_START;
    *out = p;
    return LL_OK;
}

void ll_think_free(ll_think *p) {
    if (!p) return;
    ll_free(p->open);
    ll_free(p->close);
    ll_free(p->hold.p);
    ll_free(p->think.p);
    ll_free(p->content.p);
    ll_free(p);
}

/* Length of the longest tail of s[0, n) that is a proper prefix of tag. */
static size_t partial_tail(const char *s, size_t n, const char *tag, size_t n_tag) {
    for (size_t t = n_tag - 1 < n ? n_tag - 1 : n; t > 0; t--)
        if (!memcmp(s + n - t, tag, t)) return t;
    return 0;
}

/* Run the state machine over hold; returns false when out of memory. */
static bool step(ll_think *p, bool final) {
    th_buf *h = &p->hold;
    size_t i = 0;                                   /* bytes of hold consumed */
    for (;;) {
        const char *s = h->p + i;
        size_t n = h->n - i;
        if (p->st == TH_START) {
            size_t w = 0;
            while (w < n && is_ws(s[w])) w++;
            size_t rest = n - w;
            if (rest >= p->n_open && !memcmp(s + w, p->open, p->n_open)) {
                i += w + p->n_open;
                p->st = TH_OPEN_WS;
                continue;
            }
            if (rest < p->n_open && !memcmp(s + w, p->open, rest) && !final) break;   /* undecided */
            p->st = TH_CONTENT;                      /* no trace: everything is content */
            continue;
        }
        if (p->st == TH_OPEN_WS || p->st == TH_CLOSE_WS) {
            size_t w = 0;
            while (w < n && is_ws(s[w])) w++;
            i += w;
            if (w == n) break;                       /* more whitespace may follow */
            p->st = p->st == TH_OPEN_WS ? TH_THINK : TH_CONTENT;
            continue;
        }
        if (p->st == TH_THINK) {
            const char *at = memmem(s, n, p->close, p->n_close);
            if (at) {
                size_t k = (size_t)(at - s);
                while (k && is_ws(s[k - 1])) k--;    /* the trace ends without trailing whitespace */
                if (!tb_add(&p->think, s, k)) return false;
                i += (size_t)(at - s) + p->n_close;
                p->st = TH_CLOSE_WS;
                continue;
            }
            /* Held: a tail that may be the closing tag, and whitespace before it (dropped if
             * the tag follows). */
            size_t keep = final ? 0 : partial_tail(s, n, p->close, p->n_close);
            while (!final && keep < n && is_ws(s[n - keep - 1])) keep++;
            if (!tb_add(&p->think, s, n - keep)) return false;
            i += n - keep;
            break;
        }
        /* TH_CONTENT */
        if (!tb_add(&p->content, s, n)) return false;
        i += n;
        break;
    }
    memmove(h->p, h->p + i, h->n - i);
    h->n -= i;
    if (final) h->n = 0;     /* only undecided whitespace can remain; it is dropped */
    return true;
}

ll_status ll_think_add(ll_think *p, const char *text, size_t n, bool final, ll_str *thinking,
                       ll_str *content, ll_error *err) {
    p->think.n = p->content.n = 0;
    *thinking = (ll_str){ "", 0 };
    *content = (ll_str){ "", 0 };
    if (p->st == TH_CONTENT && p->hold.n == 0) {     /* the common case: no copy */
        *content = (ll_str){ text, n };
        return LL_OK;
    }
    if (!tb_add(&p->hold, text, n) || !step(p, final))
        return ll_fail(err, LL_ERR_NOMEM, "out of memory splitting the thinking trace");
    if (p->think.n) *thinking = (ll_str){ p->think.p, p->think.n };
    if (p->content.n) *content = (ll_str){ p->content.p, p->content.n };
    return LL_OK;
}

/* ---- the tags of a template ------------------------------------------------------------------- */

static char *render_turn(const ll_tmpl *t, bool with_thinking) {
    json_t *asst = json_pack("{s:s, s:s}", "role", "assistant", "content", "\x01");
    if (asst && with_thinking) json_object_set_new(asst, "thinking", json_string("\x02"));
    /* A later user turn: templates often render past reasoning only for the last turns, so
     * the assistant turn is the last message and Think is on. */
    json_t *v = json_pack("{s:[{s:s, s:s}, o], s:b, s:b}", "Messages", "role", "user", "content", "hi", asst,
                          "Think", 1, "IsThinkSet", 1);
    char *out = NULL;
    size_t n = 0;
    ll_error e = { 0 };
    if (!v || ll_tmpl_execute(t, v, NULL, &out, &n, &e) != LL_OK) out = NULL;
    json_decref(v);
    return out;
}

static char *trimmed(const char *s, const char *e) {
    while (s < e && is_ws(*s)) s++;
    while (e > s && is_ws(e[-1])) e--;
    return e > s ? ll_str_dup((ll_str){ s, (size_t)(e - s) }) : NULL;
}

bool ll_think_tags(const ll_tmpl *t, char **open, char **close) {
    *open = *close = NULL;
    if (!t || !ll_tmpl_uses(t, "thinking")) return false;
    char *a = render_turn(t, false), *b = render_turn(t, true);
    bool ok = false;
    if (a && b) {
        size_t l = 0;
        while (a[l] && a[l] == b[l]) l++;
        const char *mark = strchr(b + l, '\x02');
        /* The inserted text ends where the two renders agree again: at the content. */
        const char *end = mark ? strchr(mark, '\x01') : NULL;
        if (mark && end) {
            *open = trimmed(b + l, mark);
            *close = trimmed(mark + 1, end);
            ok = *open && *close;
        }
    }
    if (!ok) {
        ll_free(*open);
        ll_free(*close);
        *open = *close = NULL;
    }
    ll_free(a);
    ll_free(b);
    return ok;
}

bool ll_think_answering(const ll_think *p) { return p->st == TH_CLOSE_WS || p->st == TH_CONTENT; }
