/* sample: random sentences of a grammar, for property tests and the schema test tool.
 *
 * A leftmost derivation with an explicit stack: a byte class yields a uniformly random member,
 * a rule a uniformly random alternative, until `budget` bytes are out; from then on every rule
 * takes its shortest alternative (lengths by fixed point), which always terminates because the
 * grammar has no left recursion and every kept alternative can complete. */
#include "grammar/grammar.h"

#define SAMPLE_MAX_STACK (1 << 16)

static uint64_t rng_next(uint64_t *s) {   /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

ll_status gr_sample(const gr_grammar *g, uint64_t *rng, size_t budget, char *out, size_t cap,
                    size_t *n_out, ll_error *err) {
    *n_out = 0;
    uint64_t *minlen = ll_malloc_array((size_t)g->n_rules, sizeof *minlen);
    int32_t *stack = ll_malloc_array(SAMPLE_MAX_STACK, sizeof *stack);
    ll_status st = LL_OK;
    if (!minlen || !stack) { st = ll_fail(err, LL_ERR_NOMEM, "sample: out of memory"); goto done; }
    const uint64_t INF = UINT64_MAX / 4;
    for (int32_t r = 0; r < g->n_rules; r++) minlen[r] = INF;
    for (bool changed = true; changed;) {
        changed = false;
        for (int32_t r = 0; r < g->n_rules; r++)
            for (int32_t a = g->alt_off[r]; a < g->alt_off[r + 1]; a++) {
                uint64_t len = 0;
                for (int32_t p = g->alts[a]; g->elems[p].type != GR_END && len < INF; p++)
                    len += g->elems[p].type == GR_CHAR ? 1 : minlen[g->elems[p].ref];
                if (len < minlen[r]) { minlen[r] = len; changed = true; }
            }
    }
    size_t n = 0;
    int32_t sp = 0;
    /* the root as a one-element sequence: choose among its alternatives like any rule */
    int32_t r0 = g->root;
    int32_t na = g->alt_off[r0 + 1] - g->alt_off[r0];
    if (na == 0) { st = ll_fail(err, LL_ERR_ARG, "sample: empty grammar"); goto done; }
    stack[sp++] = g->alts[g->alt_off[r0] + (int32_t)(rng_next(rng) % (uint64_t)na)];
    while (sp > 0) {
        int32_t pos = stack[--sp];
        const gr_elem *e = &g->elems[pos];
        if (e->type == GR_END) continue;
        if (sp + 2 > SAMPLE_MAX_STACK) { st = ll_fail(err, LL_ERR_LIMIT, "sample: derivation too deep"); goto done; }
        stack[sp++] = pos + 1;
        if (e->type == GR_CHAR) {
            int cnt = 0;
            for (int w = 0; w < 4; w++) cnt += __builtin_popcountll(e->bits[w]);
            int k = (int)(rng_next(rng) % (uint64_t)cnt);
            unsigned c = 0;
            for (; c < 256; c++) if (gr_class_has(e->bits, c) && k-- == 0) break;
            if (n >= cap) { st = ll_fail(err, LL_ERR_LIMIT, "sample: longer than %zu bytes", cap); goto done; }
            out[n++] = (char)c;
            continue;
        }
        int32_t r = e->ref, a0 = g->alt_off[r], a1 = g->alt_off[r + 1], pick = a0;
        if (n < budget) pick = a0 + (int32_t)(rng_next(rng) % (uint64_t)(a1 - a0));
        else {
            uint64_t best = INF + 1;
            for (int32_t a = a0; a < a1; a++) {
                uint64_t len = 0;
                for (int32_t p = g->alts[a]; g->elems[p].type != GR_END && len < INF; p++)
                    len += g->elems[p].type == GR_CHAR ? 1 : minlen[g->elems[p].ref];
                if (len < best) { best = len; pick = a; }
            }
        }
        stack[sp++] = g->alts[pick];
    }
    *n_out = n;
done:
    ll_free(minlen);
    ll_free(stack);
    return st;
}
