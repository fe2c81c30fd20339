/* libFuzzer target for the token mask (src/grammar/mask.c; issue 11).
 *
 * The input is a JSON Schema; the vocabulary is SmolLM2's (49,152 tokens; $LL_SHARED_DIR, else
 * ../shared, /tokenizer/smollm2.gguf), loaded once. For a schema that compiles, a short
 * generation picks pseudo-random allowed tokens and checks the mask's contract at every step:
 * never empty before the output is done, end of generation allowed exactly when the output is
 * complete, every allowed token accepted, a disallowed one refused with the state unchanged,
 * and the bytes so far still accepted byte by byte by a fresh copy of the grammar. */
#include "grammar/grammar.h"

#include <stdio.h>
#include <stdlib.h>

static ll_vocab *vocab;
static int32_t n_vocab;
static size_t n_words;
static uint64_t *allow;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *dir = getenv("LL_SHARED_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer/smollm2.gguf", dir ? dir : "../shared");
    ll_error err = { 0 };
    if (ll_vocab_load(&vocab, path, &err) != LL_OK) { fprintf(stderr, "%s: %s\n", path, err.msg); abort(); }
    n_vocab = ll_vocab_n_tokens(vocab);
    n_words = ((size_t)n_vocab + 63) / 64;
    allow = calloc(n_words, sizeof *allow);
    return 0;
}

static bool bit(int32_t i) { return (allow[i >> 6] >> (i & 63)) & 1; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ll_error err = { 0 };
    ll_grammar *g, *bytes;
    if (ll_grammar_init_schema(&g, vocab, (const char *)data, size, &err) != LL_OK) return 0;
    if (ll_grammar_init_schema(&bytes, NULL, (const char *)data, size, &err) != LL_OK) abort();
    static char text[1 << 14];
    size_t n = 0;
    uint64_t rng = size * 2654435761u + 1;
    for (int step = 0; step < 24 && !ll_grammar_is_done(g); step++) {
        if (ll_grammar_mask(g, allow, n_words, &err) != LL_OK) {
            if (err.code != LL_ERR_LIMIT) abort();
            break;
        }
        size_t cnt = 0;
        for (size_t w = 0; w < n_words; w++) cnt += (size_t)__builtin_popcountll(allow[w]);
        if (cnt == 0) abort();
        int32_t eog = -1;
        for (int32_t i = 0; i < n_vocab && eog < 0; i++) if (ll_vocab_is_eog(vocab, i)) eog = i;
        if (eog >= 0 && bit(eog) != ll_grammar_can_end(g)) abort();
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int32_t bad = (int32_t)((rng >> 33) % (uint64_t)n_vocab);
        if (!bit(bad)) {
            err = (ll_error){ 0 };
            if (ll_grammar_accept(g, bad, &err) == LL_OK) abort();
        }
        size_t pick = (size_t)(rng >> 11) % cnt;
        int32_t id = -1;
        for (int32_t i = 0; i < n_vocab; i++) if (bit(i) && pick-- == 0) { id = i; break; }
        if (ll_grammar_accept(g, id, &err) != LL_OK) abort();
        if (!ll_vocab_is_eog(vocab, id)) {
            char piece[256];
            size_t pn = ll_tok_piece(vocab, id, false, piece, sizeof piece);
            if (pn > sizeof piece || n + pn > sizeof text) break;
            memcpy(text + n, piece, pn);
            n += pn;
        }
    }
    ll_grammar_reset(bytes);
    if (n && ll_grammar_accept_bytes(bytes, text, n, &err) != LL_OK) abort();
    ll_grammar_free(bytes);
    ll_grammar_free(g);
    return 0;
}
