/* gguf_write: GGUF v3 metadata writer (gguf_write.h). The metadata is serialized twice: once
 * to count (meta_bytes) and once into a buffer written with one fwrite. */
#include "gguf/gguf_write.h"
#include "quant/quant.h"

#include <string.h>

/* bytes of each scalar value type (A.3); 0 for STRING and ARRAY */
static const uint8_t type_size[LL_GGUF_TYPE_COUNT] = {
    [LL_GGUF_TYPE_UINT8] = 1, [LL_GGUF_TYPE_INT8] = 1, [LL_GGUF_TYPE_UINT16] = 2,
    [LL_GGUF_TYPE_INT16] = 2, [LL_GGUF_TYPE_UINT32] = 4, [LL_GGUF_TYPE_INT32] = 4,
    [LL_GGUF_TYPE_FLOAT32] = 4, [LL_GGUF_TYPE_BOOL] = 1, [LL_GGUF_TYPE_UINT64] = 8,
    [LL_GGUF_TYPE_INT64] = 8, [LL_GGUF_TYPE_FLOAT64] = 8,
};

typedef struct {
    ll_gguf_kv kv;      /* views into the source file, or into owned_key */
    char *owned_key;    /* set for keys made by set_u32 / set_str (and the string value) */
} wkv;

typedef struct {
    ll_str   name;
    uint32_t n_dims, type;
    int64_t  ne[4];
    uint64_t n_bytes, offset;
} wtensor;

struct ll_gguf_writer {
    uint32_t alignment;
    wkv     *kv;       size_t n_kv, cap_kv;
    wtensor *t;        size_t n_t, cap_t;
};

ll_status ll_gguf_writer_init(ll_gguf_writer **out, uint32_t alignment, ll_error *err) {
    *out = NULL;
    if (alignment == 0 || (alignment & (alignment - 1)) || alignment > LL_GGUF_MAX_ALIGNMENT)
        return ll_fail(err, LL_ERR_FORMAT, "gguf writer: alignment %u is not a power of two up to %u",
                       alignment, LL_GGUF_MAX_ALIGNMENT);
    ll_gguf_writer *w = ll_calloc(1, sizeof *w);
    if (!w) return ll_fail(err, LL_ERR_NOMEM, "gguf writer: out of memory");
    w->alignment = alignment;
    *out = w;
    return LL_OK;
}

void ll_gguf_writer_free(ll_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) ll_free(w->kv[i].owned_key);
    ll_free(w->kv);
    ll_free(w->t);
    ll_free(w);
}

static void remove_key(ll_gguf_writer *w, ll_str key) {
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!ll_str_eq(w->kv[i].kv.key, key)) continue;
        ll_free(w->kv[i].owned_key);
        memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - i - 1) * sizeof *w->kv);
        w->n_kv--;
        return;    /* keys are unique: add_kv and set_u32 keep them so */
    }
}

void ll_gguf_writer_remove_key(ll_gguf_writer *w, const char *key) { remove_key(w, ll_str_c(key)); }

static ll_status push_kv(ll_gguf_writer *w, const ll_gguf_kv *kv, char *owned, ll_error *err) {
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *p = ll_realloc(w->kv, cap * sizeof *p);
        if (!p) { ll_free(owned); return ll_fail(err, LL_ERR_NOMEM, "gguf writer: out of memory"); }
        w->kv = p;
        w->cap_kv = cap;
    }
    w->kv[w->n_kv].kv = *kv;
    w->kv[w->n_kv].owned_key = owned;
    w->n_kv++;
    return LL_OK;
}

ll_status ll_gguf_writer_add_kv(ll_gguf_writer *w, const ll_gguf_kv *kv, ll_error *err) {
    remove_key(w, kv->key);
    return push_kv(w, kv, NULL, err);
}

/* A scalar key set by name: the old one (if any) removed, the new one appended. */
static ll_status set_scalar(ll_gguf_writer *w, const char *key, uint32_t type, uint64_t u, double f,
                            ll_error *err) {
    ll_gguf_writer_remove_key(w, key);
    char *k = ll_str_dup(ll_str_c(key));
    if (!k) return ll_fail(err, LL_ERR_NOMEM, "gguf writer: out of memory");
    ll_gguf_kv kv = { .key = ll_str_c(k), .type = type };
    if (type == LL_GGUF_TYPE_FLOAT32) kv.v.f = f; else kv.v.u = u;
    return push_kv(w, &kv, k, err);
}

ll_status ll_gguf_writer_set_u32(ll_gguf_writer *w, const char *key, uint32_t v, ll_error *err) {
    return set_scalar(w, key, LL_GGUF_TYPE_UINT32, v, 0, err);
}
ll_status ll_gguf_writer_set_f32(ll_gguf_writer *w, const char *key, float v, ll_error *err) {
    return set_scalar(w, key, LL_GGUF_TYPE_FLOAT32, 0, v, err);
}
ll_status ll_gguf_writer_set_bool(ll_gguf_writer *w, const char *key, bool v, ll_error *err) {
    return set_scalar(w, key, LL_GGUF_TYPE_BOOL, v ? 1 : 0, 0, err);
}

ll_status ll_gguf_writer_set_str(ll_gguf_writer *w, const char *key, const char *v, ll_error *err) {
    ll_gguf_writer_remove_key(w, key);
    size_t nk = strlen(key), nv = strlen(v);
    char *k = ll_malloc(nk + nv + 2);      /* "key\0value\0": one allocation for both */
    if (!k) return ll_fail(err, LL_ERR_NOMEM, "gguf writer: out of memory");
    memcpy(k, key, nk + 1);
    memcpy(k + nk + 1, v, nv + 1);
    ll_gguf_kv kv = { .key = { k, nk }, .type = LL_GGUF_TYPE_STRING };
    kv.v.s = (ll_str){ k + nk + 1, nv };
    return push_kv(w, &kv, k, err);
}

ll_status ll_gguf_writer_add_tensor(ll_gguf_writer *w, ll_str name, uint32_t n_dims,
                                    const int64_t ne[4], uint32_t type, ll_error *err) {
    if (n_dims < 1 || n_dims > LL_GGUF_MAX_DIMS)
        return ll_fail(err, LL_ERR_FORMAT, "tensor '%.*s': %u dimensions", LL_STR(name), n_dims);
    uint64_t n = 1, bytes;
    for (uint32_t d = 0; d < 4; d++)
        if (ne[d] <= 0 || !ll_mul_u64(n, (uint64_t)ne[d], &n))
            return ll_fail(err, LL_ERR_FORMAT, "tensor '%.*s': shape overflows", LL_STR(name));
    const ll_type_traits *tt = ll_type_traits_of(type);
    if (!tt) return ll_fail(err, LL_ERR_FORMAT, "tensor '%.*s': unknown type %u", LL_STR(name), type);
    if (ne[0] % tt->blck || !ll_mul_u64(n / (uint64_t)tt->blck, tt->bytes, &bytes))
        return ll_fail(err, LL_ERR_FORMAT, "tensor '%.*s': row of %lld is not a multiple of %s's block %lld",
                       LL_STR(name), (long long)ne[0], tt->name, (long long)tt->blck);
    uint64_t off = 0;
    if (w->n_t) {
        const wtensor *p = &w->t[w->n_t - 1];
        if (!ll_add_u64(p->offset, p->n_bytes + ll_gguf_pad_bytes(p->n_bytes, w->alignment), &off))
            return ll_fail(err, LL_ERR_FORMAT, "tensor '%.*s': data offset overflows", LL_STR(name));
    }
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *p = ll_realloc(w->t, cap * sizeof *p);
        if (!p) return ll_fail(err, LL_ERR_NOMEM, "gguf writer: out of memory");
        w->t = p;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t++];
    *t = (wtensor){ .name = name, .n_dims = n_dims, .type = type, .n_bytes = bytes, .offset = off };
    memcpy(t->ne, ne, sizeof t->ne);
    return LL_OK;
}

size_t   ll_gguf_writer_n_tensors(const ll_gguf_writer *w) { return w->n_t; }
uint64_t ll_gguf_writer_tensor_bytes(const ll_gguf_writer *w, size_t i) { return i < w->n_t ? w->t[i].n_bytes : 0; }

/* ---- serialization: one routine that counts when buf is NULL ---------------------------- */

typedef struct { uint8_t *buf; uint64_t n; } wbuf;

static void put(wbuf *b, const void *p, size_t n) {
    if (b->buf && n) memcpy(b->buf + b->n, p, n);
    b->n += n;
}
static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }      /* little-endian host */
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(wbuf *b, ll_str s) { put_u64(b, s.n); put(b, s.p, s.n); }

static void put_scalar(wbuf *b, const ll_gguf_kv *kv) {
    uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64; float f32; double f64;
    switch (kv->type) {
    case LL_GGUF_TYPE_UINT8: case LL_GGUF_TYPE_BOOL: u8 = (uint8_t)kv->v.u; put(b, &u8, 1); break;
    case LL_GGUF_TYPE_INT8:   u8 = (uint8_t)kv->v.i; put(b, &u8, 1); break;
    case LL_GGUF_TYPE_UINT16: u16 = (uint16_t)kv->v.u; put(b, &u16, 2); break;
    case LL_GGUF_TYPE_INT16:  u16 = (uint16_t)kv->v.i; put(b, &u16, 2); break;
    case LL_GGUF_TYPE_UINT32: u32 = (uint32_t)kv->v.u; put(b, &u32, 4); break;
    case LL_GGUF_TYPE_INT32:  u32 = (uint32_t)kv->v.i; put(b, &u32, 4); break;
    case LL_GGUF_TYPE_UINT64: u64 = kv->v.u; put(b, &u64, 8); break;
    case LL_GGUF_TYPE_INT64:  u64 = (uint64_t)kv->v.i; put(b, &u64, 8); break;
    case LL_GGUF_TYPE_FLOAT32: f32 = (float)kv->v.f; put(b, &f32, 4); break;   /* exact: read as f32 */
    case LL_GGUF_TYPE_FLOAT64: f64 = kv->v.f; put(b, &f64, 8); break;
    case LL_GGUF_TYPE_STRING: put_str(b, kv->v.s); break;
    }
}

static void serialize(const ll_gguf_writer *w, wbuf *b) {
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, w->n_t);
    put_u64(b, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        const ll_gguf_kv *kv = &w->kv[i].kv;
        put_str(b, kv->key);
        put_u32(b, kv->type);
        if (kv->type != LL_GGUF_TYPE_ARRAY) { put_scalar(b, kv); continue; }
        put_u32(b, kv->v.arr.type);
        put_u64(b, kv->v.arr.n);
        if (kv->v.arr.type == LL_GGUF_TYPE_STRING)
            for (uint64_t k = 0; k < kv->v.arr.n; k++) put_str(b, kv->v.arr.strs[k]);
        else
            put(b, kv->v.arr.data, (size_t)kv->v.arr.n * type_size[kv->v.arr.type]);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(b, t->name);
        put_u32(b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(b, (uint64_t)t->ne[d]);
        put_u32(b, t->type);
        put_u64(b, t->offset);
    }
    static const uint8_t zeros[64];
    uint64_t pad = ll_gguf_pad_bytes(b->n, w->alignment);
    while (pad) {
        size_t k = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        put(b, zeros, k);
        pad -= k;
    }
}

uint64_t ll_gguf_writer_meta_bytes(const ll_gguf_writer *w) {
    wbuf b = { NULL, 0 };
    serialize(w, &b);
    return b.n;
}

uint64_t ll_gguf_writer_file_bytes(const ll_gguf_writer *w) {
    uint64_t n = ll_gguf_writer_meta_bytes(w);
    if (w->n_t) {
        const wtensor *t = &w->t[w->n_t - 1];
        n += t->offset + t->n_bytes + ll_gguf_pad_bytes(t->n_bytes, w->alignment);
    }
    return n;
}

ll_status ll_gguf_writer_write_meta(const ll_gguf_writer *w, FILE *f, ll_error *err) {
    uint64_t n = ll_gguf_writer_meta_bytes(w);
    if (n > SIZE_MAX) return ll_fail(err, LL_ERR_LIMIT, "gguf writer: metadata of %llu bytes", (unsigned long long)n);
    wbuf b = { ll_malloc((size_t)n), 0 };
    if (!b.buf) return ll_fail(err, LL_ERR_NOMEM, "gguf writer: out of memory for %llu bytes of metadata",
                               (unsigned long long)n);
    serialize(w, &b);
    size_t k = fwrite(b.buf, 1, (size_t)n, f);
    ll_free(b.buf);
    if (k != n) return ll_fail(err, LL_ERR_IO, "writing the GGUF metadata: short write (%zu of %llu bytes)",
                               k, (unsigned long long)n);
    return LL_OK;
}
