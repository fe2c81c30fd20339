/* vocab_impl: the vocabulary's layout, shared by vocab.c (load, special tokens, decode),
 * bpe.c, spm.c and pretok.c. Internal to src/tokenizer/. */
#ifndef LL_TOKENIZER_VOCAB_IMPL_H
#define LL_TOKENIZER_VOCAB_IMPL_H

#include "core/core.h"

#include <stdbool.h>
#include <stdint.h>

/* tokenizer.ggml.token_type values (spec 1). */
enum {
    LL_TOKTYPE_UNDEFINED = 0, LL_TOKTYPE_NORMAL = 1, LL_TOKTYPE_UNKNOWN = 2,
    LL_TOKTYPE_CONTROL = 3, LL_TOKTYPE_USER_DEFINED = 4, LL_TOKTYPE_UNUSED = 5,
    LL_TOKTYPE_BYTE = 6,
};

typedef enum { LL_VOCAB_SPM, LL_VOCAB_BPE } ll_vocab_kind;
typedef enum { LL_PRE_DEFAULT, LL_PRE_LLAMA3, LL_PRE_SMOLLM } ll_pre_kind;

/* Caps. A token text longer than this is refused at load (G62). */
#define LL_VOCAB_MAX_TOKEN_BYTES (64u << 10)

/* One BPE merge, keyed by the ids of its two halves. */
typedef struct {
    uint64_t key;      /* (left id << 32) | right id; 0 marks an empty slot (ids are +1) */
    int32_t  rank;     /* index in tokenizer.ggml.merges: lower merges first */
    int32_t  result;   /* id of the joined text */
} ll_merge_slot;

struct ll_vocab {
    ll_vocab_kind kind;
    ll_pre_kind   pre;
    int32_t  n_tokens;

    char     *text;          /* all token texts back to back (not NUL-terminated) */
    uint32_t *text_off;      /* (n_tokens + 1) offsets into text: token i is [off[i], off[i+1]) */
    uint8_t  *type;          /* (n_tokens) LL_TOKTYPE_*, after the load-time adjustments */
    float    *score;         /* (n_tokens) SPM merge priority; NULL for BPE */
    uint8_t  *eog;           /* (n_tokens) 1 for end-of-generation tokens */
    uint32_t  max_text_len;

    /* text -> id: open addressing, sized to a power of two, at most half full. A slot holds
     * the id + 1 (0 = empty), the top 32 bits of the text's hash and where the text is, so
     * a probe touches at most the slot and the text itself. The lowest id wins for duplicate texts (G60); empty texts are not in
     * it (G61). */
    struct ll_map_slot { uint32_t tag; int32_t id1; uint32_t off, len; } *map;
    size_t    map_mask;

    /* BPE merges by (left id, right id) pair, same scheme. */
    ll_merge_slot *merges;
    size_t    merges_mask;
    int32_t   n_merges;

    /* BPE: id of the mapped single-byte text of each byte (spec 2.4), -1 when absent.
     * SPM: id of the byte-fallback token for each byte (<0xXX>, else the 1-byte text, else
     * unk, else -1). */
    int32_t   byte_tok[256];

    /* special-token candidates (CONTROL, USER_DEFINED, UNKNOWN): longest text first, equal
     * lengths by id (spec 5). */
    int32_t  *special;
    int32_t   n_special;

    int32_t bos, eos, unk, eot, eom, pad, sep;   /* -1 when absent */
    bool add_bos, add_eos, add_space_prefix, clean_spaces, ignore_merges;
    bool decode_only;   /* loaded without merges (ll_vocab_load_decode_only) */
    uint64_t serial;    /* ll_vocab_serial */
};

static inline ll_str vocab_text(const ll_vocab *v, int32_t id) {
    ll_str s = { v->text + v->text_off[id], v->text_off[id + 1] - v->text_off[id] };
    return s;
}

/* Slot of a merge pair in the merges table: splitmix64's finalizer spreads every key bit. */
static inline size_t merge_slot_of(uint64_t key, size_t mask) {
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ull;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebull;
    key ^= key >> 31;
    return (size_t)key & mask;
}

static inline uint64_t merge_key(int32_t left, int32_t right) {
    return ((uint64_t)(uint32_t)(left + 1) << 32) | (uint32_t)(right + 1);
}

/* id of the token whose text is exactly s[0..n), -1 when none. */
int32_t vocab_find(const ll_vocab *v, const char *s, size_t n);

/* Collects output ids: writes while there is room, always counts. */
typedef struct {
    int32_t *ids;
    size_t   cap, n;
} tok_out;

static inline void tok_emit(tok_out *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* ---- max-heap of candidate pairs (bpe.c, spm.c): larger key first, then smaller left ---- */
typedef struct {
    double   key;      /* BPE: -rank; SPM: score */
    int32_t  left, right;   /* symbol indices */
    uint32_t size;     /* joined byte length when queued (a stale entry no longer matches) */
} tok_pair;

typedef struct {
    tok_pair *a;
    size_t    n, cap;
} tok_heap;

bool tok_heap_push(tok_heap *h, tok_pair p);   /* false on allocation failure */
bool tok_heap_pop(tok_heap *h, tok_pair *p);   /* false when empty */
void tok_heap_free(tok_heap *h);

/* Per-call scratch for one encode call; grown as needed, freed at the end. */
typedef struct {
    uint32_t *cpts;      /* code points of the current fragment */
    size_t   *ends;      /* pre-token end offsets (in code points) */
    size_t    cap_cpts;
    char     *buf;       /* mapped / escaped text */
    size_t    cap_buf;
    struct tok_sym { int32_t id, prev, next; uint32_t start, len; } *syms;
    size_t    cap_syms;
    tok_heap  heap;
} tok_scratch;

void tok_scratch_free(tok_scratch *s);
bool tok_scratch_reserve(tok_scratch *s, size_t n_cpts, size_t n_buf, size_t n_syms);

/* ---- pre-tokenizers (pretok.c) ----
 * Split cpts[0..n) into pre-tokens; ends[k] is the end (exclusive) of pre-token k.
 * ends needs room for n entries. Returns the count. */
size_t ll_pretok_split(ll_pre_kind pre, const uint32_t *cpts, size_t n, size_t *ends);

/* ---- encoders of one raw fragment ---- */
ll_status ll_bpe_encode(const ll_vocab *v, const char *s, size_t n, tok_scratch *sc,
                        tok_out *out, ll_error *err);
ll_status ll_spm_encode(const ll_vocab *v, const char *s, size_t n, bool add_prefix,
                        tok_scratch *sc, tok_out *out, ll_error *err);

/* ---- byte-level BPE mapping (spec 2.4) ---- */
uint32_t ll_bpe_byte_to_cpt(unsigned char b);
int      ll_bpe_cpt_to_byte(uint32_t cp);     /* -1 when cp is not one of the 256 */

#endif
