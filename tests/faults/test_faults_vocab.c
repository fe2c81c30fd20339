/* Fault rows G57-G69 (../shared/spec/fault-cases.md): malformed vocabularies, built in
 * memory with tests/gguf_builder.h and loaded through ll_gguf_parse + ll_vocab_from_gguf. */
#include "../gguf_builder.h"
#include "../test.h"

#include "tokenizer/tokenizer.h"

/* A vocab description; NULL/0 fields are left out of the file. */
typedef struct {
    const char *model, *pre;
    const char *const *toks;
    const size_t *tok_len;      /* optional explicit lengths (for empty or long texts) */
    size_t n_toks;
    const int32_t *types;
    size_t n_types;
    const float *scores;
    size_t n_scores;
    const char *const *merges;
    size_t n_merges;
    bool no_merges_key;
    int64_t bos;                /* -1: no key */
    const char *chat_template;
    size_t chat_template_len;
} vdesc;

static ll_status build(const vdesc *d, ll_vocab **out, ll_error *err) {
    gguf_builder b;
    gb_init(&b, 3);
    if (d->model) gb_kv_str(&b, "tokenizer.ggml.model", d->model);
    if (d->pre) gb_kv_str(&b, "tokenizer.ggml.pre", d->pre);
    if (d->toks) {
        if (d->tok_len) gb_kv_arr_strn(&b, "tokenizer.ggml.tokens", d->toks, d->tok_len, d->n_toks);
        else gb_kv_arr_str(&b, "tokenizer.ggml.tokens", d->toks, d->n_toks);
    }
    if (d->types) gb_kv_arr_i32(&b, "tokenizer.ggml.token_type", d->types, d->n_types);
    if (d->scores) gb_kv_arr_f32(&b, "tokenizer.ggml.scores", d->scores, d->n_scores);
    if (!d->no_merges_key && d->model && !strcmp(d->model, "gpt2"))
        gb_kv_arr_str(&b, "tokenizer.ggml.merges", d->merges, d->n_merges);
    if (d->bos >= 0) gb_kv_u32(&b, "tokenizer.ggml.bos_token_id", (uint32_t)d->bos);
    if (d->chat_template) gb_kv_strn(&b, "tokenizer.chat_template", d->chat_template, d->chat_template_len);
    unsigned char *buf;
    size_t len;
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    ll_gguf *g = NULL;
    *out = NULL;
    ll_status st = ll_gguf_parse(&g, buf, len, err);
    if (st == LL_OK) st = ll_vocab_from_gguf(out, g, err);
    ll_gguf_close(g);
    free(buf);
    return st;
}

/* The smallest sane SPM vocab, and a gpt2 one with a merge. */
static const char *const spm_toks[] = { "<unk>", "<s>", "</s>", "\xE2\x96\x81", "a",
                                        ("\xE2\x96\x81" "a") };
static const int32_t spm_types[] = { 2, 3, 3, 1, 1, 1 };
static const float spm_scores[] = { 0, 0, 0, -1, -1, -2 };
static const char *const bpe_toks[] = { "a", "b", "ab", "\xC4\xA0", ("\xC4\xA0" "ab") };
static const char *const bpe_merges[] = { "a b", "\xC4\xA0 ab" };

static vdesc spm_desc(void) {
    return (vdesc){ .model = "llama", .toks = spm_toks, .n_toks = 6, .types = spm_types,
                    .n_types = 6, .scores = spm_scores, .n_scores = 6, .bos = -1 };
}
static vdesc bpe_desc(void) {
    return (vdesc){ .model = "gpt2", .pre = "gpt2", .toks = bpe_toks, .n_toks = 5,
                    .merges = bpe_merges, .n_merges = 2, .bos = -1 };
}

static size_t enc(const ll_vocab *v, const char *s, bool add_special, int32_t *ids, size_t cap) {
    size_t n = 0;
    ll_error err = { 0 };
    CHECK(ll_tok_encode(v, s, strlen(s), add_special, false, ids, cap, &n, &err) == LL_OK);
    return n;
}

static void test_baseline_vocabs_load(void) {
    ll_vocab *v;
    ll_error err = { 0 };
    vdesc d = spm_desc();
    CHECK(build(&d, &v, &err) == LL_OK);
    ll_vocab_free(v);
    d = bpe_desc();
    CHECK(build(&d, &v, &err) == LL_OK);
    int32_t ids[8];
    size_t n = enc(v, "ab ab", false, ids, 8);
    CHECK(n == 2 && ids[0] == 2 && ids[1] == 4);
    ll_vocab_free(v);
}

static void test_G57_scores_or_types_length_mismatch(void) {
    ll_vocab *v;
    ll_error err = { 0 };
    vdesc d = spm_desc();
    d.n_scores = 5;
    CHECK(build(&d, &v, &err) == LL_ERR_FORMAT && v == NULL);
    CHECK_STR_CONTAINS(err.msg, "scores has 5 entries");
    CHECK_STR_CONTAINS(err.msg, "6");
    err = (ll_error){ 0 };
    d = spm_desc();
    d.n_types = 7;   /* longer is refused too (llama.cpp checks only shorter) */
    static const int32_t types7[] = { 2, 3, 3, 1, 1, 1, 1 };
    d.types = types7;
    CHECK(build(&d, &v, &err) == LL_ERR_FORMAT && v == NULL);
    CHECK_STR_CONTAINS(err.msg, "token_type has 7 entries");
}

static void test_G58_special_id_out_of_range(void) {
    ll_vocab *v;
    ll_error err = { 0 };
    vdesc d = spm_desc();
    d.bos = 6;   /* == vocab size */
    CHECK(build(&d, &v, &err) == LL_OK);
    if (!v) return;
    CHECK_EQ_INT(ll_vocab_bos(v), -1);   /* disabled */
    CHECK(!ll_vocab_add_bos(v));
    int32_t ids[8];
    size_t n = enc(v, "a", true, ids, 8);   /* add_special must not emit an id >= n_vocab */
    for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < 6);
    ll_vocab_free(v);
    /* defaults that do not fit: a gpt2 vocab without bos/eos keys defaults to id 11 */
    d = bpe_desc();
    CHECK(build(&d, &v, &err) == LL_OK);
    if (!v) return;
    CHECK_EQ_INT(ll_vocab_bos(v), -1);
    CHECK_EQ_INT(ll_vocab_eos(v), -1);
    CHECK(!ll_vocab_is_eog(v, 11) && !ll_vocab_is_eog(v, -1));
    ll_vocab_free(v);
}

static void test_G59_tokens_missing_or_empty(void) {
    ll_vocab *v;
    ll_error err = { 0 };
    vdesc d = spm_desc();
    d.toks = NULL;
    d.types = NULL;
    d.scores = NULL;
    CHECK(build(&d, &v, &err) == LL_ERR_FORMAT && v == NULL);
    CHECK_STR_CONTAINS(err.msg, "vocab is empty");
    err = (ll_error){ 0 };
    d = spm_desc();
    d.n_toks = 0;
    d.types = NULL;
    d.scores = NULL;
    CHECK(build(&d, &v, &err) == LL_ERR_FORMAT && v == NULL);
    CHECK_STR_CONTAINS(err.msg, "vocab is empty");
}

static void test_G60_duplicate_token_strings(void) {
    static const char *const toks[] = { "a", "b", "ab", "ab", "a" };
    static const char *const merges[] = { "a b" };
    vdesc d = { .model = "gpt2", .pre = "gpt2", .toks = toks, .n_toks = 5, .merges = merges,
                .n_merges = 1, .bos = -1 };
    ll_vocab *v;
    ll_error err = { 0 };
    CHECK(build(&d, &v, &err) == LL_OK);
    if (!v) return;
    int32_t ids[8];
    size_t n = enc(v, "ab", false, ids, 8);
    CHECK(n == 1 && ids[0] == 2);   /* lowest id wins */
    n = enc(v, "a", false, ids, 8);
    CHECK(n == 1 && ids[0] == 0);
    char buf[8];
    for (int32_t id = 0; id < 5; id++)   /* every id still decodes */
        CHECK(ll_tok_piece(v, id, true, buf, sizeof buf) >= 1);
    ll_vocab_free(v);
}

static void test_G61_empty_token_string(void) {
    static const char *const toks[] = { "<unk>", "<s>", "</s>", "", "\xE2\x96\x81", "a" };
    static const size_t lens[] = { 5, 3, 4, 0, 3, 1 };
    vdesc d = spm_desc();
    d.toks = toks;
    d.tok_len = lens;
    ll_vocab *v;
    ll_error err = { 0 };
    CHECK(build(&d, &v, &err) == LL_OK);
    if (!v) return;
    int32_t ids[16];
    size_t n = enc(v, "a a", false, ids, 16);
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++) CHECK(ids[i] != 3);   /* never matches */
    char buf[8];
    CHECK_EQ_INT(ll_tok_piece(v, 3, true, buf, sizeof buf), 0);
    ll_vocab_free(v);
}

static void test_G62_token_text_over_64k(void) {
    size_t big = (64u << 10) + 1;
    char *t = malloc(big);
    memset(t, 'x', big);
    const char *toks[] = { "<unk>", "<s>", "</s>", t };
    const size_t lens[] = { 5, 3, 4, big };
    vdesc d = { .model = "llama", .toks = toks, .tok_len = lens, .n_toks = 4, .bos = -1 };
    ll_vocab *v;
    ll_error err = { 0 };
    CHECK(build(&d, &v, &err) == LL_ERR_LIMIT && v == NULL);
    CHECK_STR_CONTAINS(err.msg, "token 3");
    free(t);
}

static void test_G63_token_type_out_of_range(void) {
    static const int32_t types[] = { 2, 3, 3, 9, -1, 0 };
    vdesc d = spm_desc();
    d.types = types;
    ll_vocab *v;
    ll_error err = { 0 };
    CHECK(build(&d, &v, &err) == LL_OK);
    if (!v) return;
    char buf[8];
    /* treated as normal: rendered even without special, '▁' as a space */
    CHECK_EQ_INT(ll_tok_piece(v, 3, false, buf, sizeof buf), 1);
    CHECK(buf[0] == ' ');
    CHECK_EQ_INT(ll_tok_piece(v, 4, false, buf, sizeof buf), 1);
    CHECK(buf[0] == 'a');
    ll_vocab_free(v);
}

static void test_G64_malformed_byte_tokens(void) {
    static const char *const toks[] = { "<unk>", "<s>", "</s>", "<0x-1>", "<0xZZ>", "<0x1>",
                                        "<0x41>", "\xE2\x96\x81" };
    static const int32_t types[] = { 2, 3, 3, 6, 6, 6, 6, 1 };
    vdesc d = { .model = "llama", .toks = toks, .n_toks = 8, .types = types, .n_types = 8, .bos = -1 };
    ll_vocab *v;
    ll_error err = { 0 };
    CHECK(build(&d, &v, &err) == LL_OK);
    if (!v) return;
    char buf[16];
    /* malformed ones are ordinary text; the good one is the byte 'A' */
    CHECK(ll_tok_piece(v, 3, true, buf, sizeof buf) == 6 && memcmp(buf, "<0x-1>", 6) == 0);
    CHECK(ll_tok_piece(v, 4, true, buf, sizeof buf) == 6 && memcmp(buf, "<0xZZ>", 6) == 0);
    CHECK(ll_tok_piece(v, 5, true, buf, sizeof buf) == 5 && memcmp(buf, "<0x1>", 5) == 0);
    CHECK(ll_tok_piece(v, 6, true, buf, sizeof buf) == 1 && buf[0] == 'A');
    /* byte fallback: 'A' has its byte token; 'q' has none, so unk */
    int32_t ids[8];
    size_t n = enc(v, "Aq", false, ids, 8);
    CHECK(n == 3 && ids[0] == 7 && ids[1] == 6 && ids[2] == 0);
    ll_vocab_free(v);
}

static void test_G65_bad_merges_skipped(void) {
    static const char *const merges[] = { "ab", "a zz", "b a", "a b", " a", "\xC4\xA0 ab" };
    vdesc d = bpe_desc();
    d.merges = merges;
    d.n_merges = 6;
    ll_vocab *v;
    ll_error err = { 0 };
    CHECK(build(&d, &v, &err) == LL_OK);
    if (!v) return;
    int32_t ids[8];
    size_t n = enc(v, "ab ab ba", false, ids, 8);   /* the good merges still work */
    CHECK(n == 5 && ids[0] == 2 && ids[1] == 4 && ids[2] == 3 && ids[3] == 1 && ids[4] == 0);
    ll_vocab_free(v);
}

static void test_G66_bpe_without_merges(void) {
    vdesc d = bpe_desc();
    d.no_merges_key = true;
    ll_vocab *v;
    ll_error err = { 0 };
    CHECK(build(&d, &v, &err) == LL_ERR_FORMAT && v == NULL);
    CHECK_STR_CONTAINS(err.msg, "BPE vocab has no merges");
}

static void test_G67_unknown_tokenizer_model(void) {
    vdesc d = spm_desc();
    d.model = "bert";
    ll_vocab *v;
    ll_error err = { 0 };
    CHECK(build(&d, &v, &err) == LL_ERR_UNSUPPORTED && v == NULL);
    CHECK_STR_CONTAINS(err.msg, "bert");
    d.model = NULL;
    err = (ll_error){ 0 };
    CHECK(build(&d, &v, &err) == LL_ERR_FORMAT && v == NULL);
}

static void test_G68_pre_tokenizer_missing_or_unknown(void) {
    vdesc d = bpe_desc();
    d.pre = NULL;   /* missing: warn, default pre-tokenizer */
    ll_vocab *v;
    ll_error err = { 0 };
    CHECK(build(&d, &v, &err) == LL_OK);
    if (v) {
        int32_t ids[8];
        size_t n = enc(v, "ab ab", false, ids, 8);
        CHECK(n == 2 && ids[0] == 2 && ids[1] == 4);
    }
    ll_vocab_free(v);
    d.pre = "qwen2";
    CHECK(build(&d, &v, &err) == LL_ERR_UNSUPPORTED && v == NULL);
    CHECK_STR_CONTAINS(err.msg, "qwen2");
}

static void test_G69_hostile_chat_template_is_only_text(void) {
    /* 1 MiB of Jinja that would loop forever if anything ran it: loading the vocab and
     * tokenizing never look at it */
    size_t n = 1u << 20;
    char *t = malloc(n);
    const char *unit = "{% for i in range(999999999) %}{{ raise_exception('x') }}{% endfor %}";
    for (size_t i = 0; i < n; i++) t[i] = unit[i % strlen(unit)];
    vdesc d = bpe_desc();
    d.chat_template = t;
    d.chat_template_len = n;
    ll_vocab *v;
    ll_error err = { 0 };
    CHECK(build(&d, &v, &err) == LL_OK);
    if (v) {
        int32_t ids[8];
        CHECK_EQ_INT(enc(v, "ab", false, ids, 8), 1);
    }
    ll_vocab_free(v);
    free(t);
}

int main(void) {
    RUN(test_baseline_vocabs_load);
    RUN(test_G57_scores_or_types_length_mismatch);
    RUN(test_G58_special_id_out_of_range);
    RUN(test_G59_tokens_missing_or_empty);
    RUN(test_G60_duplicate_token_strings);
    RUN(test_G61_empty_token_string);
    RUN(test_G62_token_text_over_64k);
    RUN(test_G63_token_type_out_of_range);
    RUN(test_G64_malformed_byte_tokens);
    RUN(test_G65_bad_merges_skipped);
    RUN(test_G66_bpe_without_merges);
    RUN(test_G67_unknown_tokenizer_model);
    RUN(test_G68_pre_tokenizer_missing_or_unknown);
    RUN(test_G69_hostile_chat_template_is_only_text);
    return test_summary();
}
