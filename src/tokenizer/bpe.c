/* bpe: byte-level BPE for GGUF "gpt2" vocabularies (spec 2.4, 2.5), plus the pair heap and
 * per-call scratch that spm.c shares. */
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_impl.h"

/* ---- pair heap: larger key first, ties to the smaller left symbol ---- */

static int pair_before(const tok_pair *a, const tok_pair *b) {
    if (a->key != b->key) return a->key > b->key;
    return a->left < b->left;
}

bool tok_heap_push(tok_heap *h, tok_pair p) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        tok_pair *a = ll_realloc(h->a, cap * sizeof *a);
        if (!a) return false;
        h->a = a;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h->a[parent])) break;
        h->a[i] = h->a[parent];
        i = parent;
    }
    h->a[i] = p;
    return true;
}

bool tok_heap_pop(tok_heap *h, tok_pair *out) {
    if (h->n == 0) return false;
    *out = h->a[0];
    tok_pair last = h->a[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_before(&h->a[c + 1], &h->a[c])) c++;
        if (!pair_before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (n) h->a[i] = last;
    return true;
}

void tok_heap_free(tok_heap *h) {
    ll_free(h->a);
    h->a = NULL;
    h->n = h->cap = 0;
}

void tok_scratch_free(tok_scratch *s) {
    ll_free(s->cpts);
    ll_free(s->ends);
    ll_free(s->buf);
    ll_free(s->syms);
    tok_heap_free(&s->heap);
}

bool tok_scratch_reserve(tok_scratch *s, size_t n_cpts, size_t n_buf, size_t n_syms) {
    if (n_cpts > s->cap_cpts) {
        uint32_t *c = ll_malloc_array(n_cpts, sizeof *c);
        size_t *e = ll_malloc_array(n_cpts, sizeof *e);
        if (!c || !e) { ll_free(c); ll_free(e); return false; }
        ll_free(s->cpts);
        ll_free(s->ends);
        s->cpts = c;
        s->ends = e;
        s->cap_cpts = n_cpts;
    }
    if (n_buf > s->cap_buf) {
        char *b = ll_malloc(n_buf);
        if (!b) return false;
        ll_free(s->buf);
        s->buf = b;
        s->cap_buf = n_buf;
    }
    if (n_syms > s->cap_syms) {
        struct tok_sym *y = ll_malloc_array(n_syms, sizeof *y);
        if (!y) return false;
        ll_free(s->syms);
        s->syms = y;
        s->cap_syms = n_syms;
    }
    return true;
}

/* ---- byte <-> code point (GPT-2's bytes_to_unicode) ----
 * Printable bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF map to themselves; the other 68, in
 * increasing order, to U+0100.. U+0143. */

static int byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

/* closed form: 0x00-0x20 -> U+0100.., 0x7F-0xA0 -> U+0121.., 0xAD -> U+0143 */
uint32_t ll_bpe_byte_to_cpt(unsigned char b) {
    if (byte_is_printable(b)) return b;
    if (b <= 0x20) return 0x100u + b;
    if (b <= 0xA0) return 0x121u + (b - 0x7Fu);
    return 0x143u;
}

int ll_bpe_cpt_to_byte(uint32_t cp) {
    if (cp < 0x100) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp <= 0x120) return (int)(cp - 0x100);
    if (cp <= 0x142) return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143) return 0xAD;
    return -1;
}

/* ---- merges ---- */

static int32_t merge_lookup(const ll_vocab *v, int32_t left, int32_t right, int32_t *result) {
    if (!v->merges || left < 0 || right < 0) return -1;
    uint64_t key = merge_key(left, right);
    size_t i = merge_slot_of(key, v->merges_mask);
    for (;;) {
        const ll_merge_slot *m = &v->merges[i];
        if (m->key == 0) return -1;
        if (m->key == key) { *result = m->result; return m->rank; }
        i = (i + 1) & v->merges_mask;
    }
}

static bool queue_pair(const ll_vocab *v, tok_scratch *sc, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    int32_t res;
    int32_t rank = merge_lookup(v, sc->syms[l].id, sc->syms[r].id, &res);
    if (rank < 0) return true;
    tok_pair p = { -(double)rank, l, r, sc->syms[l].len + sc->syms[r].len };
    return tok_heap_push(&sc->heap, p);
}

/* Merge one pre-token given as its (re-encoded) bytes b[0..n); sc->buf has 2n bytes free
 * for the mapped text and sc->syms n symbols. */
static ll_status bpe_word(const ll_vocab *v, const unsigned char *b, size_t n, tok_scratch *sc,
                          tok_out *out, ll_error *err) {
    if (v->ignore_merges) {
        /* the whole mapped pre-token, when it is a vocabulary text, is one token */
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char tmp[4];
            size_t k = ll_utf8_encode(ll_bpe_byte_to_cpt(b[i]), tmp);
            memcpy(sc->buf + m, tmp, k);
            m += k;
        }
        int32_t id = vocab_find(v, sc->buf, m);
        if (id >= 0) { tok_emit(out, id); return LL_OK; }
    }
    struct tok_sym *y = sc->syms;
    for (size_t i = 0; i < n; i++) {
        y[i].id = v->byte_tok[b[i]];
        y[i].prev = (int32_t)i - 1;
        y[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
        y[i].start = (uint32_t)i;
        y[i].len = 1;
    }
    sc->heap.n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (!queue_pair(v, sc, (int32_t)i, (int32_t)i + 1)) goto nomem;
    tok_pair p;
    while (tok_heap_pop(&sc->heap, &p)) {
        struct tok_sym *l = &y[p.left], *r = &y[p.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != p.size) continue;   /* stale */
        int32_t res;
        if (merge_lookup(v, l->id, r->id, &res) < 0) continue;
        l->id = res;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) y[r->next].prev = p.left;
        if (!queue_pair(v, sc, l->prev, p.left)) goto nomem;
        if (!queue_pair(v, sc, p.left, l->next)) goto nomem;
    }
    for (int32_t i = 0; i >= 0; i = y[i].next)
        if (y[i].id >= 0) tok_emit(out, y[i].id);   /* a byte missing from the vocab: dropped */
    return LL_OK;
nomem:
    return ll_fail(err, LL_ERR_NOMEM, "tokenize: out of memory");
}

ll_status ll_bpe_encode(const ll_vocab *v, const char *s, size_t n, tok_scratch *sc,
                        tok_out *out, ll_error *err) {
    if (!tok_scratch_reserve(sc, n ? n : 1, 0, 0))
        return ll_fail(err, LL_ERR_NOMEM, "tokenize: out of memory for %zu bytes", n);
    size_t n_cpts = ll_utf8_decode_lenient((const unsigned char *)s, n, sc->cpts);
    size_t n_pre = ll_pretok_split(v->pre, sc->cpts, n_cpts, sc->ends);
    /* per pre-token: re-encode its code points (at most 4 bytes each) into word[], map and
     * merge; the scratch grows to the longest pre-token, not the whole fragment */
    size_t beg = 0;
    for (size_t k = 0; k < n_pre; k++) {
        size_t n_cp = sc->ends[k] - beg, max_bytes = 4 * n_cp;
        if (!tok_scratch_reserve(sc, 0, 3 * max_bytes + 8, max_bytes + 1))
            return ll_fail(err, LL_ERR_NOMEM, "tokenize: out of memory for a %zu-byte word", max_bytes);
        unsigned char *word = (unsigned char *)sc->buf + 2 * max_bytes + 4;   /* after the mapped area */
        size_t m = 0;
        for (size_t i = beg; i < sc->ends[k]; i++) m += ll_utf8_encode(sc->cpts[i], word + m);
        beg = sc->ends[k];
        ll_status st = bpe_word(v, word, m, sc, out, err);
        if (st != LL_OK) return st;
    }
    return LL_OK;
}
