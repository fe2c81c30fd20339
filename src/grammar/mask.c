/* mask: which tokens of the vocabulary keep the output a prefix of the grammar's language.
 *
 * The token trie. All token byte strings (ll_tok_piece without special rendering; control
 * tokens have none and are never allowed, end-of-generation tokens are allowed exactly where
 * the grammar may end) are sorted and laid out as a trie in preorder: node i has its byte, its
 * depth and the index just past its subtree, so a walk that finds a prefix dead skips the whole
 * subtree with one assignment, and the walk reads the node array front to back.
 *
 * Precompute (the XGrammar / llguidance idea, simplified). A stack's future depends on its top
 * position and on what lies under it. For every byte-class position p we walk the trie once
 * with the stack {p over a sentinel} (the "frame" of p: p's alternative and whatever it calls):
 *   - a token some path consumes without popping the sentinel is allowed whatever lies under
 *     p: context-independent, stored as a bitset (or an id list when few);
 *   - a token every path rejects before popping is rejected whatever lies under p;
 *   - the rest popped the frame after j of their bytes: allowed iff token[j..] continues from
 *     the state after the pop. Stored as a trie of those suffixes (a JSON string's loop: `",`,
 *     `"}` ... share a handful of suffixes), or, when that would be large (after a whitespace
 *     position, every token that starts with a space), as references (trie node, j) into the
 *     main trie.
 * At run time the mask of a stack set is the OR of its tops' accept sets, plus, per distinct
 * parent, one expansion of the popped state and short walks of the suffix tries/references
 * from it: walks that die at the first byte after a pop for almost every token.
 *
 * Compile cost: the walks reuse a memo of transitions between plain position sets (a frame's
 * inner loop is a handful of such sets), and positions not classified within GR_EAGER_NS are
 * classified on first use under a lock, so compile time is bounded and the first mask that
 * meets a new position pays for it. Two things keep that small: pairs whose byte after the
 * pop can follow the frame in no context are dropped (FOLLOW sets), and the steps of a counted
 * repetition (maxLength chains, {m,n}), which would each walk most of the trie, take the
 * classes of the short tokens from a neighbouring step and walk only the long ones
 * (pos_share; the required steps of a chain with a minimum borrow from the step after them,
 * re-walking only the few tokens that step leaves to the context). The context-dependent pairs of a
 * position are radix-sorted by their first 8 suffix bytes, and references are grouped by the
 * byte that follows the pop, so a whitespace position (every token that starts with a space)
 * costs one step per distinct second byte at run time and nothing to sort at build time.
 * The token trie is per vocabulary (gr_vtab), built once and shared by every grammar compiled
 * for it. bench/bench_grammar.c measures all of it.
 */
#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"

#include <pthread.h>
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
    atomic_int ready;    /* computed (compile, or first use under the lazy lock) */
    uint64_t *acc_bits;  /* (n_words) context-independent accepts, or NULL when acc_ids used */
    int32_t  *acc_ids;
    int32_t   n_acc;     /* acc_ids entries (not kept up to date with acc_bits) */
    tr_trie   suf;       /* context-dependent tokens, keyed by what follows the frame's end */
    int32_t  *refs;      /* or, when that trie would be large: (node, depth, first byte after
                          * the pop) triples, see below, in order of that byte */
    int32_t   n_refs;
    uint64_t  follow[4]; /* bytes that may follow the frame's end (FOLLOW of p's rule) */
    const tr_trie *bsuf; /* another position's suffix trie, borrowed (pos_share): only its
                          * pairs that popped before bsuf_max_off bytes count */
    int32_t   bsuf_max_off;
} pos_info;

typedef struct { int32_t *a; int32_t n, cap; } idvec;

#define FM_MAX_STATES 8192
#define FM_MAX_TOPS   64

typedef struct {
    int32_t  *pos;  int32_t n_pos, cap_pos;   /* sorted position lists back to back */
    int32_t  *off, *cnt;                      /* (n) */
    uint64_t *hash;                           /* (n) */
    int32_t **next;                           /* (n) NULL or 256 entries: -1 unknown, -2 not flat,
                                               * else (successor << 1) | underflow */
    int32_t   n, cap;
    int32_t  *slots;  int32_t n_slots;        /* open addressing, state + 1 */
} flat_memo;

/* Compile-time walk state, kept for positions classified on first use. */
typedef struct {
    struct ll_grammar *scratch;   /* matcher whose arena and levels the walks use */
    flat_memo fm;
    idvec acc, pid, poff, tid, toff;
    uint8_t *uf, *hd, *mat, *pb;
    int32_t *sid;
    idvec xid, xoff;              /* (token, offset) pairs copied from a shifted position */
    uint64_t *cand;               /* (trie.n_ids bits) loose_rewalk's candidates, kept clear */
    idvec cid, cpid, cpoff;       /* loose_rewalk: candidate ids, its walk's references */
} pos_lazy;

/* The vocabulary's side: token bytes and the trie, built once per vocabulary object and
 * shared by every grammar compiled for it (vtab_get). */
typedef struct gr_vtab {
    atomic_int refs;
    uint64_t  serial;        /* ll_vocab_serial */
    int32_t   n_vocab, n_words;
    char     *tok_bytes;     /* all token pieces back to back */
    uint32_t *tok_off;       /* (n_vocab + 1) */
    int32_t  *eog_ids;
    int32_t   n_eog;
    int32_t   max_tok_len;
    tr_trie   trie;
    uint16_t *sub_max;       /* (trie nodes) length of the longest token in the node's subtree */
    int32_t  *by_len;        /* (trie.n_ids) token ids, longest first */
    int32_t  *n_len_ge;      /* (max_tok_len + 2) tokens of at least L bytes: by_len[0 .. n_len_ge[L]) */
    uint64_t *short_bits;    /* (GR_SHORT_MAX + 1) x n_words: row L has the tokens shorter than L bytes */
    int32_t  *rank;          /* (n_vocab) index of the token in trie.ids, -1 when not in the trie */
} gr_vtab;

typedef struct gr_compiled {
    atomic_int refs;
    gr_vtab *vt;             /* the vocabulary's tables (one reference); the fields below that
                              * copy them are borrowed */
    pthread_mutex_t lazy_lock;   /* guards lazy and the ready flags' first writes */
    pos_lazy lazy;
    gr_grammar g;
    int32_t  n_vocab;        /* 0 when built without a vocabulary (byte-level use only) */
    int32_t  n_words;
    char    *tok_bytes;      /* all token pieces back to back */
    uint32_t *tok_off;       /* (n_vocab + 1) */
    int32_t *eog_ids;
    int32_t  n_eog;
    int32_t  max_tok_len;
    tr_trie  trie;
    const uint16_t *sub_max; /* the vocabulary's, see gr_vtab */
    const int32_t *by_len;
    const int32_t *n_len_ge;
    const uint64_t *short_bits;
    const int32_t *rank;
    int32_t *pinfo_of;       /* (n_elems) index into pinfo, -1 for non-class elements */
    pos_info *pinfo;
    int32_t  n_pinfo;
    /* Shifted copies (pos_share): the alternative of each element, the rule of each
     * alternative, and per rule the rule its alternatives end in (succ, -1 when none or not
     * one) and the one rule ending in it (pred). */
    int32_t *elem_alt;       /* (n_elems) */
    int32_t *alt_rule;       /* (n alternatives) */
    int32_t *succ, *pred;    /* (n_rules) */
    uint8_t *link;           /* (n_rules) shift_match(r, succ(r)) */
    int32_t *sdepth, *sexact;/* (n_rules) shift_depth(r) and its exact part, capped */
} gr_compiled;

#define GR_SHORT_MAX 16     /* gr_vtab.short_bits rows: the lengths below which most tokens lie */
#define GR_EAGER_NS (80ull * 1000 * 1000)   /* compile-time budget for the eager precompute (compile goal: 100 ms) */
static _Atomic uint64_t eager_ns = GR_EAGER_NS;   /* gr_set_eager_budget */
#define GR_MCACHE 8       /* remembered masks per matcher */
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
    gr_set    tmp[3];
    /* Masks of recent stack sets by content hash: inside a string or a repeated run, token
     * after token leaves the same stacks, and the mask is then a copy. */
    uint64_t *mcache;                    /* (GR_MCACHE * n_words), NULL until first use */
    uint64_t  mcache_key[GR_MCACHE];     /* 0: empty */
    int32_t   mcache_next;
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

/* Build the trie of ids, or of their suffixes from offs[k] when offs is not NULL (already in
 * byte order of what is indexed). */
static ll_status trie_build(tr_trie *t, const gr_compiled *c, const int32_t *ids, const int32_t *offs,
                            int32_t n, ll_error *err) {
    memset(t, 0, sizeof *t);
    if (n == 0) return LL_OK;
    /* node count <= total bytes */
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) total += tok_str(c, ids[i]).n - (offs ? (size_t)offs[i] : 0);
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
        if (offs) { s.p += offs[k]; s.n -= (size_t)offs[k]; }
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

/* Run-time walk over trie nodes [lo, hi) whose depths start at base + 1: set the bits of the
 * tokens that the stacks `from` (in m's arena) accept. */
/* Set the bits of the tokens ending at trie node nd; with max_off (a borrowed suffix trie),
 * only those whose pop came before max_off bytes. */
static inline void emit_tokens(const gr_compiled *c, const tr_trie *t, const tr_node *nd, int32_t max_off,
                               uint64_t *allow) {
    for (int32_t k = nd->tok_lo; k < nd->tok_hi; k++) {
        int32_t id = t->ids[k];
        if (max_off < INT32_MAX && (int32_t)(c->tok_off[id + 1] - c->tok_off[id]) - nd->depth >= max_off) continue;
        allow[id >> 6] |= 1ull << (id & 63);
    }
}

static ll_status walk_range(ll_grammar *m, const tr_trie *t, int32_t lo, int32_t hi, int base_depth,
                            const gr_set *from, uint64_t *allow, int32_t max_off, ll_error *err) {
    const gr_grammar *g = &m->c->g;
    gr_set *lv = m->lv;
    int32_t base = m->arena.len;
    ll_status st = gr_set_copy(&lv[0], from, err);
    if (st != LL_OK) return st;
    m->lv_mark[0] = base;
    for (int32_t i = lo; i < hi;) {
        const tr_node *nd = &t->nodes[i];
        int d = nd->depth - base_depth;
        m->arena.len = m->lv_mark[d - 1];
        st = gr_advance(g, &m->arena, &lv[d - 1], nd->byte, &lv[d], err);
        if (st != LL_OK) break;
        m->lv_mark[d] = m->arena.len;
        if (lv[d].n == 0) {
            if (lv[d].complete) emit_tokens(m->c, t, nd, max_off, allow);
            i = nd->end;
            continue;
        }
        emit_tokens(m->c, t, nd, max_off, allow);
        i++;
    }
    m->arena.len = base;
    return st;
}

static ll_status walk_accept(ll_grammar *m, const tr_trie *t, const gr_set *from, uint64_t *allow,
                             int32_t max_off, ll_error *err) {
    return walk_range(m, t, 0, t->n_nodes, 0, from, allow, max_off, err);
}

/* A (node, j) reference: every token below main-trie node x (depth d) popped the frame after
 * its first j bytes; from the popped state, match the path bytes j..d, then x's subtree. */
static ll_status walk_ref(ll_grammar *m, int32_t x, int j, const gr_set *popped, uint64_t *allow,
                          ll_error *err) {
    const gr_compiled *c = m->c;
    const tr_trie *t = &c->trie;
    const tr_node *nd = &t->nodes[x];
    int d = nd->depth;
    ll_str path = tok_str(c, t->ids[nd->tok_lo]);   /* the first token below x spells the path */
    int32_t base = m->arena.len;
    const gr_set *cur = popped;
    ll_status st = LL_OK;
    int which = 0;
    for (int k = j; k < d; k++) {
        gr_set *nx = &m->tmp[1 + which];
        st = gr_advance(&c->g, &m->arena, cur, (unsigned char)path.p[k], nx, err);
        if (st != LL_OK || (nx->n == 0 && !(k + 1 == d && nx->complete))) { m->arena.len = base; return st; }
        cur = nx;
        which ^= 1;
    }
    if (d > j)
        for (int32_t k = nd->tok_lo; k < nd->tok_hi; k++)
            allow[t->ids[k] >> 6] |= 1ull << (t->ids[k] & 63);
    if (cur->n) st = walk_range(m, t, x + 1, nd->end, d, cur, allow, INT32_MAX, err);
    m->arena.len = base;
    return st;
}

/* Compile-time walk for one position: sort every token into accept / depends / reject. */

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

/* For a token the frame cannot take alone, each depth j at which a path popped the frame
 * gives a pair (token, j): at run time the token is allowed when token[j..] continues from the
 * state after the pop. The walk records them compactly as (trie node x, j): all tokens below x
 * (x included when longer than j). hd[j]: a pop happened right after byte j on the current
 * path. */

/* Transition memo for the compile-time walks. While every stack of a set sits directly on the
 * sentinel (no continuation nodes: the common case inside a frame, such as a string's character
 * loop or a repetition chain), the set is just a set of positions and its successor on a byte
 * depends on nothing else. Such sets are interned once per grammar and their transitions
 * remembered, shared by the walks of all positions, so most trie nodes cost one table read
 * instead of an expansion. */
static void fm_free(flat_memo *f) {
    for (int32_t i = 0; i < f->n; i++) ll_free(f->next[i]);
    ll_free(f->pos); ll_free(f->off); ll_free(f->cnt); ll_free(f->hash); ll_free(f->next);
    ll_free(f->slots);
    memset(f, 0, sizeof *f);
}

/* State id of s, or -1 when s is not a plain position set (or the memo is full). */
static int32_t fm_intern(flat_memo *f, const gr_set *s) {
    if (s->n > FM_MAX_TOPS || s->complete) return -1;
    int32_t tmp[FM_MAX_TOPS];
    for (int32_t i = 0; i < s->n; i++) {
        if (s->t[i].parent != GR_SENT) return -1;
        int32_t v = s->t[i].pos, j = i;
        while (j > 0 && tmp[j - 1] > v) { tmp[j] = tmp[j - 1]; j--; }
        tmp[j] = v;
    }
    uint64_t h = 1469598103934665603ull;
    for (int32_t i = 0; i < s->n; i++) h = (h ^ (uint64_t)(uint32_t)tmp[i]) * 1099511628211ull;
    if (f->n_slots == 0 || 2 * (f->n + 1) > f->n_slots) {
        if (f->n >= FM_MAX_STATES) return -1;
        int32_t ns = f->n_slots ? f->n_slots * 2 : 1024;
        int32_t *sl = ll_calloc((size_t)ns, sizeof *sl);
        if (!sl) return -1;
        for (int32_t i = 0; i < f->n; i++) {
            size_t k = (size_t)f->hash[i] & (size_t)(ns - 1);
            while (sl[k]) k = (k + 1) & (size_t)(ns - 1);
            sl[k] = i + 1;
        }
        ll_free(f->slots);
        f->slots = sl;
        f->n_slots = ns;
    }
    size_t k = (size_t)h & (size_t)(f->n_slots - 1);
    for (; f->slots[k]; k = (k + 1) & (size_t)(f->n_slots - 1)) {
        int32_t id = f->slots[k] - 1;
        if (f->hash[id] == h && f->cnt[id] == s->n &&
            (s->n == 0 || !memcmp(f->pos + f->off[id], tmp, (size_t)s->n * sizeof *tmp)))
            return id;
    }
    if (f->n >= FM_MAX_STATES) return -1;
    if (f->n == f->cap) {
        int32_t nc = f->cap ? f->cap * 2 : 256;
        int32_t *o = ll_realloc(f->off, (size_t)nc * sizeof *o);
        if (o) f->off = o;
        int32_t *c = o ? ll_realloc(f->cnt, (size_t)nc * sizeof *c) : NULL;
        if (c) f->cnt = c;
        uint64_t *hh = c ? ll_realloc(f->hash, (size_t)nc * sizeof *hh) : NULL;
        if (hh) f->hash = hh;
        int32_t **nx = hh ? ll_realloc(f->next, (size_t)nc * sizeof *nx) : NULL;
        if (nx) f->next = nx;
        if (!nx) return -1;
        f->cap = nc;
    }
    if (f->n_pos + s->n > f->cap_pos) {
        int32_t nc = (f->cap_pos + s->n) * 2;
        int32_t *q = ll_realloc(f->pos, (size_t)nc * sizeof *q);
        if (!q) return -1;
        f->pos = q;
        f->cap_pos = nc;
    }
    int32_t id = f->n++;
    f->off[id] = f->n_pos;
    f->cnt[id] = s->n;
    f->hash[id] = h;
    f->next[id] = NULL;
    if (s->n) memcpy(f->pos + f->n_pos, tmp, (size_t)s->n * sizeof *tmp);
    f->n_pos += s->n;
    f->slots[k] = id + 1;
    return id;
}

/* Successor of state sid on byte c from the memo: (successor << 1) | underflow, or -1 when
 * not known (-2 in the table: known not to be a plain position set). */
static inline int32_t fm_next(const flat_memo *f, int32_t sid, unsigned char c) {
    if (sid < 0 || !f->next[sid]) return -1;
    int32_t e = f->next[sid][c];
    return e >= 0 ? e : -1;
}

/* The positions of state sid as a set in out (each directly over the sentinel). */
static ll_status fm_load(const flat_memo *f, int32_t sid, gr_set *out, ll_error *err) {
    ll_status st = gr_set_reserve(out, f->cnt[sid], err);
    if (st != LL_OK) return st;
    for (int32_t i = 0; i < f->cnt[sid]; i++) out->t[i] = (gr_top){ f->pos[f->off[sid] + i], GR_SENT };
    out->n = f->cnt[sid];
    out->complete = false;
    out->underflow = false;
    return LL_OK;
}

/* Successor of in (state sid, or -1) on byte c into out by gr_advance, remembered in the memo.
 * Returns the successor's id or -1. */
static int32_t fm_step(flat_memo *f, ll_grammar *m, int32_t sid, const gr_set *in, unsigned char c,
                       gr_set *out, ll_status *st, ll_error *err) {
    *st = gr_advance(&m->c->g, &m->arena, in, c, out, err);
    if (*st != LL_OK) return -1;
    int32_t to = fm_intern(f, out);
    if (sid >= 0 && (!f->next[sid] || f->next[sid][c] == -1)) {
        if (!f->next[sid]) {
            f->next[sid] = ll_malloc(256 * sizeof *f->next[sid]);
            if (f->next[sid]) for (int i = 0; i < 256; i++) f->next[sid][i] = -1;
        }
        if (f->next[sid]) f->next[sid][c] = to >= 0 ? (to << 1) | (out->underflow ? 1 : 0) : -2;
    }
    return to;
}

/* The walk keeps, per depth, the memo state id and whether lv[d] holds that depth's set: a
 * step the memo knows costs one table read and copies no set (most nodes of a walk inside a
 * string or a repetition chain); lv[d] is filled from the memo only when a step below it
 * misses. mat[d]: lv[d] is current. */
static ll_status walk_classify(ll_grammar *m, const tr_trie *t, const uint16_t *sub_max, flat_memo *fm,
                               int32_t *sid, int32_t pos, idvec *acc, idvec *pid, idvec *poff, uint8_t *uf,
                               uint8_t *hd, uint8_t *mat, uint8_t *pb, const uint64_t *follow, int min_len,
                               ll_error *err) {
    gr_set *lv = m->lv;
    m->arena.len = 0;
    lv[0].t[0] = (gr_top){ pos, GR_SENT };
    lv[0].n = 1;
    lv[0].complete = lv[0].underflow = false;
    m->lv_mark[0] = 0;
    uf[0] = hd[0] = 0;
    mat[0] = 1;
    sid[0] = fm_intern(fm, &lv[0]);
    for (int32_t i = 0; i < t->n_nodes;) {
        const tr_node *nd = &t->nodes[i];
        int d = nd->depth;
        if (sub_max && sub_max[i] < min_len) { i = nd->end; continue; }   /* decided by a shifted copy */
        int32_t e = fm_next(fm, sid[d - 1], nd->byte), n;
        bool here;
        if (e >= 0) {
            sid[d] = e >> 1;
            here = e & 1;
            n = fm->cnt[sid[d]];
            mat[d] = 0;
            m->lv_mark[d] = m->lv_mark[d - 1];
        } else {
            ll_status st;
            if (!mat[d - 1]) {   /* only memo states are left unmaterialized */
                m->arena.len = m->lv_mark[d - 1];
                st = fm_load(fm, sid[d - 1], &lv[d - 1], err);
                if (st != LL_OK) return st;
                lv[d - 1].underflow = hd[d - 1];
                mat[d - 1] = 1;
            }
            m->arena.len = m->lv_mark[d - 1];
            sid[d] = fm_step(fm, m, sid[d - 1], &lv[d - 1], nd->byte, &lv[d], &st, err);
            if (st != LL_OK) return st;
            m->lv_mark[d] = m->arena.len;
            mat[d] = 1;
            here = lv[d].underflow;
            n = lv[d].n;
        }
        hd[d] = here;
        pb[d] = nd->byte;
        uf[d] = uf[d - 1] || here;
        if (n == 0 && !uf[d]) { i = nd->end; continue; }
        if ((n || here) && d >= min_len)   /* shorter ones: from the shifted copy */
            for (int32_t k = nd->tok_lo; k < nd->tok_hi; k++)
                if (!idvec_push(acc, t->ids[k])) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
        if (n == 0) {
            /* only the context can decide this node's tokens (unless accepted just above) and
             * everything below: one reference per depth at which the frame popped, unless the
             * byte after the pop can follow the frame in no context (FOLLOW of the frame's rule:
             * inside a counted chain only the closing quote can, so a token that leaves the
             * string early and every other mid-token pop is rejected here, once). A pop after
             * the node's own last byte refers to the children that may follow. */
            for (int j = 1; j < d; j++)
                if (hd[j] && gr_class_has(follow, pb[j + 1]) && (!idvec_push(pid, i) || !idvec_push(poff, j)))
                    return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
            if (hd[d])
                for (int32_t ch = i + 1; ch < nd->end; ch = t->nodes[ch].end)
                    if (gr_class_has(follow, t->nodes[ch].byte) && (!idvec_push(pid, ch) || !idvec_push(poff, d)))
                        return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
            i = nd->end;
            continue;
        }
        i++;
    }
    m->arena.len = 0;
    return LL_OK;
}

/* Sort (id, off) pairs by the bytes of token id from off (merge sort; tmp holds n pairs). */
static int pair_cmp(const gr_compiled *c, int32_t ia, int32_t oa, int32_t ib, int32_t ob) {
    ll_str x = tok_str(c, ia), y = tok_str(c, ib);
    x.p += oa; x.n -= (size_t)oa; y.p += ob; y.n -= (size_t)ob;
    size_t mn = x.n < y.n ? x.n : y.n;
    int r = mn ? memcmp(x.p, y.p, mn) : 0;
    if (r) return r;
    return x.n < y.n ? -1 : x.n > y.n ? 1 : ia - ib;
}

static void sort_pairs(const gr_compiled *c, int32_t *id, int32_t *off, int32_t *tid, int32_t *toff, int32_t n) {
    if (n < 2) return;
    int32_t h = n / 2;
    sort_pairs(c, id, off, tid, toff, h);
    sort_pairs(c, id + h, off + h, tid, toff, n - h);
    int32_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        if (pair_cmp(c, id[i], off[i], id[j], off[j]) <= 0) { tid[k] = id[i]; toff[k++] = off[i++]; }
        else { tid[k] = id[j]; toff[k++] = off[j++]; }
    }
    while (i < h) { tid[k] = id[i]; toff[k++] = off[i++]; }
    while (j < n) { tid[k] = id[j]; toff[k++] = off[j++]; }
    memcpy(id, tid, (size_t)n * sizeof *id);
    memcpy(off, toff, (size_t)n * sizeof *off);
}

/* The same order, fast for many pairs (a position can have ~200K: every token that leaves a
 * string, at every depth it can): an LSD radix sort on the suffixes' first 8 bytes, 16 bits a
 * pass, then the merge sort within each run of pairs whose first 8 bytes are equal. */
static ll_status sort_pairs_fast(const gr_compiled *c, int32_t *id, int32_t *off, int32_t *tid, int32_t *toff,
                                 int32_t n, ll_error *err) {
    if (n < 512) { sort_pairs(c, id, off, tid, toff, n); return LL_OK; }
    uint64_t *k = ll_malloc_array((size_t)n * 2, sizeof *k);
    int32_t *cnt = ll_malloc_array(n >= 65536 ? 65536 : 256, sizeof *cnt);
    if (!k || !cnt) { ll_free(k); ll_free(cnt); return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); }
    uint64_t *k2 = k + n;
    for (int32_t i = 0; i < n; i++) {
        ll_str x = tok_str(c, id[i]);
        x.p += off[i];
        x.n -= (size_t)off[i];
        uint64_t key = 0;
        for (size_t b = 0; b < 8; b++) key = key << 8 | (b < x.n ? (unsigned char)x.p[b] : 0u);
        k[i] = key;
    }
    uint64_t *ka = k, *kb = k2;
    int32_t *ia = id, *oa = off, *ib = tid, *ob = toff;
    /* 16-bit digits for many pairs, 8-bit ones below that (the counters would dominate) */
    int bits = n >= 65536 ? 16 : 8;
    uint64_t dmask = ((uint64_t)1 << bits) - 1;
    for (int shift = 0; shift < 64; shift += bits) {
        memset(cnt, 0, ((size_t)dmask + 1) * sizeof *cnt);
        for (int32_t i = 0; i < n; i++) cnt[(ka[i] >> shift) & dmask]++;
        if (cnt[(ka[0] >> shift) & dmask] == n) continue;   /* one digit value: nothing moves */
        int32_t sum = 0;
        for (uint64_t d = 0; d <= dmask; d++) { int32_t t = cnt[d]; cnt[d] = sum; sum += t; }
        for (int32_t i = 0; i < n; i++) {
            int32_t at = cnt[(ka[i] >> shift) & dmask]++;
            kb[at] = ka[i];
            ib[at] = ia[i];
            ob[at] = oa[i];
        }
        uint64_t *tk = ka; ka = kb; kb = tk;
        int32_t *ti = ia; ia = ib; ib = ti;
        int32_t *to = oa; oa = ob; ob = to;
    }
    if (ia != id) {
        memcpy(id, ia, (size_t)n * sizeof *id);
        memcpy(off, oa, (size_t)n * sizeof *off);
    }
    for (int32_t a = 0; a < n;) {
        int32_t b = a + 1;
        /* a run with equal keys is already in order when its suffixes are the same bytes:
         * all of one length of at most 8 (the key holds them whole); the order of equal
         * suffixes does not matter to the trie. Common: every token that ends in `"`. */
        size_t len_a = tok_str(c, id[a]).n - (size_t)off[a];
        bool same = len_a <= 8;
        while (b < n && ka[b] == ka[a]) {
            same = same && tok_str(c, id[b]).n - (size_t)off[b] == len_a;
            b++;
        }
        if (b - a > 1 && !same) sort_pairs(c, id + a, off + a, tid, toff, b - a);
        a = b;
    }
    ll_free(k);
    ll_free(cnt);
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

/* ---- the vocabulary's tables -------------------------------------------------------------- */

static void vtab_free(gr_vtab *t) {
    if (!t) return;
    ll_free(t->tok_bytes);
    ll_free(t->tok_off);
    ll_free(t->eog_ids);
    trie_free(&t->trie);
    ll_free(t->sub_max);
    ll_free(t->by_len);
    ll_free(t->n_len_ge);
    ll_free(t->short_bits);
    ll_free(t->rank);
    ll_free(t);
}

static void vtab_unref(gr_vtab *t) {
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) vtab_free(t);
}

/* Token pieces (ll_tok_piece without special rendering; end-of-generation tokens and tokens
 * without bytes are left out of the trie) sorted into the trie: ~50 ms for 128K tokens. */
static ll_status vtab_build(gr_vtab **out, const ll_vocab *v, ll_error *err) {
    *out = NULL;
    ll_status st = LL_OK;
    int32_t *ids = NULL, *tmp = NULL;
    gr_vtab *t = ll_calloc(1, sizeof *t);
    if (!t) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    atomic_init(&t->refs, 1);
    t->serial = ll_vocab_serial(v);
    int32_t nv = ll_vocab_n_tokens(v);
    if (nv <= 0) { st = ll_fail(err, LL_ERR_ARG, "grammar: empty vocabulary"); goto fail; }
    t->n_vocab = nv;
    t->n_words = (nv + 63) / 64;
    t->tok_off = ll_malloc_array((size_t)nv + 1, sizeof *t->tok_off);
    ids = ll_malloc_array((size_t)nv, sizeof *ids);
    tmp = ll_malloc_array((size_t)nv, sizeof *tmp);
    t->eog_ids = ll_malloc_array((size_t)nv, sizeof *t->eog_ids);
    if (!t->tok_off || !ids || !tmp || !t->eog_ids) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
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
    t->tok_bytes = ll_malloc(cap);
    if (!t->tok_bytes) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
    size_t off = 0;
    int32_t n_ids = 0;
    for (int32_t i = 0; i < nv; i++) {
        t->tok_off[i] = (uint32_t)off;
        if (ll_vocab_is_eog(v, i)) { t->eog_ids[t->n_eog++] = i; continue; }
        size_t n = ll_tok_piece(v, i, false, buf, sizeof buf);
        if (n > UINT16_MAX || off + n > cap) continue;
        if (n > sizeof buf) {
            char *big = ll_malloc(n);
            if (!big) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
            ll_tok_piece(v, i, false, big, n);
            memcpy(t->tok_bytes + off, big, n);
            ll_free(big);
        } else if (n) {
            memcpy(t->tok_bytes + off, buf, n);
        }
        off += n;
        if (n) {
            ids[n_ids++] = i;
            if ((int32_t)n > t->max_tok_len) t->max_tok_len = (int32_t)n;
        }
    }
    t->tok_off[nv] = (uint32_t)off;
    /* sort_tokens and trie_build read the pieces through a gr_compiled view */
    gr_compiled view;
    memset(&view, 0, sizeof view);
    view.tok_bytes = t->tok_bytes;
    view.tok_off = t->tok_off;
    view.max_tok_len = t->max_tok_len;
    sort_tokens(&view, ids, tmp, n_ids);
    st = trie_build(&t->trie, &view, ids, NULL, n_ids, err);
    if (st != LL_OK) goto fail;
    t->sub_max = ll_malloc_array((size_t)t->trie.n_nodes + 1, sizeof *t->sub_max);
    t->rank = ll_malloc_array((size_t)nv, sizeof *t->rank);
    if (!t->sub_max || !t->rank) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
    for (int32_t i = 0; i < nv; i++) t->rank[i] = -1;
    for (int32_t k = 0; k < t->trie.n_ids; k++) t->rank[t->trie.ids[k]] = k;
    for (int32_t i = t->trie.n_nodes - 1; i >= 0; i--) {   /* children come after their parent */
        const tr_node *nd = &t->trie.nodes[i];
        uint16_t mx = nd->tok_hi > nd->tok_lo ? nd->depth : 0;
        for (int32_t ch = i + 1; ch < nd->end; ch = t->trie.nodes[ch].end)
            if (t->sub_max[ch] > mx) mx = t->sub_max[ch];
        t->sub_max[i] = mx;
    }
    {   /* counting sort by length, longest first */
        int32_t *cnt = ll_calloc((size_t)t->max_tok_len + 2, sizeof *cnt);
        t->by_len = ll_malloc_array((size_t)n_ids + 1, sizeof *t->by_len);
        if (!cnt || !t->by_len) { ll_free(cnt); st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
        for (int32_t k = 0; k < n_ids; k++) cnt[t->max_tok_len - (int32_t)(t->tok_off[ids[k] + 1] - t->tok_off[ids[k]])]++;
        for (int32_t l = 0, sum = 0; l <= t->max_tok_len; l++) { int32_t x = cnt[l]; cnt[l] = sum; sum += x; }
        for (int32_t k = 0; k < n_ids; k++)
            t->by_len[cnt[t->max_tok_len - (int32_t)(t->tok_off[ids[k] + 1] - t->tok_off[ids[k]])]++] = ids[k];
        ll_free(cnt);
    }
    {   /* where each length starts in by_len, and the short tokens' bits per length */
        t->n_len_ge = ll_calloc((size_t)t->max_tok_len + 2, sizeof *t->n_len_ge);
        t->short_bits = ll_calloc((size_t)(GR_SHORT_MAX + 1) * (size_t)t->n_words, sizeof *t->short_bits);
        if (!t->n_len_ge || !t->short_bits) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
        for (int32_t k = 0; k < n_ids; k++) {
            int32_t len = (int32_t)(t->tok_off[ids[k] + 1] - t->tok_off[ids[k]]);
            for (int32_t l = 0; l <= len; l++) t->n_len_ge[l]++;
            for (int32_t l = len + 1; l <= GR_SHORT_MAX; l++)
                t->short_bits[(size_t)l * (size_t)t->n_words + (size_t)(ids[k] >> 6)] |= 1ull << (ids[k] & 63);
        }
    }
    ll_free(ids);
    ll_free(tmp);
    *out = t;
    return LL_OK;
fail:
    ll_free(ids);
    ll_free(tmp);
    vtab_free(t);
    return st;
}

/* The tables of v, from the last GR_VCACHE vocabularies used, or built (one reference). */
#define GR_VCACHE 2
static pthread_mutex_t vcache_lock = PTHREAD_MUTEX_INITIALIZER;
static gr_vtab *vcache[GR_VCACHE];   /* most recently used first; each holds one reference */

static ll_status vtab_get(gr_vtab **out, const ll_vocab *v, ll_error *err) {
    uint64_t serial = ll_vocab_serial(v);
    pthread_mutex_lock(&vcache_lock);
    for (int i = 0; i < GR_VCACHE; i++)
        if (vcache[i] && vcache[i]->serial == serial) {
            gr_vtab *t = vcache[i];
            memmove(&vcache[1], &vcache[0], (size_t)i * sizeof *vcache);
            vcache[0] = t;
            atomic_fetch_add(&t->refs, 1);
            pthread_mutex_unlock(&vcache_lock);
            *out = t;
            return LL_OK;
        }
    /* Built under the lock: two grammars for a new vocabulary build its tables once. */
    gr_vtab *t = NULL;
    ll_status st = vtab_build(&t, v, err);
    if (st == LL_OK) {
        gr_vtab *old = vcache[GR_VCACHE - 1];
        memmove(&vcache[1], &vcache[0], (GR_VCACHE - 1) * sizeof *vcache);
        vcache[0] = t;
        atomic_fetch_add(&t->refs, 1);
        vtab_unref(old);
    }
    pthread_mutex_unlock(&vcache_lock);
    *out = t;
    return st;
}

static void compiled_free(gr_compiled *c) {
    if (!c) return;
    pos_lazy *z = &c->lazy;
    if (z->scratch) { z->scratch->c = NULL; ll_grammar_free(z->scratch); }
    fm_free(&z->fm);
    ll_free(z->acc.a); ll_free(z->pid.a); ll_free(z->poff.a); ll_free(z->tid.a); ll_free(z->toff.a);
    ll_free(z->uf); ll_free(z->hd); ll_free(z->mat); ll_free(z->pb); ll_free(z->sid);
    ll_free(z->xid.a); ll_free(z->xoff.a);
    ll_free(z->cand); ll_free(z->cid.a); ll_free(z->cpid.a); ll_free(z->cpoff.a);
    ll_free(c->elem_alt); ll_free(c->alt_rule); ll_free(c->succ); ll_free(c->pred);
    ll_free(c->link); ll_free(c->sdepth); ll_free(c->sexact);
    pthread_mutex_destroy(&c->lazy_lock);
    gr_grammar_free(&c->g);
    vtab_unref(c->vt);
    for (int32_t i = 0; i < c->n_pinfo; i++) {
        ll_free(c->pinfo[i].acc_bits);
        ll_free(c->pinfo[i].acc_ids);
        trie_free(&c->pinfo[i].suf);
        ll_free(c->pinfo[i].refs);
    }
    ll_free(c->pinfo);
    ll_free(c->pinfo_of);
    ll_free(c);
}

static ll_status matcher_new(ll_grammar **out, gr_compiled *c, ll_error *err);

/* FOLLOW sets (the textbook ones, over bytes): for each rule, the bytes that may come right
 * after it in some sentence; each class position gets its rule's set (pos_info.follow). A
 * frame that pops its sentinel continues with one of those bytes or not at all, which lets
 * walk_classify drop the pops no context can continue. Fixpoints over NULLABLE, FIRST and
 * FOLLOW; when they do not settle within GR_FOLLOW_ROUNDS rounds (a pathological grammar)
 * every set is all bytes, which only forgoes the filter. */
#define GR_FOLLOW_ROUNDS 64
static ll_status follow_sets(gr_compiled *c, ll_error *err) {
    const gr_grammar *g = &c->g;
    int32_t nr = g->n_rules;
    uint8_t *nul = ll_calloc((size_t)nr + 1, 1);
    uint64_t (*first)[4] = ll_calloc((size_t)nr + 1, sizeof *first);
    uint64_t (*fol)[4] = ll_calloc((size_t)nr + 1, sizeof *fol);
    if (!nul || !first || !fol) {
        ll_free(nul); ll_free(first); ll_free(fol);
        return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory for follow sets");
    }
    bool settled = false;
    for (int round = 0; round < GR_FOLLOW_ROUNDS && !settled; round++) {   /* NULLABLE, FIRST */
        settled = true;
        for (int32_t r = 0; r < nr; r++)
            for (int32_t k = g->alt_off[r]; k < g->alt_off[r + 1]; k++) {
                bool all_nul = true;
                for (int32_t e = g->alts[k]; g->elems[e].type != GR_END && all_nul; e++) {
                    const gr_elem *x = &g->elems[e];
                    const uint64_t *add = x->type == GR_CHAR ? x->bits : first[x->ref];
                    for (int w = 0; w < 4; w++)
                        if (add[w] & ~first[r][w]) { first[r][w] |= add[w]; settled = false; }
                    all_nul = x->type == GR_RULE && nul[x->ref];
                }
                if (all_nul && !nul[r]) { nul[r] = 1; settled = false; }
            }
    }
    bool ok = settled;
    settled = false;
    for (int round = 0; round < GR_FOLLOW_ROUNDS && ok && !settled; round++) {   /* FOLLOW */
        settled = true;
        for (int32_t r = 0; r < nr; r++)
            for (int32_t k = g->alt_off[r]; k < g->alt_off[r + 1]; k++) {
                /* backwards: after holds FIRST of the rest of the alternative, tail_nul whether
                 * the rest can be empty (then what follows r follows too) */
                int32_t e0 = g->alts[k], e1 = e0;
                while (g->elems[e1].type != GR_END) e1++;
                uint64_t after[4] = { 0 };
                bool tail_nul = true;
                for (int32_t e = e1 - 1; e >= e0; e--) {
                    const gr_elem *x = &g->elems[e];
                    if (x->type == GR_RULE) {
                        uint64_t *f = fol[x->ref];
                        for (int w = 0; w < 4; w++) {
                            uint64_t v = after[w] | (tail_nul ? fol[r][w] : 0);
                            if (v & ~f[w]) { f[w] |= v; settled = false; }
                        }
                    }
                    const uint64_t *add = x->type == GR_CHAR ? x->bits : first[x->ref];
                    bool xn = x->type == GR_RULE && nul[x->ref];
                    for (int w = 0; w < 4; w++) after[w] = xn ? after[w] | add[w] : add[w];
                    tail_nul = tail_nul && xn;
                }
            }
    }
    ok = ok && settled;
    for (int32_t r = 0; r < nr; r++)
        for (int32_t k = g->alt_off[r]; k < g->alt_off[r + 1]; k++)
            for (int32_t e = g->alts[k]; g->elems[e].type != GR_END; e++)
                if (c->pinfo_of[e] >= 0) {
                    uint64_t *f = c->pinfo[c->pinfo_of[e]].follow;
                    for (int w = 0; w < 4; w++) f[w] = ok ? fol[r][w] : ~0ull;
                }
    ll_free(nul); ll_free(first); ll_free(fol);
    return LL_OK;
}

/* ---- shifted copies --------------------------------------------------------------------------
 * A counted repetition (maxLength, {m,n}) unrolls into a chain of rules, one per count, each
 * the same alternatives ending in a reference to the next: every step's positions need their
 * own classes (a token's fate depends on how many items are left), and each costs a walk of
 * most of the trie (a string character: every token that is string content). But a token of
 * fewer bytes than the items left cannot tell two neighbouring steps apart: each item takes at
 * least one byte, so its walks from step k and from step k+1 run through rules that match
 * one to one. pos_share finds such a neighbour already classified; pos_compute then takes
 * the short tokens' classes from it and walks only the subtrees holding longer tokens.
 *
 * Rules R and S = succ(R) match exactly when they have the same number of alternatives, each
 * of the same length, with equal byte classes and equal references, except that a reference
 * to S in R's last place is one to succ(S) in S's; every alternative that is not empty starts
 * with a byte class (an item takes a byte). shift_depth(R) counts the matches R, succ(R), ... :
 * a token shorter than that count (and a pop before that many bytes) is classified alike from
 * R and from succ(R).
 *
 * Where the required items of a chain end (minLength 3: three steps without the empty
 * alternative, then steps with it), R and S match loosely: S has one more alternative, last
 * and empty, and the others match as above. The empty alternative is a pop (a chain's
 * references are tail calls), so walks from R and from S take the same paths except that S
 * may pop at more places: for a short token, R accepts what S accepts (a path that does not
 * pop is in both), rejects what S rejects, and can pop only where S can. Across a loose
 * match pos_compute therefore copies the neighbour's accepts and re-walks just the tokens
 * the neighbour left to the context (a few: those with the closing quote inside), so the
 * required steps share too instead of each walking the whole trie. */
enum { SHIFT_NONE = 0, SHIFT_EXACT = 1, SHIFT_LOOSE = 2 };

static int shift_match(const gr_compiled *c, int32_t r, int32_t s) {
    const gr_grammar *g = &c->g;
    if (s < 0 || s == r || c->succ[s] < 0) return SHIFT_NONE;
    int32_t na = g->alt_off[r + 1] - g->alt_off[r], nb = g->alt_off[s + 1] - g->alt_off[s];
    int kind = SHIFT_EXACT;
    if (nb == na + 1 && g->elems[g->alts[g->alt_off[s] + na]].type == GR_END) kind = SHIFT_LOOSE;
    else if (nb != na) return SHIFT_NONE;
    for (int32_t i = 0; i < na; i++) {
        int32_t a = g->alts[g->alt_off[r] + i], b = g->alts[g->alt_off[s] + i];
        if (g->elems[a].type == GR_RULE) return SHIFT_NONE;   /* must start with a byte or be empty */
        if (kind == SHIFT_LOOSE && g->elems[a].type == GR_END) return SHIFT_NONE;   /* R pops nowhere */
        for (;; a++, b++) {
            const gr_elem *x = &g->elems[a], *y = &g->elems[b];
            if (x->type != y->type) return SHIFT_NONE;
            if (x->type == GR_END) break;
            if (x->type == GR_CHAR && memcmp(x->bits, y->bits, sizeof x->bits)) return SHIFT_NONE;
            if (x->type == GR_RULE) {
                bool tail = g->elems[a + 1].type == GR_END;
                if (x->ref == s) { if (!tail || y->ref != c->succ[s]) return SHIFT_NONE; }
                else if (x->ref != y->ref || x->ref == r || y->ref == s) return SHIFT_NONE;
            }
        }
    }
    return kind;
}

/* Matches R, succ(R), ... of either kind (at most GR_SHIFT_CAP, from shift_init's tables);
 * *exact: how many of the first are exact. */
static int shift_depth(const gr_compiled *c, int32_t r, int *exact) {
    *exact = c->sexact[r];
    return c->sdepth[r];
}

/* A classified position q whose classes agree with p's for tokens shorter than *n bytes (and
 * pops before *n bytes), or -1. q is up to GR_SHARE_REACH steps along p's chain either way
 * (a token of several characters skips steps, so the neighbour may not have been used): d
 * steps toward the head keeps p's depth, d steps toward the end loses d of it. *loose: a
 * loose match lies within the depth, so q's context-dependent tokens are p's candidates
 * only (q is further along, where pops are allowed at least as often); toward the head only
 * exact matches count. */
#define GR_SHARE_REACH 64
#define GR_SHIFT_CAP (c->max_tok_len + 2 + GR_SHARE_REACH)
static int32_t pos_share(const gr_compiled *c, int32_t p, int *n, bool *loose) {
    const gr_grammar *g = &c->g;
    *n = 0;
    *loose = false;
    if (!c->elem_alt) return -1;
    int32_t ai = c->elem_alt[p];
    if (ai < 0) return -1;
    int32_t r = c->alt_rule[ai], k = ai - g->alt_off[r], off = p - g->alts[ai];
    const uint64_t *fp = c->pinfo[c->pinfo_of[p]].follow;
    int exact, depth = shift_depth(c, r, &exact);
    int32_t best = -1;
    for (int side = 0; side < 2; side++) {
        int32_t at = r;
        for (int d = 1; d <= GR_SHARE_REACH; d++) {
            int32_t nx = side ? c->succ[at] : c->pred[at];
            if (nx < 0) break;
            if (side ? c->link[at] == SHIFT_NONE : (c->succ[nx] != at || c->link[nx] != SHIFT_EXACT)) break;
            at = nx;
            int gain = side ? depth - d : exact;
            if (gain <= *n) { if (side) break; continue; }
            int32_t q = g->alts[g->alt_off[at] + k] + off;   /* same shape: in range */
            if (c->pinfo_of[q] < 0 || !atomic_load_explicit(&c->pinfo[c->pinfo_of[q]].ready, memory_order_acquire) ||
                memcmp(c->pinfo[c->pinfo_of[q]].follow, fp, 4 * sizeof *fp))
                continue;
            *n = gain;
            *loose = side && exact < depth;
            best = q;
            break;
        }
    }
    return *n >= 2 ? best : -1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Rule structure for pos_share. */
static ll_status shift_init(gr_compiled *c, ll_error *err) {
    const gr_grammar *g = &c->g;
    int32_t nr = g->n_rules, na = g->alt_off[nr];
    c->elem_alt = ll_malloc_array((size_t)g->n_elems, sizeof *c->elem_alt);
    c->alt_rule = ll_malloc_array((size_t)na + 1, sizeof *c->alt_rule);
    c->succ = ll_malloc_array((size_t)nr + 1, sizeof *c->succ);
    c->pred = ll_malloc_array((size_t)nr + 1, sizeof *c->pred);
    if (!c->elem_alt || !c->alt_rule || !c->succ || !c->pred) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    for (int32_t e = 0; e < g->n_elems; e++) c->elem_alt[e] = -1;
    for (int32_t r = 0; r < nr; r++) { c->succ[r] = -2; c->pred[r] = -2; }   /* -2: none yet */
    for (int32_t r = 0; r < nr; r++)
        for (int32_t k = g->alt_off[r]; k < g->alt_off[r + 1]; k++) {
            c->alt_rule[k] = r;
            int32_t e = g->alts[k];
            for (; g->elems[e].type != GR_END; e++) c->elem_alt[e] = k;
            if (e == g->alts[k]) continue;   /* empty */
            const gr_elem *last = &g->elems[e - 1];
            int32_t t = last->type == GR_RULE ? last->ref : -1;
            if (t < 0 || t == r) c->succ[r] = -1;
            else if (c->succ[r] == -2) c->succ[r] = t;
            else if (c->succ[r] != t) c->succ[r] = -1;
        }
    for (int32_t r = 0; r < nr; r++) {
        if (c->succ[r] == -2) c->succ[r] = -1;
        int32_t t = c->succ[r];
        if (t >= 0) c->pred[t] = c->pred[t] == -2 ? r : -1;
    }
    for (int32_t r = 0; r < nr; r++) if (c->pred[r] == -2) c->pred[r] = -1;
    /* links, then depths back from each chain's end (a cycle of matching rules counts as
     * deep as the cap) */
    c->link = ll_malloc((size_t)nr + 1);
    c->sdepth = ll_malloc_array((size_t)nr + 1, sizeof *c->sdepth);
    c->sexact = ll_malloc_array((size_t)nr + 1, sizeof *c->sexact);
    uint8_t *state = ll_calloc((size_t)nr + 1, 1);   /* 0 new, 1 on the path, 2 done */
    int32_t *path = ll_malloc_array((size_t)nr + 1, sizeof *path);
    if (!c->link || !c->sdepth || !c->sexact || !state || !path) {
        ll_free(state); ll_free(path);
        return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    }
    for (int32_t r = 0; r < nr; r++) c->link[r] = (uint8_t)(c->succ[r] >= 0 ? shift_match(c, r, c->succ[r]) : SHIFT_NONE);
    int32_t cap = GR_SHIFT_CAP;
    for (int32_t r = 0; r < nr; r++) {
        int32_t n = 0, at = r;
        while (at >= 0 && state[at] == 0) {
            state[at] = 1;
            path[n++] = at;
            at = c->link[at] != SHIFT_NONE ? c->succ[at] : -1;
        }
        for (int32_t i = n - 1; i >= 0; i--) {
            int32_t x = path[i], nx = c->succ[x];
            if (c->link[x] == SHIFT_NONE) { c->sdepth[x] = c->sexact[x] = 0; }
            else {
                int32_t d = state[nx] == 2 ? c->sdepth[nx] : cap, e = state[nx] == 2 ? c->sexact[nx] : cap;
                c->sdepth[x] = d < cap ? d + 1 : cap;
                c->sexact[x] = c->link[x] == SHIFT_EXACT ? (e < cap ? e + 1 : cap) : 0;
            }
            state[x] = 2;
        }
    }
    ll_free(state);
    ll_free(path);
    return LL_OK;
}

/* Across a loose match (see above): the short tokens q leaves to the context, wherever q
 * keeps them (references, its suffix trie, a borrowed one), walked again from p in a trie of
 * their own. Accepts join acc, pairs join z->xid/xoff (q's accepts are copied by the caller,
 * and every other short token q rejects, p rejects too). */
static ll_status loose_rewalk(gr_compiled *c, int32_t p, const pos_info *qi, int n_short, idvec *acc,
                              ll_error *err) {
    pos_lazy *z = &c->lazy;
    const tr_trie *t = &c->trie;
    int32_t nw = (t->n_ids + 63) / 64;
    if (!z->cand && !(z->cand = ll_calloc((size_t)(nw ? nw : 1), sizeof *z->cand)))
        return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    for (int32_t r = 0; r < qi->n_refs; r++) {
        const tr_node *x = &t->nodes[qi->refs[3 * r]];
        int32_t hi = x->end < t->n_nodes ? t->nodes[x->end].tok_lo : t->n_ids;
        for (int32_t k = x->tok_lo; k < hi; k++)
            if ((int)tok_str(c, t->ids[k]).n < n_short) z->cand[k >> 6] |= 1ull << (k & 63);
    }
    const tr_trie *sufs[2] = { &qi->suf, qi->bsuf };
    for (int s = 0; s < 2; s++)
        for (int32_t k = 0; sufs[s] && k < sufs[s]->n_ids; k++) {
            int32_t id = sufs[s]->ids[k], at = c->rank[id];
            if (at >= 0 && (int)tok_str(c, id).n < n_short) z->cand[at >> 6] |= 1ull << (at & 63);
        }
    z->cid.n = z->cpid.n = z->cpoff.n = 0;
    for (int32_t w = 0; w < nw; w++)   /* trie order is byte order: the list comes sorted */
        for (uint64_t b = z->cand[w]; b; b &= b - 1)
            if (!idvec_push(&z->cid, t->ids[64 * w + __builtin_ctzll(b)])) {
                memset(z->cand, 0, (size_t)nw * sizeof *z->cand);
                return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
            }
    memset(z->cand, 0, (size_t)nw * sizeof *z->cand);
    if (z->cid.n == 0) return LL_OK;
    tr_trie sm;
    ll_status st = trie_build(&sm, c, z->cid.a, NULL, z->cid.n, err);
    if (st == LL_OK)
        st = walk_classify(z->scratch, &sm, NULL, &z->fm, z->sid, p, acc, &z->cpid, &z->cpoff, z->uf, z->hd,
                           z->mat, z->pb, c->pinfo[c->pinfo_of[p]].follow, 0, err);
    for (int32_t r = 0; r < z->cpid.n && st == LL_OK; r++) {
        const tr_node *x = &sm.nodes[z->cpid.a[r]];
        int32_t hi = x->end < sm.n_nodes ? sm.nodes[x->end].tok_lo : sm.n_ids, j = z->cpoff.a[r];
        for (int32_t k = x->tok_lo; k < hi && st == LL_OK; k++)
            if ((int32_t)tok_str(c, sm.ids[k]).n > j && (!idvec_push(&z->xid, sm.ids[k]) || !idvec_push(&z->xoff, j)))
                st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    }
    trie_free(&sm);
    return st;
}

/* Classify every token for position p (see the file comment); called once per position,
 * under c->lazy_lock unless from compiled_init. */
static ll_status pos_compute(gr_compiled *c, int32_t p, ll_error *err) {
    pos_lazy *z = &c->lazy;
    idvec *acc = &z->acc, *pid = &z->pid, *poff = &z->poff, *tid = &z->tid, *toff = &z->toff;
    ll_status st;
    pos_info *pi = &c->pinfo[c->pinfo_of[p]];
    /* what an earlier attempt that failed half way left (nothing reads a position before
     * it is ready) */
    ll_free(pi->acc_bits); ll_free(pi->acc_ids); ll_free(pi->refs);
    pi->acc_bits = NULL; pi->acc_ids = NULL; pi->refs = NULL;
    pi->n_acc = pi->n_refs = 0;
    trie_free(&pi->suf);
    pi->bsuf = NULL;
    acc->n = pid->n = poff->n = z->xid.n = z->xoff.n = 0;
    int n_short = 0;
    bool loose = false;
    int32_t q = pos_share(c, p, &n_short, &loose);
    st = walk_classify(z->scratch, &c->trie, c->sub_max, &z->fm, z->sid, p, acc, pid, poff, z->uf, z->hd,
                       z->mat, z->pb, pi->follow, q >= 0 ? n_short : 0, err);
    if (st != LL_OK) return st;
    int32_t n_walked = pid->n;   /* references from the walk; those after are q's */
    if (q >= 0) {   /* the short tokens' classes, from q */
        const pos_info *qi = &c->pinfo[c->pinfo_of[q]];
        bool ok = true;
        if (qi->acc_bits) {   /* q's bits without its long tokens (by_len: a prefix) */
            pi->acc_bits = ll_malloc_array((size_t)c->n_words, sizeof *pi->acc_bits);
            ok = pi->acc_bits != NULL;
            if (ok && n_short <= GR_SHORT_MAX) {
                const uint64_t *sb = c->short_bits + (size_t)n_short * (size_t)c->n_words;
                for (int32_t w = 0; w < c->n_words; w++) pi->acc_bits[w] = qi->acc_bits[w] & sb[w];
            } else if (ok) {
                memcpy(pi->acc_bits, qi->acc_bits, (size_t)c->n_words * sizeof *pi->acc_bits);
                int32_t n_long = n_short <= c->max_tok_len ? c->n_len_ge[n_short] : 0;
                for (int32_t k = 0; k < n_long; k++) pi->acc_bits[c->by_len[k] >> 6] &= ~(1ull << (c->by_len[k] & 63));
            }
        } else {
            for (int32_t k = 0; k < qi->n_acc && ok; k++)
                if ((int)tok_str(c, qi->acc_ids[k]).n < n_short) ok = idvec_push(acc, qi->acc_ids[k]);
        }
        if (!ok) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
        /* q's context-dependent pairs. Across a loose match they are only candidates: those
         * tokens are walked again from p. Otherwise q's references are copied, and its suffix
         * trie borrowed with a filter when it is q's own walk's; when q borrows one itself,
         * that one (under both filters) and q's own pairs copied (few: they come from q's
         * walk of long tokens). */
        const tr_trie *own = NULL;
        if (loose) {
            st = loose_rewalk(c, p, qi, n_short, acc, err);
            if (st != LL_OK) return st;
        } else {
            for (int32_t r = 0; r < qi->n_refs && ok; r++)
                if (qi->refs[3 * r + 1] < n_short)
                    ok = idvec_push(pid, qi->refs[3 * r]) && idvec_push(poff, qi->refs[3 * r + 1]);
            if (qi->bsuf) {
                pi->bsuf = qi->bsuf;
                pi->bsuf_max_off = qi->bsuf_max_off < n_short ? qi->bsuf_max_off : n_short;
                own = &qi->suf;
            } else if (qi->suf.n_nodes) {
                pi->bsuf = &qi->suf;
                pi->bsuf_max_off = n_short;
            }
        }
        for (int32_t i = 0; own && i < own->n_nodes && ok; i++) {
            const tr_node *nd = &own->nodes[i];
            for (int32_t k = nd->tok_lo; k < nd->tok_hi && ok; k++) {
                /* short tokens only: p's own walk has every pair of the long ones */
                int32_t id = own->ids[k], len = (int32_t)tok_str(c, id).n;
                if (len < n_short) ok = idvec_push(&z->xid, id) && idvec_push(&z->xoff, len - nd->depth);
            }
        }
        if (!ok) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    }
    if (pi->acc_bits) {   /* started from a shifted copy's bits: add the walk's */
        for (int32_t k = 0; k < acc->n; k++) pi->acc_bits[acc->a[k] >> 6] |= 1ull << (acc->a[k] & 63);
        pi->n_acc = 0;   /* (counted only for acc_ids) */
    } else if ((pi->n_acc = acc->n) > 2048) {
        pi->acc_bits = ll_calloc((size_t)c->n_words, sizeof *pi->acc_bits);
        if (!pi->acc_bits) { return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); }
        for (int32_t k = 0; k < acc->n; k++) pi->acc_bits[acc->a[k] >> 6] |= 1ull << (acc->a[k] & 63);
    } else if (acc->n) {
        pi->acc_ids = ll_malloc_array((size_t)acc->n, sizeof *pi->acc_ids);
        if (!pi->acc_ids) { return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); }
        memcpy(pi->acc_ids, acc->a, (size_t)acc->n * sizeof *acc->a);
    }
    /* Walk cost at run time: a suffix trie costs about its distinct suffixes, references
     * about their distinct first bytes after the pop (they are grouped by it, and almost all
     * die at that byte) plus the survivors. References that cover many tokens each (a
     * whitespace position: every token that starts with a space, grouped by its second byte)
     * stay references, which cost nothing to build; otherwise the pairs become a suffix trie,
     * where `.com`, `",` ... are walked once. */
    size_t n_pairs = 0;
    for (int32_t r = 0; r < pid->n; r++) {
        const tr_node *x = &c->trie.nodes[pid->a[r]];
        int32_t hi = x->end < c->trie.n_nodes ? c->trie.nodes[x->end].tok_lo : c->trie.n_ids;
        n_pairs += (size_t)(hi - x->tok_lo);
    }
    if (z->xid.n == 0 && n_pairs > 4096 && (pid->n <= 256 || n_pairs >= (size_t)pid->n * 16 || n_pairs > 500000)) {
        pi->refs = ll_malloc_array((size_t)pid->n * 3, sizeof *pi->refs);
        if (!pi->refs) { return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); }
        /* counting sort by the first byte after the pop: the path's byte j when the pop was
         * above the node, else 256 (x's children differ there: never skipped as a group) */
        int32_t at[258] = { 0 };
        for (int32_t r = 0; r < pid->n; r++) {
            const tr_node *x = &c->trie.nodes[pid->a[r]];
            int b = poff->a[r] < x->depth ? (unsigned char)tok_str(c, c->trie.ids[x->tok_lo]).p[poff->a[r]] : 256;
            at[b + 1]++;
        }
        for (int b = 0; b < 257; b++) at[b + 1] += at[b];
        for (int32_t r = 0; r < pid->n; r++) {
            const tr_node *x = &c->trie.nodes[pid->a[r]];
            int b = poff->a[r] < x->depth ? (unsigned char)tok_str(c, c->trie.ids[x->tok_lo]).p[poff->a[r]] : 256;
            int32_t k = at[b]++;
            pi->refs[3 * k] = pid->a[r];
            pi->refs[3 * k + 1] = poff->a[r];
            pi->refs[3 * k + 2] = b;
        }
        pi->n_refs = pid->n;
        return LL_OK;
    }
    {
        int32_t n_ref = pid->n;
        int32_t *xs = tid->a, *js = toff->a;   /* reuse as scratch: copy the refs out first */
        if ((size_t)n_ref > (size_t)tid->cap || (size_t)n_ref > (size_t)toff->cap) {
            int32_t *a1 = ll_realloc(tid->a, (size_t)(n_ref ? n_ref : 1) * sizeof *a1);
            if (a1) { tid->a = a1; tid->cap = n_ref; }
            int32_t *a2 = a1 ? ll_realloc(toff->a, (size_t)(n_ref ? n_ref : 1) * sizeof *a2) : NULL;
            if (a2) { toff->a = a2; toff->cap = n_ref; }
            if (!a1 || !a2) { return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); }
            xs = tid->a; js = toff->a;
        }
        if (n_ref) {   /* (no memcpy from a NULL vector) */
            memcpy(xs, pid->a, (size_t)n_ref * sizeof *xs);
            memcpy(js, poff->a, (size_t)n_ref * sizeof *js);
        }
        pid->n = poff->n = 0;
        for (int32_t r = 0; r < n_ref; r++) {
            const tr_node *x = &c->trie.nodes[xs[r]];
            int32_t hi = x->end < c->trie.n_nodes ? c->trie.nodes[x->end].tok_lo : c->trie.n_ids;
            for (int32_t k = x->tok_lo; k < hi; k++) {
                int32_t id = c->trie.ids[k];
                if ((int32_t)tok_str(c, id).n <= js[r]) continue;   /* ends at the pop: accepted */
                if (q >= 0 && r < n_walked && (int32_t)tok_str(c, id).n < n_short) continue;   /* from q */
                if (!idvec_push(pid, id) || !idvec_push(poff, js[r])) { return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); }
            }
        }
        for (int32_t k = 0; k < z->xid.n; k++)   /* pairs taken from a shifted copy */
            if (!idvec_push(pid, z->xid.a[k]) || !idvec_push(poff, z->xoff.a[k]))
                return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    }
    if (pid->n > tid->cap) {
        int32_t *a1 = ll_realloc(tid->a, (size_t)pid->n * sizeof *a1);
        if (a1) { tid->a = a1; tid->cap = pid->n; }
        int32_t *a2 = a1 ? ll_realloc(toff->a, (size_t)pid->n * sizeof *a2) : NULL;
        if (a2) { toff->a = a2; toff->cap = pid->n; }
        if (!a1 || !a2) { return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); }
    }
    st = sort_pairs_fast(c, pid->a, poff->a, tid->a, toff->a, pid->n, err);
    if (st != LL_OK) return st;
    st = trie_build(&pi->suf, c, pid->a, poff->a, pid->n, err);
    if (st != LL_OK) return st;
    return LL_OK;
}

static ll_status pos_ready(gr_compiled *c, int32_t p, ll_error *err) {
    pos_info *pi = &c->pinfo[c->pinfo_of[p]];
    if (atomic_load_explicit(&pi->ready, memory_order_acquire)) return LL_OK;
    pthread_mutex_lock(&c->lazy_lock);
    ll_status st = LL_OK;
    if (!atomic_load_explicit(&pi->ready, memory_order_relaxed)) {
        st = pos_compute(c, p, err);
        if (st == LL_OK) atomic_store_explicit(&pi->ready, 1, memory_order_release);
    }
    pthread_mutex_unlock(&c->lazy_lock);
    return st;
}

/* Token tables and per-position classes. Takes ownership of g. */
static ll_status compiled_init(gr_compiled **out, gr_grammar *g, const ll_vocab *v, ll_error *err) {
    *out = NULL;
    gr_compiled *c = ll_calloc(1, sizeof *c);
    ll_status st = LL_OK;
    if (!c) { gr_grammar_free(g); return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); }
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->lazy_lock, NULL);
    c->g = *g;
    memset(g, 0, sizeof *g);
    if (!v) { *out = c; return LL_OK; }

    st = vtab_get(&c->vt, v, err);
    if (st != LL_OK) goto fail;
    c->n_vocab = c->vt->n_vocab;
    c->n_words = c->vt->n_words;
    c->tok_bytes = c->vt->tok_bytes;
    c->tok_off = c->vt->tok_off;
    c->eog_ids = c->vt->eog_ids;
    c->n_eog = c->vt->n_eog;
    c->max_tok_len = c->vt->max_tok_len;
    c->trie = c->vt->trie;
    c->sub_max = c->vt->sub_max;
    c->by_len = c->vt->by_len;
    c->n_len_ge = c->vt->n_len_ge;
    c->short_bits = c->vt->short_bits;
    c->rank = c->vt->rank;

    /* per-position classes: as many as fit in the compile budget now, the rest on first use */
    c->pinfo_of = ll_malloc_array((size_t)c->g.n_elems, sizeof *c->pinfo_of);
    if (!c->pinfo_of) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
    int32_t np = 0;
    for (int32_t p = 0; p < c->g.n_elems; p++) c->pinfo_of[p] = c->g.elems[p].type == GR_CHAR ? np++ : -1;
    c->pinfo = ll_calloc((size_t)np ? (size_t)np : 1, sizeof *c->pinfo);
    pos_lazy *z = &c->lazy;
    z->uf = ll_malloc((size_t)c->max_tok_len + 2);
    z->hd = ll_malloc((size_t)c->max_tok_len + 2);
    z->mat = ll_malloc((size_t)c->max_tok_len + 2);
    z->pb = ll_malloc((size_t)c->max_tok_len + 2);
    z->sid = ll_malloc_array((size_t)c->max_tok_len + 2, sizeof *z->sid);
    if (!c->pinfo || !z->uf || !z->hd || !z->mat || !z->pb || !z->sid) { st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
    c->n_pinfo = np;
    st = follow_sets(c, err);
    if (st == LL_OK) st = shift_init(c, err);
    if (st != LL_OK) goto fail;
    st = matcher_new(&z->scratch, c, err);   /* borrows c: no reference, see compiled_free */
    if (st != LL_OK) goto fail;
    /* rules the root can reach (inlining leaves some without references): only their
     * positions are worth classifying now */
    uint8_t *live = ll_calloc((size_t)c->g.n_rules, 1);
    int32_t *todo = ll_malloc_array((size_t)c->g.n_rules + 1, sizeof *todo);
    if (!live || !todo) { ll_free(live); ll_free(todo); st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
    int32_t n_todo = 0;
    live[c->g.root] = 1;
    todo[n_todo++] = c->g.root;
    while (n_todo) {
        int32_t r = todo[--n_todo];
        for (int32_t k = c->g.alt_off[r]; k < c->g.alt_off[r + 1]; k++)
            for (int32_t e = c->g.alts[k]; c->g.elems[e].type != GR_END; e++)
                if (c->g.elems[e].type == GR_RULE && !live[c->g.elems[e].ref]) {
                    live[c->g.elems[e].ref] = 1;
                    todo[n_todo++] = c->g.elems[e].ref;
                }
    }
    ll_free(todo);
    uint8_t *live_pos = ll_calloc((size_t)c->g.n_elems, 1);
    if (!live_pos) { ll_free(live); st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
    for (int32_t r = 0; r < c->g.n_rules; r++)
        for (int32_t k = c->g.alt_off[r]; live[r] && k < c->g.alt_off[r + 1]; k++)
            for (int32_t e = c->g.alts[k]; c->g.elems[e].type != GR_END; e++) live_pos[e] = 1;
    ll_free(live);
    /* Order: by the step of a counted chain the position is in (0 outside chains), then by
     * element. Shared rules (whitespace, string characters) and every chain's first steps
     * come first, and each chain is met head first, where a step borrows the classes of the
     * step before it (pos_share) without piling them up. A chain with required items counts
     * from where they end instead (the first step that may pop): from there the optional
     * steps borrow toward the end and the required ones toward the head, each across one
     * step, so only that step walks the whole trie. */
    int32_t *order = NULL, n_order = 0;
    int32_t *step = ll_malloc_array((size_t)c->g.n_rules + 1, sizeof *step);
    int64_t *key = ll_malloc_array((size_t)c->n_pinfo + 1, sizeof *key);
    if (!step || !key) { ll_free(step); ll_free(key); ll_free(live_pos); st = ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
    for (int32_t r = 0; r < c->g.n_rules; r++) step[r] = -1;
    for (int32_t r = 0; r < c->g.n_rules; r++) {
        int32_t at = r, n_up = 0;   /* up to a rule whose step is known, or the head */
        while (step[at] < 0) {
            int32_t pr = c->pred[at];
            if (pr < 0 || c->succ[pr] != at || c->link[pr] != SHIFT_EXACT || n_up >= c->g.n_rules) {
                step[at] = 0;
                break;
            }
            at = pr;
            n_up++;
        }
        for (int32_t b = r, k = n_up; k > 0; k--) { step[b] = step[at] + k; b = c->pred[b]; }
    }
    /* the run of exact matches before a loose one: counted back from it (steps are
     * negative meanwhile, so a run is renumbered once) */
    for (int32_t r = 0; r < c->g.n_rules; r++) {
        if (step[r] < 0 || c->link[r] != SHIFT_LOOSE) continue;
        int32_t last = step[r];
        for (int32_t b = r, k = 0; k <= last && b >= 0; k++, b = c->pred[b]) step[b] = -(last - step[b] + 1) - 1;
    }
    for (int32_t r = 0; r < c->g.n_rules; r++) if (step[r] < 0) step[r] = -step[r] - 1;
    for (int32_t p = 0; p < c->g.n_elems; p++)
        if (c->pinfo_of[p] >= 0 && live_pos[p])
            key[n_order++] = (int64_t)step[c->alt_rule[c->elem_alt[p]]] << 32 | p;
    ll_free(step);
    ll_free(live_pos);
    qsort(key, (size_t)n_order, sizeof *key, cmp_i64);
    order = (int32_t *)key;   /* the low halves, in place */
    for (int32_t i = 0; i < n_order; i++) order[i] = (int32_t)(key[i] & 0xffffffff);
    uint64_t t0 = ll_time_ns(), budget = atomic_load(&eager_ns);
    for (int32_t i = 0; i < n_order && st == LL_OK; i++) {
        int32_t p = order[i];
        if (ll_time_ns() - t0 >= budget) break;
        st = pos_compute(c, p, err);
        if (st == LL_OK) atomic_store_explicit(&c->pinfo[c->pinfo_of[p]].ready, 1, memory_order_relaxed);
    }
    ll_free(key);
    if (st != LL_OK) goto fail;
    *out = c;
    return LL_OK;
fail:
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

/* ---- compiled grammars, cached per (vocabulary, format or schema text) ----
 * Classifying a grammar's positions costs tens of ms and each position left to first use a
 * few ms more; a server sees the same schema request after request. So the last GR_CACHE
 * compiled grammars are kept, keyed by the vocabulary object (ll_vocab_serial: a vocabulary
 * freed and another loaded at the same address does not match) and the exact text; a hit
 * costs a clone. Compiled grammars are immutable apart from their lazily filled classes,
 * which have their own lock. */
#define GR_CACHE 8

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    gr_compiled *c;        /* holds one reference; NULL = empty slot */
    char    *text;         /* schema text (kind 2) */
    size_t   len;
    int      kind;         /* 0 json value, 1 json object, 2 schema */
    uint64_t vhash;        /* ll_vocab_serial */
    int32_t  n_vocab;
    uint64_t used;         /* LRU clock */
} gcache[GR_CACHE];        /* guarded by cache_lock */
static uint64_t gcache_clock;

static gr_compiled *cache_get(int kind, const char *text, size_t len, uint64_t vh, int32_t nv) {
    gr_compiled *c = NULL;
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < GR_CACHE && !c; i++)
        if (gcache[i].c && gcache[i].kind == kind && gcache[i].vhash == vh && gcache[i].n_vocab == nv &&
            gcache[i].len == len && (len == 0 || !memcmp(gcache[i].text, text, len))) {
            c = gcache[i].c;
            atomic_fetch_add(&c->refs, 1);
            gcache[i].used = ++gcache_clock;
        }
    pthread_mutex_unlock(&cache_lock);
    return c;
}

static void cache_put(gr_compiled *c, int kind, const char *text, size_t len, uint64_t vh, int32_t nv) {
    char *copy = ll_malloc(len ? len : 1);
    if (!copy) return;   /* not cached: only slower next time */
    if (len) memcpy(copy, text, len);
    gr_compiled *old = NULL;
    char *old_text = NULL;
    pthread_mutex_lock(&cache_lock);
    int slot = 0;
    for (int i = 0; i < GR_CACHE; i++) {
        if (!gcache[i].c) { slot = i; break; }
        if (gcache[i].used < gcache[slot].used) slot = i;
    }
    old = gcache[slot].c;
    old_text = gcache[slot].text;
    atomic_fetch_add(&c->refs, 1);
    gcache[slot].c = c;
    gcache[slot].text = copy;
    gcache[slot].len = len;
    gcache[slot].kind = kind;
    gcache[slot].vhash = vh;
    gcache[slot].n_vocab = nv;
    gcache[slot].used = ++gcache_clock;
    pthread_mutex_unlock(&cache_lock);
    compiled_unref(old);
    ll_free(old_text);
}

uint64_t gr_set_eager_budget(uint64_t ns) {
    return atomic_exchange(&eager_ns, ns);
}

void gr_cache_forget(void) {
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < GR_CACHE; i++) {
        compiled_unref(gcache[i].c);
        ll_free(gcache[i].text);
        memset(&gcache[i], 0, sizeof gcache[i]);
    }
    pthread_mutex_unlock(&cache_lock);
}

void ll_grammar_cache_clear(void) {
    gr_cache_forget();
    pthread_mutex_lock(&vcache_lock);   /* the vocabulary tables too (grammars keep theirs) */
    for (int i = 0; i < GR_VCACHE; i++) {
        vtab_unref(vcache[i]);
        vcache[i] = NULL;
    }
    pthread_mutex_unlock(&vcache_lock);
}

static ll_status grammar_init(ll_grammar **out, const ll_vocab *v, int kind, const char *text,
                              size_t len, ll_error *err) {
    *out = NULL;
    uint64_t vh = 0;
    int32_t nv = v ? ll_vocab_n_tokens(v) : 0;
    if (v) {
        vh = ll_vocab_serial(v);
        gr_compiled *c = cache_get(kind, text, len, vh, nv);
        if (c) {
            ll_status st = matcher_new(out, c, err);
            if (st != LL_OK) compiled_unref(c);
            return st;
        }
    }
    gr_grammar g;
    ll_status st = kind == 3 ? gr_compile_tools(&g, text, len, err)
                 : kind == 2 ? gr_compile_schema(&g, text, len, err) : gr_compile_json(&g, kind == 1, err);
    if (st != LL_OK) return st;
    gr_compiled *c;
    st = compiled_init(&c, &g, v, err);
    if (st != LL_OK) return st;
    if (v) cache_put(c, kind, text, len, vh, nv);
    st = matcher_new(out, c, err);
    if (st != LL_OK) compiled_unref(c);
    return st;
}

ll_status ll_grammar_init_json(ll_grammar **out, const ll_vocab *v, bool object_only, ll_error *err) {
    return grammar_init(out, v, object_only ? 1 : 0, "", 0, err);
}

ll_status ll_grammar_init_schema(ll_grammar **out, const ll_vocab *v, const char *schema,
                                 size_t len, ll_error *err) {
    *out = NULL;
    if (!schema) return ll_fail(err, LL_ERR_ARG, "grammar: no schema");
    return grammar_init(out, v, 2, schema, len, err);
}

ll_status ll_grammar_init_tools(ll_grammar **out, const ll_vocab *v, const char *spec, size_t len,
                                ll_error *err) {
    *out = NULL;
    if (!spec) return ll_fail(err, LL_ERR_ARG, "grammar: no tool spec");
    return grammar_init(out, v, 3, spec, len, err);
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
    for (int i = 0; i < 3; i++) gr_set_free(&m->tmp[i]);
    ll_free(m->gc_buf);
    ll_free(m->mcache);
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
    uint64_t key = m->cur.complete ? 0x5bd1e995ull : 0x27d4eb2full;
    for (int32_t i = 0; i < m->cur.n; i++) key += gr_top_hash(&m->arena, m->cur.t[i].pos, m->cur.t[i].parent);
    key = gr_mix(key, (uint64_t)m->cur.n) | 1;   /* never 0 (the empty-slot mark) */
    if (!m->mcache) m->mcache = ll_calloc((size_t)GR_MCACHE * (size_t)c->n_words, sizeof *m->mcache);
    for (int k = 0; m->mcache && k < GR_MCACHE; k++)
        if (m->mcache_key[k] == key) {
            memcpy(allow, m->mcache + (size_t)k * (size_t)c->n_words, (size_t)c->n_words * sizeof *allow);
            return LL_OK;
        }
    for (int32_t i = 0; i < m->cur.n; i++) {
        ll_status st = pos_ready((gr_compiled *)c, m->cur.t[i].pos, err);
        if (st != LL_OK) return st;
    }
    for (int32_t i = 0; i < m->cur.n; i++) {
        int32_t pos = m->cur.t[i].pos;
        bool seen = false;
        for (int32_t j = 0; j < i && !seen; j++) seen = m->cur.t[j].pos == pos;
        if (seen) continue;
        const pos_info *pi = &c->pinfo[c->pinfo_of[pos]];
        if (pi->acc_bits) for (int32_t w = 0; w < c->n_words; w++) allow[w] |= pi->acc_bits[w];
        else for (int32_t k = 0; k < pi->n_acc; k++) allow[pi->acc_ids[k] >> 6] |= 1ull << (pi->acc_ids[k] & 63);
    }
    /* context-dependent tokens: from the state after each top's frame pops, walk what
     * follows the pop; tops sharing a parent share that state */
    for (int32_t i = 0; i < m->cur.n; i++) {
        int32_t parent = m->cur.t[i].parent;
        bool seen = false, any = false;
        for (int32_t j = 0; j < i && !seen; j++) seen = m->cur.t[j].parent == parent;
        if (seen || parent < 0) continue;   /* a popped root takes no more bytes */
        for (int32_t j = i; j < m->cur.n && !any; j++)
            any = m->cur.t[j].parent == parent && (c->pinfo[c->pinfo_of[m->cur.t[j].pos]].suf.n_nodes ||
                                                   c->pinfo[c->pinfo_of[m->cur.t[j].pos]].bsuf ||
                                                   c->pinfo[c->pinfo_of[m->cur.t[j].pos]].n_refs);
        if (!any) continue;
        int32_t base = m->arena.len;
        gr_set *popped = &m->tmp[0];
        popped->n = 0;
        popped->complete = popped->underflow = false;
        const gr_node *pn = &m->arena.n[parent];
        ll_status st = gr_expand(&c->g, &m->arena, pn->pos, pn->parent, popped, err);
        for (int32_t j = i; j < m->cur.n && st == LL_OK; j++) {
            if (m->cur.t[j].parent != parent) continue;
            const pos_info *pi = &c->pinfo[c->pinfo_of[m->cur.t[j].pos]];
            if (!popped->n) continue;
            if (pi->suf.n_nodes) st = walk_accept(m, &pi->suf, popped, allow, INT32_MAX, err);
            if (pi->bsuf && st == LL_OK) st = walk_accept(m, pi->bsuf, popped, allow, pi->bsuf_max_off, err);
            for (int32_t r = 0; r < pi->n_refs && st == LL_OK;) {
                /* a group of references with the same first byte after the pop: most die
                 * right there, so that byte is tried once for all of them */
                int32_t b = pi->refs[3 * r + 2], e = r + 1;
                while (e < pi->n_refs && pi->refs[3 * e + 2] == b) e++;
                bool dead = false;
                if (b < 256) {
                    int32_t mark = m->arena.len;
                    st = gr_advance(&c->g, &m->arena, popped, (unsigned char)b, &m->tmp[1], err);
                    dead = m->tmp[1].n == 0 && !m->tmp[1].complete;
                    m->arena.len = mark;
                }
                for (int32_t k = r; k < e && st == LL_OK && !dead; k++)
                    st = walk_ref(m, pi->refs[3 * k], pi->refs[3 * k + 1], popped, allow, err);
                r = e;
            }
        }
        m->arena.len = base;
        if (st != LL_OK) return st;
    }
    if (m->cur.complete)
        for (int32_t k = 0; k < c->n_eog; k++) allow[c->eog_ids[k] >> 6] |= 1ull << (c->eog_ids[k] & 63);
    if (m->mcache) {
        int k = m->mcache_next;
        m->mcache_next = (k + 1) % GR_MCACHE;
        m->mcache_key[k] = key;
        memcpy(m->mcache + (size_t)k * (size_t)c->n_words, allow, (size_t)c->n_words * sizeof *allow);
    }
    return LL_OK;
}

/* ---- internal hooks for tests and tools ---- */

const gr_grammar *gr_of(const ll_grammar *m) { return &m->c->g; }
