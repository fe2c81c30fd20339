/* gguf_builder.h: a small header-only in-memory GGUF writer for tests and tools.
 *
 * Builds good files and, through raw escape hatches, every kind of bad one (fault-cases.md
 * rows G1-G70). Test-only code: it aborts on out-of-memory and does no validation at all.
 *
 *     gguf_builder b;
 *     gb_init(&b, 3);                                   // GGUF version written in the header
 *     gb_kv_str(&b, "general.architecture", "llama");
 *     gb_kv_u32(&b, "llama.block_count", 1);
 *     const char *toks[] = { "<unk>", "<s>", "</s>" };
 *     gb_kv_arr_str(&b, "tokenizer.ggml.tokens", toks, 3);
 *     float w[64] = {0};
 *     uint64_t ne[2] = { 8, 8 };
 *     gb_tensor(&b, "token_embd.weight", 2, ne, 0, w, sizeof w);   // type 0 = F32
 *     unsigned char *buf; size_t len;
 *     gb_finish(&b, &buf, &len);                        // buf is malloc'd: free(buf)
 *     gb_write_file("/tmp/x.gguf", buf, len);
 *     gb_free(&b);                                      // frees the builder, not buf
 *
 * Layout written by gb_finish: magic (b.magic, default "GGUF"), u32 version, u64 n_tensors,
 * u64 n_kv, the KV section (b.kv), the tensor-info section (b.ti), zero padding up to a
 * multiple of b.alignment counted from byte 0, the data section (b.data), then b.tail.
 * With no tensor infos and an empty data section no padding is written (a file may end right
 * after the KVs, G42); set b.force_pad = true to pad anyway.
 *
 * Counts: each gb_kv_* / gb_kv_begin adds 1 to b.n_kv and each gb_tensor* adds 1 to
 * b.n_tensors. To lie in the header, set b.n_kv_override / b.n_tensors_override (with
 * b.override_counts = true).
 *
 * Alignment: b.alignment (default 32) drives the padding and automatic tensor offsets.
 * gb_kv_u32(&b, "general.alignment", v) also sets b.alignment when v is a power of two in
 * [1, 2^20]; any other value is only written to the KV (for G25/G26 tests).
 *
 * Tensors: gb_tensor() places the data at the next multiple of b.alignment in the data section
 * and writes that offset; data may be NULL (zero-filled). gb_tensor_at() writes an explicit
 * offset and places nbytes of data there (gap zero-filled; nbytes may be 0 to write the info
 * only). gb_tensor_info_raw() writes only the info with any name bytes, n_dims value and dims.
 *
 * Raw escape hatches: gb_kv_begin() writes a key (any bytes, explicit length) and a type code,
 * then gb_put_u8/u16/u32/u64/f32/f64/str/bytes(&b.kv, ...) append the value by hand. The same
 * gb_put_* work on b.ti, b.data and b.tail. gb_finish output can also be cut or patched
 * afterwards (it is a plain byte buffer).
 */
#ifndef GGUF_BUILDER_H
#define GGUF_BUILDER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GGUF value type codes (gguf-and-quants.md A.3). */
enum {
    GB_U8 = 0, GB_I8 = 1, GB_U16 = 2, GB_I16 = 3, GB_U32 = 4, GB_I32 = 5, GB_F32 = 6,
    GB_BOOL = 7, GB_STR = 8, GB_ARR = 9, GB_U64 = 10, GB_I64 = 11, GB_F64 = 12
};

typedef struct {
    unsigned char *p;
    size_t n, cap;
} gb_bytes;

typedef struct {
    char     magic[4];          /* default "GGUF" */
    uint32_t version;
    uint32_t alignment;         /* default 32 */
    uint64_t n_kv, n_tensors;   /* counted by the gb_kv_* / gb_tensor* calls */
    bool     override_counts;   /* write the two overrides below instead */
    uint64_t n_kv_override, n_tensors_override;
    bool     force_pad;         /* pad to alignment even with no tensors and no data */
    gb_bytes kv, ti, data, tail;
} gguf_builder;

/* ---- byte appenders (little-endian) ---- */

static inline void gb_put_bytes(gb_bytes *o, const void *p, size_t n) {
    if (n == 0) return;
    if (o->n + n > o->cap) {
        size_t c = o->cap ? o->cap : 256;
        while (c < o->n + n) c *= 2;
        unsigned char *q = (unsigned char *)realloc(o->p, c);
        if (!q) { fprintf(stderr, "gguf_builder: out of memory\n"); abort(); }
        o->p = q;
        o->cap = c;
    }
    if (p) memcpy(o->p + o->n, p, n);
    else memset(o->p + o->n, 0, n);
    o->n += n;
}
static inline void gb_put_zeros(gb_bytes *o, size_t n) { gb_put_bytes(o, NULL, n); }
static inline void gb_put_u8(gb_bytes *o, uint8_t v) { gb_put_bytes(o, &v, 1); }
static inline void gb_put_u16(gb_bytes *o, uint16_t v) {
    unsigned char b[2] = { (unsigned char)v, (unsigned char)(v >> 8) };
    gb_put_bytes(o, b, 2);
}
static inline void gb_put_u32(gb_bytes *o, uint32_t v) {
    unsigned char b[4];
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
    gb_put_bytes(o, b, 4);
}
static inline void gb_put_u64(gb_bytes *o, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    gb_put_bytes(o, b, 8);
}
static inline void gb_put_f32(gb_bytes *o, float f) { uint32_t u; memcpy(&u, &f, 4); gb_put_u32(o, u); }
static inline void gb_put_f64(gb_bytes *o, double f) { uint64_t u; memcpy(&u, &f, 8); gb_put_u64(o, u); }
/* GGUF string: u64 length + bytes. */
static inline void gb_put_strn(gb_bytes *o, const char *s, size_t n) { gb_put_u64(o, n); gb_put_bytes(o, s, n); }
static inline void gb_put_str(gb_bytes *o, const char *s) { gb_put_strn(o, s, strlen(s)); }

/* ---- builder ---- */

static inline void gb_init(gguf_builder *b, uint32_t version) {
    memset(b, 0, sizeof *b);
    memcpy(b->magic, "GGUF", 4);
    b->version = version;
    b->alignment = 32;
}

static inline void gb_free(gguf_builder *b) {
    free(b->kv.p); free(b->ti.p); free(b->data.p); free(b->tail.p);
    memset(b, 0, sizeof *b);
}

/* Key (any bytes, explicit length) + type code; the caller appends the value to b->kv. */
static inline void gb_kv_beginn(gguf_builder *b, const char *key, size_t key_len, uint32_t type) {
    gb_put_strn(&b->kv, key, key_len);
    gb_put_u32(&b->kv, type);
    b->n_kv++;
}
static inline void gb_kv_begin(gguf_builder *b, const char *key, uint32_t type) {
    gb_kv_beginn(b, key, strlen(key), type);
}

static inline void gb_kv_u8(gguf_builder *b, const char *k, uint8_t v) { gb_kv_begin(b, k, GB_U8); gb_put_u8(&b->kv, v); }
static inline void gb_kv_i8(gguf_builder *b, const char *k, int8_t v) { gb_kv_begin(b, k, GB_I8); gb_put_u8(&b->kv, (uint8_t)v); }
static inline void gb_kv_u16(gguf_builder *b, const char *k, uint16_t v) { gb_kv_begin(b, k, GB_U16); gb_put_u16(&b->kv, v); }
static inline void gb_kv_i16(gguf_builder *b, const char *k, int16_t v) { gb_kv_begin(b, k, GB_I16); gb_put_u16(&b->kv, (uint16_t)v); }
static inline void gb_kv_u32(gguf_builder *b, const char *k, uint32_t v) {
    gb_kv_begin(b, k, GB_U32);
    gb_put_u32(&b->kv, v);
    if (strcmp(k, "general.alignment") == 0 && v != 0 && (v & (v - 1)) == 0 && v <= (1u << 20))
        b->alignment = v;
}
static inline void gb_kv_i32(gguf_builder *b, const char *k, int32_t v) { gb_kv_begin(b, k, GB_I32); gb_put_u32(&b->kv, (uint32_t)v); }
static inline void gb_kv_u64(gguf_builder *b, const char *k, uint64_t v) { gb_kv_begin(b, k, GB_U64); gb_put_u64(&b->kv, v); }
static inline void gb_kv_i64(gguf_builder *b, const char *k, int64_t v) { gb_kv_begin(b, k, GB_I64); gb_put_u64(&b->kv, (uint64_t)v); }
static inline void gb_kv_f32(gguf_builder *b, const char *k, float v) { gb_kv_begin(b, k, GB_F32); gb_put_f32(&b->kv, v); }
static inline void gb_kv_f64(gguf_builder *b, const char *k, double v) { gb_kv_begin(b, k, GB_F64); gb_put_f64(&b->kv, v); }
/* The byte is written as given (so 2 makes a G18 file). */
static inline void gb_kv_bool(gguf_builder *b, const char *k, uint8_t v) { gb_kv_begin(b, k, GB_BOOL); gb_put_u8(&b->kv, v); }
static inline void gb_kv_str(gguf_builder *b, const char *k, const char *s) { gb_kv_begin(b, k, GB_STR); gb_put_str(&b->kv, s); }
static inline void gb_kv_strn(gguf_builder *b, const char *k, const char *s, size_t n) { gb_kv_begin(b, k, GB_STR); gb_put_strn(&b->kv, s, n); }

/* Array header only (elem type + count); the caller appends the elements to b->kv. */
static inline void gb_kv_arr_begin(gguf_builder *b, const char *k, uint32_t elem_type, uint64_t n) {
    gb_kv_begin(b, k, GB_ARR);
    gb_put_u32(&b->kv, elem_type);
    gb_put_u64(&b->kv, n);
}
static inline void gb_kv_arr_str(gguf_builder *b, const char *k, const char *const *s, size_t n) {
    gb_kv_arr_begin(b, k, GB_STR, n);
    for (size_t i = 0; i < n; i++) gb_put_str(&b->kv, s[i]);
}
/* Strings with explicit lengths (may contain NUL bytes). */
static inline void gb_kv_arr_strn(gguf_builder *b, const char *k, const char *const *s, const size_t *len, size_t n) {
    gb_kv_arr_begin(b, k, GB_STR, n);
    for (size_t i = 0; i < n; i++) gb_put_strn(&b->kv, s[i], len[i]);
}
static inline void gb_kv_arr_i32(gguf_builder *b, const char *k, const int32_t *v, size_t n) {
    gb_kv_arr_begin(b, k, GB_I32, n);
    for (size_t i = 0; i < n; i++) gb_put_u32(&b->kv, (uint32_t)v[i]);
}
static inline void gb_kv_arr_u32(gguf_builder *b, const char *k, const uint32_t *v, size_t n) {
    gb_kv_arr_begin(b, k, GB_U32, n);
    for (size_t i = 0; i < n; i++) gb_put_u32(&b->kv, v[i]);
}
static inline void gb_kv_arr_f32(gguf_builder *b, const char *k, const float *v, size_t n) {
    gb_kv_arr_begin(b, k, GB_F32, n);
    for (size_t i = 0; i < n; i++) gb_put_f32(&b->kv, v[i]);
}
static inline void gb_kv_arr_u8(gguf_builder *b, const char *k, const uint8_t *v, size_t n) {
    gb_kv_arr_begin(b, k, GB_U8, n);
    gb_put_bytes(&b->kv, v, n);
}

/* Tensor info only: name bytes with explicit length, n_dims as written, n_ne dims from ne. */
static inline void gb_tensor_info_raw(gguf_builder *b, const char *name, size_t name_len, uint32_t n_dims,
                                      const uint64_t *ne, size_t n_ne, uint32_t type, uint64_t offset) {
    gb_put_strn(&b->ti, name, name_len);
    gb_put_u32(&b->ti, n_dims);
    for (size_t i = 0; i < n_ne; i++) gb_put_u64(&b->ti, ne[i]);
    gb_put_u32(&b->ti, type);
    gb_put_u64(&b->ti, offset);
    b->n_tensors++;
}

/* Info with an explicit offset; nbytes of data (NULL: zeros) placed at that offset in the
 * data section, growing it with zeros as needed. nbytes 0 writes the info only. */
static inline void gb_tensor_at(gguf_builder *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                                uint32_t type, uint64_t offset, const void *data, size_t nbytes) {
    gb_tensor_info_raw(b, name, strlen(name), n_dims, ne, n_dims, type, offset);
    if (nbytes == 0) return;
    if (b->data.n < offset + nbytes) gb_put_zeros(&b->data, (size_t)(offset + nbytes - b->data.n));
    if (data) memcpy(b->data.p + offset, data, nbytes);
    else memset(b->data.p + offset, 0, nbytes);
}

/* Info + data at the next aligned offset of the data section; returns that offset. */
static inline uint64_t gb_tensor(gguf_builder *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                                 uint32_t type, const void *data, size_t nbytes) {
    uint64_t a = b->alignment ? b->alignment : 1;
    uint64_t off = (b->data.n + a - 1) / a * a;
    gb_tensor_info_raw(b, name, strlen(name), n_dims, ne, n_dims, type, off);
    if (b->data.n < off) gb_put_zeros(&b->data, (size_t)(off - b->data.n));
    gb_put_bytes(&b->data, data, nbytes);
    return off;
}

/* F32 tensor: bytes = 4 * product of dims. */
static inline uint64_t gb_tensor_f32(gguf_builder *b, const char *name, uint32_t n_dims, const uint64_t *ne,
                                     const float *data) {
    uint64_t n = 1;
    for (uint32_t i = 0; i < n_dims; i++) n *= ne[i];
    return gb_tensor(b, name, n_dims, ne, 0, data, (size_t)(n * 4));
}

/* Offset (from file start) where the data section will begin in the gb_finish output. */
static inline size_t gb_data_start(const gguf_builder *b) {
    size_t head = 24 + b->kv.n + b->ti.n;
    size_t a = b->alignment ? b->alignment : 1;
    if (b->n_tensors == 0 && b->data.n == 0 && !b->force_pad) return head;
    return (head + a - 1) / a * a;
}

/* Lay the file out into a fresh malloc'd buffer (*out, free it); the builder stays usable. */
static inline void gb_finish(const gguf_builder *b, unsigned char **out, size_t *len) {
    gb_bytes o = { 0, 0, 0 };
    gb_put_bytes(&o, b->magic, 4);
    gb_put_u32(&o, b->version);
    gb_put_u64(&o, b->override_counts ? b->n_tensors_override : b->n_tensors);
    gb_put_u64(&o, b->override_counts ? b->n_kv_override : b->n_kv);
    gb_put_bytes(&o, b->kv.p, b->kv.n);
    gb_put_bytes(&o, b->ti.p, b->ti.n);
    size_t ds = gb_data_start(b);
    if (o.n < ds) gb_put_zeros(&o, ds - o.n);
    gb_put_bytes(&o, b->data.p, b->data.n);
    gb_put_bytes(&o, b->tail.p, b->tail.n);
    *out = o.p;
    *len = o.n;
}

/* Write len bytes to path; 0 on success, -1 on failure. */
static inline int gb_write_file(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = (len == 0 || fwrite(buf, 1, len, f) == len);
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : -1;
}

/* Finish and write in one step; 0 on success. */
static inline int gb_finish_file(const gguf_builder *b, const char *path) {
    unsigned char *buf;
    size_t len;
    gb_finish(b, &buf, &len);
    int r = gb_write_file(path, buf, len);
    free(buf);
    return r;
}

#endif
