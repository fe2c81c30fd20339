/* grammar: builder, static checks and the stack-set matcher (see grammar.h for the design). */
#include "grammar/grammar.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- builder ------------------------------------------------------------------------------ */

void gr_builder_init(gr_builder *b, ll_error *err) {
    memset(b, 0, sizeof *b);
    b->err = err;
}

void gr_builder_free(gr_builder *b) {
    ll_free(b->elems);
    ll_free(b->alt_rule);
    ll_free(b->alt_start);
    for (int32_t i = 0; i < b->n_rules; i++) ll_free(b->names[i]);
    ll_free(b->names);
    ll_error *err = b->err;
    ll_status st = b->st;
    memset(b, 0, sizeof *b);
    b->err = err;
    b->st = st;
}

void gr_builder_fail(gr_builder *b, ll_status code, const char *fmt, ...) {
    if (b->st != LL_OK) return;
    b->st = code;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ll_fail(b->err, code, "%s", msg);
}

/* Grow *p (elements of size sz) to hold at least need; cap is the element limit. */
static bool grow(gr_builder *b, void **p, int32_t *cap, int32_t need, size_t sz, int32_t limit,
                 const char *what) {
    if (b->st != LL_OK) return false;
    if (need <= *cap) return true;
    if (need > limit) {
        gr_builder_fail(b, LL_ERR_LIMIT, "grammar too large: more than %d %s", limit, what);
        return false;
    }
    int32_t nc = *cap ? *cap : 16;
    while (nc < need) nc = nc > limit / 2 ? limit : nc * 2;
    void *q = ll_realloc(*p, (size_t)nc * sz);
    if (!q) { gr_builder_fail(b, LL_ERR_NOMEM, "grammar: out of memory (%d %s)", nc, what); return false; }
    *p = q;
    *cap = nc;
    return true;
}

int32_t gr_rule(gr_builder *b, const char *name) {
    if (!grow(b, (void **)&b->names, &b->cap_rules, b->n_rules + 1, sizeof *b->names,
              GR_MAX_RULES, "rules"))
        return -1;
    char *copy = NULL;
    if (name) {
        copy = ll_str_dup(ll_str_c(name));
        if (!copy) { gr_builder_fail(b, LL_ERR_NOMEM, "grammar: out of memory"); return -1; }
    }
    b->names[b->n_rules] = copy;
    return b->n_rules++;
}

void gr_add_alt(gr_builder *b, int32_t rule, const gr_seq *seq) {
    if (b->st != LL_OK) return;
    if (rule < 0 || rule >= b->n_rules) { gr_builder_fail(b, LL_ERR_ARG, "grammar: bad rule %d", rule); return; }
    if (!grow(b, (void **)&b->elems, &b->cap_elems, b->n_elems + seq->n + 1, sizeof *b->elems,
              GR_MAX_ELEMS, "elements"))
        return;
    int32_t na = b->n_alts + 1;
    int32_t c1 = b->cap_alts, c2 = b->cap_alts;
    if (!grow(b, (void **)&b->alt_rule, &c1, na, sizeof *b->alt_rule, GR_MAX_ELEMS, "alternatives") ||
        !grow(b, (void **)&b->alt_start, &c2, na, sizeof *b->alt_start, GR_MAX_ELEMS, "alternatives"))
        return;
    b->cap_alts = c1 < c2 ? c1 : c2;
    b->alt_rule[b->n_alts] = rule;
    b->alt_start[b->n_alts] = b->n_elems;
    b->n_alts++;
    if (seq->n) memcpy(b->elems + b->n_elems, seq->e, (size_t)seq->n * sizeof *seq->e);
    b->n_elems += seq->n;
    memset(&b->elems[b->n_elems], 0, sizeof b->elems[0]);
    b->elems[b->n_elems++].type = GR_END;
}

static gr_elem *seq_push(gr_builder *b, gr_seq *s) {
    if (!grow(b, (void **)&s->e, &s->cap, s->n + 1, sizeof *s->e, GR_MAX_ELEMS, "elements"))
        return NULL;
    gr_elem *e = &s->e[s->n++];
    memset(e, 0, sizeof *e);
    return e;
}

void gr_seq_char(gr_builder *b, gr_seq *s, const uint64_t bits[4]) {
    gr_elem *e = seq_push(b, s);
    if (!e) return;
    e->type = GR_CHAR;
    memcpy(e->bits, bits, sizeof e->bits);
}

void gr_seq_byte(gr_builder *b, gr_seq *s, unsigned char c) {
    gr_elem *e = seq_push(b, s);
    if (!e) return;
    e->type = GR_CHAR;
    gr_class_set(e->bits, c);
}

void gr_seq_lit(gr_builder *b, gr_seq *s, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) gr_seq_byte(b, s, (unsigned char)p[i]);
}

void gr_seq_ref(gr_builder *b, gr_seq *s, int32_t rule) {
    if (rule < 0) { gr_builder_fail(b, LL_ERR_ARG, "grammar: reference to a failed rule"); return; }
    gr_elem *e = seq_push(b, s);
    if (!e) return;
    e->type = GR_RULE;
    e->ref = rule;
}

void gr_seq_free(gr_seq *s) {
    ll_free(s->e);
    memset(s, 0, sizeof *s);
}

int32_t gr_rule_lit(gr_builder *b, const char *name, const char *p, size_t n) {
    int32_t r = gr_rule(b, name);
    gr_seq s = {0};
    gr_seq_lit(b, &s, p, n);
    gr_add_alt(b, r, &s);
    gr_seq_free(&s);
    return b->st == LL_OK ? r : -1;
}

/* The alternatives of rule r when every one is a run of byte classes (at most 16 of them):
 * then a repetition copies them into its own rules instead of referencing r, so a whole run
 * of repeated characters stays inside one rule and mask.c can judge multi-character tokens
 * without context. Returns the count, 0 when r does not qualify. */
static int inline_alts(const gr_builder *b, int32_t r, int32_t *starts) {
    int n = 0;
    for (int32_t a = 0; a < b->n_alts; a++) {
        if (b->alt_rule[a] != r) continue;
        if (n == 16) return 0;
        int32_t p = b->alt_start[a];
        if (b->elems[p].type == GR_END) return 0;
        for (; b->elems[p].type != GR_END; p++) if (b->elems[p].type != GR_CHAR) return 0;
        starts[n++] = b->alt_start[a];
    }
    return n;
}

/* rule ::= (sep) item next, once per inlined alternative of item (or with item referenced). */
static void add_item_alts(gr_builder *b, int32_t rule, int32_t sep, int32_t item, int32_t next,
                          const int32_t *starts, int n_inline) {
    gr_seq s = {0};
    for (int k = 0; k < (n_inline ? n_inline : 1) && b->st == LL_OK; k++) {
        gr_seq_clear(&s);
        if (sep >= 0) gr_seq_ref(b, &s, sep);
        if (n_inline) {
            for (int32_t p = starts[k]; b->elems[p].type == GR_CHAR; p++) {
                uint64_t bits[4];
                memcpy(bits, b->elems[p].bits, sizeof bits);   /* elems may move while s grows */
                gr_seq_char(b, &s, bits);
            }
        } else {
            gr_seq_ref(b, &s, item);
        }
        if (next >= 0) gr_seq_ref(b, &s, next);
        gr_add_alt(b, rule, &s);
    }
    gr_seq_free(&s);
}

/* item{min,max} as a chain: opt_k ::= (sep) item opt_{k-1} | ε for the optional tail, and the
 * min mandatory items in front. Unbounded: star ::= sep item star | ε. With a separator the
 * first item has none, so the shapes are: first ::= item rest, rest ::= (sep item){min-1,max-1}. */
int32_t gr_rule_repeat(gr_builder *b, const char *name, int32_t item, int64_t min, int64_t max,
                       int32_t sep) {
    if (b->st != LL_OK) return -1;
    if (min < 0 || (max >= 0 && max < min)) {
        gr_builder_fail(b, LL_ERR_ARG, "grammar: bad repetition {%lld,%lld}", (long long)min, (long long)max);
        return -1;
    }
    /* Each unrolled copy costs a rule and a few elements; refuse before building huge chains. */
    if (min > 100000 || max > 100000) {
        gr_builder_fail(b, LL_ERR_LIMIT, "grammar: repetition bound %lld over the cap 100000",
                        (long long)(max > min ? max : min));
        return -1;
    }
    if (item < 0 || item >= b->n_rules) { gr_builder_fail(b, LL_ERR_ARG, "grammar: bad repeated rule"); return -1; }
    int32_t starts[16];
    int n_in = inline_alts(b, item, starts);
    gr_seq s = {0};
    /* tail after the first item: (sep item){lo, hi} */
    int64_t lo = min > 0 ? min - 1 : 0, hi = max < 0 ? -1 : (max > 0 ? max - 1 : 0);
    int32_t tail;
    if (hi < 0) {
        int32_t star = gr_rule(b, name);
        add_item_alts(b, star, sep, item, star, starts, n_in);
        gr_seq_clear(&s);
        gr_add_alt(b, star, &s);
        tail = star;
    } else {
        int32_t opt = gr_rule(b, name);   /* ε */
        gr_seq_clear(&s);
        gr_add_alt(b, opt, &s);
        for (int64_t k = 0; k < hi - lo; k++) {
            int32_t o2 = gr_rule(b, name);
            add_item_alts(b, o2, sep, item, opt, starts, n_in);
            gr_seq_clear(&s);
            gr_add_alt(b, o2, &s);
            opt = o2;
        }
        tail = opt;
    }
    for (int64_t k = 0; k < lo; k++) {
        int32_t m = gr_rule(b, name);
        add_item_alts(b, m, sep, item, tail, starts, n_in);
        tail = m;
    }
    int32_t r = gr_rule(b, name);
    if (max != 0) add_item_alts(b, r, -1, item, tail, starts, n_in);
    if (min == 0) {
        gr_seq_clear(&s);
        gr_add_alt(b, r, &s);
    }
    gr_seq_free(&s);
    return b->st == LL_OK ? r : -1;
}

int32_t gr_rule_codepoints(gr_builder *b, const char *name, const uint32_t (*ranges)[2], size_t n) {
    int32_t r = gr_rule(b, name);
    for (size_t i = 0; i < n && b->st == LL_OK; i++) gr_utf8_range(b, r, ranges[i][0], ranges[i][1], -1);
    return b->st == LL_OK ? r : -1;
}

/* ---- static checks ------------------------------------------------------------------------- */

static const char *rule_name(const gr_builder *b, int32_t r) {
    return b->names[r] ? b->names[r] : "?";
}

static bool class_empty(const gr_elem *e) {
    return !(e->bits[0] | e->bits[1] | e->bits[2] | e->bits[3]);
}

/* Left-recursion search: DFS over "r can start with s" edges (s after only nullable
 * elements). colour: 0 new, 1 on the DFS path, 2 done. Iterative to bound the C stack. */
static ll_status check_left_recursion(gr_builder *b, const int32_t *alt_off, const int32_t *alts,
                                      const uint8_t *nullable, const uint8_t *alive_alt) {
    int32_t nr = b->n_rules;
    uint8_t *colour = ll_calloc((size_t)nr, 1);
    int32_t *st_rule = ll_malloc_array((size_t)nr + 1, sizeof *st_rule);
    int32_t *st_alt = ll_malloc_array((size_t)nr + 1, sizeof *st_alt);
    int32_t *st_pos = ll_malloc_array((size_t)nr + 1, sizeof *st_pos);
    ll_status rc = LL_OK;
    if (!colour || !st_rule || !st_alt || !st_pos) {
        gr_builder_fail(b, LL_ERR_NOMEM, "grammar: out of memory");
        rc = LL_ERR_NOMEM;
        goto done;
    }
    for (int32_t r0 = 0; r0 < nr && rc == LL_OK; r0++) {
        if (colour[r0]) continue;
        int32_t sp = 0;
        st_rule[0] = r0; st_alt[0] = alt_off[r0]; st_pos[0] = -1;
        colour[r0] = 1;
        while (sp >= 0) {
            int32_t r = st_rule[sp];
            /* find the next edge from r */
            int32_t next = -1;
            while (st_alt[sp] < alt_off[r + 1]) {
                int32_t a = st_alt[sp];
                if (!alive_alt[a]) { st_alt[sp]++; st_pos[sp] = -1; continue; }
                int32_t p = st_pos[sp] < 0 ? alts[a] : st_pos[sp];
                const gr_elem *e = &b->elems[p];
                if (e->type == GR_RULE) {
                    next = e->ref;
                    /* continue past it next time only if it is nullable */
                    if (nullable[e->ref]) st_pos[sp] = p + 1;
                    else { st_alt[sp]++; st_pos[sp] = -1; }
                    break;
                }
                st_alt[sp]++; st_pos[sp] = -1;   /* GR_CHAR or GR_END stops the scan */
            }
            if (next < 0) { colour[r] = 2; sp--; continue; }
            if (colour[next] == 1) {
                gr_builder_fail(b, LL_ERR_UNSUPPORTED,
                                "grammar: left recursion through rule '%s' (it can reach itself "
                                "without consuming input)", rule_name(b, next));
                rc = b->st;
                break;
            }
            if (colour[next] == 0) {
                colour[next] = 1;
                sp++;
                st_rule[sp] = next; st_alt[sp] = alt_off[next]; st_pos[sp] = -1;
            }
        }
    }
done:
    ll_free(colour); ll_free(st_rule); ll_free(st_alt); ll_free(st_pos);
    return rc;
}

#define GR_CLO_MAX 64   /* longer closures are expanded the slow way */

/* Flat closure of position p (see grammar.h). state: 0 unknown, 1 in progress, 2 done. */
static bool closure_of(gr_grammar *g, uint8_t *state, int32_t p, int32_t *cap, int depth) {
    if (state[p] == 2) return true;
    if (state[p] == 1 || depth > 256) return true;   /* cannot happen without left recursion */
    state[p] = 1;
    const gr_elem *e = &g->elems[p];
    int32_t tmp[GR_CLO_MAX];
    int n = 0;
    bool flat = true, ends = false;
    if (e->type == GR_CHAR) tmp[n++] = p;
    else if (e->type == GR_END) ends = true;
    else if (g->elems[p + 1].type != GR_END) flat = false;
    else {
        for (int32_t a = g->alt_off[e->ref]; a < g->alt_off[e->ref + 1] && flat; a++) {
            int32_t q = g->alts[a];
            if (!closure_of(g, state, q, cap, depth + 1)) return false;
            if (g->clo_off[q] < 0) { flat = false; break; }
            ends = ends || g->clo_end[q];
            for (int k = 0; k < g->clo_n[q] && flat; k++) {
                int32_t c = g->clo[g->clo_off[q] + k];
                bool dup = false;
                for (int j = 0; j < n && !dup; j++) dup = tmp[j] == c;
                if (dup) continue;
                if (n == GR_CLO_MAX) flat = false;
                else tmp[n++] = c;
            }
        }
    }
    state[p] = 2;
    if (!flat) { g->clo_off[p] = -1; return true; }
    if (g->n_clo + n > *cap) {
        int32_t nc = *cap * 2 + n;
        int32_t *q = ll_realloc(g->clo, (size_t)nc * sizeof *q);
        if (!q) return false;
        g->clo = q;
        *cap = nc;
    }
    g->clo_off[p] = g->n_clo;
    g->clo_n[p] = (uint16_t)n;
    g->clo_end[p] = ends;
    memcpy(g->clo + g->n_clo, tmp, (size_t)n * sizeof *tmp);
    g->n_clo += n;
    return true;
}

static ll_status build_closures(gr_grammar *g, ll_error *err) {
    g->clo_off = ll_malloc_array((size_t)g->n_elems, sizeof *g->clo_off);
    g->clo_n = ll_calloc((size_t)g->n_elems, sizeof *g->clo_n);
    g->clo_end = ll_calloc((size_t)g->n_elems, 1);
    uint8_t *state = ll_calloc((size_t)g->n_elems, 1);
    int32_t cap = 1024;
    g->clo = ll_malloc_array((size_t)cap, sizeof *g->clo);
    bool ok = g->clo_off && g->clo_n && g->clo_end && state && g->clo;
    for (int32_t p = 0; p < g->n_elems && ok; p++) ok = closure_of(g, state, p, &cap, 0);
    ll_free(state);
    if (!ok) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory for closures");
    return LL_OK;
}

/* Inlining. Compilers build sequences out of small rules: a regex concatenation is a rule per
 * piece, a literal `.` or `@` a rule of its own. Each reference that is not at the end of its
 * alternative pushes a continuation node, and the mask precompute (mask.c) decides a token
 * without context only while it stays inside the frame of its position, which ends at the
 * position's alternative. So a one-character rule is a frame of one byte, and every token
 * through it depends on the context (the `.` of an email: every token starting with a dot,
 * walked at run time). Splicing the one alternative of a non-recursive rule into the
 * sequences that reference it gives the same language with longer frames. Only short
 * alternatives are spliced (GR_INLINE_MAX elements once their own references are spliced),
 * never a rule into itself, and the whole grammar grows by at most about twice; rules left
 * without references stay (mask.c skips positions unreachable from the root). */
#define GR_INLINE_MAX   16
#define GR_INLINE_DEPTH 16

typedef struct {
    const gr_grammar *g;
    gr_elem *out;
    int32_t  n, cap, budget;
    int32_t  stack[GR_INLINE_DEPTH];
    int      depth;
    bool     oom;
} gr_inliner;

static void inl_put(gr_inliner *x, const gr_elem *e) {
    if (x->oom) return;
    if (x->n == x->cap) {
        int32_t nc = x->cap * 2 + 64;
        gr_elem *q = ll_realloc(x->out, (size_t)nc * sizeof *q);
        if (!q) { x->oom = true; return; }
        x->out = q;
        x->cap = nc;
    }
    x->out[x->n++] = *e;
}

/* Emit the elements of the alternative starting at e0 (not its GR_END), splicing references
 * to short one-alternative rules. */
static void inl_emit(gr_inliner *x, int32_t e0) {
    const gr_grammar *g = x->g;
    for (int32_t e = e0; g->elems[e].type != GR_END && !x->oom; e++) {
        const gr_elem *el = &g->elems[e];
        bool splice = el->type == GR_RULE && x->depth < GR_INLINE_DEPTH && x->n < x->budget &&
                      g->alt_off[el->ref + 1] - g->alt_off[el->ref] == 1;
        for (int d = 0; d < x->depth && splice; d++) splice = x->stack[d] != el->ref;
        if (splice) {
            int32_t mark = x->n;
            x->stack[x->depth++] = el->ref;
            inl_emit(x, g->alts[g->alt_off[el->ref]]);
            x->depth--;
            if (x->n - mark <= GR_INLINE_MAX) continue;
            x->n = mark;   /* too long: keep the reference */
        }
        inl_put(x, el);
    }
}

static ll_status inline_rules(gr_grammar *g, ll_error *err) {
    /* splicing stops at the budget; what is copied after it is at most the original size */
    gr_inliner x = { .g = g, .budget = g->n_elems * 2 + 1024 };
    if (x.budget > GR_MAX_ELEMS - g->n_elems) x.budget = GR_MAX_ELEMS - g->n_elems;
    int32_t na = g->alt_off[g->n_rules];
    int32_t *starts = ll_malloc_array((size_t)na + 1, sizeof *starts);
    if (!starts) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
    gr_elem end = { { 0 }, GR_END, 0 };
    for (int32_t a = 0; a < na && !x.oom; a++) {
        starts[a] = x.n;
        inl_emit(&x, g->alts[a]);
        inl_put(&x, &end);
    }
    if (x.oom || x.n > GR_MAX_ELEMS) {
        ll_free(starts);
        ll_free(x.out);
        if (x.oom) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory");
        return ll_fail(err, LL_ERR_LIMIT, "grammar: more than %d elements", GR_MAX_ELEMS);
    }
    ll_free(g->elems);
    g->elems = x.out;
    g->n_elems = x.n;
    memcpy(g->alts, starts, (size_t)na * sizeof *starts);
    ll_free(starts);
    return LL_OK;
}

ll_status gr_build(gr_builder *b, int32_t root, gr_grammar *g) {
    memset(g, 0, sizeof *g);
    int32_t *alt_off = NULL, *alts = NULL, *order = NULL;
    uint8_t *prod = NULL, *nullable = NULL, *alive_alt = NULL;
    if (b->st != LL_OK) goto fail;
    if (root < 0 || root >= b->n_rules) {
        gr_builder_fail(b, LL_ERR_ARG, "grammar: bad root rule %d", root);
        goto fail;
    }
    int32_t nr = b->n_rules, na = b->n_alts;
    alt_off = ll_calloc((size_t)nr + 1, sizeof *alt_off);
    alts = ll_malloc_array((size_t)na + 1, sizeof *alts);
    prod = ll_calloc((size_t)nr, 1);
    nullable = ll_calloc((size_t)nr, 1);
    alive_alt = ll_calloc((size_t)na + 1, 1);
    if (!alt_off || !alts || !prod || !nullable || !alive_alt) {
        gr_builder_fail(b, LL_ERR_NOMEM, "grammar: out of memory");
        goto fail;
    }
    /* group alternatives by rule (counting sort keeps each rule's order) */
    for (int32_t a = 0; a < na; a++) alt_off[b->alt_rule[a] + 1]++;
    for (int32_t r = 0; r < nr; r++) alt_off[r + 1] += alt_off[r];
    {
        int32_t *fill = ll_malloc_array((size_t)nr + 1, sizeof *fill);
        if (!fill) { gr_builder_fail(b, LL_ERR_NOMEM, "grammar: out of memory"); goto fail; }
        memcpy(fill, alt_off, (size_t)nr * sizeof *fill);
        for (int32_t a = 0; a < na; a++) alts[fill[b->alt_rule[a]]++] = b->alt_start[a];
        ll_free(fill);
    }
    /* productive (can derive some byte string) and nullable, by fixed point */
    for (bool changed = true; changed;) {
        changed = false;
        for (int32_t r = 0; r < nr; r++) {
            for (int32_t a = alt_off[r]; a < alt_off[r + 1]; a++) {
                bool ok = true, nul = true;
                for (int32_t p = alts[a]; b->elems[p].type != GR_END; p++) {
                    const gr_elem *e = &b->elems[p];
                    if (e->type == GR_CHAR) { nul = false; if (class_empty(e)) ok = false; }
                    else { if (!prod[e->ref]) ok = false; if (!nullable[e->ref]) nul = false; }
                }
                if (ok && !prod[r]) { prod[r] = 1; changed = true; }
                if (ok && nul && !nullable[r]) { nullable[r] = 1; changed = true; }
            }
        }
    }
    if (!prod[root]) {
        gr_builder_fail(b, LL_ERR_UNSUPPORTED, "grammar: rule '%s' can never complete (recursion "
                        "without a base case, or an empty set of values)", rule_name(b, root));
        goto fail;
    }
    /* drop alternatives that can never complete, so every live stack can still reach the end */
    for (int32_t a = 0; a < na; a++) {
        bool ok = true;
        for (int32_t p = alts[a]; b->elems[p].type != GR_END; p++) {
            const gr_elem *e = &b->elems[p];
            if ((e->type == GR_CHAR && class_empty(e)) || (e->type == GR_RULE && !prod[e->ref])) ok = false;
        }
        alive_alt[a] = ok;
    }
    if (check_left_recursion(b, alt_off, alts, nullable, alive_alt) != LL_OK) goto fail;
    /* pack the live alternatives */
    {
        int32_t w = 0;
        int32_t prev = 0;
        for (int32_t r = 0; r < nr; r++) {
            int32_t lo = prev, hi = alt_off[r + 1];
            prev = hi;
            alt_off[r] = w;
            for (int32_t a = lo; a < hi; a++) if (alive_alt[a]) alts[w++] = alts[a];
        }
        alt_off[nr] = w;
    }
    g->elems = b->elems; g->n_elems = b->n_elems;
    g->alt_off = alt_off; g->alts = alts;
    g->n_rules = nr; g->root = root;
    g->names = b->names;
    b->elems = NULL; b->names = NULL; b->n_rules = 0; b->n_elems = 0;
    ll_free(prod); ll_free(nullable); ll_free(alive_alt); ll_free(order);
    {
        ll_status st = inline_rules(g, b->err);
        if (st == LL_OK) st = build_closures(g, b->err);
        gr_builder_free(b);
        if (st != LL_OK) gr_grammar_free(g);
        return st;
    }
fail:
    ll_free(alt_off); ll_free(alts); ll_free(prod); ll_free(nullable); ll_free(alive_alt);
    ll_free(order);
    {
        ll_status st = b->st != LL_OK ? b->st : LL_ERR_ARG;
        gr_builder_free(b);
        return st;
    }
}

void gr_grammar_free(gr_grammar *g) {
    if (!g) return;
    ll_free(g->elems);
    ll_free(g->alt_off);
    ll_free(g->alts);
    if (g->names) for (int32_t i = 0; i < g->n_rules; i++) ll_free(g->names[i]);
    ll_free(g->names);
    ll_free(g->clo_off);
    ll_free(g->clo_n);
    ll_free(g->clo_end);
    ll_free(g->clo);
    memset(g, 0, sizeof *g);
}

/* ---- matcher ------------------------------------------------------------------------------- */

ll_status gr_set_reserve(gr_set *s, int32_t cap, ll_error *err) {
    if (cap <= s->cap) return LL_OK;
    if (cap > GR_MAX_STACKS)
        return ll_fail(err, LL_ERR_LIMIT, "grammar: more than %d parse stacks at once "
                       "(grammar too ambiguous)", GR_MAX_STACKS);
    int32_t nc = s->cap ? s->cap : 16;
    while (nc < cap) nc *= 2;
    if (nc > GR_MAX_STACKS) nc = GR_MAX_STACKS;
    gr_top *t = ll_realloc(s->t, (size_t)nc * sizeof *t);
    if (!t) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory for %d stacks", nc);
    s->t = t;
    s->cap = nc;
    return LL_OK;
}

void gr_set_free(gr_set *s) {
    ll_free(s->t);
    memset(s, 0, sizeof *s);
}

void gr_arena_free(gr_arena *a) {
    ll_free(a->n);
    memset(a, 0, sizeof *a);
}

ll_status gr_set_copy(gr_set *dst, const gr_set *src, ll_error *err) {
    ll_status st = gr_set_reserve(dst, src->n, err);
    if (st != LL_OK) return st;
    if (src->n) memcpy(dst->t, src->t, (size_t)src->n * sizeof *src->t);
    dst->n = src->n;
    dst->complete = src->complete;
    dst->underflow = src->underflow;
    return LL_OK;
}

static ll_status arena_push(gr_arena *a, int32_t pos, int32_t parent, int32_t *id, ll_error *err) {
    if (a->len == a->cap) {
        if (a->cap >= GR_MAX_NODES)
            return ll_fail(err, LL_ERR_LIMIT, "grammar: more than %d parse nodes", GR_MAX_NODES);
        int32_t nc = a->cap ? a->cap * 2 : 256;
        if (nc > GR_MAX_NODES) nc = GR_MAX_NODES;
        gr_node *n = ll_realloc(a->n, (size_t)nc * sizeof *n);
        if (!n) return ll_fail(err, LL_ERR_NOMEM, "grammar: out of memory for %d parse nodes", nc);
        a->n = n;
        a->cap = nc;
    }
    int32_t depth = parent >= 0 ? a->n[parent].depth + 1 : 1;
    a->n[a->len] = (gr_node){ pos, parent, depth, 0 };
    a->n[a->len].hash = gr_top_hash(a, pos, parent);
    *id = a->len++;
    return LL_OK;
}

static ll_status expand_rec(const gr_grammar *g, gr_arena *a, int32_t pos, int32_t parent,
                            gr_set *out, int rec, ll_error *err) {
    if (rec > GR_MAX_RECURSION)
        return ll_fail(err, LL_ERR_LIMIT, "grammar: expansion deeper than %d steps", GR_MAX_RECURSION);
    for (;;) {
        int32_t co = g->clo_off[pos];
        if (co >= 0 && g->elems[pos].type == GR_RULE) {
            for (int k = 0; k < g->clo_n[pos]; k++) {
                int32_t p = g->clo[co + k];
                bool dup = false;
                for (int32_t i = 0; i < out->n && !dup; i++) dup = out->t[i].pos == p && out->t[i].parent == parent;
                if (dup) continue;
                if (out->n == out->cap) {
                    ll_status st = gr_set_reserve(out, out->n + 1, err);
                    if (st != LL_OK) return st;
                }
                out->t[out->n++] = (gr_top){ p, parent };
            }
            if (!g->clo_end[pos]) return LL_OK;
            /* some alternative was empty to its end: pop, as an GR_END element would */
            if (parent == GR_ROOT) { out->complete = true; return LL_OK; }
            if (parent == GR_SENT) { out->underflow = true; return LL_OK; }
            const gr_node *n = &a->n[parent];
            pos = n->pos;
            parent = n->parent;
            continue;
        }
        const gr_elem *e = &g->elems[pos];
        if (e->type == GR_END) {
            if (parent == GR_ROOT) { out->complete = true; return LL_OK; }
            if (parent == GR_SENT) { out->underflow = true; return LL_OK; }
            const gr_node *n = &a->n[parent];
            pos = n->pos;
            parent = n->parent;
            continue;   /* pop: tail position, no recursion */
        }
        if (e->type == GR_CHAR) {
            for (int32_t i = 0; i < out->n; i++)
                if (out->t[i].pos == pos && out->t[i].parent == parent) return LL_OK;
            if (out->n == out->cap) {
                ll_status st = gr_set_reserve(out, out->n + 1, err);
                if (st != LL_OK) return st;
            }
            out->t[out->n++] = (gr_top){ pos, parent };
            return LL_OK;
        }
        /* GR_RULE: push the continuation unless the reference ends its alternative */
        int32_t cont = parent;
        if (g->elems[pos + 1].type != GR_END) {
            /* A stack past the depth cap is dropped: the output may not nest deeper. */
            if (parent >= 0 && a->n[parent].depth >= GR_MAX_DEPTH) return LL_OK;
            ll_status st = arena_push(a, pos + 1, parent, &cont, err);
            if (st != LL_OK) return st;
        }
        int32_t r = e->ref;
        int32_t a0 = g->alt_off[r], a1 = g->alt_off[r + 1];
        for (int32_t k = a0; k < a1; k++) {
            if (k == a1 - 1) { pos = g->alts[k]; parent = cont; break; }   /* last: loop */
            ll_status st = expand_rec(g, a, g->alts[k], cont, out, rec + 1, err);
            if (st != LL_OK) return st;
        }
        if (a0 == a1) return LL_OK;
    }
}

ll_status gr_expand(const gr_grammar *g, gr_arena *a, int32_t pos, int32_t parent, gr_set *out,
                    ll_error *err) {
    return expand_rec(g, a, pos, parent, out, 0, err);
}

ll_status gr_advance(const gr_grammar *g, gr_arena *a, const gr_set *in, unsigned char c,
                     gr_set *out, ll_error *err) {
    out->n = 0;
    out->complete = out->underflow = false;
    for (int32_t i = 0; i < in->n; i++) {
        const gr_top *t = &in->t[i];
        if (!gr_class_has(g->elems[t->pos].bits, c)) continue;
        ll_status st = expand_rec(g, a, t->pos + 1, t->parent, out, 0, err);
        if (st != LL_OK) return st;
    }
    return LL_OK;
}

ll_status gr_start(const gr_grammar *g, gr_arena *a, gr_set *out, ll_error *err) {
    out->n = 0;
    out->complete = out->underflow = false;
    int32_t r = g->root;
    for (int32_t k = g->alt_off[r]; k < g->alt_off[r + 1]; k++) {
        ll_status st = expand_rec(g, a, g->alts[k], GR_ROOT, out, 0, err);
        if (st != LL_OK) return st;
    }
    return LL_OK;
}
