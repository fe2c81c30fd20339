/* bench_grammar: cost of the grammar token mask on a real vocabulary (issue 11).
 *
 *     bench_grammar [vocab.gguf] [runs] [grammar]
 *         (default ../shared/tokenizer/llama3.gguf, 20 runs, every grammar)
 *
 * First the vocabulary's own tables (token pieces sorted into a trie), which the first grammar
 * for a vocabulary builds and every later one shares: timed alone. Then for each grammar
 * (format "json", a flat object schema with an email, a nested schema with arrays and enums, a
 * recursive schema, a schema with string patterns and a maxLength, a tool call over three
 * tools as a Hermes-style template writes it) and each run:
 *   - the compiled-grammar cache is emptied (gr_cache_forget) and the grammar compiled afresh
 *     (text -> grammar -> per-position token classes, one ll_grammar_init_* call): "compile";
 *   - first use, on that fresh grammar, each token accepted after its mask:
 *       replay: a document sampled from the grammar (seed = run), tokenized with the
 *               vocabulary's own tokenizer (what a model writing valid output produces);
 *       random: on another fresh grammar, a uniformly random allowed token at each step (long
 *               strings, odd tokens; up to 256 steps, end-of-generation as soon as allowed);
 *   - warm: the replay document again on a clone of the now-used grammar (a schema served
 *     from the cache, request after request).
 * A request uses its grammar once, so "first" (replay and random together, fresh grammars) is
 * the figure the goal applies to. Median and p99 over all masks of all runs; ll_time_ns
 * (monotonic) around each call; compile median and max over the runs.
 * BG_SLOW=1 in the environment prints each replayed mask over 300 us with the tokens before it
 * (to find the grammar positions that cost). */
#include "grammar/grammar.h"

#include <stdio.h>
#include <stdlib.h>

static const struct { const char *name, *schema; } grammars[] = {
    { "json", NULL },
    { "flat", "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},"
              "\"email\":{\"type\":\"string\",\"format\":\"email\"},\"active\":{\"type\":\"boolean\"},"
              "\"score\":{\"type\":\"number\"}},\"required\":[\"name\",\"age\",\"active\"]}" },
    { "nested", "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"format\":\"uuid\"},"
                "\"status\":{\"enum\":[\"active\",\"inactive\",\"pending\"]},"
                "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":5},"
                "\"items\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
                "\"sku\":{\"type\":\"string\"},\"qty\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100},"
                "\"price\":{\"type\":\"number\",\"minimum\":0}},\"required\":[\"sku\",\"qty\"]}},"
                "\"created\":{\"type\":\"string\",\"format\":\"date-time\"}},\"required\":[\"id\",\"status\",\"items\"]}" },
    { "recursive", "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
                   "\"children\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"name\"]}},"
                   "\"$ref\":\"#/$defs/node\"}" },
    { "pattern", "{\"type\":\"object\",\"properties\":{\"phone\":{\"type\":\"string\",\"pattern\":\"^\\\\+?[0-9]{1,3}-[0-9]{3}-[0-9]{4}$\"},"
                 "\"code\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{2,4}[0-9]{2}$\"},"
                 "\"slug\":{\"type\":\"string\",\"pattern\":\"^[a-z0-9]+(?:-[a-z0-9]+)*$\"},"
                 "\"title\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":40}},"
                 "\"required\":[\"phone\",\"code\",\"slug\",\"title\"]}" },
    { "tools", "{\"tools\":[{\"name\":\"get_weather\",\"strict\":true,\"parameters\":{\"type\":\"object\",\"properties\":{"
               "\"city\":{\"type\":\"string\"},\"unit\":{\"enum\":[\"celsius\",\"fahrenheit\"]}},\"required\":[\"city\",\"unit\"]}},"
               "{\"name\":\"add\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
               "\"b\":{\"type\":\"number\"}},\"required\":[\"a\",\"b\"]}},"
               "{\"name\":\"search\",\"parameters\":{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"},"
               "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50}},\"required\":[\"query\"]}}],"
               "\"name_key\":\"name\",\"args_key\":\"arguments\",\"prefix\":\"<tool_call>\",\"lead_ws\":true}" },
};

static ll_status init(ll_grammar **g, const ll_vocab *v, size_t gi, ll_error *err) {
    const char *s = grammars[gi].schema;
    if (!s) return ll_grammar_init_json(g, v, true, err);
    if (!strcmp(grammars[gi].name, "tools")) return ll_grammar_init_tools(g, v, s, strlen(s), err);
    return ll_grammar_init_schema(g, v, s, strlen(s), err);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct { uint64_t *t; size_t n, cap; } samples;

static void push(samples *s, uint64_t v) {
    if (s->n == s->cap) { s->cap = s->cap ? s->cap * 2 : 4096; s->t = realloc(s->t, s->cap * sizeof *s->t); }
    s->t[s->n++] = v;
}

static void report(const char *name, const char *kind, samples *s) {
    if (!s->n) { printf("%-10s %-7s no samples\n", name, kind); return; }
    qsort(s->t, s->n, sizeof *s->t, cmp_u64);
    printf("%-10s %-7s masks %6zu  median %8.1f us  p99 %8.1f us  max %8.1f us\n", name, kind, s->n,
           s->t[s->n / 2] / 1e3, s->t[(size_t)(s->n * 0.99)] / 1e3, s->t[s->n - 1] / 1e3);
}

typedef struct {
    const ll_vocab *v;
    int32_t nv;
    size_t nw;
    uint64_t *allow;
    int32_t *ids;
    char *doc;
} bench_ctx;

/* Empty the compiled-grammar cache and compile grammar gi afresh; adds the time to comp. */
static int fresh(bench_ctx *b, size_t gi, ll_grammar **g, samples *comp) {
    ll_error err = {0};
    gr_cache_forget();
    uint64_t t0 = ll_time_ns();
    ll_status st = init(g, b->v, gi, &err);
    uint64_t t1 = ll_time_ns();
    if (st != LL_OK) { fprintf(stderr, "%s: %s\n", grammars[gi].name, err.msg); return -1; }
    push(comp, t1 - t0);
    return 0;
}

/* Replay the nt tokens of ids (then end-of-generation) through q, timing each mask. */
static int replay(bench_ctx *b, size_t gi, ll_grammar *q, size_t nt, samples *into) {
    ll_error err = {0};
    for (size_t k = 0; k <= nt; k++) {
        uint64_t a = ll_time_ns();
        if (ll_grammar_mask(q, b->allow, b->nw, &err) != LL_OK) { fprintf(stderr, "mask: %s\n", err.msg); return -1; }
        push(into, ll_time_ns() - a);
        if (getenv("BG_SLOW") && ll_time_ns() - a > 300000) {
            fprintf(stderr, "SLOW %.0f us at %zu after [", (ll_time_ns() - a) / 1e3, k);
            for (size_t j = 0; j < k; j++) { char buf[256]; size_t o = ll_tok_piece(b->v, b->ids[j], false, buf, sizeof buf); for (size_t x = 0; x < o && x < sizeof buf; x++) fprintf(stderr, (unsigned char)buf[x] >= 32 && (unsigned char)buf[x] < 127 ? "%c" : "\\x%02x", (unsigned char)buf[x]); fprintf(stderr, "|"); }
            fprintf(stderr, "]\n");
        }
        int32_t id = k < nt ? b->ids[k] : ll_vocab_eos(b->v);
        if (k == nt)
            for (int32_t e = 0; e < b->nv; e++)
                if (ll_vocab_is_eog(b->v, e) && (b->allow[e >> 6] >> (e & 63) & 1)) { id = e; break; }
        if (!(b->allow[id >> 6] >> (id & 63) & 1)) {
            fprintf(stderr, "%s: replayed token %d not allowed at %zu\n", grammars[gi].name, id, k);
            return -1;
        }
        if (ll_grammar_accept(q, id, &err) != LL_OK) { fprintf(stderr, "accept: %s\n", err.msg); return -1; }
    }
    return 0;
}

/* Random allowed tokens through q from seed, timing each mask. */
static int random_walk(bench_ctx *b, size_t gi, ll_grammar *q, uint64_t rng, samples *into) {
    ll_error err = {0};
    for (int step = 0; step < 256; step++) {
        uint64_t a = ll_time_ns();
        if (ll_grammar_mask(q, b->allow, b->nw, &err) != LL_OK) { fprintf(stderr, "mask: %s\n", err.msg); return -1; }
        push(into, ll_time_ns() - a);
        int32_t pick = -1, cnt = 0;
        for (int32_t e = 0; e < b->nv; e++)
            if (b->allow[e >> 6] >> (e & 63) & 1) {
                if (ll_vocab_is_eog(b->v, e)) { pick = e; break; }
                if (rng_next(&rng) % (uint64_t)++cnt == 0) pick = e;   /* reservoir */
            }
        if (pick < 0) { fprintf(stderr, "%s: empty mask\n", grammars[gi].name); return -1; }
        if (ll_grammar_accept(q, pick, &err) != LL_OK) { fprintf(stderr, "accept: %s\n", err.msg); return -1; }
        if (ll_grammar_is_done(q)) break;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "../shared/tokenizer/llama3.gguf";
    int runs = argc > 2 ? atoi(argv[2]) : 20;
    const char *only = argc > 3 ? argv[3] : NULL;
    if (runs < 1) runs = 1;
    ll_error err = {0};
    ll_vocab *v;
    if (ll_vocab_load(&v, path, &err) != LL_OK) { fprintf(stderr, "%s: %s\n", path, err.msg); return 1; }
    bench_ctx b = { .v = v, .nv = ll_vocab_n_tokens(v) };
    b.nw = ((size_t)b.nv + 63) / 64;
    b.allow = calloc(b.nw, sizeof *b.allow);
    b.ids = malloc(sizeof *b.ids * 65536);
    b.doc = malloc(1 << 20);
    if (!b.allow || !b.ids || !b.doc) { fprintf(stderr, "out of memory\n"); return 1; }
    printf("vocab %s: %d tokens, %d fresh grammars per measurement\n", path, b.nv, runs);
    {   /* the vocabulary's tables, built by the first grammar for it (a trivial one here) */
        ll_grammar *g0;
        uint64_t t0 = ll_time_ns();
        if (ll_grammar_init_schema(&g0, v, "{\"type\":\"null\"}", 15, &err) != LL_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
        printf("vocab tables + trivial grammar: %.1f ms (once per vocabulary)\n", (ll_time_ns() - t0) / 1e6);
        ll_grammar_free(g0);
    }
    int rc = 0;
    for (size_t gi = 0; gi < sizeof grammars / sizeof grammars[0] && !rc; gi++) {
        if (only && strcmp(only, grammars[gi].name)) continue;
        samples comp = {0}, rep = {0}, rnd = {0}, first = {0}, warm = {0};
        for (int r = 0; r < runs && !rc; r++) {
            ll_grammar *g, *q;
            if (fresh(&b, gi, &g, &comp)) { rc = 1; break; }
            uint64_t rng = 1234 + (uint64_t)r;
            size_t n, nt;
            if (gr_sample(gr_of(g), &rng, 300, b.doc, 1 << 20, &n, &err) != LL_OK) { fprintf(stderr, "%s\n", err.msg); rc = 1; }
            else if (ll_tok_encode(v, b.doc, n, false, false, b.ids, 65536, &nt, &err) != LL_OK || nt > 65536) { fprintf(stderr, "encode failed\n"); rc = 1; }
            else if (ll_grammar_clone(&q, g, &err) != LL_OK) { fprintf(stderr, "clone: %s\n", err.msg); rc = 1; }
            else {
                rc = replay(&b, gi, g, nt, &rep);          /* first use */
                if (!rc) rc = replay(&b, gi, q, nt, &warm); /* the same document, warm */
                ll_grammar_free(q);
            }
            ll_grammar_free(g);
            if (rc || fresh(&b, gi, &g, &comp)) { rc = 1; break; }
            rc = random_walk(&b, gi, g, 99 + (uint64_t)r, &rnd);
            ll_grammar_free(g);
        }
        if (!rc) {
            for (size_t k = 0; k < rep.n; k++) push(&first, rep.t[k]);
            for (size_t k = 0; k < rnd.n; k++) push(&first, rnd.t[k]);
            qsort(comp.t, comp.n, sizeof *comp.t, cmp_u64);
            printf("%-10s compile median %6.1f ms  max %6.1f ms  (%zu fresh compiles)\n", grammars[gi].name,
                   comp.t[comp.n / 2] / 1e6, comp.t[comp.n - 1] / 1e6, comp.n);
            report(grammars[gi].name, "replay", &rep);
            report(grammars[gi].name, "random", &rnd);
            report(grammars[gi].name, "FIRST", &first);
            report(grammars[gi].name, "warm", &warm);
        }
        free(comp.t); free(rep.t); free(rnd.t); free(first.t); free(warm.t);
    }
    free(b.allow); free(b.ids); free(b.doc);
    ll_grammar_cache_clear();
    ll_vocab_free(v);
    return rc;
}
