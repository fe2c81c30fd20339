/* tests for src/grammar/: the builder's checks, the byte-level matcher, format "json", and the
 * token mask over Llama 3's 128,256-token vocabulary (issue 11).
 *
 * Property tests sample sentences from the grammar itself (gr_sample), so they cover what the
 * grammar can produce, not a hand-picked list: every sample is accepted byte by byte, parses
 * as JSON (jansson), and, tokenized with the real tokenizer, each of its tokens is allowed by
 * the mask; every token the mask allows keeps the output a prefix of the language; the mask is
 * never empty while the output is unfinished; end of generation is allowed exactly when the
 * output is complete. */
#include "grammar/grammar.h"
#include "tokenizer/tokenizer.h"
#include "../test.h"

#include <jansson.h>
#include <pthread.h>

#define LLAMA3 LL_SHARED_DIR "/tokenizer/llama3.gguf"

static ll_vocab *vocab;
static ll_grammar *g_json;      /* any value, with the vocabulary */
static ll_grammar *g_obj;       /* object only, with the vocabulary */

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Feed text byte by byte into a fresh copy of g: index of the first rejected byte, or -1. */
static long first_reject(ll_grammar *g, const char *p, size_t n, bool *complete) {
    ll_grammar_reset(g);
    ll_error err = {0};
    for (size_t i = 0; i < n; i++)
        if (ll_grammar_accept_bytes(g, p + i, 1, &err) != LL_OK) { if (complete) *complete = false; return (long)i; }
    if (complete) *complete = ll_grammar_can_end(g);
    return -1;
}

static bool bit(const uint64_t *a, int32_t i) { return (a[i >> 6] >> (i & 63)) & 1; }

/* ---- builder checks ------------------------------------------------------------------------- */

static void test_build_rejects_left_recursion(void) {
    ll_error err = {0};
    gr_builder b;
    gr_builder_init(&b, &err);
    int32_t r = gr_rule(&b, "expr");
    gr_seq s = {0};
    gr_seq_ref(&b, &s, r);
    gr_seq_byte(&b, &s, '+');
    gr_add_alt(&b, r, &s);
    gr_seq_clear(&s);
    gr_seq_byte(&b, &s, 'x');
    gr_add_alt(&b, r, &s);
    gr_seq_free(&s);
    gr_grammar g;
    CHECK(gr_build(&b, r, &g) == LL_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "left recursion");
}

static void test_build_rejects_rule_without_base_case(void) {
    ll_error err = {0};
    gr_builder b;
    gr_builder_init(&b, &err);
    int32_t r = gr_rule(&b, "loop");
    gr_seq s = {0};
    gr_seq_byte(&b, &s, 'a');
    gr_seq_ref(&b, &s, r);
    gr_add_alt(&b, r, &s);
    gr_seq_free(&s);
    gr_grammar g;
    CHECK(gr_build(&b, r, &g) == LL_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "never complete");
}

/* An alternative that can never finish is dropped, so the matcher never walks into it. */
static void test_build_drops_dead_alternatives(void) {
    ll_error err = {0};
    gr_builder b;
    gr_builder_init(&b, &err);
    int32_t dead = gr_rule(&b, "dead"), root = gr_rule(&b, "root");
    gr_seq s = {0};
    gr_seq_byte(&b, &s, 'd');
    gr_seq_ref(&b, &s, dead);
    gr_add_alt(&b, dead, &s);
    gr_seq_clear(&s);
    gr_seq_byte(&b, &s, 'a');
    gr_seq_ref(&b, &s, dead);
    gr_add_alt(&b, root, &s);
    gr_seq_clear(&s);
    gr_seq_byte(&b, &s, 'b');
    gr_add_alt(&b, root, &s);
    gr_seq_free(&s);
    gr_grammar g;
    CHECK(gr_build(&b, root, &g) == LL_OK);
    gr_arena a = {0};
    gr_set st = {0}, nx = {0};
    CHECK(gr_start(&g, &a, &st, &err) == LL_OK);
    CHECK(gr_advance(&g, &a, &st, 'a', &nx, &err) == LL_OK);
    CHECK_EQ_INT(nx.n, 0);
    CHECK(!nx.complete);
    CHECK(gr_advance(&g, &a, &st, 'b', &nx, &err) == LL_OK);
    CHECK(nx.complete);
    gr_set_free(&st); gr_set_free(&nx); gr_arena_free(&a);
    gr_grammar_free(&g);
}

static void test_repeat_bounds(void) {
    ll_error err = {0};
    gr_builder b;
    gr_builder_init(&b, &err);
    int32_t item = gr_rule_lit(&b, "x", "x", 1), comma = gr_rule_lit(&b, ",", ",", 1);
    int32_t r = gr_rule_repeat(&b, "xs", item, 2, 4, comma);
    gr_grammar g;
    CHECK(gr_build(&b, r, &g) == LL_OK);
    /* count sentences by walking: accepted x,x  x,x,x  x,x,x,x only */
    const char *ok[] = { "x,x", "x,x,x", "x,x,x,x" }, *bad[] = { "x", "x,x,x,x,x", "xx", "" };
    for (int k = 0; k < 5; k++) {
        const char *t = k < 3 ? ok[k] : bad[k - 3];
        gr_arena a = {0};
        gr_set s0 = {0}, s1 = {0};
        gr_start(&g, &a, &s0, &err);
        bool alive = true;
        for (size_t i = 0; t[i] && alive; i++) {
            gr_advance(&g, &a, &s0, (unsigned char)t[i], &s1, &err);
            alive = s1.n > 0 || (s1.complete && !t[i + 1]);
            gr_set_copy(&s0, &s1, &err);
        }
        CHECK_MSG((alive && s0.complete) == (k < 3), "'%s'", t);
        gr_set_free(&s0); gr_set_free(&s1); gr_arena_free(&a);
    }
    gr_grammar_free(&g);
}

/* ---- UTF-8 ------------------------------------------------------------------------------------ */

static int enc(uint32_t c, char *o) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 63)); return 2; }
    if (c < 0x10000) { o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 63)); o[2] = (char)(0x80 | (c & 63)); return 3; }
    o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 63)); o[2] = (char)(0x80 | ((c >> 6) & 63)); o[3] = (char)(0x80 | (c & 63));
    return 4;
}

static void test_utf8_ranges_exact(void) {
    ll_error err = {0};
    gr_builder b;
    gr_builder_init(&b, &err);
    const uint32_t ranges[][2] = { { 0x41, 0x5A }, { 0x3B1, 0x3C9 }, { 0x7FF, 0x801 }, { 0xD7F0, 0xE010 }, { 0xFFF0, 0x10010 }, { 0x10FFF0, 0x10FFFF } };
    int32_t r = gr_rule_codepoints(&b, "cp", ranges, 6);
    gr_grammar g;
    CHECK(gr_build(&b, r, &g) == LL_OK);
    uint32_t probes[] = { 0x40, 0x41, 0x5A, 0x5B, 0x3B0, 0x3B1, 0x3C9, 0x3CA, 0x7FE, 0x7FF, 0x800, 0x801, 0x802,
                          0xD7EF, 0xD7F0, 0xD7FF, 0xE000, 0xE010, 0xE011, 0xFFEF, 0xFFF0, 0xFFFF, 0x10000, 0x10010,
                          0x10011, 0x10FFEF, 0x10FFF0, 0x10FFFF };
    for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
        uint32_t c = probes[k];
        bool in = false;
        for (int i = 0; i < 6; i++) in = in || (c >= ranges[i][0] && c <= ranges[i][1]);
        if (c >= 0xD800 && c <= 0xDFFF) in = false;
        char o[4];
        int n = enc(c, o);
        gr_arena a = {0};
        gr_set s0 = {0}, s1 = {0};
        gr_start(&g, &a, &s0, &err);
        bool alive = true;
        for (int i = 0; i < n && alive; i++) {
            gr_advance(&g, &a, &s0, (unsigned char)o[i], &s1, &err);
            alive = s1.n > 0 || s1.complete;
            gr_set_copy(&s0, &s1, &err);
        }
        CHECK_MSG((alive && s0.complete) == in, "U+%04X", c);
        gr_set_free(&s0); gr_set_free(&s1); gr_arena_free(&a);
    }
    gr_grammar_free(&g);
}

static void test_json_strings_utf8(void) {
    ll_error err = {0};
    ll_grammar *g;
    CHECK(ll_grammar_init_json(&g, NULL, false, &err) == LL_OK);
    bool done;
    CHECK_EQ_INT(first_reject(g, "\"h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\"", 20, &done), -1);
    CHECK(done);
    CHECK_EQ_INT(first_reject(g, "\"\xc0\x80\"", 4, NULL), 1);          /* overlong */
    CHECK_EQ_INT(first_reject(g, "\"\x80\"", 3, NULL), 1);              /* lone continuation */
    CHECK_EQ_INT(first_reject(g, "\"\xed\xa0\x80\"", 5, NULL), 2);      /* surrogate */
    CHECK_EQ_INT(first_reject(g, "\"\xf4\x90\x80\x80\"", 6, NULL), 2);  /* above U+10FFFF */
    CHECK_EQ_INT(first_reject(g, "\"\xe6\x97\"", 4, NULL), 3);          /* truncated */
    CHECK_EQ_INT(first_reject(g, "\"a\tb\"", 5, NULL), 2);              /* raw control */
    CHECK_EQ_INT(first_reject(g, "\"\\x\"", 4, NULL), 2);               /* bad escape */
    CHECK_EQ_INT(first_reject(g, "\"\\u00e9\\n\\\"\"", 12, &done), -1);
    CHECK(done);
    ll_grammar_free(g);
}

/* ---- format "json" ---------------------------------------------------------------------------- */

static void test_json_rejects_at_the_right_byte(void) {
    ll_error err = {0};
    ll_grammar *g;
    CHECK(ll_grammar_init_json(&g, NULL, false, &err) == LL_OK);
    struct { const char *t; long at; } cases[] = {
        { "{\"a\" 1}", 5 }, { "{\"a\":1,}", 7 }, { "[1 2]", 3 }, { "01", 1 }, { "{\"a\":tru}", 8 },
        { "[1,,2]", 3 }, { "{a:1}", 1 }, { "-", -1 }, { "1.", -1 }, { "1.e5", 2 }, { "nul", -1 },
        { "{  }", 2 }, { "[\n                     1]", 22 }, { "[\n\t\t 1]", -1 }, { " 1", 0 }, { "1 ", 1 },
        { "12345678901234567", 16 }, { "1e123", 4 },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        long at = first_reject(g, cases[k].t, strlen(cases[k].t), NULL);
        CHECK_MSG(at == cases[k].at, "'%s': rejected at %ld, expected %ld", cases[k].t, at, cases[k].at);
    }
    bool done;
    CHECK_EQ_INT(first_reject(g, "1.", 2, &done), -1);
    CHECK(!done);
    ll_grammar_free(g);
    CHECK(ll_grammar_init_json(&g, NULL, true, &err) == LL_OK);
    CHECK_EQ_INT(first_reject(g, "1", 1, NULL), 0);
    CHECK_EQ_INT(first_reject(g, "[]", 2, NULL), 0);
    CHECK_EQ_INT(first_reject(g, "{}", 2, &done), -1);
    CHECK(done && ll_grammar_is_done(g));
    ll_grammar_free(g);
}

static void test_json_depth_is_bounded(void) {
    ll_error err = {0};
    ll_grammar *g;
    CHECK(ll_grammar_init_json(&g, NULL, false, &err) == LL_OK);
    char deep[1200];
    memset(deep, '[', sizeof deep);
    long at = first_reject(g, deep, sizeof deep, NULL);
    CHECK_MSG(at > 100 && at <= GR_MAX_DEPTH, "deep nesting rejected at %ld", at);
    ll_grammar_free(g);
}

/* Sampled sentences: accepted byte by byte, complete only at the end (objects), valid JSON. */
static void test_json_samples_accepted_and_parse(void) {
    ll_error err = {0};
    ll_grammar *g;
    CHECK(ll_grammar_init_json(&g, NULL, true, &err) == LL_OK);
    static char buf[1 << 16];
    for (int k = 0; k < 300; k++) {
        uint64_t rng = 77 + (uint64_t)k;
        size_t n;
        CHECK(gr_sample(gr_of(g), &rng, 20 + (size_t)k, buf, sizeof buf, &n, &err) == LL_OK);
        ll_grammar_reset(g);
        for (size_t i = 0; i < n; i++) {
            if (ll_grammar_accept_bytes(g, buf + i, 1, &err) != LL_OK) { CHECK_MSG(0, "sample %d byte %zu: %s", k, i, err.msg); break; }
            if (i + 1 < n) CHECK_MSG(!ll_grammar_can_end(g), "sample %d complete early at %zu", k, i);
        }
        CHECK(ll_grammar_can_end(g));
        json_error_t je;
        json_t *j = json_loadb(buf, n, 0, &je);
        CHECK_MSG(j && json_is_object(j), "sample %d does not parse: %s: %.*s", k, je.text, (int)n, buf);
        json_decref(j);
    }
    ll_grammar_free(g);
}

/* ---- the token mask --------------------------------------------------------------------------- */

static int32_t n_vocab;
static size_t n_words;

static int32_t eog_token(void) {
    for (int32_t i = 0; i < n_vocab; i++) if (ll_vocab_is_eog(vocab, i)) return i;
    return -1;
}

static size_t popcount(const uint64_t *a) {
    size_t c = 0;
    for (size_t w = 0; w < n_words; w++) c += (size_t)__builtin_popcountll(a[w]);
    return c;
}

/* Check one mask against the byte-level truth, with token pieces from the vocabulary: every
 * allowed token (sampled) continues the prefix, sampled disallowed ones do not. */
static void check_mask_against_bytes(ll_grammar *g, const uint64_t *allow, const char *prefix, size_t n,
                                     ll_grammar *bytes, uint64_t *rng) {
    ll_error err = {0};
    char piece[256], text[1 << 14];
    for (int probe = 0; probe < 24; probe++) {
        int32_t id = (int32_t)(rng_next(rng) % (uint64_t)n_vocab);
        if (probe < 12) {   /* an allowed one: walk to the next set bit */
            for (int32_t k = 0; k < n_vocab; k++) { int32_t j = (id + k) % n_vocab; if (bit(allow, j)) { id = j; break; } }
        }
        if (ll_vocab_is_eog(vocab, id)) { CHECK(bit(allow, id) == ll_grammar_can_end(g)); continue; }
        size_t pn = ll_tok_piece(vocab, id, false, piece, sizeof piece);
        if (pn == 0 || pn > sizeof piece || n + pn > sizeof text) { CHECK(!bit(allow, id) || pn > sizeof piece); continue; }
        memcpy(text, prefix, n);
        memcpy(text + n, piece, pn);
        long at = first_reject(bytes, text, n + pn, NULL);
        CHECK_MSG((at < 0) == bit(allow, id), "token %d '%.*s' after '%.*s': mask %d, bytes %ld", id,
                  (int)pn, piece, (int)(n > 60 ? 60 : n), prefix, bit(allow, id), at);
        ll_grammar *c;
        CHECK(ll_grammar_clone(&c, g, &err) == LL_OK);
        CHECK((ll_grammar_accept(c, id, &err) == LL_OK) == bit(allow, id));
        ll_grammar_free(c);
    }
}

static void test_mask_follows_sampled_documents(void) {
    ll_error err = {0};
    ll_grammar *bytes;
    CHECK(ll_grammar_init_json(&bytes, NULL, true, &err) == LL_OK);
    uint64_t *allow = calloc(n_words, sizeof *allow);
    static char doc[1 << 14];
    static int32_t ids[1 << 14];
    int32_t eog = eog_token();
    uint64_t rng = 5;
    for (int k = 0; k < 12; k++) {
        uint64_t srng = 1000 + (uint64_t)k;
        size_t n, nt;
        CHECK(gr_sample(gr_of(g_obj), &srng, 150, doc, sizeof doc, &n, &err) == LL_OK);
        CHECK(ll_tok_encode(vocab, doc, n, false, false, ids, 1 << 14, &nt, &err) == LL_OK);
        ll_grammar_reset(g_obj);
        size_t done_bytes = 0;
        for (size_t t = 0; t <= nt; t++) {
            CHECK(ll_grammar_mask(g_obj, allow, n_words, &err) == LL_OK);
            CHECK_MSG(popcount(allow) > 0, "empty mask at token %zu of sample %d", t, k);
            CHECK(bit(allow, eog) == ll_grammar_can_end(g_obj));
            CHECK_EQ_INT(bit(allow, eog), t == nt);   /* objects: complete only at the end */
            if (t % 3 == 0) check_mask_against_bytes(g_obj, allow, doc, done_bytes, bytes, &rng);
            int32_t id = t < nt ? ids[t] : eog;
            CHECK_MSG(bit(allow, id), "sample %d token %zu (%d) not allowed", k, t, id);
            if (ll_grammar_accept(g_obj, id, &err) != LL_OK) { CHECK_MSG(0, "%s", err.msg); break; }
            if (t < nt) done_bytes += ll_tok_piece(vocab, id, false, NULL, 0);
        }
        CHECK(ll_grammar_is_done(g_obj));
        CHECK(ll_grammar_mask(g_obj, allow, n_words, &err) == LL_OK);
        CHECK_EQ_INT(popcount(allow), 0);
    }
    free(allow);
    ll_grammar_free(bytes);
}

/* Random allowed tokens: the mask is never empty before the end, and the text stays a prefix. */
static void test_mask_random_walk_keeps_prefix(void) {
    ll_error err = {0};
    ll_grammar *bytes;
    CHECK(ll_grammar_init_json(&bytes, NULL, false, &err) == LL_OK);
    uint64_t *allow = calloc(n_words, sizeof *allow);
    static char text[1 << 15];
    for (int run = 0; run < 6; run++) {
        uint64_t rng = 31 + (uint64_t)run;
        ll_grammar_reset(g_json);
        size_t n = 0;
        for (int step = 0; step < 80 && !ll_grammar_is_done(g_json); step++) {
            CHECK(ll_grammar_mask(g_json, allow, n_words, &err) == LL_OK);
            size_t cnt = popcount(allow);
            CHECK_MSG(cnt > 0, "run %d step %d: empty mask", run, step);
            if (!cnt) break;
            size_t pick = rng_next(&rng) % cnt;
            int32_t id = -1;
            for (int32_t i = 0; i < n_vocab; i++) if (bit(allow, i) && pick-- == 0) { id = i; break; }
            if (step % 10 == 0) check_mask_against_bytes(g_json, allow, text, n, bytes, &rng);
            CHECK(ll_grammar_accept(g_json, id, &err) == LL_OK);
            if (!ll_vocab_is_eog(vocab, id)) n += ll_tok_piece(vocab, id, false, text + n, sizeof text - n);
        }
        CHECK_EQ_INT(first_reject(bytes, text, n, NULL), -1);
    }
    free(allow);
    ll_grammar_free(bytes);
}

/* Tokens that cover several grammar symbols (`":"`, `"},`) and UTF-8 split over byte tokens. */
static void test_mask_multi_symbol_and_split_utf8_tokens(void) {
    ll_error err = {0};
    const char *doc = "{\"name\":\"\xf0\x9f\xa6\x99 \xe1\x9a\xa0\xe1\x9b\x87\",\"list\":[1,2,{\"k\":null}],\"ok\":true}";
    int32_t ids[256];
    size_t nt;
    CHECK(ll_tok_encode(vocab, doc, strlen(doc), false, false, ids, 256, &nt, &err) == LL_OK);
    bool partial_utf8 = false, multi_symbol = false;
    uint64_t *allow = calloc(n_words, sizeof *allow);
    ll_grammar_reset(g_obj);
    for (size_t t = 0; t < nt; t++) {
        char piece[64];
        size_t pn = ll_tok_piece(vocab, ids[t], false, piece, sizeof piece);
        unsigned char last = (unsigned char)piece[pn - 1];
        if (last >= 0xC0 || (pn == 1 && last >= 0x80)) partial_utf8 = true;
        if (pn >= 2 && strchr("\"{}[],:", piece[0]) && strchr("\"{}[],:", piece[1])) multi_symbol = true;
        CHECK(ll_grammar_mask(g_obj, allow, n_words, &err) == LL_OK);
        CHECK_MSG(bit(allow, ids[t]), "token %zu '%.*s' not allowed", t, (int)pn, piece);
        CHECK(ll_grammar_accept(g_obj, ids[t], &err) == LL_OK);
    }
    CHECK(partial_utf8);   /* the tokenizer did split a character: the case is covered */
    CHECK(multi_symbol);   /* and some token covered two grammar symbols */
    CHECK(ll_grammar_is_done(g_obj));
    free(allow);
}

static void test_accept_rejects_bad_tokens_and_keeps_state(void) {
    ll_error err = {0};
    ll_grammar_reset(g_obj);
    int32_t ids[8];
    size_t nt;
    CHECK(ll_tok_encode(vocab, "{\"", 2, false, false, ids, 8, &nt, &err) == LL_OK);
    for (size_t i = 0; i < nt; i++) CHECK(ll_grammar_accept(g_obj, ids[i], &err) == LL_OK);
    uint64_t *a = calloc(n_words, sizeof *a), *b = calloc(n_words, sizeof *b);
    CHECK(ll_grammar_mask(g_obj, a, n_words, &err) == LL_OK);
    err = (ll_error){0};
    CHECK(ll_grammar_accept(g_obj, -1, &err) == LL_ERR_ARG);
    err = (ll_error){0};
    CHECK(ll_grammar_accept(g_obj, n_vocab, &err) == LL_ERR_ARG);
    err = (ll_error){0};
    CHECK(ll_grammar_accept(g_obj, eog_token(), &err) == LL_ERR_ARG);
    CHECK_STR_CONTAINS(err.msg, "before the output is complete");
    err = (ll_error){0};
    CHECK(ll_grammar_accept(g_obj, ll_vocab_bos(vocab), &err) == LL_ERR_ARG);   /* control token */
    err = (ll_error){0};
    CHECK(ll_grammar_accept_bytes(g_obj, "\n", 1, &err) == LL_ERR_ARG);
    CHECK(ll_grammar_mask(g_obj, b, n_words, &err) == LL_OK);
    CHECK(memcmp(a, b, n_words * 8) == 0);
    err = (ll_error){0};
    CHECK(ll_grammar_mask(g_obj, b, n_words - 1, &err) == LL_ERR_ARG);
    free(a); free(b);
}

static void test_clone_and_rollback(void) {
    ll_error err = {0};
    const char *doc = "{\"a\": [1, 2, 3], \"b\": \"text\"}";
    int32_t ids[64];
    size_t nt;
    CHECK(ll_tok_encode(vocab, doc, strlen(doc), false, false, ids, 64, &nt, &err) == LL_OK);
    CHECK(nt > 6);
    uint64_t *m[64];
    ll_grammar_reset(g_obj);
    for (size_t t = 0; t < nt; t++) {
        m[t] = calloc(n_words, 8);
        CHECK(ll_grammar_mask(g_obj, m[t], n_words, &err) == LL_OK);
        CHECK(ll_grammar_accept(g_obj, ids[t], &err) == LL_OK);
    }
    uint64_t *x = calloc(n_words, 8);
    ll_grammar *c;
    CHECK(ll_grammar_clone(&c, g_obj, &err) == LL_OK);
    CHECK(ll_grammar_rollback(c, 4, &err) == LL_OK);
    CHECK(ll_grammar_mask(c, x, n_words, &err) == LL_OK);
    CHECK(memcmp(x, m[nt - 4], n_words * 8) == 0);
    CHECK(ll_grammar_can_end(g_obj) && !ll_grammar_can_end(c));   /* the original is untouched */
    for (size_t t = nt - 4; t < nt; t++) CHECK(ll_grammar_accept(c, ids[t], &err) == LL_OK);
    CHECK(ll_grammar_can_end(c));
    err = (ll_error){0};
    CHECK(ll_grammar_rollback(c, 40, &err) == LL_ERR_ARG);
    ll_grammar_free(c);
    for (size_t t = 0; t < nt; t++) free(m[t]);
    free(x);
}

/* A long generation keeps memory bounded: the node arena is compacted as it goes. */
static void test_long_generation_stays_bounded(void) {
    ll_error err = {0};
    ll_grammar *g;
    CHECK(ll_grammar_init_json(&g, NULL, true, &err) == LL_OK);
    CHECK(ll_grammar_accept_bytes(g, "{\"a\":[", 6, &err) == LL_OK);
    for (int i = 0; i < 200000 && err.code == LL_OK; i++)
        CHECK(ll_grammar_accept_bytes(g, i ? ",[1]" : "[1]", i ? 4 : 3, &err) == LL_OK);
    CHECK(ll_grammar_accept_bytes(g, "]}", 2, &err) == LL_OK);
    CHECK(ll_grammar_is_done(g));
    ll_grammar_free(g);
}

/* Clones share the compiled tables, whose positions may be classified on first use: two
 * threads masking from fresh clones of a fresh schema grammar must agree with one thread. */
typedef struct { ll_grammar *g; const int32_t *ids; size_t n; uint64_t *out; int ok; } mask_job;

static void *mask_thread(void *arg) {
    mask_job *j = arg;
    ll_error err = {0};
    j->ok = 1;
    for (size_t t = 0; t < j->n; t++) {
        if (ll_grammar_mask(j->g, j->out + t * n_words, n_words, &err) != LL_OK ||
            ll_grammar_accept(j->g, j->ids[t], &err) != LL_OK) { j->ok = 0; break; }
    }
    return NULL;
}

static void test_clones_mask_concurrently(void) {
    ll_error err = {0};
    const char *schema = "{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\",\"maxLength\":30},"
                         "\"n\":{\"type\":\"integer\",\"minimum\":3,\"maximum\":700}},\"required\":[\"title\",\"n\"]}";
    const char *doc = "{\"title\": \"Structured output, at last\", \"n\": 512}";
    ll_grammar *base;
    CHECK(ll_grammar_init_schema(&base, vocab, schema, strlen(schema), &err) == LL_OK);
    int32_t ids[64];
    size_t nt;
    CHECK(ll_tok_encode(vocab, doc, strlen(doc), false, false, ids, 64, &nt, &err) == LL_OK);
    mask_job jobs[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        jobs[i] = (mask_job){ NULL, ids, nt, calloc(nt * n_words, 8), 0 };
        CHECK(ll_grammar_clone(&jobs[i].g, base, &err) == LL_OK);
    }
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, mask_thread, &jobs[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK(jobs[0].ok && jobs[1].ok);
    CHECK(memcmp(jobs[0].out, jobs[1].out, nt * n_words * 8) == 0);
    CHECK(ll_grammar_can_end(jobs[0].g));
    for (int i = 0; i < 2; i++) { ll_grammar_free(jobs[i].g); free(jobs[i].out); }
    ll_grammar_free(base);
}

/* The compiled-grammar cache returns the grammar of exactly this text and vocabulary, and
 * grammars in use survive a cache clear. */
/* A tool-call grammar (ll_grammar_init_tools) on the real vocabulary: random allowed tokens
 * keep the text a prefix of the byte-level grammar of the same spec, the mask is never empty
 * before the call is complete, and the finished call names one of the tools. */
static void test_tool_grammar_mask_random_walk(void) {
    static const char spec[] =
        "{\"tools\":[{\"name\":\"get_weather\",\"strict\":true,\"parameters\":{\"type\":\"object\",\"properties\":{"
        "\"city\":{\"type\":\"string\",\"maxLength\":12},\"unit\":{\"enum\":[\"c\",\"f\"]}},\"required\":[\"city\",\"unit\"]}},"
        "{\"name\":\"add\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"multipleOf\":2}},"
        "\"required\":[\"a\"]}}],\"name_key\":\"name\",\"args_key\":\"arguments\",\"prefix\":\"<tool_call>\",\"lead_ws\":true}";
    ll_error err = {0};
    ll_grammar *g, *bytes;
    CHECK(ll_grammar_init_tools(&g, vocab, spec, strlen(spec), &err) == LL_OK);
    CHECK(ll_grammar_init_tools(&bytes, NULL, spec, strlen(spec), &err) == LL_OK);
    uint64_t *allow = calloc(n_words, sizeof *allow);
    static char text[1 << 15];
    int n_open = 0;
    for (int run = 0; run < 8; run++) {
        uint64_t rng = 77 + (uint64_t)run;
        ll_grammar_reset(g);
        size_t n = 0;
        for (int step = 0; step < 400 && !ll_grammar_is_done(g); step++) {
            CHECK(ll_grammar_mask(g, allow, n_words, &err) == LL_OK);
            size_t cnt = popcount(allow);
            CHECK_MSG(cnt > 0, "run %d step %d: empty mask", run, step);
            if (!cnt) break;
            size_t pick = rng_next(&rng) % cnt;
            int32_t id = -1;
            for (int32_t i = 0; i < n_vocab; i++) if (bit(allow, i) && pick-- == 0) { id = i; break; }
            if (step % 7 == 0) check_mask_against_bytes(g, allow, text, n, bytes, &rng);
            CHECK(ll_grammar_accept(g, id, &err) == LL_OK);
            if (!ll_vocab_is_eog(vocab, id)) n += ll_tok_piece(vocab, id, false, text + n, sizeof text - n);
        }
        if (!ll_grammar_is_done(g)) { n_open++; continue; }   /* add's loosened 'a' is any JSON: may not end in 400 steps */
        bool complete = false;
        CHECK_EQ_INT(first_reject(bytes, text, n, &complete), -1);
        CHECK(complete);
        CHECK_MSG(n > 11 && !memcmp(text, "<tool_call>", 11), "%.*s", (int)n, text);
        json_error_t je;
        json_t *call = n > 11 ? json_loadb(text + 11, n - 11, 0, &je) : NULL;
        const char *name = json_string_value(json_object_get(call, "name"));
        CHECK_MSG(name && (!strcmp(name, "get_weather") || !strcmp(name, "add")), "%.*s", (int)n, text);
        CHECK(json_is_object(json_object_get(call, "arguments")));
        json_decref(call);
    }
    CHECK_MSG(n_open <= 6, "%d of 8 random calls did not end", n_open);   /* get_weather calls are bounded */
    free(allow);
    ll_grammar_free(g);
    ll_grammar_free(bytes);
}

/* Compiled grammars and the token trie are keyed by the vocabulary object: a second load of
 * the same file is another vocabulary (its own serial) and gets the same masks. */
static void test_second_vocabulary_object(void) {
    ll_error err = {0};
    ll_vocab *v2;
    CHECK(ll_vocab_load(&v2, LLAMA3, &err) == LL_OK);
    CHECK(ll_vocab_serial(v2) != ll_vocab_serial(vocab) && ll_vocab_serial(v2) != 0);
    const char *schema = "{\"type\":\"object\",\"properties\":{\"k\":{\"enum\":[\"x\",\"yy\"]}},\"required\":[\"k\"]}";
    ll_grammar *a, *b;
    CHECK(ll_grammar_init_schema(&a, vocab, schema, strlen(schema), &err) == LL_OK);
    CHECK(ll_grammar_init_schema(&b, v2, schema, strlen(schema), &err) == LL_OK);
    uint64_t *ma = calloc(n_words, 8), *mb = calloc(n_words, 8);
    for (int step = 0; step < 3; step++) {
        CHECK(ll_grammar_mask(a, ma, n_words, &err) == LL_OK);
        CHECK(ll_grammar_mask(b, mb, n_words, &err) == LL_OK);
        CHECK(memcmp(ma, mb, n_words * 8) == 0);
        const char *next[] = { "{\"", "k", "\":" };
        int32_t id[4];
        size_t nt;
        CHECK(ll_tok_encode(vocab, next[step], strlen(next[step]), false, false, id, 4, &nt, &err) == LL_OK);
        for (size_t i = 0; i < nt; i++) {
            CHECK(ll_grammar_accept(a, id[i], &err) == LL_OK);
            CHECK(ll_grammar_accept(b, id[i], &err) == LL_OK);
        }
    }
    ll_grammar_free(a);
    ll_grammar_free(b);
    ll_vocab_free(v2);   /* b's tables outlive nothing: freed with the last grammar */
    free(ma); free(mb);
}

static void test_compiled_cache_keys_and_lifetime(void) {
    ll_error err = {0};
    ll_grammar *a, *b, *a2;
    CHECK(ll_grammar_init_schema(&a, vocab, "{\"const\":1}", 11, &err) == LL_OK);
    CHECK(ll_grammar_init_schema(&b, vocab, "{\"const\":2}", 11, &err) == LL_OK);
    CHECK(ll_grammar_init_schema(&a2, vocab, "{\"const\":1}", 11, &err) == LL_OK);
    uint64_t *ma = calloc(n_words, 8), *mb = calloc(n_words, 8), *ma2 = calloc(n_words, 8);
    CHECK(ll_grammar_mask(a, ma, n_words, &err) == LL_OK);
    CHECK(ll_grammar_mask(b, mb, n_words, &err) == LL_OK);
    CHECK(ll_grammar_mask(a2, ma2, n_words, &err) == LL_OK);
    CHECK(memcmp(ma, ma2, n_words * 8) == 0);
    CHECK(memcmp(ma, mb, n_words * 8) != 0);
    int32_t one[4];
    size_t n;
    CHECK(ll_tok_encode(vocab, "1", 1, false, false, one, 4, &n, &err) == LL_OK && n == 1);
    CHECK(bit(ma, one[0]) && !bit(mb, one[0]));
    ll_grammar_cache_clear();
    CHECK(ll_grammar_accept(a2, one[0], &err) == LL_OK);   /* still usable after the clear */
    CHECK(ll_grammar_can_end(a2));
    ll_grammar_free(a); ll_grammar_free(b); ll_grammar_free(a2);
    free(ma); free(mb); free(ma2);
}

/* ---- the whole mask against the slow path ----------------------------------------------------
 * The precompute shortcuts (spliced one-alternative rules, pairs dropped by FOLLOW sets, the
 * classes of one step of a counted chain taken from another step, a borrowed suffix trie)
 * must leave the mask exactly what accepting each token would say. Every token of the
 * vocabulary is checked at many states: accept it on the matcher, roll back. */

/* Tokens whose allowed bit differs from what accepting them says: 0 when the mask is exact. */
static int mask_mismatches(ll_grammar *g, const uint64_t *allow, const char *what, size_t at) {
    ll_error err = {0};
    int bad = 0;
    for (int32_t id = 0; id < n_vocab; id++) {
        bool ok = ll_grammar_accept(g, id, &err) == LL_OK;
        if (ok) CHECK(ll_grammar_rollback(g, 1, &err) == LL_OK);
        if (ok != bit(allow, id)) {
            if (bad++ < 3) {
                char piece[64];
                size_t pn = ll_tok_piece(vocab, id, false, piece, sizeof piece);
                CHECK_MSG(0, "%s, token %zu: token %d '%.*s' mask %d, accept %d", what, at, id,
                          (int)(pn > sizeof piece ? sizeof piece : pn), piece, bit(allow, id), ok);
            }
        }
    }
    return bad;
}

static void check_schema_mask_exact(const char *schema, int docs, int walks) {
    ll_error err = {0};
    uint64_t *allow = calloc(n_words, sizeof *allow);
    static char doc[1 << 14];
    static int32_t ids[1 << 14];
    int32_t eog = eog_token();
    for (int k = 0; k < docs + walks; k++) {
        gr_cache_forget();   /* a fresh compile: positions classified on first use, too */
        ll_grammar *g;
        CHECK_MSG(ll_grammar_init_schema(&g, vocab, schema, strlen(schema), &err) == LL_OK, "%s", err.msg);
        if (!g) break;
        uint64_t rng = 77 + (uint64_t)k;
        if (k < docs) {   /* a sampled document, token by token */
            size_t n, nt;
            CHECK(gr_sample(gr_of(g), &rng, 200, doc, sizeof doc, &n, &err) == LL_OK);
            CHECK(ll_tok_encode(vocab, doc, n, false, false, ids, 1 << 14, &nt, &err) == LL_OK);
            for (size_t t = 0; t <= nt; t++) {
                CHECK(ll_grammar_mask(g, allow, n_words, &err) == LL_OK);
                if (mask_mismatches(g, allow, schema, t)) break;
                int32_t id = t < nt ? ids[t] : eog;
                CHECK_MSG(bit(allow, id), "sampled token %zu (%d) not allowed", t, id);
                if (ll_grammar_accept(g, id, &err) != LL_OK) break;
            }
        } else {          /* random allowed tokens: long strings, odd tokens */
            for (int step = 0; step < 60 && !ll_grammar_is_done(g); step++) {
                CHECK(ll_grammar_mask(g, allow, n_words, &err) == LL_OK);
                if (mask_mismatches(g, allow, schema, (size_t)step)) break;
                size_t cnt = popcount(allow);
                CHECK_MSG(cnt > 0, "empty mask at step %d", step);
                if (!cnt) break;
                size_t pick = rng_next(&rng) % cnt;
                int32_t id = -1;
                for (int32_t i = 0; i < n_vocab; i++) if (bit(allow, i) && pick-- == 0) { id = i; break; }
                if (ll_vocab_is_eog(vocab, id)) break;
                CHECK(ll_grammar_accept(g, id, &err) == LL_OK);
            }
        }
        ll_grammar_free(g);
    }
    free(allow);
}

/* Counted chains (maxLength with a minimum, a long maxLength met mostly on first use, {m,n} in
 * a pattern), formats whose regexes become chains of small rules (email, date-time, uuid) and
 * the bounded whitespace every schema has. Which neighbour a chain step borrows from depends
 * on the order positions are classified in: at compile, a chain with a minimum starts where
 * the required items end and its required steps borrow across that boundary (a loose match);
 * with no compile budget every position is classified on first use, head first, and the
 * required steps borrow from the steps before them or walk the whole trie. Both orders run. */
static void test_mask_exact_on_chains_and_formats(void) {
    const char *min_max = "{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"string\",\"minLength\":3,"
                          "\"maxLength\":40}},\"required\":[\"t\"]}";
    check_schema_mask_exact(min_max, 3, 3);
    uint64_t budget = gr_set_eager_budget(0);
    check_schema_mask_exact(min_max, 1, 2);
    gr_set_eager_budget(budget);
    check_schema_mask_exact("{\"type\":\"string\",\"maxLength\":300}", 1, 2);
    check_schema_mask_exact("{\"type\":\"object\",\"properties\":{\"e\":{\"type\":\"string\",\"format\":\"email\"},"
                            "\"c\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{2,4}[0-9]{2}$\"},"
                            "\"d\":{\"type\":\"string\",\"format\":\"date-time\"},"
                            "\"u\":{\"type\":\"string\",\"format\":\"uuid\"}},\"required\":[\"e\",\"c\",\"d\",\"u\"]}", 3, 3);
    check_schema_mask_exact("{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":12},"
                            "\"minItems\":1,\"maxItems\":6}", 2, 3);
}

int main(void) {
    RUN(test_build_rejects_left_recursion);
    RUN(test_build_rejects_rule_without_base_case);
    RUN(test_build_drops_dead_alternatives);
    RUN(test_repeat_bounds);
    RUN(test_utf8_ranges_exact);
    RUN(test_json_strings_utf8);
    RUN(test_json_rejects_at_the_right_byte);
    RUN(test_json_depth_is_bounded);
    RUN(test_json_samples_accepted_and_parse);
    RUN(test_long_generation_stays_bounded);
    ll_error err = {0};
    if (ll_vocab_load(&vocab, LLAMA3, &err) != LL_OK) {
        fprintf(stderr, "FAIL: %s: %s\n", LLAMA3, err.msg);
        return 1;
    }
    n_vocab = ll_vocab_n_tokens(vocab);
    n_words = ((size_t)n_vocab + 63) / 64;
    if (ll_grammar_init_json(&g_json, vocab, false, &err) != LL_OK || ll_grammar_init_json(&g_obj, vocab, true, &err) != LL_OK) {
        fprintf(stderr, "FAIL: grammar init: %s\n", err.msg);
        return 1;
    }
    RUN(test_mask_follows_sampled_documents);
    RUN(test_mask_random_walk_keeps_prefix);
    RUN(test_mask_multi_symbol_and_split_utf8_tokens);
    RUN(test_accept_rejects_bad_tokens_and_keeps_state);
    RUN(test_clone_and_rollback);
    RUN(test_clones_mask_concurrently);
    RUN(test_compiled_cache_keys_and_lifetime);
    RUN(test_tool_grammar_mask_random_walk);
    RUN(test_second_vocabulary_object);
    RUN(test_mask_exact_on_chains_and_formats);
    ll_grammar_free(g_json);
    ll_grammar_free(g_obj);
    ll_grammar_cache_clear();
    ll_vocab_free(vocab);
    return test_summary();
}
