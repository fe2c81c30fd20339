/* vocab: loading a GGUF vocabulary (spec 1, fault rows G57-G69), special-token partitioning
 * (spec 5), the encode driver and detokenization (spec 4).
 *
 * The vocab is built once and immutable afterwards; every encode call keeps its working
 * memory in its own tok_scratch, so one vocab serves many threads. */
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_impl.h"

#include <stdatomic.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- text -> id map -------------------------------------------------------------------- */

/* FNV-1a over the bytes (incremental, so a merge's joined text can be hashed from its two
 * halves), then a final mix so the low bits (the slot) and high bits (the tag) both vary. */
#define FNV_BASIS 0xcbf29ce484222325ull
static uint64_t fnv_add(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}
static uint64_t hash_final(uint64_t h) {
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

/* memcmp for the short texts of a vocabulary, without the library call */
static inline bool bytes_eq(const char *a, const char *b, size_t n) {
    if (n > 16) return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* Find the token whose text is a[0..na) followed by b[0..nb), given that text's hash. */
static int32_t find_hashed(const ll_vocab *v, uint64_t h, const char *a, size_t na,
                           const char *b, size_t nb) {
    size_t n = na + nb;
    if (n == 0 || n > v->max_text_len) return -1;
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & v->map_mask;; i = (i + 1) & v->map_mask) {
        const struct ll_map_slot *e = &v->map[i];
        if (e->id1 == 0) return -1;
        if (e->tag == tag && e->len == n && bytes_eq(v->text + e->off, a, na) &&
            bytes_eq(v->text + e->off + na, b, nb))
            return e->id1 - 1;
    }
}

int32_t vocab_find(const ll_vocab *v, const char *s, size_t n) {
    if (n == 0 || n > v->max_text_len) return -1;
    return find_hashed(v, hash_final(fnv_add(FNV_BASIS, s, n)), s, n, NULL, 0);
}

static size_t pow2_at_least(size_t n) {
    size_t p = 16;
    while (p < n) p *= 2;
    return p;
}

/* ---- loading --------------------------------------------------------------------------- */

/* End-of-turn names (spec 1): forced to CONTROL and counted as end of generation. */
static const char *const eot_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
    "_<EOT>", "<|end_of_turn|>", "<end_of_utterance>", "<|return|>", "<|call|>",
    "<|end_of_text|>",   /* Llama 3.x base EOS, still an end of generation in instruct files */
};
static const char *const eom_names[] = { "<|eom_id|>" };

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* G64: a byte token is exactly "<0x" + 2 hex digits + ">"; returns the byte or -1. */
static int byte_token_value(ll_str t) {
    if (t.n != 6 || memcmp(t.p, "<0x", 3) != 0 || t.p[5] != '>') return -1;
    int hi = hexval(t.p[3]), lo = hexval(t.p[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

static ll_status read_special_id(const ll_gguf *g, const char *key, int32_t n_tokens,
                                 int32_t *id, ll_error *err) {
    uint32_t u;
    bool found = false;
    ll_status st = ll_gguf_get_u32(g, key, &u, &found, err);
    if (st != LL_OK) return st;
    if (found) *id = u > (uint32_t)INT32_MAX ? INT32_MAX : (int32_t)u;
    if (*id >= n_tokens) {   /* G58: also a default that does not fit this vocab */
        LL_WARN("vocab: %s%s = %d is outside the vocabulary (%d tokens); token disabled",
                found ? "" : "default ", key, *id, n_tokens);
        *id = -1;
    }
    return LL_OK;
}

static ll_status read_bool(const ll_gguf *g, const char *key, bool *out, ll_error *err) {
    return ll_gguf_get_bool(g, key, out, NULL, err);
}

/* Merges (spec 2.4): "LEFT RIGHT", split at the first space after byte 0; rank = index.
 * Llama 3 has 280147 of them, so this is the hot part of loading. It works in batches:
 * hash a batch and prefetch the slots, then resolve it while the next loads are in flight;
 * the (pair -> rank, result) table is filled the same way. */
#define MERGE_BATCH 16

static void merge_insert(ll_vocab *v, ll_merge_slot m) {
    size_t i = merge_slot_of(m.key, v->merges_mask);
    while (v->merges[i].key != 0 && v->merges[i].key != m.key) i = (i + 1) & v->merges_mask;
    if (v->merges[i].key == 0) v->merges[i] = m;   /* a repeated pair keeps its first rank */
}

static ll_status build_merges(ll_vocab *v, const ll_gguf_kv *kv, ll_error *err) {
    uint64_t n = kv->v.arr.n;
    size_t cap = pow2_at_least((size_t)n + (size_t)n / 2 + 1);   /* load <= 2/3 */
    v->merges = ll_calloc(cap, sizeof *v->merges);
    if (!v->merges)
        return ll_fail(err, LL_ERR_NOMEM, "vocab: no memory for %llu merges", (unsigned long long)n);
    v->merges_mask = cap - 1;
    uint64_t n_bad = 0, first_bad = 0;
    ll_merge_slot done[MERGE_BATCH];   /* resolved in the previous batch, slots prefetched */
    size_t n_done = 0;
    struct { const char *l, *r; size_t nl, nr; uint64_t hl, hr, hj; } q[MERGE_BATCH];
    for (uint64_t k0 = 0; k0 < n; k0 += MERGE_BATCH) {
        size_t nb = n - k0 < MERGE_BATCH ? (size_t)(n - k0) : MERGE_BATCH;
        for (size_t j = 0; j < nb; j++) {
            ll_str m = kv->v.arr.strs[k0 + j];
            const char *sp = m.n > 1 ? memchr(m.p + 1, ' ', m.n - 1) : NULL;
            if (!sp) { q[j].l = NULL; continue; }
            q[j].l = m.p;
            q[j].nl = (size_t)(sp - m.p);
            q[j].r = sp + 1;
            q[j].nr = m.n - q[j].nl - 1;
            uint64_t hl = fnv_add(FNV_BASIS, q[j].l, q[j].nl);
            q[j].hl = hash_final(hl);
            q[j].hr = hash_final(fnv_add(FNV_BASIS, q[j].r, q[j].nr));
            q[j].hj = hash_final(fnv_add(hl, q[j].r, q[j].nr));
            __builtin_prefetch(&v->map[q[j].hl & v->map_mask]);
            __builtin_prefetch(&v->map[q[j].hr & v->map_mask]);
            __builtin_prefetch(&v->map[q[j].hj & v->map_mask]);
        }
        for (size_t j = 0; j < n_done; j++) merge_insert(v, done[j]);
        n_done = 0;
        for (size_t j = 0; j < nb; j++) {
            int32_t l = -1, r = -1, res = -1;
            if (q[j].l) {
                l = find_hashed(v, q[j].hl, q[j].l, q[j].nl, NULL, 0);
                r = l < 0 ? -1 : find_hashed(v, q[j].hr, q[j].r, q[j].nr, NULL, 0);
                res = r < 0 ? -1 : find_hashed(v, q[j].hj, q[j].l, q[j].nl, q[j].r, q[j].nr);
            }
            if (res < 0) {   /* G65: no space, or a half or the result not in the vocab */
                if (n_bad++ == 0) first_bad = k0 + j;
                continue;
            }
            done[n_done] = (ll_merge_slot){ merge_key(l, r), (int32_t)(k0 + j), res };
            __builtin_prefetch(&v->merges[merge_slot_of(done[n_done].key, v->merges_mask)], 1);
            n_done++;
        }
    }
    for (size_t j = 0; j < n_done; j++) merge_insert(v, done[j]);
    v->n_merges = (int32_t)n;
    if (n_bad)
        LL_WARN("vocab: skipped %llu of %llu merges (first bad at index %llu)",
                (unsigned long long)n_bad, (unsigned long long)n, (unsigned long long)first_bad);
    return LL_OK;
}

/* spec 5 order: longer text first, equal lengths by id */
static int special_before(const ll_vocab *v, int32_t x, int32_t y) {
    uint32_t lx = v->text_off[x + 1] - v->text_off[x], ly = v->text_off[y + 1] - v->text_off[y];
    return lx != ly ? lx > ly : x < y;
}

/* stable merge sort (qsort has no context argument in C11) */
static void sort_ids(int32_t *a, int32_t *tmp, size_t n, const ll_vocab *v) {
    if (n < 2) return;
    size_t h = n / 2;
    sort_ids(a, tmp, h, v);
    sort_ids(a + h, tmp, n - h, v);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = special_before(v, a[j], a[i]) ? a[j++] : a[i++];
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

/* tokenizer.ggml.model and tokenizer.ggml.pre (G67, G68): which tokenizer, which splitter. */
static ll_status vocab_read_model(ll_vocab *v, const ll_gguf *g, ll_error *err) {
    ll_str model = { 0 };
    bool found = false;
    ll_status st = ll_gguf_get_str(g, "tokenizer.ggml.model", &model, &found, err);
    if (st != LL_OK) return st;
    if (!found) return ll_fail(err, LL_ERR_FORMAT, "vocab: missing tokenizer.ggml.model");
    if (ll_str_eq_c(model, "llama")) v->kind = LL_VOCAB_SPM;
    else if (ll_str_eq_c(model, "gpt2")) v->kind = LL_VOCAB_BPE;
    else
        return ll_fail(err, LL_ERR_UNSUPPORTED, "vocab: tokenizer.ggml.model '%.*s' is not supported",
                       (int)(model.n > 64 ? 64 : model.n), model.p);
    return LL_OK;
}

static ll_status vocab_read_pre(ll_vocab *v, const ll_gguf *g, ll_error *err) {
    ll_str pre = { 0 };
    bool found = false;
    ll_status st = ll_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &found, err);
    if (st != LL_OK) return st;
    v->pre = LL_PRE_DEFAULT;
    if (v->kind != LL_VOCAB_BPE) return LL_OK;   /* SPM has no pre-tokenizer */
    if (!found) LL_WARN("vocab: tokenizer.ggml.pre missing; using the default pre-tokenizer");
    else if (ll_str_eq_c(pre, "llama-bpe") || ll_str_eq_c(pre, "llama3") || ll_str_eq_c(pre, "llama-v3"))
        v->pre = LL_PRE_LLAMA3;
    else if (ll_str_eq_c(pre, "smollm")) v->pre = LL_PRE_SMOLLM;
    else if (!ll_str_eq_c(pre, "default") && !ll_str_eq_c(pre, "gpt2"))
        return ll_fail(err, LL_ERR_UNSUPPORTED, "vocab: pre-tokenizer '%.*s' is not supported",
                       (int)(pre.n > 64 ? 64 : pre.n), pre.p);
    return LL_OK;
}

/* tokenizer.ggml.tokens (G59, G61, G62): sets n_tokens and max_text_len, and *total to the
 * bytes of all texts, each checked against its cap before anything is allocated. */
static ll_status vocab_check_tokens(ll_vocab *v, const ll_gguf *g, const ll_gguf_kv **tk,
                                    uint32_t *total, ll_error *err) {
    bool found = false;
    ll_status st = ll_gguf_get_arr(g, "tokenizer.ggml.tokens", LL_GGUF_TYPE_STRING, tk, &found, err);
    if (st != LL_OK) return st;
    if (!found || (*tk)->v.arr.n == 0) return ll_fail(err, LL_ERR_FORMAT, "vocab is empty");
    if ((*tk)->v.arr.n > (uint64_t)INT32_MAX - 1)
        return ll_fail(err, LL_ERR_LIMIT, "vocab: %llu tokens", (unsigned long long)(*tk)->v.arr.n);
    int32_t n = (int32_t)(*tk)->v.arr.n;
    v->n_tokens = n;
    uint64_t sum = 0;
    int32_t n_empty = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t len = (*tk)->v.arr.strs[i].n;
        if (len > LL_VOCAB_MAX_TOKEN_BYTES)
            return ll_fail(err, LL_ERR_LIMIT, "vocab: token %d text is %zu bytes (limit %u)", i, len,
                           LL_VOCAB_MAX_TOKEN_BYTES);
        if (len == 0) n_empty++;
        if (len > v->max_text_len) v->max_text_len = (uint32_t)len;
        sum += len;
    }
    if (sum > UINT32_MAX)
        return ll_fail(err, LL_ERR_LIMIT, "vocab: token texts total %llu bytes", (unsigned long long)sum);
    if (n_empty) LL_WARN("vocab: %d empty token texts (they never match input)", n_empty);
    *total = (uint32_t)sum;
    return LL_OK;
}

/* tokenizer.ggml.token_type and tokenizer.ggml.scores, both optional; when present they must
 * have one entry per token (G57). Scores may be INT32 or FLOAT32. *tt, *sc: NULL when absent. */
static ll_status vocab_find_types_scores(const ll_gguf *g, int32_t n, const ll_gguf_kv **tt,
                                         const ll_gguf_kv **sc, ll_error *err) {
    bool found = false;
    *tt = *sc = NULL;
    ll_status st = ll_gguf_get_arr(g, "tokenizer.ggml.token_type", LL_GGUF_TYPE_INT32, tt, &found, err);
    if (st != LL_OK) return st;
    if (*tt && (*tt)->v.arr.n != (uint64_t)n)
        return ll_fail(err, LL_ERR_FORMAT, "vocab: tokenizer.ggml.token_type has %llu entries, tokens has %d",
                       (unsigned long long)(*tt)->v.arr.n, n);
    const ll_gguf_kv *skv = ll_gguf_find(g, "tokenizer.ggml.scores");
    if (!skv) return LL_OK;
    uint32_t et = skv->type == LL_GGUF_TYPE_ARRAY ? skv->v.arr.type : LL_GGUF_TYPE_FLOAT32;
    if (et != LL_GGUF_TYPE_INT32) et = LL_GGUF_TYPE_FLOAT32;
    if ((st = ll_gguf_get_arr(g, "tokenizer.ggml.scores", et, sc, &found, err)) != LL_OK) return st;
    if ((*sc)->v.arr.n != (uint64_t)n)
        return ll_fail(err, LL_ERR_FORMAT, "vocab: tokenizer.ggml.scores has %llu entries, tokens has %d",
                       (unsigned long long)(*sc)->v.arr.n, n);
    return LL_OK;
}

/* The per-token tables and the text -> id map (at most half full); ll_vocab_free frees them. */
static ll_status vocab_alloc_tables(ll_vocab *v, uint32_t total, bool has_scores, ll_error *err) {
    int32_t n = v->n_tokens;
    v->text = ll_malloc((size_t)total);
    v->text_off = ll_malloc_array((size_t)n + 1, sizeof *v->text_off);
    v->type = ll_malloc((size_t)n);
    v->eog = ll_calloc((size_t)n, 1);
    size_t map_cap = pow2_at_least((size_t)n * 2);
    v->map = ll_calloc(map_cap, sizeof *v->map);
    v->map_mask = map_cap - 1;
    if (has_scores) v->score = ll_malloc_array((size_t)n, sizeof *v->score);
    if (!v->text || !v->text_off || !v->type || !v->eog || !v->map || (has_scores && !v->score))
        return ll_fail(err, LL_ERR_NOMEM, "vocab: out of memory for %d tokens", n);
    return LL_OK;
}

/* Copy texts, types (G63: outside 1..6 -> NORMAL) and scores (NaN -> -Inf) into the tables. */
static void vocab_copy_tokens(ll_vocab *v, const ll_gguf_kv *tk, const ll_gguf_kv *tt,
                              const ll_gguf_kv *sc) {
    int32_t n = v->n_tokens;
    uint32_t off = 0;
    int32_t n_badtype = 0;
    for (int32_t i = 0; i < n; i++) {
        ll_str s = tk->v.arr.strs[i];
        v->text_off[i] = off;
        if (s.n) memcpy(v->text + off, s.p, s.n);
        off += (uint32_t)s.n;
        int32_t t = LL_TOKTYPE_NORMAL;
        if (tt) memcpy(&t, (const char *)tt->v.arr.data + 4 * (size_t)i, 4);
        if (t < 1 || t > 6) { n_badtype++; t = LL_TOKTYPE_NORMAL; }   /* G63 */
        v->type[i] = (uint8_t)t;
        if (sc) {
            float f;
            if (sc->v.arr.type == LL_GGUF_TYPE_INT32) {
                int32_t x;
                memcpy(&x, (const char *)sc->v.arr.data + 4 * (size_t)i, 4);
                f = (float)x;
            } else {
                memcpy(&f, (const char *)sc->v.arr.data + 4 * (size_t)i, 4);
            }
            v->score[i] = f == f ? f : -INFINITY;   /* a NaN score would break the ordering */
        }
    }
    v->text_off[n] = off;
    if (n_badtype) LL_WARN("vocab: %d token types outside 1..6 treated as normal", n_badtype);
}

/* Fill the text -> id map; demote malformed byte tokens (G64) to text. */
static void vocab_index_texts(ll_vocab *v) {
    int32_t n_badbyte = 0, n_dup = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        ll_str s = vocab_text(v, i);
        if (v->type[i] == LL_TOKTYPE_BYTE && byte_token_value(s) < 0) {   /* G64 */
            n_badbyte++;
            v->type[i] = LL_TOKTYPE_NORMAL;
        }
        if (s.n == 0) continue;   /* G61: never matches */
        uint64_t hash = hash_final(fnv_add(FNV_BASIS, s.p, s.n));
        uint32_t tag = (uint32_t)(hash >> 32);
        size_t h = (size_t)hash & v->map_mask;
        for (;;) {
            struct ll_map_slot *e = &v->map[h];
            if (e->id1 == 0) {
                *e = (struct ll_map_slot){ tag, i + 1, v->text_off[i], (uint32_t)s.n };
                break;
            }
            if (e->tag == tag && e->len == s.n && memcmp(v->text + e->off, s.p, s.n) == 0) {
                n_dup++;   /* G60: the lowest id keeps the text */
                break;
            }
            h = (h + 1) & v->map_mask;
        }
    }
    if (n_badbyte) LL_WARN("vocab: %d byte tokens not of the form <0xXX> treated as text", n_badbyte);
    if (n_dup) LL_WARN("vocab: %d duplicate token texts (the lowest id keeps the text)", n_dup);
}

/* Special ids, with the defaults of llama.cpp for keys that are absent (G58). */
static ll_status vocab_read_special_ids(ll_vocab *v, const ll_gguf *g, ll_error *err) {
    int32_t n = v->n_tokens;
    ll_status st;
    if (v->kind == LL_VOCAB_SPM) { v->bos = 1; v->eos = 2; v->unk = 0; }
    else { v->bos = 11; v->eos = 11; }
    if ((st = read_special_id(g, "tokenizer.ggml.bos_token_id", n, &v->bos, err)) != LL_OK ||
        (st = read_special_id(g, "tokenizer.ggml.eos_token_id", n, &v->eos, err)) != LL_OK ||
        (st = read_special_id(g, "tokenizer.ggml.unknown_token_id", n, &v->unk, err)) != LL_OK ||
        (st = read_special_id(g, "tokenizer.ggml.seperator_token_id", n, &v->sep, err)) != LL_OK ||
        (st = read_special_id(g, "tokenizer.ggml.padding_token_id", n, &v->pad, err)) != LL_OK ||
        (st = read_special_id(g, "tokenizer.ggml.eot_token_id", n, &v->eot, err)) != LL_OK ||
        (st = read_special_id(g, "tokenizer.ggml.eom_token_id", n, &v->eom, err)) != LL_OK)
        return st;
    return LL_OK;
}

/* BOS/EOS/space-prefix defaults (spec 1), then the keys that override them. */
static ll_status vocab_read_flags(ll_vocab *v, const ll_gguf *g, ll_error *err) {
    ll_status st;
    v->add_bos = v->kind == LL_VOCAB_SPM || v->pre == LL_PRE_LLAMA3;
    v->add_eos = false;
    v->add_space_prefix = v->kind == LL_VOCAB_SPM;
    v->clean_spaces = v->kind == LL_VOCAB_BPE && v->pre != LL_PRE_SMOLLM;
    v->ignore_merges = v->kind == LL_VOCAB_BPE && v->pre == LL_PRE_LLAMA3;
    if ((st = read_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err)) != LL_OK ||
        (st = read_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err)) != LL_OK)
        return st;
    if (v->kind == LL_VOCAB_SPM)
        return read_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err);
    return LL_OK;
}

/* End-of-turn names become CONTROL and end of generation (filling eot/eom when the keys did
 * not); eos, eot and eom always end generation. */
static void vocab_mark_eog(ll_vocab *v) {
    const size_t n_eot = sizeof eot_names / sizeof eot_names[0];
    const size_t n_eom = sizeof eom_names / sizeof eom_names[0];
    for (size_t k = 0; k < n_eot + n_eom; k++) {
        bool is_eom = k >= n_eot;
        const char *name = is_eom ? eom_names[k - n_eot] : eot_names[k];
        int32_t id = vocab_find(v, name, strlen(name));
        if (id < 0) continue;
        if (v->type[id] != LL_TOKTYPE_CONTROL) {
            LL_INFO("vocab: token %d '%s' is an end-of-turn token; marked CONTROL", id, name);
            v->type[id] = LL_TOKTYPE_CONTROL;
        }
        v->eog[id] = 1;
        if (is_eom && v->eom < 0) v->eom = id;
        if (!is_eom && v->eot < 0) v->eot = id;
    }
    if (v->eos >= 0) v->eog[v->eos] = 1;
    if (v->eot >= 0) v->eog[v->eot] = 1;
    if (v->eom >= 0) v->eog[v->eom] = 1;
}

/* BPE merges (G65, G66): required, but only built when the vocab will encode. */
static ll_status vocab_read_merges(ll_vocab *v, const ll_gguf *g, ll_error *err) {
    if (v->kind != LL_VOCAB_BPE) return LL_OK;
    const ll_gguf_kv *mg = NULL;
    bool found = false;
    ll_status st = ll_gguf_get_arr(g, "tokenizer.ggml.merges", LL_GGUF_TYPE_STRING, &mg, &found, err);
    if (st != LL_OK) return st;
    if (!found) return ll_fail(err, LL_ERR_FORMAT, "BPE vocab has no merges");
    return v->decode_only ? LL_OK : build_merges(v, mg, err);
}

/* The token of each byte: BPE's mapped code point (spec 2.4); SPM's <0xXX>, else the 1-byte
 * text, else unk. */
static void vocab_map_bytes(ll_vocab *v) {
    for (int b = 0; b < 256; b++) {
        char t[8];
        if (v->kind == LL_VOCAB_BPE) {
            size_t k = ll_utf8_encode(ll_bpe_byte_to_cpt((unsigned char)b), (unsigned char *)t);
            v->byte_tok[b] = vocab_find(v, t, k);
        } else {
            snprintf(t, sizeof t, "<0x%02X>", b);
            int32_t id = vocab_find(v, t, 6);
            if (id < 0) { t[0] = (char)b; id = vocab_find(v, t, 1); }
            if (id < 0) id = v->unk;
            v->byte_tok[b] = id;
        }
    }
}

/* Special-token candidates (spec 5): non-empty CONTROL, USER_DEFINED and UNKNOWN tokens. */
static bool vocab_is_special(const ll_vocab *v, int32_t i) {
    uint8_t t = v->type[i];
    return (t == LL_TOKTYPE_CONTROL || t == LL_TOKTYPE_USER_DEFINED || t == LL_TOKTYPE_UNKNOWN) &&
           v->text_off[i + 1] > v->text_off[i];
}

/* Collect the special-token candidates, longest text first (special_before). */
static ll_status vocab_collect_special(ll_vocab *v, ll_error *err) {
    int32_t n_special = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (vocab_is_special(v, i)) n_special++;
    if (!n_special) return LL_OK;
    v->special = ll_malloc_array((size_t)n_special, sizeof *v->special);
    int32_t *tmp = ll_malloc_array((size_t)n_special, sizeof *tmp);
    if (!v->special || !tmp) {
        ll_free(tmp);
        return ll_fail(err, LL_ERR_NOMEM, "vocab: out of memory");
    }
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (vocab_is_special(v, i)) v->special[v->n_special++] = i;
    sort_ids(v->special, tmp, (size_t)n_special, v);
    ll_free(tmp);
    return LL_OK;
}

/* Build a vocab from a GGUF's tokenizer keys. The order of the steps is the order of the
 * checks, so a file with several faults reports the same first one. decode_only skips the
 * BPE merge table (ll_vocab_load_decode_only). */
static ll_status vocab_build(ll_vocab **out, const ll_gguf *g, bool decode_only, ll_error *err) {
    *out = NULL;
    ll_status st;
    ll_vocab *v = ll_calloc(1, sizeof *v);
    if (!v) return ll_fail(err, LL_ERR_NOMEM, "vocab: out of memory");
    static atomic_uint_fast64_t serials;
    v->bos = v->eos = v->unk = v->eot = v->eom = v->pad = v->sep = -1;
    v->decode_only = decode_only;
    v->serial = atomic_fetch_add(&serials, 1) + 1;

    const ll_gguf_kv *tk = NULL, *tt = NULL, *sc = NULL;
    uint32_t total = 0;
    if ((st = vocab_read_model(v, g, err)) != LL_OK ||
        (st = vocab_read_pre(v, g, err)) != LL_OK ||
        (st = vocab_check_tokens(v, g, &tk, &total, err)) != LL_OK ||
        (st = vocab_find_types_scores(g, v->n_tokens, &tt, &sc, err)) != LL_OK ||
        (st = vocab_alloc_tables(v, total, sc != NULL, err)) != LL_OK)
        goto fail;
    vocab_copy_tokens(v, tk, tt, sc);
    vocab_index_texts(v);
    if ((st = vocab_read_special_ids(v, g, err)) != LL_OK ||
        (st = vocab_read_flags(v, g, err)) != LL_OK)
        goto fail;
    vocab_mark_eog(v);
    if ((st = vocab_read_merges(v, g, err)) != LL_OK) goto fail;
    vocab_map_bytes(v);
    if ((st = vocab_collect_special(v, err)) != LL_OK) goto fail;
    *out = v;
    return LL_OK;
fail:
    ll_vocab_free(v);
    return st;
}

ll_status ll_vocab_from_gguf(ll_vocab **out, const ll_gguf *g, ll_error *err) {
    return vocab_build(out, g, false, err);
}

static ll_status vocab_load(ll_vocab **out, const char *path, bool decode_only, ll_error *err) {
    *out = NULL;
    ll_gguf *g = NULL;
    ll_status st = ll_gguf_open(&g, path, err);
    if (st != LL_OK) return st;
    st = vocab_build(out, g, decode_only, err);
    ll_gguf_close(g);
    return st;
}

ll_status ll_vocab_load(ll_vocab **out, const char *path, ll_error *err) {
    return vocab_load(out, path, false, err);
}

ll_status ll_vocab_load_decode_only(ll_vocab **out, const char *path, ll_error *err) {
    return vocab_load(out, path, true, err);
}

void ll_vocab_free(ll_vocab *v) {
    if (!v) return;
    ll_free(v->text);
    ll_free(v->text_off);
    ll_free(v->type);
    ll_free(v->score);
    ll_free(v->eog);
    ll_free(v->map);
    ll_free(v->merges);
    ll_free(v->special);
    ll_free(v);
}

int32_t ll_vocab_n_tokens(const ll_vocab *v) { return v->n_tokens; }
uint64_t ll_vocab_serial(const ll_vocab *v) { return v->serial; }
int32_t ll_vocab_bos(const ll_vocab *v) { return v->bos; }
int32_t ll_vocab_eos(const ll_vocab *v) { return v->eos; }
bool    ll_vocab_add_bos(const ll_vocab *v) { return v->add_bos && v->bos >= 0; }
bool    ll_vocab_is_eog(const ll_vocab *v, int32_t id) {
    return id >= 0 && id < v->n_tokens && v->eog[id];
}

/* ---- encode ---------------------------------------------------------------------------- */

typedef struct { size_t off, len; int32_t id; } fragment;   /* id -1: raw text */

typedef struct {
    fragment *a;
    size_t n, cap;
} frag_list;

static bool frag_push(frag_list *l, size_t off, size_t len, int32_t id) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        fragment *a = ll_realloc(l->a, cap * sizeof *a);
        if (!a) return false;
        l->a = a;
        l->cap = cap;
    }
    l->a[l->n++] = (fragment){ off, len, id };
    return true;
}

/* Spec 5: cut every occurrence of each special text, longest first, out of the raw
 * fragments that are left. */
static ll_status partition(const ll_vocab *v, const char *text, size_t len, bool parse_special,
                           frag_list *fl, ll_error *err) {
    fl->n = 0;
    if (len && !frag_push(fl, 0, len, -1)) goto nomem;
    frag_list next = { 0 };
    for (int32_t k = 0; k < v->n_special && fl->n; k++) {
        int32_t id = v->special[k];
        uint8_t t = v->type[id];
        if (!parse_special && t != LL_TOKTYPE_USER_DEFINED) continue;
        ll_str s = vocab_text(v, id);
        if (s.n > len || !memmem(text, len, s.p, s.n)) continue;   /* cheap global test */
        next.n = 0;
        for (size_t f = 0; f < fl->n; f++) {
            fragment fr = fl->a[f];
            if (fr.id >= 0) { if (!frag_push(&next, fr.off, fr.len, fr.id)) goto nomem2; continue; }
            size_t pos = fr.off, end = fr.off + fr.len;
            while (pos < end) {
                const char *hit = end - pos >= s.n ? memmem(text + pos, end - pos, s.p, s.n) : NULL;
                if (!hit) { if (!frag_push(&next, pos, end - pos, -1)) goto nomem2; break; }
                size_t h = (size_t)(hit - text);
                if (h > pos && !frag_push(&next, pos, h - pos, -1)) goto nomem2;
                if (!frag_push(&next, h, s.n, id)) goto nomem2;
                pos = h + s.n;
            }
        }
        frag_list swap = *fl;
        *fl = next;
        next = swap;
    }
    ll_free(next.a);
    return LL_OK;
nomem2:
    ll_free(next.a);
nomem:
    return ll_fail(err, LL_ERR_NOMEM, "tokenize: out of memory");
}

ll_status ll_tok_encode(const ll_vocab *v, const char *text, size_t len, bool add_special,
                        bool parse_special, int32_t *ids, size_t cap, size_t *n_ids,
                        ll_error *err) {
    *n_ids = 0;
    if (!text && len) return ll_fail(err, LL_ERR_ARG, "tokenize: NULL text");
    if (v->decode_only) return ll_fail(err, LL_ERR_ARG, "tokenize: vocab was loaded for decoding only");
    tok_out out = { ids, ids ? cap : 0, 0 };
    frag_list fl = { 0 };
    tok_scratch sc = { 0 };
    ll_status st = partition(v, text, len, parse_special, &fl, err);
    if (st != LL_OK) goto done;
    if (add_special && v->add_bos && v->bos >= 0) tok_emit(&out, v->bos);
    bool prev_special = true;   /* SPM: the first raw fragment gets the space prefix */
    for (size_t f = 0; f < fl.n && st == LL_OK; f++) {
        fragment fr = fl.a[f];
        if (fr.id >= 0) { tok_emit(&out, fr.id); prev_special = true; continue; }
        if (v->kind == LL_VOCAB_BPE)
            st = ll_bpe_encode(v, text + fr.off, fr.len, &sc, &out, err);
        else
            st = ll_spm_encode(v, text + fr.off, fr.len, v->add_space_prefix && prev_special,
                               &sc, &out, err);
        prev_special = false;
    }
    if (st == LL_OK && add_special && v->add_eos && v->eos >= 0) tok_emit(&out, v->eos);
    if (st == LL_OK) *n_ids = out.n;
done:
    ll_free(fl.a);
    tok_scratch_free(&sc);
    return st;
}

/* ---- decode ---------------------------------------------------------------------------- */

/* Appends to buf[*n..cap) while there is room; *n counts every byte. */
static void put(char *buf, size_t cap, size_t *n, const char *p, size_t k) {
    if (*n < cap) memcpy(buf + *n, p, k < cap - *n ? k : cap - *n);
    *n += k;
}

/* Spec 4.1: piece of one token, lstrip leading spaces dropped. */
static size_t piece(const ll_vocab *v, int32_t id, bool special, int lstrip, char *buf, size_t cap) {
    if (id < 0 || id >= v->n_tokens) return 0;
    ll_str t = vocab_text(v, id);
    uint8_t type = v->type[id];
    size_t n = 0;
    if (type == LL_TOKTYPE_CONTROL || type == LL_TOKTYPE_UNKNOWN) {
        if (!special) return 0;
    } else if (type == LL_TOKTYPE_USER_DEFINED) {
        /* text as stored */
    } else if (type == LL_TOKTYPE_BYTE) {
        if (v->kind == LL_VOCAB_BPE) return 0;
        char b = (char)byte_token_value(t);
        if (lstrip > 0 && b == ' ') return 0;
        put(buf, cap, &n, &b, 1);
        return n;
    } else if (type != LL_TOKTYPE_NORMAL) {
        return 0;   /* UNUSED */
    } else if (v->kind == LL_VOCAB_BPE) {
        /* inverse byte mapping, code point by code point; unmapped code points are dropped */
        size_t i = 0;
        while (i < t.n) {
            uint32_t cp;
            i += ll_utf8_decode1((const unsigned char *)t.p + i, t.n - i, &cp);
            int b = ll_bpe_cpt_to_byte(cp);
            if (b < 0) continue;
            if (lstrip > 0 && n == 0 && b == ' ') { lstrip--; continue; }
            lstrip = 0;
            char c = (char)b;
            put(buf, cap, &n, &c, 1);
        }
        return n;
    } else {
        /* SPM: U+2581 becomes a space */
        size_t i = 0;
        while (i < t.n) {
            const char *p = t.p + i;
            size_t k = 1;
            char c = *p;
            if (t.n - i >= 3 && memcmp(p, "\xE2\x96\x81", 3) == 0) { c = ' '; k = 3; }
            i += k;
            if (c == ' ' && lstrip > 0 && n == 0) { lstrip--; continue; }
            lstrip = 0;
            put(buf, cap, &n, k == 3 ? " " : p, 1);
        }
        return n;
    }
    size_t skip = 0;
    while (skip < t.n && (int)skip < lstrip && t.p[skip] == ' ') skip++;
    put(buf, cap, &n, t.p + skip, t.n - skip);
    return n;
}

size_t ll_tok_piece(const ll_vocab *v, int32_t id, bool special, char *buf, size_t cap) {
    return piece(v, id, special, 0, buf, cap);
}

/* Spec 4.3, three passes in place; returns the new length. Pass 2 blanks the space after a
 * lone apostrophe in the buffer itself, which the next step of the same pass then sees. */
static size_t clean_spaces(char *t, size_t n) {
    if (n == 0) return 0;
    size_t w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) w--;
        t[w++] = x;
    }
    n = w;
    w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
            w--;
            t[++i] = '\0';
        }
        t[w++] = x;
    }
    n = w;
    w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm') w--;
            else if (i + 2 < n && ((x1 == 'r' && t[i + 2] == 'e') || (x1 == 'v' && t[i + 2] == 'e'))) w--;
        }
        t[w++] = x;
    }
    return w;
}

size_t ll_tok_decode(const ll_vocab *v, const int32_t *ids, size_t n, bool remove_special,
                     bool unparse_special, char *buf, size_t cap) {
    bool strip_first = v->add_space_prefix;   /* spec 4.2 step 1 */
    if (remove_special && v->add_bos && n > 0 && ids[0] == v->bos) {
        strip_first = false;
        ids++;
        n--;
    }
    if (remove_special && v->add_eos && n > 0 && ids[n - 1] == v->eos) n--;
    if (!buf) cap = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += piece(v, ids[i], unparse_special, i == 0 && strip_first, NULL, 0);
    if (!v->clean_spaces && total <= cap) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += piece(v, ids[i], unparse_special, i == 0 && strip_first, buf + k, cap - k);
        return k;
    }
    /* the clean-up needs the whole text: assemble in buf when it fits, else in a temporary */
    char *t = total <= cap ? buf : ll_malloc(total ? total : 1);
    if (!t) return 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += piece(v, ids[i], unparse_special, i == 0 && strip_first, t + k, total - k);
    if (v->clean_spaces) k = clean_spaces(t, k);
    if (t != buf) {
        if (cap) memcpy(buf, t, k < cap ? k : cap);
        ll_free(t);
    }
    return k;
}
