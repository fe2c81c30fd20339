/* libFuzzer target: tokenize arbitrary bytes with each of the three golden vocabularies
 * (Llama 3 byte-level BPE, SmolLM2 BPE with its digit pass, Llama 2 SentencePiece), with
 * parse_special off and on, with and without BOS, then detokenize the ids both ways. Checks:
 * no crash, every id in range, the count is exact when the buffer was large enough, and for
 * Llama 3 (whose vocabulary holds all 256 bytes) the pieces of a valid UTF-8 input without
 * special texts give back the input (the byte-level round trip).
 *
 * Vocab paths: $LL_FUZZ_VOCAB alone when set, else the three files under
 * LL_SHARED_DIR/tokenizer/. */
#include "locallama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LL_SHARED_DIR
#define LL_SHARED_DIR "../shared"
#endif

static ll_vocab *vocabs[3];
static bool is_bpe[3];
static int n_vocabs;

static void load_vocab(const char *path, bool bpe) {
    ll_error err = { 0 };
    if (ll_vocab_load(&vocabs[n_vocabs], path, &err) != LL_OK) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s\n", path, err.msg);
        abort();
    }
    is_bpe[n_vocabs++] = bpe;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *path = getenv("LL_FUZZ_VOCAB");
    if (path) {
        load_vocab(path, false);   /* unknown kind: no round-trip check */
        return 0;
    }
    const char *shared = getenv("LL_SHARED_DIR");
    static const struct { const char *file; bool bpe; } files[] = {
        /* SmolLM2's vocabulary lacks 21 byte tokens (0x04, 0x06, 0xC0, 0xF5-0xFF, ...); like
         * llama.cpp we drop such bytes, so only Llama 3 promises the round trip. */
        { "llama3.gguf", true }, { "smollm2.gguf", false }, { "llama2-spm.gguf", false },
    };
    for (int i = 0; i < 3; i++) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s/tokenizer/%s", shared ? shared : LL_SHARED_DIR, files[i].file);
        load_vocab(buf, files[i].bpe);
    }
    return 0;
}

static int valid_utf8_no_specials(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || len > n - i) return 0;
        uint32_t v = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return 0;
            v = (v << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 2 && v < 0x80) || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
            v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static void fuzz_one(const ll_vocab *vocab, bool bpe, const unsigned char *data, size_t size) {
    int32_t n_vocab = ll_vocab_n_tokens(vocab);
    /* SentencePiece may turn one input byte into several byte tokens (a space becomes the
     * 3-byte U+2581, which may fall back to bytes), so leave room and retry when short. */
    size_t cap = 4 * size + 8;
    int32_t *ids = malloc(cap * sizeof *ids);
    size_t out_cap = 16 * size + 64;
    char *out = malloc(out_cap);
    if (!ids || !out) abort();
    for (int mode = 0; mode < 4; mode++) {
        bool parse_special = mode & 1, add_special = mode & 2;
        size_t n = 0;
        ll_error err = { 0 };
        if (ll_tok_encode(vocab, (const char *)data, size, add_special, parse_special, ids, cap,
                          &n, &err) != LL_OK)
            continue;   /* an error is allowed (e.g. out of memory), a crash is not */
        if (n > cap) abort();   /* 4 ids per byte is far beyond any real segmentation */
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= n_vocab) abort();
        size_t total = ll_tok_decode(vocab, ids, n, false, true, NULL, 0);
        if (total > out_cap) continue;    /* long special texts; nothing to compare */
        size_t got = ll_tok_decode(vocab, ids, n, false, true, out, out_cap);
        if (got != total) abort();
        ll_tok_decode(vocab, ids, n, true, false, out, 3);   /* short buffer */
        size_t k = 0;
        for (size_t i = 0; i < n && k <= out_cap; i++)
            k += ll_tok_piece(vocab, ids[i], true, out + k, k < out_cap ? out_cap - k : 0);
        if (bpe && !add_special && !parse_special && valid_utf8_no_specials(data, size) &&
            (k != size || memcmp(out, data, size) != 0))
            abort();   /* byte-level BPE round trip */
    }
    free(ids);
    free(out);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > 1 << 16) return 0;
    for (int v = 0; v < n_vocabs; v++) fuzz_one(vocabs[v], is_bpe[v], data, size);
    return 0;
}
