/* gguf: the GGUF v2/v3 container reader (gguf-and-quants.md part A; fault rows G1-G44).
 *
 * One pass over the bytes with a cursor that never reads past its end. Every count, length,
 * offset and size is checked against the bytes left, then against the caps in gguf.h, with
 * overflow-checked arithmetic, before anything is allocated from it. Keys, strings, arrays
 * and tensor data stay views into the caller's buffer or our read-only mapping; the only
 * allocations are the KV and tensor tables (bounded by bytes left / minimum encoded size),
 * one view table per string array (bounded by bytes left / 8) and two hash indexes.
 * Parsing is iterative: nested arrays are refused (G20), so nothing recurses. */
#include "gguf/gguf.h"

#include "quant/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Name lookup: open addressing over a power-of-two table of (index + 1), at most half full.
 * The hash is SipHash-1-3 with a per-file key, so a hostile file cannot precompute names that
 * all collide (2^20 tensor names probing one chain would be O(n^2)). */
typedef struct {
    uint32_t *slots;
    size_t    mask;
    uint64_t  k0, k1;
} gguf_index;

struct ll_gguf {
    const unsigned char *buf;       /* the whole file */
    size_t      size;
    void       *map;                /* non-NULL when ll_gguf_open mapped the file */
    size_t      map_len;
    uint32_t    version;
    uint32_t    alignment;
    uint64_t    data_offset;
    size_t      n_kv;               /* entries of kv parsed so far (all of them after parse) */
    ll_gguf_kv *kv;
    size_t      n_tensors;
    ll_gguf_tensor *tensors;
    gguf_index  kv_index, tensor_index;
};

typedef struct {
    const unsigned char *base, *p, *end;
} gguf_cursor;

/* Minimum encoded sizes (G11): KV = key length 8 + key 1 + type 4 + value 1;
 * tensor info = name length 8 + name 1 + n_dims 4 + one dim 8 + type 4 + offset 8. */
enum { GGUF_MIN_KV_BYTES = 14, GGUF_MIN_TENSOR_BYTES = 33, GGUF_HEADER_BYTES = 24 };

static const uint8_t gguf_type_size[LL_GGUF_TYPE_COUNT] = {
    [LL_GGUF_TYPE_UINT8] = 1, [LL_GGUF_TYPE_INT8] = 1, [LL_GGUF_TYPE_UINT16] = 2,
    [LL_GGUF_TYPE_INT16] = 2, [LL_GGUF_TYPE_UINT32] = 4, [LL_GGUF_TYPE_INT32] = 4,
    [LL_GGUF_TYPE_FLOAT32] = 4, [LL_GGUF_TYPE_BOOL] = 1, [LL_GGUF_TYPE_STRING] = 0,
    [LL_GGUF_TYPE_ARRAY] = 0, [LL_GGUF_TYPE_UINT64] = 8, [LL_GGUF_TYPE_INT64] = 8,
    [LL_GGUF_TYPE_FLOAT64] = 8,
};

const char *ll_gguf_type_name(uint32_t type) {
    static const char *const names[LL_GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
    };
    return type < LL_GGUF_TYPE_COUNT ? names[type] : "?";
}

/* ---- small helpers ---------------------------------------------------------------------- */

/* Printable rendering of a file string for messages: at most 64 bytes, \xNN escapes, "..."
 * when cut. ll_fail escapes too, but a NUL would end a %.*s early. */
typedef struct { char s[64 * 4 + 8]; } gguf_esc;

static const char *esc(gguf_esc *e, ll_str v) {
    size_t o = 0, i = 0;
    for (; i < v.n && i < 64; i++) {
        unsigned char ch = (unsigned char)v.p[i];
        if (ch >= 0x20 && ch < 0x7f) e->s[o++] = (char)ch;
        else o += (size_t)snprintf(e->s + o, sizeof e->s - o, "\\x%02x", ch);
    }
    if (i < v.n) { memcpy(e->s + o, "...", 3); o += 3; }
    e->s[o] = 0;
    return e->s;
}

static size_t cur_off(const gguf_cursor *c) { return (size_t)(c->p - c->base); }
static size_t cur_left(const gguf_cursor *c) { return (size_t)(c->end - c->p); }

static bool cur_take(gguf_cursor *c, void *dst, size_t n) {
    if (cur_left(c) < n) return false;
    memcpy(dst, c->p, n);                /* unaligned read; host is little-endian */
    c->p += n;
    return true;
}
static bool cur_u32(gguf_cursor *c, uint32_t *v) { return cur_take(c, v, sizeof *v); }
static bool cur_u64(gguf_cursor *c, uint64_t *v) { return cur_take(c, v, sizeof *v); }

static ll_status fail_trunc(ll_error *err, const gguf_cursor *c, const char *what, const char *name) {
    return ll_fail(err, LL_ERR_FORMAT, "truncated at byte %zu (file is %zu bytes) while reading %s%s%s%s",
                   cur_off(c), (size_t)(c->end - c->base), what,
                   name ? " '" : "", name ? name : "", name ? "'" : "");
}

/* Offset of the first byte that is a control character or breaks UTF-8, or SIZE_MAX when
 * s is clean. Accepts exactly the well-formed UTF-8 of Unicode 3.2+ (no overlongs,
 * surrogates or code points past U+10FFFF). */
static size_t str_first_bad(ll_str s, bool *is_control) {
    const unsigned char *p = (const unsigned char *)s.p;
    size_t i = 0;
    while (i < s.n) {
        unsigned char c = p[i];
        if (c < 0x20 || c == 0x7f) { *is_control = true; return i; }
        *is_control = false;
        if (c < 0x80) { i++; continue; }
        size_t len;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c >= 0xe0 && c <= 0xef) { len = 3; if (c == 0xe0) lo = 0xa0; if (c == 0xed) hi = 0x9f; }
        else if (c >= 0xf0 && c <= 0xf4) { len = 4; if (c == 0xf0) lo = 0x90; if (c == 0xf4) hi = 0x8f; }
        else return i;
        if (s.n - i < len) return i;
        if (p[i + 1] < lo || p[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xbf) return i;
        i += len;
    }
    return SIZE_MAX;
}

/* Spec style for keys: lower_snake segments joined by dots (G15: warn, do not refuse). */
static bool key_style_ok(ll_str k) {
    if (k.p[0] == '.' || k.p[k.n - 1] == '.') return false;
    for (size_t i = 0; i < k.n; i++) {
        char c = k.p[i];
        if (c == '.' && k.p[i + 1] == '.') return false;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) return false;
    }
    return true;
}

/* ---- hash index ------------------------------------------------------------------------- */

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
    v0 += v1; v1 = ROTL64(v1, 13); v1 ^= v0; v0 = ROTL64(v0, 32); \
    v2 += v3; v3 = ROTL64(v3, 16); v3 ^= v2; \
    v0 += v3; v3 = ROTL64(v3, 21); v3 ^= v0; \
    v2 += v1; v1 = ROTL64(v1, 17); v1 ^= v2; v2 = ROTL64(v2, 32); } while (0)

static uint64_t siphash13(uint64_t k0, uint64_t k1, const unsigned char *p, size_t n) {
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m;
        memcpy(&m, p + i, 8);
        v3 ^= m; SIPROUND; v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t k = 0; i + k < n; k++) b |= (uint64_t)p[i + k] << (8 * k);
    v3 ^= b; SIPROUND; v0 ^= b;
    v2 ^= 0xff; SIPROUND; SIPROUND; SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static bool idx_init(gguf_index *ix, size_t n, uint64_t seed) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;        /* n <= 2^20, so cap <= 2^21 */
    ix->slots = ll_calloc(cap, sizeof *ix->slots);
    if (!ix->slots) return false;
    ix->mask = cap - 1;
    ix->k0 = seed;
    ix->k1 = seed * 0x9e3779b97f4a7c15ull + 1;
    return true;
}

static ll_str idx_name(const ll_gguf *g, bool tensors, uint32_t i) {
    return tensors ? g->tensors[i].name : g->kv[i].key;
}

/* The slot holding name s, or the empty slot where it would go. */
static uint32_t *idx_slot(const ll_gguf *g, const gguf_index *ix, bool tensors, ll_str s) {
    size_t h = (size_t)siphash13(ix->k0, ix->k1, (const unsigned char *)s.p, s.n) & ix->mask;
    for (;;) {
        uint32_t v = ix->slots[h];
        if (v == 0 || ll_str_eq(idx_name(g, tensors, v - 1), s)) return &ix->slots[h];
        h = (h + 1) & ix->mask;
    }
}

/* ---- header ----------------------------------------------------------------------------- */

/* G5: name the format when the first bytes tell it. Legacy ggml magics were written as a
 * little-endian u32 ('ggjt' -> bytes "tjgg"), some tools wrote them in reading order. */
static const char *magic_hint(const unsigned char *m, size_t n) {
    static const struct { const char *bytes; const char *what; } known[] = {
        { "lmgg", "legacy GGML file" }, { "GGML", "legacy GGML file" },
        { "fmgg", "legacy GGMF file" }, { "GGMF", "legacy GGMF file" },
        { "tjgg", "legacy GGJT file" }, { "GGJT", "legacy GGJT file" },
        { "algg", "legacy GGLA (LoRA) file" }, { "GGLA", "legacy GGLA (LoRA) file" },
        { "PK\x03\x04", "zip archive, e.g. a PyTorch checkpoint" },
        { "\x80\x02\x8a\x0a", "pickle, e.g. a legacy PyTorch checkpoint" },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (memcmp(m, known[i].bytes, 4) == 0) return known[i].what;
    /* safetensors: u64 header length, then a JSON object */
    if (n >= 9 && m[8] == '{') return "safetensors file";
    if (m[0] == '{' || m[0] == '<' || m[0] == '#') return "text file";
    return NULL;
}

static ll_status gguf_read_header(ll_gguf *g, gguf_cursor *c, uint64_t *n_tensors, uint64_t *n_kv,
                                  ll_error *err) {
    size_t n = g->size;
    if (n == 0) return ll_fail(err, LL_ERR_FORMAT, "file is empty (0 bytes), not a GGUF file");
    if (n >= 4 && memcmp(g->buf, "GGUF", 4) != 0) {
        if (memcmp(g->buf, "FUGG", 4) == 0)
            return ll_fail(err, LL_ERR_UNSUPPORTED, "big-endian GGUF is not supported (magic 'FUGG')");
        gguf_esc e;
        ll_str m = { (const char *)g->buf, 4 };
        const char *hint = magic_hint(g->buf, n);
        return ll_fail(err, LL_ERR_FORMAT, "not a GGUF file (magic '%s'%s%s)", esc(&e, m),
                       hint ? ", looks like a " : "", hint ? hint : "");
    }
    if (n < GGUF_HEADER_BYTES)
        return ll_fail(err, LL_ERR_FORMAT, "truncated header: file is %zu bytes, need %d",
                       n, GGUF_HEADER_BYTES);
    c->p += 4;
    uint32_t v;
    cur_u32(c, &v);
    uint32_t swapped = __builtin_bswap32(v);
    if (v == 0) return ll_fail(err, LL_ERR_FORMAT, "GGUF version 0 is invalid");
    if (v == 1) return ll_fail(err, LL_ERR_UNSUPPORTED, "GGUFv1 is not supported; re-convert the model");
    if (v > 3 && swapped >= 1 && swapped <= 3)
        return ll_fail(err, LL_ERR_UNSUPPORTED,
                       "big-endian GGUF is not supported (version reads 0x%08x, byte-swapped %u)",
                       v, swapped);
    if (v > 3)
        return ll_fail(err, LL_ERR_UNSUPPORTED, "GGUF version %u is newer than supported (2..3)", v);
    g->version = v;
    cur_u64(c, n_tensors);
    cur_u64(c, n_kv);
    /* G10: counts are i64 in ggml; a "negative" one is a lie, not a big file. */
    if (*n_tensors >= (1ull << 63))
        return ll_fail(err, LL_ERR_FORMAT, "n_tensors at byte 8 is %llu (negative as i64)",
                       (unsigned long long)*n_tensors);
    if (*n_kv >= (1ull << 63))
        return ll_fail(err, LL_ERR_FORMAT, "n_kv at byte 16 is %llu (negative as i64)",
                       (unsigned long long)*n_kv);
    /* G11: caps, then the minimum bytes they need, all before allocating anything. */
    if (*n_kv > LL_GGUF_MAX_KV)
        return ll_fail(err, LL_ERR_LIMIT, "n_kv at byte 16 is %llu, over the cap %u",
                       (unsigned long long)*n_kv, LL_GGUF_MAX_KV);
    if (*n_tensors > LL_GGUF_MAX_TENSORS)
        return ll_fail(err, LL_ERR_LIMIT, "n_tensors at byte 8 is %llu, over the cap %u",
                       (unsigned long long)*n_tensors, LL_GGUF_MAX_TENSORS);
    uint64_t need = *n_kv * GGUF_MIN_KV_BYTES + *n_tensors * GGUF_MIN_TENSOR_BYTES;  /* < 2^40 */
    if (need > cur_left(c))
        return ll_fail(err, LL_ERR_FORMAT,
                       "header declares %llu KV pairs and %llu tensors, which need at least %llu bytes; "
                       "only %zu follow the header",
                       (unsigned long long)*n_kv, (unsigned long long)*n_tensors,
                       (unsigned long long)need, cur_left(c));
    return LL_OK;
}

/* ---- key/value pairs -------------------------------------------------------------------- */

/* A GGUF string: u64 length + bytes (A.2), checked against bytes left, i64 range, then cap. */
static ll_status gguf_read_str(gguf_cursor *c, ll_str *out, const char *what, const char *name,
                               ll_error *err) {
    size_t at = cur_off(c);
    uint64_t len;
    if (!cur_u64(c, &len)) return fail_trunc(err, c, what, name);
    if (len >= (1ull << 63))
        return ll_fail(err, LL_ERR_FORMAT, "%s%s%s%s: length at byte %zu is %llu (negative as i64)",
                       what, name ? " '" : "", name ? name : "", name ? "'" : "", at,
                       (unsigned long long)len);
    if (len > cur_left(c))
        return ll_fail(err, LL_ERR_FORMAT,
                       "truncated at byte %zu: %s%s%s%s has length %llu, only %zu bytes left",
                       cur_off(c), what, name ? " '" : "", name ? name : "", name ? "'" : "",
                       (unsigned long long)len, cur_left(c));
    if (len > LL_GGUF_MAX_STRING)
        return ll_fail(err, LL_ERR_LIMIT, "%s%s%s%s at byte %zu is %llu bytes, over the cap %u",
                       what, name ? " '" : "", name ? name : "", name ? "'" : "", at,
                       (unsigned long long)len, LL_GGUF_MAX_STRING);
    out->p = (const char *)c->p;
    out->n = (size_t)len;
    c->p += len;
    return LL_OK;
}

static ll_status gguf_read_key(ll_gguf *g, gguf_cursor *c, size_t i, bool *warned, ll_error *err) {
    ll_gguf_kv *kv = &g->kv[i];
    size_t at = cur_off(c);
    uint64_t len;
    char what[48];
    snprintf(what, sizeof what, "the key length of KV #%zu", i);
    if (!cur_u64(c, &len)) return fail_trunc(err, c, what, NULL);
    if (len == 0) return ll_fail(err, LL_ERR_FORMAT, "KV #%zu has an empty key (at byte %zu)", i, at);
    if (len > LL_GGUF_MAX_KEY)
        return ll_fail(err, LL_ERR_FORMAT, "KV #%zu: key length %llu at byte %zu is over the limit %u",
                       i, (unsigned long long)len, at, LL_GGUF_MAX_KEY);
    if (len > cur_left(c))
        return ll_fail(err, LL_ERR_FORMAT, "truncated at byte %zu: key of KV #%zu has length %llu, only %zu bytes left",
                       cur_off(c), i, (unsigned long long)len, cur_left(c));
    kv->key.p = (const char *)c->p;
    kv->key.n = (size_t)len;
    c->p += len;
    gguf_esc e;
    bool ctl;
    size_t bad = str_first_bad(kv->key, &ctl);
    if (bad != SIZE_MAX)
        return ll_fail(err, LL_ERR_FORMAT, "KV #%zu: key '%s' at byte %zu has %s 0x%02x at position %zu",
                       i, esc(&e, kv->key), at, ctl ? "control byte" : "invalid UTF-8 byte",
                       (unsigned char)kv->key.p[bad], bad);
    if (!*warned && !key_style_ok(kv->key)) {
        *warned = true;
        LL_WARN("GGUF key '%s' (KV #%zu) is not lower_snake.dotted; loading anyway", esc(&e, kv->key), i);
    }
    uint32_t *slot = idx_slot(g, &g->kv_index, false, kv->key);
    if (*slot)
        return ll_fail(err, LL_ERR_FORMAT, "duplicate key '%s' (KV #%u and #%zu)", esc(&e, kv->key),
                       *slot - 1, i);
    *slot = (uint32_t)i + 1;
    return LL_OK;
}

static ll_status gguf_read_scalar(gguf_cursor *c, ll_gguf_kv *kv, const char *key, ll_error *err) {
    uint32_t t = kv->type;
    unsigned char b[8] = {0};
    size_t at = cur_off(c);
    if (!cur_take(c, b, gguf_type_size[t])) return fail_trunc(err, c, "value of", key);
    uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64; float f32; double f64;
    switch (t) {
    case LL_GGUF_TYPE_UINT8:  memcpy(&u8, b, 1); kv->v.u = u8; break;
    case LL_GGUF_TYPE_INT8:   memcpy(&u8, b, 1); kv->v.i = (int8_t)u8; break;
    case LL_GGUF_TYPE_UINT16: memcpy(&u16, b, 2); kv->v.u = u16; break;
    case LL_GGUF_TYPE_INT16:  memcpy(&u16, b, 2); kv->v.i = (int16_t)u16; break;
    case LL_GGUF_TYPE_UINT32: memcpy(&u32, b, 4); kv->v.u = u32; break;
    case LL_GGUF_TYPE_INT32:  memcpy(&u32, b, 4); kv->v.i = (int32_t)u32; break;
    case LL_GGUF_TYPE_UINT64: memcpy(&u64, b, 8); kv->v.u = u64; break;
    case LL_GGUF_TYPE_INT64:  memcpy(&u64, b, 8); kv->v.i = (int64_t)u64; break;
    case LL_GGUF_TYPE_FLOAT32: memcpy(&f32, b, 4); kv->v.f = f32; break;
    case LL_GGUF_TYPE_FLOAT64: memcpy(&f64, b, 8); kv->v.f = f64; break;
    case LL_GGUF_TYPE_BOOL:
        if (b[0] > 1)
            return ll_fail(err, LL_ERR_FORMAT, "key '%s': invalid bool 0x%02x at byte %zu", key, b[0], at);
        kv->v.u = b[0];
        break;
    }
    return LL_OK;
}

static ll_status gguf_read_array(gguf_cursor *c, ll_gguf_kv *kv, const char *key, ll_error *err) {
    uint32_t et;
    uint64_t n;
    size_t at = cur_off(c);
    if (!cur_u32(c, &et)) return fail_trunc(err, c, "the array element type of", key);
    if (et == LL_GGUF_TYPE_ARRAY)
        return ll_fail(err, LL_ERR_FORMAT, "key '%s': nested arrays are not supported (at byte %zu)", key, at);
    if (et >= LL_GGUF_TYPE_COUNT)
        return ll_fail(err, LL_ERR_FORMAT, "key '%s': array element type %u at byte %zu is unknown (max %d)",
                       key, et, at, LL_GGUF_TYPE_COUNT - 1);
    at = cur_off(c);
    if (!cur_u64(c, &n)) return fail_trunc(err, c, "the array length of", key);
    kv->v.arr.type = et;
    kv->v.arr.n = n;
    kv->v.arr.data = c->p;
    if (et != LL_GGUF_TYPE_STRING) {
        uint64_t bytes;
        if (!ll_mul_u64(n, gguf_type_size[et], &bytes))
            return ll_fail(err, LL_ERR_FORMAT, "key '%s': array of %llu %s at byte %zu: byte size overflows",
                           key, (unsigned long long)n, ll_gguf_type_name(et), at);
        if (bytes > cur_left(c))
            return ll_fail(err, LL_ERR_FORMAT,
                           "truncated at byte %zu: key '%s' array of %llu %s needs %llu bytes, only %zu left",
                           cur_off(c), key, (unsigned long long)n, ll_gguf_type_name(et),
                           (unsigned long long)bytes, cur_left(c));
        if (n > LL_GGUF_MAX_ARRAY)
            return ll_fail(err, LL_ERR_LIMIT, "key '%s': array of %llu elements at byte %zu, over the cap %u",
                           key, (unsigned long long)n, at, LL_GGUF_MAX_ARRAY);
        if (et == LL_GGUF_TYPE_BOOL)
            for (uint64_t k = 0; k < n; k++)
                if (c->p[k] > 1)
                    return ll_fail(err, LL_ERR_FORMAT, "key '%s': invalid bool 0x%02x at element %llu (byte %zu)",
                                   key, c->p[k], (unsigned long long)k, cur_off(c) + (size_t)k);
        c->p += bytes;
        return LL_OK;
    }
    /* G23: each string takes at least its 8-byte length, so this bounds the view table. */
    if (n > cur_left(c) / 8)
        return ll_fail(err, LL_ERR_FORMAT,
                       "truncated at byte %zu: key '%s' array of %llu strings (count at byte %zu) needs at "
                       "least %llu bytes, only %zu left", cur_off(c), key, (unsigned long long)n, at,
                       n < (1ull << 61) ? (unsigned long long)(n * 8) : 18446744073709551615ull, cur_left(c));
    if (n > LL_GGUF_MAX_ARRAY)
        return ll_fail(err, LL_ERR_LIMIT, "key '%s': array of %llu strings at byte %zu, over the cap %u",
                       key, (unsigned long long)n, at, LL_GGUF_MAX_ARRAY);
    ll_str *strs = ll_malloc_array((size_t)n, sizeof *strs);
    if (!strs)
        return ll_fail(err, LL_ERR_NOMEM, "out of memory for %llu string views of key '%s'",
                       (unsigned long long)n, key);
    kv->v.arr.strs = strs;               /* owned by the ll_gguf from here on */
    for (uint64_t k = 0; k < n; k++) {
        /* Fast path for a well-formed string (vocabularies hold 10^5 of them); on any doubt
         * the general reader runs again to produce the message naming string #k. */
        uint64_t len;
        if (cur_left(c) >= sizeof len) {
            memcpy(&len, c->p, sizeof len);
            if (len <= LL_GGUF_MAX_STRING && len <= cur_left(c) - sizeof len) {
                strs[k].p = (const char *)c->p + sizeof len;
                strs[k].n = (size_t)len;
                c->p += sizeof len + len;
                continue;
            }
        }
        char what[64];
        snprintf(what, sizeof what, "string #%llu of", (unsigned long long)k);
        ll_status st = gguf_read_str(c, &strs[k], what, key, err);
        if (st != LL_OK) return st;
    }
    return LL_OK;
}

static ll_status gguf_read_kv(ll_gguf *g, gguf_cursor *c, size_t i, bool *warned, ll_error *err) {
    ll_status st = gguf_read_key(g, c, i, warned, err);
    if (st != LL_OK) return st;
    ll_gguf_kv *kv = &g->kv[i];
    gguf_esc e;
    const char *key = esc(&e, kv->key);
    size_t at = cur_off(c);
    uint32_t t;
    if (!cur_u32(c, &t)) return fail_trunc(err, c, "the type of", key);
    if (t >= LL_GGUF_TYPE_COUNT)
        return ll_fail(err, LL_ERR_FORMAT, "key '%s' has unknown type %u (at byte %zu)", key, t, at);
    kv->type = t;
    if (t == LL_GGUF_TYPE_STRING) return gguf_read_str(c, &kv->v.s, "value of", key, err);
    if (t == LL_GGUF_TYPE_ARRAY) return gguf_read_array(c, kv, key, err);
    return gguf_read_scalar(c, kv, key, err);
}

/* ---- tensor infos ----------------------------------------------------------------------- */

static ll_status gguf_read_tensor(ll_gguf *g, gguf_cursor *c, size_t i, ll_error *err) {
    ll_gguf_tensor *t = &g->tensors[i];
    char what[64];
    size_t at = cur_off(c);
    uint64_t len;
    snprintf(what, sizeof what, "the name length of tensor #%zu", i);
    if (!cur_u64(c, &len)) return fail_trunc(err, c, what, NULL);
    if (len == 0) return ll_fail(err, LL_ERR_FORMAT, "tensor #%zu: name is empty (at byte %zu)", i, at);
    if (len > cur_left(c))
        return ll_fail(err, LL_ERR_FORMAT, "truncated at byte %zu: tensor #%zu name length %llu, only %zu bytes left",
                       cur_off(c), i, (unsigned long long)len, cur_left(c));
    if (len > LL_GGUF_MAX_NAME)
        return ll_fail(err, LL_ERR_FORMAT, "tensor #%zu: name is %llu bytes (max %u) at byte %zu",
                       i, (unsigned long long)len, LL_GGUF_MAX_NAME, at);
    t->name.p = (const char *)c->p;
    t->name.n = (size_t)len;
    c->p += len;
    gguf_esc e;
    const char *name = esc(&e, t->name);
    bool ctl;
    size_t bad = str_first_bad(t->name, &ctl);
    if (bad != SIZE_MAX)
        return ll_fail(err, LL_ERR_FORMAT, "tensor #%zu: name '%s' has %s 0x%02x at position %zu",
                       i, name, ctl ? "control byte" : "invalid UTF-8 byte", (unsigned char)t->name.p[bad], bad);
    uint32_t *slot = idx_slot(g, &g->tensor_index, true, t->name);
    if (*slot)
        return ll_fail(err, LL_ERR_FORMAT, "duplicate tensor name '%s' (tensor #%u and #%zu)", name, *slot - 1, i);
    *slot = (uint32_t)i + 1;

    snprintf(what, sizeof what, "n_dims of tensor #%zu", i);
    at = cur_off(c);
    if (!cur_u32(c, &t->n_dims)) return fail_trunc(err, c, what, name);
    if (t->n_dims == 0 || t->n_dims > LL_GGUF_MAX_DIMS)
        return ll_fail(err, LL_ERR_FORMAT, "tensor '%s': n_dims is %u at byte %zu (must be 1..%u)",
                       name, t->n_dims, at, LL_GGUF_MAX_DIMS);
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        snprintf(what, sizeof what, "dim %u of tensor #%zu", d, i);
        at = cur_off(c);
        if (!cur_u64(c, &ne)) return fail_trunc(err, c, what, name);
        if (ne == 0) return ll_fail(err, LL_ERR_FORMAT, "tensor '%s' dim %u is 0 (at byte %zu)", name, d, at);
        if (ne >= (1ull << 63))
            return ll_fail(err, LL_ERR_FORMAT, "tensor '%s' dim %u is %llu (negative as i64, at byte %zu)",
                           name, d, (unsigned long long)ne, at);
        t->ne[d] = (int64_t)ne;
        if (!ll_mul_u64(n_el, ne, &n_el) || n_el >= (1ull << 63))
            return ll_fail(err, LL_ERR_FORMAT, "tensor '%s' size overflows: element count past 2^63 at dim %u",
                           name, d);
    }
    snprintf(what, sizeof what, "the type of tensor #%zu", i);
    at = cur_off(c);
    if (!cur_u32(c, &t->type)) return fail_trunc(err, c, what, name);
    const ll_type_traits *tt = ll_type_traits_of(t->type);
    if (!tt) return ll_fail(err, LL_ERR_FORMAT, "tensor '%s' has unknown type %u (at byte %zu)", name, t->type, at);
    uint64_t row;
    if (t->ne[0] % tt->blck != 0)
        return ll_fail(err, LL_ERR_FORMAT, "tensor '%s': ne[0] = %lld is not a multiple of the block size %lld of %s",
                       name, (long long)t->ne[0], (long long)tt->blck, tt->name);
    if (!ll_type_row_bytes(t->type, t->ne[0], &row) ||
        !ll_mul_u64(row, (uint64_t)t->ne[1], &t->n_bytes) ||
        !ll_mul_u64(t->n_bytes, (uint64_t)t->ne[2], &t->n_bytes) ||
        !ll_mul_u64(t->n_bytes, (uint64_t)t->ne[3], &t->n_bytes) ||
        t->n_bytes > UINT64_MAX - g->alignment)           /* padding must not wrap (G33) */
        return ll_fail(err, LL_ERR_FORMAT, "tensor '%s' size overflows (%s, %lld x %lld x %lld x %lld)", name,
                       tt->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
    snprintf(what, sizeof what, "the offset of tensor #%zu", i);
    at = cur_off(c);
    if (!cur_u64(c, &t->offset)) return fail_trunc(err, c, what, name);
    if (t->offset % g->alignment != 0)
        return ll_fail(err, LL_ERR_FORMAT, "tensor '%s': offset %llu (at byte %zu) is not a multiple of the alignment %u",
                       name, (unsigned long long)t->offset, at, g->alignment);
    uint64_t end;
    if (!ll_add_u64(t->offset, t->n_bytes, &end))
        return ll_fail(err, LL_ERR_FORMAT, "tensor '%s': offset %llu + size %llu overflows",
                       name, (unsigned long long)t->offset, (unsigned long long)t->n_bytes);
    return LL_OK;
}

/* ---- post-KV checks --------------------------------------------------------------------- */

static ll_status gguf_check_meta(ll_gguf *g, ll_error *err) {
    g->alignment = LL_GGUF_DEFAULT_ALIGNMENT;
    const ll_gguf_kv *a = ll_gguf_find(g, "general.alignment");
    if (a) {
        /* A.5: UINT32 only; an i32 alignment hit an assert upstream (G25). */
        if (a->type != LL_GGUF_TYPE_UINT32)
            return ll_fail(err, LL_ERR_FORMAT, "key 'general.alignment' has type %s, expected u32",
                           ll_gguf_type_name(a->type));
        uint64_t v = a->v.u;
        if (v == 0 || (v & (v - 1)) != 0 || v > LL_GGUF_MAX_ALIGNMENT)
            return ll_fail(err, LL_ERR_FORMAT,
                           "general.alignment is %llu: must be a power of two in [1, %u]",
                           (unsigned long long)v, LL_GGUF_MAX_ALIGNMENT);
        if (v < 8) LL_WARN("general.alignment is %llu (the spec asks for a multiple of 8); loading anyway",
                           (unsigned long long)v);
        g->alignment = (uint32_t)v;
    }
    /* G44: one shard of a split model cannot be used alone. */
    int64_t count = 0, no = 0;
    bool found;
    ll_status st = ll_gguf_get_i64(g, "split.count", &count, &found, err);
    if (st != LL_OK) return st;
    if (found && count > 1) {
        st = ll_gguf_get_i64(g, "split.no", &no, NULL, err);
        if (st != LL_OK) return st;
        if (no < 0 || no >= count)          /* no + 1 below must not overflow (INT64_MAX) */
            return ll_fail(err, LL_ERR_UNSUPPORTED, "split GGUF (split.no %lld, split.count %lld); "
                           "merge shards first", (long long)no, (long long)count);
        return ll_fail(err, LL_ERR_UNSUPPORTED, "split GGUF: shard %lld of %lld; merge shards first",
                       (long long)no + 1, (long long)count);
    }
    return LL_OK;
}

typedef struct { uint64_t begin, end; uint32_t idx; } gguf_range;

static int range_cmp(const void *a, const void *b) {
    const gguf_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static ll_status gguf_check_data(ll_gguf *g, size_t info_end, ll_error *err) {
    uint64_t a = g->alignment;
    g->data_offset = ((uint64_t)info_end + a - 1) / a * a;    /* info_end <= size, no wrap */
    if (g->n_tensors == 0) {
        if (g->data_offset > g->size) g->data_offset = g->size;  /* vocab-only: may end after KVs (G42) */
        return LL_OK;
    }
    if (g->data_offset > g->size)
        return ll_fail(err, LL_ERR_FORMAT, "data section starts at %llu, file is %zu bytes",
                       (unsigned long long)g->data_offset, g->size);
    uint64_t data_bytes = g->size - g->data_offset;
    gguf_esc e, e2;
    for (size_t i = 0; i < g->n_tensors; i++) {
        ll_gguf_tensor *t = &g->tensors[i];
        uint64_t end = t->offset + t->n_bytes;                /* checked in gguf_read_tensor */
        if (end > data_bytes) {
            uint64_t b, bend;
            if (!ll_add_u64(g->data_offset, t->offset, &b) || !ll_add_u64(b, t->n_bytes, &bend))
                return ll_fail(err, LL_ERR_FORMAT, "tensor '%s': data start %llu + offset %llu + size %llu overflows",
                               esc(&e, t->name), (unsigned long long)g->data_offset,
                               (unsigned long long)t->offset, (unsigned long long)t->n_bytes);
            return ll_fail(err, LL_ERR_FORMAT, "tensor '%s' needs bytes [%llu, %llu), file has %zu",
                           esc(&e, t->name), (unsigned long long)b, (unsigned long long)bend, g->size);
        }
        t->data = g->buf + g->data_offset + t->offset;
    }
    /* GGUF does not require tensors in file order, so sort by offset: one pass then finds
     * overlaps (G41). Gaps are allowed; ggml is stricter (packed in order). */
    gguf_range *r = ll_malloc_array(g->n_tensors, sizeof *r);
    if (!r) return ll_fail(err, LL_ERR_NOMEM, "out of memory sorting %zu tensors", g->n_tensors);
    for (size_t i = 0; i < g->n_tensors; i++)
        r[i] = (gguf_range){ g->tensors[i].offset, g->tensors[i].offset + g->tensors[i].n_bytes, (uint32_t)i };
    qsort(r, g->n_tensors, sizeof *r, range_cmp);
    ll_status st = LL_OK;
    uint64_t last_end = 0;
    for (size_t i = 1; i < g->n_tensors; i++) {
        if (r[i].begin < r[i - 1].end) {
            const ll_gguf_tensor *x = &g->tensors[r[i - 1].idx], *y = &g->tensors[r[i].idx];
            st = ll_fail(err, LL_ERR_FORMAT, "tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap",
                         esc(&e, x->name), (unsigned long long)r[i - 1].begin, (unsigned long long)r[i - 1].end,
                         esc(&e2, y->name), (unsigned long long)r[i].begin, (unsigned long long)r[i].end);
            break;
        }
    }
    for (size_t i = 0; i < g->n_tensors; i++) if (r[i].end > last_end) last_end = r[i].end;
    ll_free(r);
    if (st == LL_OK && last_end < data_bytes)
        LL_DEBUG("GGUF: %llu bytes after the last tensor (G43)", (unsigned long long)(data_bytes - last_end));
    return st;
}

/* ---- public ----------------------------------------------------------------------------- */

void ll_gguf_close(ll_gguf *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].type == LL_GGUF_TYPE_ARRAY) ll_free((void *)g->kv[i].v.arr.strs);
    ll_free(g->kv);
    ll_free(g->tensors);
    ll_free(g->kv_index.slots);
    ll_free(g->tensor_index.slots);
    if (g->map) munmap(g->map, g->map_len);
    ll_free(g);
}

ll_status ll_gguf_parse(ll_gguf **out, const void *buf, size_t n, ll_error *err) {
    *out = NULL;
    ll_status st;
    ll_gguf *g = ll_calloc(1, sizeof *g);
    if (!g) return ll_fail(err, LL_ERR_NOMEM, "out of memory for the GGUF reader");
    g->buf = buf && n ? buf : (const unsigned char *)"";   /* no arithmetic on NULL */
    g->size = buf ? n : 0;
    gguf_cursor c = { g->buf, g->buf, g->buf + n };
    uint64_t n_tensors = 0, n_kv = 0;
    st = gguf_read_header(g, &c, &n_tensors, &n_kv, err);
    if (st != LL_OK) goto fail;

    /* Both counts are bounded by the bytes left (G11), so these allocations are too. */
    uint64_t seed = ll_time_ns() ^ (uint64_t)(uintptr_t)g;
    g->kv = ll_calloc((size_t)n_kv ? (size_t)n_kv : 1, sizeof *g->kv);
    g->tensors = ll_calloc((size_t)n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors || !idx_init(&g->kv_index, (size_t)n_kv, seed) ||
        !idx_init(&g->tensor_index, (size_t)n_tensors, seed ^ 0x5bd1e995u)) {
        st = ll_fail(err, LL_ERR_NOMEM, "out of memory for %llu KV pairs and %llu tensors",
                     (unsigned long long)n_kv, (unsigned long long)n_tensors);
        goto fail;
    }
    bool warned = false;
    for (size_t i = 0; i < (size_t)n_kv; i++) {
        g->n_kv = i + 1;                 /* so close() frees a partly read string array */
        st = gguf_read_kv(g, &c, i, &warned, err);
        if (st != LL_OK) goto fail;
    }
    st = gguf_check_meta(g, err);
    if (st != LL_OK) goto fail;
    for (size_t i = 0; i < (size_t)n_tensors; i++) {
        g->n_tensors = i + 1;
        st = gguf_read_tensor(g, &c, i, err);
        if (st != LL_OK) goto fail;
    }
    st = gguf_check_data(g, cur_off(&c), err);
    if (st != LL_OK) goto fail;
    *out = g;
    return LL_OK;
fail:
    ll_gguf_close(g);
    return st;
}

ll_status ll_gguf_open(ll_gguf **out, const char *path, ll_error *err) {
    *out = NULL;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (G3). Nothing is read before
     * fstat says this is a regular file. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        struct stat st;
        if (e == ENXIO && stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            return ll_fail(err, LL_ERR_IO, "cannot open model file: not a regular file (socket)");
        return ll_fail(err, LL_ERR_IO, "cannot open model file: %s", strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ll_fail(err, LL_ERR_IO, "cannot stat model file: %s", strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return ll_fail(err, LL_ERR_IO, "model path is a directory, not a GGUF file");
    }
    if (!S_ISREG(st.st_mode)) {
        const char *kind = S_ISFIFO(st.st_mode) ? "FIFO" : S_ISCHR(st.st_mode) ? "character device"
                         : S_ISBLK(st.st_mode) ? "block device" : S_ISSOCK(st.st_mode) ? "socket" : "special file";
        close(fd);
        return ll_fail(err, LL_ERR_IO, "model path is not a regular file (%s)", kind);
    }
    if (st.st_size == 0) {
        close(fd);
        return ll_gguf_parse(out, "", 0, err);                 /* G1 message */
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return ll_fail(err, LL_ERR_LIMIT, "model file is %lld bytes, more than this system can map",
                       (long long)st.st_size);
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        int e = errno;
        close(fd);
        return ll_fail(err, e == ENOMEM ? LL_ERR_NOMEM : LL_ERR_IO, "cannot map model file (%zu bytes): %s",
                       len, strerror(e));
    }
    /* G72: the file may have been truncated between fstat and mmap; parse only what is still
     * there, so every tensor range is checked against the size after mapping. */
    struct stat st2;
    if (fstat(fd, &st2) != 0) {
        int e = errno;
        munmap(map, len);
        close(fd);
        return ll_fail(err, LL_ERR_IO, "cannot stat model file: %s", strerror(e));
    }
    close(fd);
    size_t n = len;
    if ((uint64_t)st2.st_size < (uint64_t)st.st_size) {
        LL_WARN("model file shrank from %zu to %lld bytes while being opened", len, (long long)st2.st_size);
        n = (size_t)st2.st_size;
    }
    ll_gguf *g;
    ll_status s = ll_gguf_parse(&g, map, n, err);
    if (s != LL_OK) {
        munmap(map, len);
        return s;
    }
    g->map = map;
    g->map_len = len;
    *out = g;
    return LL_OK;
}

uint32_t ll_gguf_version(const ll_gguf *g) { return g->version; }
size_t ll_gguf_n_kv(const ll_gguf *g) { return g->n_kv; }
const ll_gguf_kv *ll_gguf_kv_at(const ll_gguf *g, size_t i) { return i < g->n_kv ? &g->kv[i] : NULL; }
size_t ll_gguf_n_tensors(const ll_gguf *g) { return g->n_tensors; }
const ll_gguf_tensor *ll_gguf_tensor_at(const ll_gguf *g, size_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}
uint32_t ll_gguf_alignment(const ll_gguf *g) { return g->alignment; }
uint64_t ll_gguf_data_offset(const ll_gguf *g) { return g->data_offset; }
size_t ll_gguf_file_size(const ll_gguf *g) { return g->size; }

const ll_gguf_kv *ll_gguf_find(const ll_gguf *g, const char *key) {
    uint32_t v = *idx_slot(g, &g->kv_index, false, ll_str_c(key));
    return v ? &g->kv[v - 1] : NULL;
}

const ll_gguf_tensor *ll_gguf_find_tensor(const ll_gguf *g, const char *name) {
    uint32_t v = *idx_slot(g, &g->tensor_index, true, ll_str_c(name));
    return v ? &g->tensors[v - 1] : NULL;
}

/* ---- typed getters ---------------------------------------------------------------------- */

static bool type_is_int(uint32_t t) {
    return t <= LL_GGUF_TYPE_INT32 || t == LL_GGUF_TYPE_UINT64 || t == LL_GGUF_TYPE_INT64;
}
static bool type_is_signed(uint32_t t) {
    return t == LL_GGUF_TYPE_INT8 || t == LL_GGUF_TYPE_INT16 || t == LL_GGUF_TYPE_INT32 || t == LL_GGUF_TYPE_INT64;
}

/* Shared head of every getter: absent -> LL_OK/not found; present -> *kv. */
static const ll_gguf_kv *get_head(const ll_gguf *g, const char *key, bool *found) {
    const ll_gguf_kv *kv = ll_gguf_find(g, key);
    if (found) *found = kv != NULL;
    return kv;
}

static ll_status wrong_type(const ll_gguf_kv *kv, const char *key, const char *expected, bool *found, ll_error *err) {
    if (found) *found = false;
    if (kv->type == LL_GGUF_TYPE_ARRAY)
        return ll_fail(err, LL_ERR_FORMAT, "key '%s' has type %s[], expected %s", key,
                       ll_gguf_type_name(kv->v.arr.type), expected);
    return ll_fail(err, LL_ERR_FORMAT, "key '%s' has type %s, expected %s", key, ll_gguf_type_name(kv->type), expected);
}

ll_status ll_gguf_get_u32(const ll_gguf *g, const char *key, uint32_t *out, bool *found, ll_error *err) {
    const ll_gguf_kv *kv = get_head(g, key, found);
    if (!kv) return LL_OK;
    if (!type_is_int(kv->type)) return wrong_type(kv, key, "u32", found, err);
    bool neg = type_is_signed(kv->type) && kv->v.i < 0;
    if (neg || (!type_is_signed(kv->type) && kv->v.u > UINT32_MAX) ||
        (type_is_signed(kv->type) && kv->v.i > (int64_t)UINT32_MAX)) {
        if (found) *found = false;
        if (type_is_signed(kv->type))
            return ll_fail(err, LL_ERR_FORMAT, "key '%s' value %lld does not fit in u32", key, (long long)kv->v.i);
        return ll_fail(err, LL_ERR_FORMAT, "key '%s' value %llu does not fit in u32", key, (unsigned long long)kv->v.u);
    }
    *out = type_is_signed(kv->type) ? (uint32_t)kv->v.i : (uint32_t)kv->v.u;
    return LL_OK;
}

ll_status ll_gguf_get_i64(const ll_gguf *g, const char *key, int64_t *out, bool *found, ll_error *err) {
    const ll_gguf_kv *kv = get_head(g, key, found);
    if (!kv) return LL_OK;
    if (!type_is_int(kv->type)) return wrong_type(kv, key, "i64", found, err);
    if (!type_is_signed(kv->type) && kv->v.u > (uint64_t)INT64_MAX) {
        if (found) *found = false;
        return ll_fail(err, LL_ERR_FORMAT, "key '%s' value %llu does not fit in i64", key, (unsigned long long)kv->v.u);
    }
    *out = type_is_signed(kv->type) ? kv->v.i : (int64_t)kv->v.u;
    return LL_OK;
}

ll_status ll_gguf_get_f32(const ll_gguf *g, const char *key, float *out, bool *found, ll_error *err) {
    const ll_gguf_kv *kv = get_head(g, key, found);
    if (!kv) return LL_OK;
    if (kv->type != LL_GGUF_TYPE_FLOAT32 && kv->type != LL_GGUF_TYPE_FLOAT64)
        return wrong_type(kv, key, "f32", found, err);
    *out = (float)kv->v.f;
    return LL_OK;
}

ll_status ll_gguf_get_bool(const ll_gguf *g, const char *key, bool *out, bool *found, ll_error *err) {
    const ll_gguf_kv *kv = get_head(g, key, found);
    if (!kv) return LL_OK;
    if (kv->type != LL_GGUF_TYPE_BOOL) return wrong_type(kv, key, "bool", found, err);
    *out = kv->v.u != 0;
    return LL_OK;
}

ll_status ll_gguf_get_str(const ll_gguf *g, const char *key, ll_str *out, bool *found, ll_error *err) {
    const ll_gguf_kv *kv = get_head(g, key, found);
    if (!kv) return LL_OK;
    if (kv->type != LL_GGUF_TYPE_STRING) return wrong_type(kv, key, "string", found, err);
    *out = kv->v.s;
    return LL_OK;
}

ll_status ll_gguf_get_arr(const ll_gguf *g, const char *key, uint32_t elem_type,
                          const ll_gguf_kv **out, bool *found, ll_error *err) {
    const ll_gguf_kv *kv = get_head(g, key, found);
    if (!kv) return LL_OK;
    if (kv->type != LL_GGUF_TYPE_ARRAY || kv->v.arr.type != elem_type) {
        char expected[16];
        snprintf(expected, sizeof expected, "%s[]", ll_gguf_type_name(elem_type));
        return wrong_type(kv, key, expected, found, err);
    }
    *out = kv;
    return LL_OK;
}
