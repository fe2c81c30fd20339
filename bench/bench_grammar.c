/* bench_grammar: cost of the grammar token mask on a real vocabulary (issue 11).
 *
 *     bench_grammar [vocab.gguf] [runs]     (default ../shared/tokenizer/llama3.gguf, 20 runs)
 *
 * First the vocabulary's own tables (token pieces sorted into a trie), which the first grammar
 * for a vocabulary builds and every later one shares: timed alone, as the first compile of a
 * grammar not in the table. Then for each grammar (format "json", a flat object schema, a
 * nested schema with arrays and enums, a recursive schema, a schema with string patterns, a
 * tool call over three tools as a Hermes-style template writes it) it reports the compile time
 * (text -> grammar -> per-position token classes, one ll_grammar_init_* call) and the time of each
 * ll_grammar_mask call over two kinds of generation, each token accepted after its mask:
 *   replay: documents sampled from the grammar, tokenized with the vocabulary's own tokenizer
 *           (the token sequence a model that writes valid output would produce);
 *   random: a uniformly random allowed token at each step (long strings, odd tokens; up to 256
 *           steps, end-of-generation taken as soon as it is allowed);
 *   warm:   the replay documents again, once every position they meet has been classified
 *           (positions past the compile budget are classified on first use, see mask.c).
 * Each document runs on its own ll_grammar_clone of the compiled grammar (as a server would per
 * request: shared tables, a fresh parse state and mask cache). Median and p99 over all masks of
 * all runs; ll_time_ns (monotonic) around each call. */
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

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "../shared/tokenizer/llama3.gguf";
    int runs = argc > 2 ? atoi(argv[2]) : 20;
    ll_error err = {0};
    ll_vocab *v;
    if (ll_vocab_load(&v, path, &err) != LL_OK) { fprintf(stderr, "%s: %s\n", path, err.msg); return 1; }
    int32_t nv = ll_vocab_n_tokens(v);
    size_t nw = ((size_t)nv + 63) / 64;
    uint64_t *allow = calloc(nw, sizeof *allow);
    int32_t *ids = malloc(sizeof *ids * 65536);
    char *doc = malloc(1 << 20);
    printf("vocab %s: %d tokens\n", path, nv);
    {   /* the vocabulary's tables, built by the first grammar for it (a trivial one here) */
        ll_grammar *g0;
        uint64_t t0 = ll_time_ns();
        if (ll_grammar_init_schema(&g0, v, "{\"type\":\"null\"}", 15, &err) != LL_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
        printf("vocab tables + trivial grammar: %.1f ms (once per vocabulary)\n", (ll_time_ns() - t0) / 1e6);
        ll_grammar_free(g0);
    }
    for (size_t gi = 0; gi < sizeof grammars / sizeof grammars[0]; gi++) {
        ll_grammar *g;
        uint64_t t0 = ll_time_ns();
        ll_status st = init(&g, v, gi, &err);
        uint64_t t1 = ll_time_ns();
        if (st != LL_OK) { fprintf(stderr, "%s: %s\n", grammars[gi].name, err.msg); return 1; }
        ll_grammar *again;   /* the same text again: served from the compiled-grammar cache */
        uint64_t t2 = ll_time_ns();
        st = init(&again, v, gi, &err);
        uint64_t t3 = ll_time_ns();
        if (st != LL_OK) { fprintf(stderr, "%s: %s\n", grammars[gi].name, err.msg); return 1; }
        ll_grammar_free(again);
        printf("%-10s compile %8.1f ms  (again, cached: %.1f ms)\n", grammars[gi].name, (t1 - t0) / 1e6, (t3 - t2) / 1e6);
        samples rep = {0}, rnd = {0}, warm = {0};
        /* replay, twice: the first pass also pays for positions classified on first use; the
         * second is the steady state of a grammar cached per schema */
        for (int r = 0; r < 2 * runs; r++) {
            uint64_t rng = 1234 + (uint64_t)(r % runs);
            samples *into = r < runs ? &rep : &warm;
            size_t n;
            if (gr_sample(gr_of(g), &rng, 300, doc, 1 << 20, &n, &err) != LL_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
            size_t nt;
            if (ll_tok_encode(v, doc, n, false, false, ids, 65536, &nt, &err) != LL_OK || nt > 65536) { fprintf(stderr, "encode failed\n"); return 1; }
            ll_grammar *q;   /* one clone per document, as a server would per request */
            if (ll_grammar_clone(&q, g, &err) != LL_OK) { fprintf(stderr, "clone: %s\n", err.msg); return 1; }
            for (size_t k = 0; k <= nt; k++) {
                uint64_t a = ll_time_ns();
                if (ll_grammar_mask(q, allow, nw, &err) != LL_OK) { fprintf(stderr, "mask: %s\n", err.msg); return 1; }
                push(into, ll_time_ns() - a);
                int32_t id = k < nt ? ids[k] : ll_vocab_eos(v);
                if (k == nt) { for (int32_t e = 0; e < nv; e++) if (ll_vocab_is_eog(v, e) && (allow[e >> 6] >> (e & 63) & 1)) { id = e; break; } }
                if (!(allow[id >> 6] >> (id & 63) & 1)) { fprintf(stderr, "%s: replayed token %d not allowed at %zu\n", grammars[gi].name, id, k); return 1; }
                if (ll_grammar_accept(q, id, &err) != LL_OK) { fprintf(stderr, "accept: %s\n", err.msg); return 1; }
            }
            ll_grammar_free(q);
        }
        /* random allowed tokens */
        for (int r = 0; r < runs; r++) {
            uint64_t rng = 99 + (uint64_t)r;
            ll_grammar *q;
            if (ll_grammar_clone(&q, g, &err) != LL_OK) { fprintf(stderr, "clone: %s\n", err.msg); return 1; }
            for (int step = 0; step < 256; step++) {
                uint64_t a = ll_time_ns();
                if (ll_grammar_mask(q, allow, nw, &err) != LL_OK) { fprintf(stderr, "mask: %s\n", err.msg); return 1; }
                push(&rnd, ll_time_ns() - a);
                int32_t pick = -1, cnt = 0;
                for (int32_t e = 0; e < nv; e++) if (allow[e >> 6] >> (e & 63) & 1) {
                    if (ll_vocab_is_eog(v, e)) { pick = e; break; }
                    if (rng_next(&rng) % (uint64_t)++cnt == 0) pick = e;   /* reservoir */
                }
                if (pick < 0) { fprintf(stderr, "%s: empty mask\n", grammars[gi].name); return 1; }
                if (ll_grammar_accept(q, pick, &err) != LL_OK) { fprintf(stderr, "accept: %s\n", err.msg); return 1; }
                if (ll_grammar_is_done(q)) break;
            }
            ll_grammar_free(q);
        }
        report(grammars[gi].name, "replay", &rep);
        report(grammars[gi].name, "random", &rnd);
        report(grammars[gi].name, "warm", &warm);
        free(warm.t);
        free(rep.t);
        free(rnd.t);
        ll_grammar_free(g);
    }
    free(allow); free(ids); free(doc);
    ll_grammar_cache_clear();
    ll_vocab_free(v);
    return 0;
}
