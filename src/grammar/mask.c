/* mask: which tokens of the vocabulary keep the output a prefix of the grammar's language.
 *
 * The token trie. All token byte strings (ll_tok_piece without special rendering; control
 * tokens have none and are never allowed, end-of-generation tokens are allowed exactly where
 * the grammar may end) are sorted and laid out as a trie in preorder: node i has its byte, its
 * depth and the index just past its subtree, so a walk that finds a prefix dead skips the whole
 * subtree with one assignment, and the walk reads the node array front to back.
 *
 * Precompute (the XGrammar / llguidance idea, simplified). A stack's future depends on its top
 * position and on what lies under it. For every byte-class position p we walk the whole trie
 * once with the stack {p over a sentinel}: a token that some path consumes without popping the
 * sentinel is allowed whatever lies under p (context-independent accept); one that every path
 * rejects before popping it is rejected whatever lies under p; the rest popped the sentinel
 * mid-token and depend on the context. Accepted tokens are stored as a bitset (or an id list
 * when few); the context-dependent ones as a small trie of their own. At run time the mask for
 * a stack set is the OR of its tops' accept sets plus a walk of each top's small trie with the
 * real stack. Inside a JSON string the small trie holds only tokens that close the string and
 * go on (`",`, `"}` ...), so a step costs a few bitset ORs and a short walk instead of a walk
 * over 128K tokens.
 *
 * Costs: compile walks the trie once per position; positions inside literals prune at the
 * first byte, positions inside free text visit most of the trie (tens of ms on 128K tokens).
 * bench/bench_grammar.c measures both.
 */
#include "grammar/grammar.h"

#include <stdatomic.h>
#include <stdlib.h>

/* ---- the trie -------------------------------------------------------------------------------- */

typedef struct {
    uint8_t  byte;
    uint16_t depth;      /* bytes from the root: 1 for a first byte */
    int32_t  end;        /* index just past this node's subtree */
    int32_t  tok_lo;     /* tokens ending here: ids[tok_lo .. tok_hi) */
    int32_t  tok_hi;
} tr_node;

typedef struct {
    tr_node *nodes;
    int32_t  n_nodes;
    int32_t *ids;        /* token ids in trie (= sorted byte) order */
    int32_t  n_ids;
} tr_trie;

typedef struct {
    uint64_t *acc_bits;  /* (n_words) context-independent accepts, or NULL when acc_ids used */
    int32_t  *acc_ids;
    int32_t   n_acc;
    tr_trie   unc;       /* context-dependent tokens */
} pos_info;

typedef struct gr_compiled {
    atomic_int refs;
    gr_grammar g;
    int32_t  n_vocab;        /* 0 when built without a vocabulary (byte-level use only) */
    int32_t  n_words;
    char    *tok_bytes;      /* all token pieces back to back */
    uint32_t *tok_off;       /* (n_vocab + 1) */
    int32_t *eog_ids;
    int32_t  n_eog;
    int32_t  max_tok_len;
    tr_trie  trie;
    int32_t *pinfo_of;       /* (n_elems) index into pinfo, -1 for non-class elements */
    pos_info *pinfo;
    int32_t  n_pinfo;
} gr_compiled;

#define GR_HIST 32           /* tokens ll_grammar_rollback can undo */

struct ll_grammar {
    gr_compiled *c;          /* shared with clones, immutable */
    gr_arena  arena;         /* continuation nodes of cur and hist */
    gr_set    cur;           /* the stacks after everything accepted so far */
    bool      ended;         /* an end-of-generation token was accepted */
    gr_set    hist[GR_HIST]; /* states before the last hist_n accepts, oldest at hist_start */
    bool      hist_ended[GR_HIST];
    int32_t   hist_start, hist_n;
    int32_t   live_after_gc; /* arena size after the last compaction */
    /* scratch, kept between calls so steady-state steps do not allocate */
    gr_set   *lv;            /* (n_lv) one set per trie depth */
    int32_t  *lv_mark;       /* (n_lv) arena length at each depth */
    int32_t   n_lv;
    gr_set    tmp[2];
    int32_t  *gc_buf; int32_t gc_cap;
};

static void trie_free(tr_trie *t) {
    ll_free(t->nodes);
    ll_free(t->ids);
    memset(t, 0, sizeof *t);
}

static ll_str tok_str(const gr_compiled *c, int32_t id) {
    ll_str s = { c->tok_bytes + c->tok_off[id], c->tok_off[id + 1] - c->tok_off[id] };
    return s;
}

/* Build the trie of ids (already in byte order). */
static ll_status trie_build(tr_trie *t, const gr_compiled *c, const int32_t *ids, int32_t n,
                            ll_error *err) {
    memset(t, 0, sizeof *t);
    if (n == 0) return LL_OK;
    /* node count <= total bytes */
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) total += tok_str(c, ids[i]).n;
    if (total > INT32_MAX / 2) return ll_fail(err, LL_ERR_LIMIT, "grammar: vocabulary too large for the token trie");
    t->nodes = ll_malloc_array(total ? total : 1, sizeof *t->nodes);
    t->ids = ll_malloc_array((size_t)n, sizeof *t->ids);
    int32_t *path = ll_malloc_array((size_t)c->max_tok_len + 1, sizeof *path);
    if (!t->nodes || !t->ids || !path) {
        ll_free(path);
        trie_free(t);
        return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory for the token trie (%zu nodes)", total);
    }
    int32_t depth = 0;           /* path[0..depth) are the open nodes */
    ll_str prev = { "", 0 };
    for (int32_t k = 0; k < n; k++) {
        ll_str s = tok_str(c, ids[k]);
        size_t lcp = 0;
        while (lcp < s.n && lcp < prev.n && s.p[lcp] == prev.p[lcp]) lcp++;
        while ((size_t)depth > lcp) t->nodes[path[--depth]].end = t->n_nodes;
        while ((size_t)depth < s.n) {
            tr_node *nd = &t->nodes[t->n_nodes];
            nd->byte = (uint8_t)s.p[depth];
            nd->depth = (uint16_t)(depth + 1);
            nd->tok_lo = nd->tok_hi = t->n_ids;
            path[depth++] = t->n_nodes++;
        }
        t->ids[t->n_ids++] = ids[k];
        t->nodes[path[depth - 1]].tok_hi = t->n_ids;
        prev = s;
    }
    while (depth > 0) t->nodes[path[--depth]].end = t->n_nodes;
    ll_free(path);
    return LL_OK;
}

/* ---- walks ------------------------------------------------------------------------------------ */

static ll_status levels_reserve(ll_grammar *m, int32_t n, ll_error *err) {
    if (n <= m->n_lv) return LL_OK;
    gr_set *lv = ll_realloc(m->lv, (size_t)n * sizeof *lv);
    if (!lv) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    m->lv = lv;
    int32_t *mk = ll_realloc(m->lv_mark, (size_t)n * sizeof *mk);
    if (!mk) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    m->lv_mark = mk;
    for (int32_t i = m->n_lv; i < n; i++) memset(&m->lv[i], 0, sizeof m->lv[i]);
    m->n_lv = n;
    return LL_OK;
}

/* Run-time walk: set the bits of the tokens of t that the stack `top` (in m's arena) accepts. */
static ll_status walk_accept(ll_grammar *m, const tr_trie *t, gr_top top, uint64_t *allow,
                             ll_error *err) {
    const gr_grammar *g = &m->c->g;
    gr_set *lv = m->lv;
    int32_t base = m->arena.len;
    lv[0].n = 0;
    lv[0].t[0] = top;   /* levels_reserve + init guarantee room for one */
    lv[0].n = 1;
    m->lv_mark[0] = base;
    ll_status st = LL_OK;
    for (int32_t i = 0; i < t->n_nodes;) {
        const tr_node *nd = &t->nodes[i];
        int d = nd->depth;
        m->arena.len = m->lv_mark[d - 1];
        st = gr_advance(g, &m->arena, &lv[d - 1], nd->byte, &lv[d], err);
        if (st != LL_OK) break;
        m->lv_mark[d] = m->arena.len;
        if (lv[d].n == 0) {
            if (lv[d].complete)
                for (int32_t k = nd->tok_lo; k < nd->tok_hi; k++)
                    allow[t->ids[k] >> 6] |= 1ull << (t->ids[k] & 63);
            i = nd->end;
            continue;
        }
        for (int32_t k = nd->tok_lo; k < nd->tok_hi; k++)
            allow[t->ids[k] >> 6] |= 1ull << (t->ids[k] & 63);
        i++;
    }
    m->arena.len = base;
    return st;
}

/* Compile-time walk for one position: sort every token into accept / depends / reject. */
typedef struct { int32_t *a; int32_t n, cap; } idvec;

static bool idvec_push(idvec *v, int32_t x) {
    if (v->n == v->cap) {
        int32_t nc = v->cap ? v->cap * 2 : 64;
        int32_t *a = ll_realloc(v->a, (size_t)nc * sizeof *a);
        if (!a) return false;
        v->a = a;
        v->cap = nc;
    }
    v->a[v->n++] = x;
    return true;
}

static ll_status walk_classify(ll_grammar *m, int32_t pos, idvec *acc, idvec *unc, uint8_t *uf,
                               ll_error *err) {
    const gr_compiled *c = m->c;
    const tr_trie *t = &c->trie;
    gr_set *lv = m->lv;
    m->arena.len = 0;
    lv[0].t[0] = (gr_top){ pos, GR_SENT };
    lv[0].n = 1;
    m->lv_mark[0] = 0;
    uf[0] = 0;
    for (int32_t i = 0; i < t->n_nodes;) {
        const tr_node *nd = &t->nodes[i];
        int d = nd->depth;
        m->arena.len = m->lv_mark[d - 1];
        ll_status st = gr_advance(&c->g, &m->arena, &lv[d - 1], nd->byte, &lv[d], err);
        if (st != LL_OK) return st;
        m->lv_mark[d] = m->arena.len;
        bool here = lv[d].underflow;
        uf[d] = uf[d - 1] || here;
        if (lv[d].n == 0 && !uf[d]) { i = nd->end; continue; }
        idvec *dst = (lv[d].n || here) ? acc : unc;
        for (int32_t k = nd->tok_lo; k < nd->tok_hi; k++)
            if (!idvec_push(dst, t->ids[k])) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
        if (lv[d].n == 0) {
            /* only the context can decide anything below */
            int32_t hi = nd->end < t->n_nodes ? t->nodes[nd->end].tok_lo : t->n_ids;
            for (int32_t k = nd->tok_hi; k < hi; k++)
                if (!idvec_push(unc, t->ids[k])) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
            i = nd->end;
            continue;
        }
        i++;
    }
    m->arena.len = 0;
    return LL_OK;
}

/* ---- compile -------------------------------------------------------------------------------- */

/* Merge sort by token bytes (no shared state, no allocation inside glibc's qsort). */
static void sort_tokens(const gr_compiled *c, int32_t *a, int32_t *tmp, int32_t n) {
    if (n < 2) return;
    int32_t h = n / 2;
    sort_tokens(c, a, tmp, h);
    sort_tokens(c, a + h, tmp, n - h);
    int32_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        ll_str x = tok_str(c, a[i]), y = tok_str(c, a[j]);
        size_t mn = x.n < y.n ? x.n : y.n;
        int r = mn ? memcmp(x.p, y.p, mn) : 0;
        if (!r) r = x.n < y.n ? -1 : (x.n > y.n ? 1 : a[i] - a[j]);
        tmp[k++] = r <= 0 ? a[i++] : a[j++];
    }
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, (size_t)n * sizeof *a);
}

static void compiled_free(gr_compiled *c) {
    if (!c) return;
    gr_grammar_free(&c->g);
    ll_free(c->tok_bytes);
    ll_free(c->tok_off);
    ll_free(c->eog_ids);
    trie_free(&c->trie);
    for (int32_t i = 0; i < c->n_pinfo; i++) {
        ll_free(c->pinfo[i].acc_bits);
        ll_free(c->pinfo[i].acc_ids);
        trie_free(&c->pinfo[i].unc);
    }
    ll_free(c->pinfo);
    ll_free(c->pinfo_of);
    ll_free(c);
}

static ll_status matcher_new(ll_grammar **out, gr_compiled *c, ll_error *err);

/* Token tables and per-position classes. Takes ownership of g. */
static ll_status compiled_init(gr_compiled **out, gr_grammar *g, const ll_vocab *v, ll_error *err) {
    *out = NULL;
    gr_compiled *c = ll_calloc(1, sizeof *c);
    int32_t *ids = NULL, *tmp = NULL;
    ll_grammar *scratch = NULL;
    idvec acc = {0}, unc = {0};
    uint8_t *uf = NULL;
    ll_status st = LL_OK;
    if (!c) { gr_grammar_free(g); return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); }
    atomic_init(&c->refs, 1);
    c->g = *g;
    memset(g, 0, sizeof *g);
    if (!v) { *out = c; return LL_OK; }

    int32_t nv = ll_vocab_n_tokens(v);
    if (nv <= 0) { st = ll_fail(err, LL_ERR_ARG, "grammar: empty vocabulary"); goto fail; }
    c->n_vocab = nv;
    c->n_words = (nv + 63) / 64;
    c->tok_off = ll_malloc_array((size_t)nv + 1, sizeof *c->tok_off);
    ids = ll_malloc_array((size_t)nv, sizeof *ids);
    tmp = ll_malloc_array((size_t)nv, sizeof *tmp);
    c->eog_ids = ll_malloc_array((size_t)nv, sizeof *c->eog_ids);
    if (!c->tok_off || !ids || !tmp || !c->eog_ids) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
    /* pieces: first pass sizes, second pass copies */
    size_t total = 0, cap = 0;
    char buf[512];
    for (int32_t i = 0; i < nv; i++) {
        size_t n = ll_vocab_is_eog(v, i) ? 0 : ll_tok_piece(v, i, false, buf, sizeof buf);
        if (n > UINT16_MAX) n = 0;   /* longer than the trie depth field: never allowed */
        total += n;
    }
    if (total > UINT32_MAX) { st = ll_fail(err, LL_ERR_LIMIT, "grammar: vocabulary text too large"); goto fail; }
    cap = total ? total : 1;
    c->tok_bytes = ll_malloc(cap);
    if (!c->tok_bytes) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
    size_t off = 0;
    int32_t n_ids = 0;
    for (int32_t i = 0; i < nv; i++) {
        c->tok_off[i] = (uint32_t)off;
        if (ll_vocab_is_eog(v, i)) { c->eog_ids[c->n_eog++] = i; continue; }
        size_t n = ll_tok_piece(v, i, false, buf, sizeof buf);
        if (n > UINT16_MAX || off + n > cap) continue;
        if (n > sizeof buf) {
            char *big = ll_malloc(n);
            if (!big) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
            ll_tok_piece(v, i, false, big, n);
            memcpy(c->tok_bytes + off, big, n);
            ll_free(big);
        } else if (n) {
            memcpy(c->tok_bytes + off, buf, n);
        }
        off += n;
        if (n) {
            ids[n_ids++] = i;
            if ((int32_t)n > c->max_tok_len) c->max_tok_len = (int32_t)n;
        }
    }
    c->tok_off[nv] = (uint32_t)off;
    sort_tokens(c, ids, tmp, n_ids);
    st = trie_build(&c->trie, c, ids, n_ids, err);
    if (st != LL_OK) goto fail;

    /* per-position classes */
    c->pinfo_of = ll_malloc_array((size_t)c->g.n_elems, sizeof *c->pinfo_of);
    if (!c->pinfo_of) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
    int32_t np = 0;
    for (int32_t p = 0; p < c->g.n_elems; p++) c->pinfo_of[p] = c->g.elems[p].type == GR_CHAR ? np++ : -1;
    c->pinfo = ll_calloc((size_t)np ? (size_t)np : 1, sizeof *c->pinfo);
    uf = ll_malloc((size_t)c->max_tok_len + 2);
    if (!c->pinfo || !uf) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
    c->n_pinfo = np;
    st = matcher_new(&scratch, c, err);
    if (st != LL_OK) goto fail;
    atomic_fetch_add(&c->refs, 1);   /* scratch holds a reference; dropped below */
    for (int32_t p = 0; p < c->g.n_elems; p++) {
        if (c->pinfo_of[p] < 0) continue;
        pos_info *pi = &c->pinfo[c->pinfo_of[p]];
        acc.n = unc.n = 0;
        st = walk_classify(scratch, p, &acc, &unc, uf, err);
        if (st != LL_OK) goto fail;
        pi->n_acc = acc.n;
        if (acc.n > 2048) {
            pi->acc_bits = ll_calloc((size_t)c->n_words, sizeof *pi->acc_bits);
            if (!pi->acc_bits) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
            for (int32_t k = 0; k < acc.n; k++) pi->acc_bits[acc.a[k] >> 6] |= 1ull << (acc.a[k] & 63);
        } else if (acc.n) {
            pi->acc_ids = ll_malloc_array((size_t)acc.n, sizeof *pi->acc_ids);
            if (!pi->acc_ids) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
            memcpy(pi->acc_ids, acc.a, (size_t)acc.n * sizeof *acc.a);
        }
        st = trie_build(&pi->unc, c, unc.a, unc.n, err);   /* unc is in trie order already */
        if (st != LL_OK) goto fail;
    }
    ll_grammar_free(scratch);
    ll_free(ids); ll_free(tmp); ll_free(acc.a); ll_free(unc.a); ll_free(uf);
    *out = c;
    return LL_OK;
fail:
    if (scratch) ll_grammar_free(scratch);   /* drops its reference */
    ll_free(ids); ll_free(tmp); ll_free(acc.a); ll_free(unc.a); ll_free(uf);
    compiled_free(c);
    return st;
}

static void compiled_unref(gr_compiled *c) {
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) compiled_free(c);
}

/* ---- the matcher object ------------------------------------------------------------------- */

static ll_status matcher_new(ll_grammar **out, gr_compiled *c, ll_error *err) {
    ll_grammar *m = ll_calloc(1, sizeof *m);
    if (!m) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    m->c = c;
    ll_status st = levels_reserve(m, c->max_tok_len + 2, err);
    if (st == LL_OK) st = gr_set_reserve(&m->lv[0], 1, err);
    if (st == LL_OK) st = gr_start(&c->g, &m->arena, &m->cur, err);
    if (st != LL_OK) {
        m->c = NULL;   /* the caller still owns its reference */
        ll_grammar_free(m);
        return st;
    }
    *out = m;
    return LL_OK;
}

static ll_status grammar_from(ll_grammar **out, gr_grammar *g, const ll_vocab *v, ll_error *err) {
    *out = NULL;
    gr_compiled *c;
    ll_status st = compiled_init(&c, g, v, err);
    if (st != LL_OK) return st;
    st = matcher_new(out, c, err);
    if (st != LL_OK) compiled_unref(c);
    return st;
}

ll_status ll_grammar_init_json(ll_grammar **out, const ll_vocab *v, bool object_only, ll_error *err) {
    *out = NULL;
    gr_grammar g;
    ll_status st = gr_compile_json(&g, object_only, err);
    if (st != LL_OK) return st;
    return grammar_from(out, &g, v, err);
}

ll_status ll_grammar_init_schema(ll_grammar **out, const ll_vocab *v, const char *schema,
                                 size_t len, ll_error *err) {
    *out = NULL;
    if (!schema) return ll_fail(err, LL_ERR_ARG, "grammar: no schema");
    gr_grammar g;
    ll_status st = gr_compile_schema(&g, schema, len, err);
    if (st != LL_OK) return st;
    return grammar_from(out, &g, v, err);
}

void ll_grammar_free(ll_grammar *m) {
    if (!m) return;
    compiled_unref(m->c);
    gr_arena_free(&m->arena);
    gr_set_free(&m->cur);
    for (int i = 0; i < GR_HIST; i++) gr_set_free(&m->hist[i]);
    for (int32_t i = 0; i < m->n_lv; i++) gr_set_free(&m->lv[i]);
    ll_free(m->lv);
    ll_free(m->lv_mark);
    gr_set_free(&m->tmp[0]);
    gr_set_free(&m->tmp[1]);
    ll_free(m->gc_buf);
    ll_free(m);
}

ll_status ll_grammar_clone(ll_grammar **out, const ll_grammar *src, ll_error *err) {
    *out = NULL;
    ll_grammar *m = ll_calloc(1, sizeof *m);
    if (!m) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    m->c = src->c;
    atomic_fetch_add(&m->c->refs, 1);
    ll_status st = levels_reserve(m, src->n_lv, err);
    if (st == LL_OK) st = gr_set_reserve(&m->lv[0], 1, err);
    if (st == LL_OK && src->arena.len) {
        m->arena.n = ll_malloc_array((size_t)src->arena.len, sizeof *m->arena.n);
        if (!m->arena.n) st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
        else {
            memcpy(m->arena.n, src->arena.n, (size_t)src->arena.len * sizeof *m->arena.n);
            m->arena.len = m->arena.cap = src->arena.len;
        }
    }
    if (st == LL_OK) st = gr_set_copy(&m->cur, &src->cur, err);
    for (int i = 0; i < GR_HIST && st == LL_OK; i++) st = gr_set_copy(&m->hist[i], &src->hist[i], err);
    if (st != LL_OK) { ll_grammar_free(m); return st; }
    memcpy(m->hist_ended, src->hist_ended, sizeof m->hist_ended);
    m->ended = src->ended;
    m->hist_start = src->hist_start;
    m->hist_n = src->hist_n;
    m->live_after_gc = src->live_after_gc;
    *out = m;
    return LL_OK;
}

void ll_grammar_reset(ll_grammar *m) {
    ll_error e = {0};
    m->arena.len = 0;
    m->hist_n = 0;
    m->hist_start = 0;
    m->ended = false;
    /* cannot fail: the start set was built once already with the same capacity */
    (void)gr_start(&m->c->g, &m->arena, &m->cur, &e);
}

/* Drop nodes no live stack (current or in the rollback history) can reach. Nodes are in
 * creation order and a parent is always older, so one backward pass marks and one forward
 * pass renumbers. */
static ll_status matcher_gc(ll_grammar *m, ll_error *err) {
    int32_t n = m->arena.len;
    if (n > m->gc_cap) {
        int32_t *b = ll_realloc(m->gc_buf, (size_t)n * sizeof *b);
        if (!b) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
        m->gc_buf = b;
        m->gc_cap = n;
    }
    int32_t *map = m->gc_buf;
    memset(map, 0, (size_t)n * sizeof *map);
    gr_set *sets[GR_HIST + 1];
    int ns = 0;
    sets[ns++] = &m->cur;
    for (int32_t k = 0; k < m->hist_n; k++) sets[ns++] = &m->hist[(m->hist_start + k) % GR_HIST];
    for (int s = 0; s < ns; s++)
        for (int32_t i = 0; i < sets[s]->n; i++)
            if (sets[s]->t[i].parent >= 0) map[sets[s]->t[i].parent] = 1;
    for (int32_t i = n - 1; i >= 0; i--)
        if (map[i] && m->arena.n[i].parent >= 0) map[m->arena.n[i].parent] = 1;
    int32_t w = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!map[i]) { map[i] = -1; continue; }
        gr_node nd = m->arena.n[i];
        if (nd.parent >= 0) nd.parent = map[nd.parent];
        m->arena.n[w] = nd;
        map[i] = w++;
    }
    for (int s = 0; s < ns; s++)
        for (int32_t i = 0; i < sets[s]->n; i++)
            if (sets[s]->t[i].parent >= 0) sets[s]->t[i].parent = map[sets[s]->t[i].parent];
    m->arena.len = w;
    m->live_after_gc = w;
    return LL_OK;
}

/* Advance by bytes; on success the old state goes to the history and the new one is current.
 * On failure nothing changes. */
static ll_status matcher_step(ll_grammar *m, const char *p, size_t n, bool *ok, ll_error *err) {
    *ok = false;
    const gr_grammar *g = &m->c->g;
    int32_t mark = m->arena.len;
    const gr_set *in = &m->cur;
    gr_set *out = NULL;
    for (size_t i = 0; i < n; i++) {
        out = &m->tmp[i & 1];
        ll_status st = gr_advance(g, &m->arena, in, (unsigned char)p[i], out, err);
        if (st != LL_OK) { m->arena.len = mark; return st; }
        if (out->n == 0 && !(i + 1 == n && out->complete)) { m->arena.len = mark; return LL_OK; }
        in = out;
    }
    if (n == 0) { *ok = true; return LL_OK; }
    /* push history: reuse the oldest slot when full */
    int32_t slot;
    if (m->hist_n < GR_HIST) slot = (m->hist_start + m->hist_n++) % GR_HIST;
    else { slot = m->hist_start; m->hist_start = (m->hist_start + 1) % GR_HIST; }
    ll_status st = gr_set_copy(&m->hist[slot], &m->cur, err);
    if (st == LL_OK) st = gr_set_copy(&m->cur, out, err);
    if (st != LL_OK) { m->hist_n = 0; return st; }
    m->hist_ended[slot] = m->ended;
    *ok = true;
    if (m->arena.len > 4096 && m->arena.len > 4 * m->live_after_gc) return matcher_gc(m, err);
    return LL_OK;
}

ll_status ll_grammar_accept_bytes(ll_grammar *m, const char *p, size_t n, ll_error *err) {
    if (m->ended) return ll_fail(err, LL_ERR_ARG, "grammar: output already ended");
    bool ok;
    ll_status st = matcher_step(m, p, n, &ok, err);
    if (st != LL_OK) return st;
    if (!ok) return ll_fail(err, LL_ERR_ARG, "grammar: bytes '%.*s' do not continue the output",
                            (int)(n > 64 ? 64 : n), p);
    return LL_OK;
}

ll_status ll_grammar_accept(ll_grammar *m, int32_t id, ll_error *err) {
    const gr_compiled *c = m->c;
    if (c->n_vocab == 0) return ll_fail(err, LL_ERR_ARG, "grammar: built without a vocabulary");
    if (id < 0 || id >= c->n_vocab) return ll_fail(err, LL_ERR_ARG, "grammar: token %d out of range [0, %d)", id, c->n_vocab);
    if (m->ended) return ll_fail(err, LL_ERR_ARG, "grammar: output already ended");
    for (int32_t k = 0; k < c->n_eog; k++)
        if (c->eog_ids[k] == id) {
            if (!m->cur.complete)
                return ll_fail(err, LL_ERR_ARG, "grammar: end-of-generation token %d before the output is complete", id);
            int32_t slot;
            if (m->hist_n < GR_HIST) slot = (m->hist_start + m->hist_n++) % GR_HIST;
            else { slot = m->hist_start; m->hist_start = (m->hist_start + 1) % GR_HIST; }
            ll_status st = gr_set_copy(&m->hist[slot], &m->cur, err);
            if (st != LL_OK) { m->hist_n = 0; return st; }
            m->hist_ended[slot] = false;
            m->ended = true;
            return LL_OK;
        }
    ll_str s = tok_str(c, id);
    if (s.n == 0) return ll_fail(err, LL_ERR_ARG, "grammar: token %d is a control token", id);
    bool ok;
    ll_status st = matcher_step(m, s.p, s.n, &ok, err);
    if (st != LL_OK) return st;
    if (!ok) return ll_fail(err, LL_ERR_ARG, "grammar: token %d ('%.*s') does not continue the output",
                            id, (int)(s.n > 64 ? 64 : s.n), s.p);
    return LL_OK;
}

ll_status ll_grammar_rollback(ll_grammar *m, int32_t n, ll_error *err) {
    if (n < 0 || n > m->hist_n)
        return ll_fail(err, LL_ERR_ARG, "grammar: cannot roll back %d tokens (history holds %d)", n, m->hist_n);
    if (n == 0) return LL_OK;
    int32_t slot = (m->hist_start + m->hist_n - n) % GR_HIST;
    ll_status st = gr_set_copy(&m->cur, &m->hist[slot], err);
    if (st != LL_OK) return st;
    m->ended = m->hist_ended[slot];
    m->hist_n -= n;
    return LL_OK;
}

bool ll_grammar_can_end(const ll_grammar *m) { return !m->ended && m->cur.complete; }

bool ll_grammar_is_done(const ll_grammar *m) {
    return m->ended || (m->cur.complete && m->cur.n == 0);
}

ll_status ll_grammar_mask(ll_grammar *m, uint64_t *allow, size_t n_words, ll_error *err) {
    const gr_compiled *c = m->c;
    if (c->n_vocab == 0) return ll_fail(err, LL_ERR_ARG, "grammar: built without a vocabulary");
    if (n_words < (size_t)c->n_words)
        return ll_fail(err, LL_ERR_ARG, "grammar: mask has %zu words, vocabulary needs %d", n_words, c->n_words);
    memset(allow, 0, n_words * sizeof *allow);
    if (m->ended) return LL_OK;
    for (int32_t i = 0; i < m->cur.n; i++) {
        int32_t pos = m->cur.t[i].pos;
        bool seen = false;
        for (int32_t j = 0; j < i && !seen; j++) seen = m->cur.t[j].pos == pos;
        if (seen) continue;
        const pos_info *pi = &c->pinfo[c->pinfo_of[pos]];
        if (pi->acc_bits) for (int32_t w = 0; w < c->n_words; w++) allow[w] |= pi->acc_bits[w];
        else for (int32_t k = 0; k < pi->n_acc; k++) allow[pi->acc_ids[k] >> 6] |= 1ull << (pi->acc_ids[k] & 63);
    }
    for (int32_t i = 0; i < m->cur.n; i++) {
        const pos_info *pi = &c->pinfo[c->pinfo_of[m->cur.t[i].pos]];
        if (!pi->unc.n_nodes) continue;
        ll_status st = walk_accept(m, &pi->unc, m->cur.t[i], allow, err);
        if (st != LL_OK) return st;
    }
    if (m->cur.complete)
        for (int32_t k = 0; k < c->n_eog; k++) allow[c->eog_ids[k] >> 6] |= 1ull << (c->eog_ids[k] & 63);
    return LL_OK;
}

/* ---- internal hooks for tests and tools ---- */

const gr_grammar *gr_of(const ll_grammar *m) { return &m->c->g; }
