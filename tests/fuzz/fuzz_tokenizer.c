/* libFuzzer target: tokenize arbitrary bytes with the Llama 3 vocab (parse_special off and
 * on, with and without BOS), then detokenize the ids both ways. Checks: no crash, every id in
 * range, the count is exact when the buffer was large enough, and the pieces of a valid
 * UTF-8 input without special texts give back the input (the byte-level BPE round trip).
 *
 * The vocab path: $LL_FUZZ_VOCAB, else LL_SHARED_DIR/tokenizer/llama3.gguf. */
#include "locallama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LL_SHARED_DIR
#define LL_SHARED_DIR "../shared"
#endif

static ll_vocab *vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *path = getenv("LL_FUZZ_VOCAB");
    char buf[4096];
    if (!path) {
        const char *shared = getenv("LL_SHARED_DIR");
        snprintf(buf, sizeof buf, "%s/tokenizer/llama3.gguf", shared ? shared : LL_SHARED_DIR);
        path = buf;
    }
    ll_error err = { 0 };
    if (ll_vocab_load(&vocab, path, &err) != LL_OK) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s\n", path, err.msg);
        abort();
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

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > 1 << 16) return 0;
    int32_t n_vocab = ll_vocab_n_tokens(vocab);
    size_t cap = size + 4;
    int32_t *ids = malloc(cap * sizeof *ids);
    char *out = malloc(4 * size + 64);
    if (!ids || !out) abort();
    for (int mode = 0; mode < 4; mode++) {
        bool parse_special = mode & 1, add_special = mode & 2;
        size_t n = 0;
        ll_error err = { 0 };
        if (ll_tok_encode(vocab, (const char *)data, size, add_special, parse_special, ids, cap,
                          &n, &err) != LL_OK)
            continue;   /* an error is allowed (e.g. out of memory), a crash is not */
        if (n > cap) abort();   /* at most one id per byte plus BOS */
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= n_vocab) abort();
        size_t total = ll_tok_decode(vocab, ids, n, false, true, NULL, 0);
        if (total > 4 * size + 64) abort();
        size_t got = ll_tok_decode(vocab, ids, n, false, true, out, 4 * size + 64);
        if (got != total) abort();
        ll_tok_decode(vocab, ids, n, true, false, out, 3);   /* short buffer */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += ll_tok_piece(vocab, ids[i], true, out + k, 4 * size + 64 - k);
        if (!add_special && !parse_special && valid_utf8_no_specials(data, size) &&
            (k != size || memcmp(out, data, size) != 0))
            abort();   /* byte-level BPE round trip */
    }
    free(ids);
    free(out);
    return 0;
}
