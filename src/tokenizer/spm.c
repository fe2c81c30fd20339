/* spm: SentencePiece BPE for GGUF "llama" vocabularies (spec 3).
 *
 * Symbols are UTF-8 characters cut by the lead byte alone; adjacent symbols whose joined
 * text is a vocabulary entry are merged, highest score first (ties: leftmost), until no pair
 * is left. What remains is emitted as tokens, or byte by byte through <0xXX> tokens. */
#include "tokenizer/vocab_impl.h"

/* 3.1 step 1: length from the high nibble of the lead byte, no continuation checks */
static size_t spm_char_len(unsigned char c) {
    static const unsigned char len_of_nibble[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    return len_of_nibble[c >> 4];
}

static bool spm_queue(const ll_vocab *v, tok_scratch *sc, const char *text, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    const struct tok_sym *a = &sc->syms[l], *b = &sc->syms[r];
    int32_t id = vocab_find(v, text + a->start, (size_t)a->len + b->len);
    if (id < 0) return true;
    tok_pair p = { v->score ? (double)v->score[id] : 0.0, l, r, a->len + b->len };
    return tok_heap_push(&sc->heap, p);
}

ll_status ll_spm_encode(const ll_vocab *v, const char *s, size_t n, bool add_prefix,
                        tok_scratch *sc, tok_out *out, ll_error *err) {
    /* escaped text: optional leading space, then every 0x20 becomes U+2581 (3 bytes) */
    size_t n_buf, n_in = n + (add_prefix ? 1 : 0);
    if (!ll_mul_size(n_in, 3, &n_buf) || !tok_scratch_reserve(sc, 1, n_buf + 1, 0))
        return ll_fail(err, LL_ERR_NOMEM, "tokenize: out of memory for %zu bytes", n);
    char *t = sc->buf;
    size_t m = 0;
    for (size_t i = 0; i < n_in; i++) {
        char c = (add_prefix && i == 0) ? ' ' : s[i - (add_prefix ? 1 : 0)];
        if (c == ' ') { t[m++] = (char)0xE2; t[m++] = (char)0x96; t[m++] = (char)0x81; }
        else t[m++] = c;
    }
    if (m == 0) return LL_OK;
    /* Up to one symbol per escaped byte, not per input byte: a lead byte before a space
     * swallows part of its U+2581, whose continuation bytes then stand alone ("\xC0 " is
     * 2 input bytes and 3 symbols: C0 E2, 96, 81). */
    if (!tok_scratch_reserve(sc, 0, 0, m))
        return ll_fail(err, LL_ERR_NOMEM, "tokenize: out of memory for %zu symbols", m);

    struct tok_sym *y = sc->syms;
    int32_t n_sym = 0;
    for (size_t i = 0; i < m;) {
        size_t len = spm_char_len((unsigned char)t[i]);
        if (len > m - i) len = m - i;
        y[n_sym].id = -1;
        y[n_sym].prev = n_sym - 1;
        y[n_sym].next = -1;
        if (n_sym) y[n_sym - 1].next = n_sym;
        y[n_sym].start = (uint32_t)i;
        y[n_sym].len = (uint32_t)len;
        n_sym++;
        i += len;
    }
    sc->heap.n = 0;
    for (int32_t i = 0; i + 1 < n_sym; i++)
        if (!spm_queue(v, sc, t, i, i + 1)) goto nomem;
    tok_pair p;
    while (tok_heap_pop(&sc->heap, &p)) {
        struct tok_sym *l = &y[p.left], *r = &y[p.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != p.size) continue;   /* stale */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) y[r->next].prev = p.left;
        if (!spm_queue(v, sc, t, l->prev, p.left)) goto nomem;
        if (!spm_queue(v, sc, t, p.left, l->next)) goto nomem;
    }
    for (int32_t i = 0; i >= 0; i = y[i].next) {
        int32_t id = vocab_find(v, t + y[i].start, y[i].len);
        if (id >= 0) { tok_emit(out, id); continue; }
        for (uint32_t k = 0; k < y[i].len; k++) {   /* byte fallback (G64: else unk) */
            int32_t b = v->byte_tok[(unsigned char)t[y[i].start + k]];
            if (b >= 0) tok_emit(out, b);
        }
    }
    return LL_OK;
nomem:
    return ll_fail(err, LL_ERR_NOMEM, "tokenize: out of memory");
}
