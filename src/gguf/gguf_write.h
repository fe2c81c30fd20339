/* gguf_write: build the metadata of a GGUF v3 file (header, key/values, tensor infos, padding)
 * for a writer that then streams the tensor data itself (spec: gguf-and-quants.md part A).
 *
 *     ll_gguf_writer *w;
 *     ll_gguf_writer_init(&w, 32, &err);
 *     for each kv of the input: ll_gguf_writer_add_kv(w, kv, &err);   // views, not copies
 *     ll_gguf_writer_set_u32(w, "general.file_type", 15, &err);       // replaces, moves to end
 *     ll_gguf_writer_add_tensor(w, name, n_dims, ne, type, &err);     // offsets follow
 *     ll_gguf_writer_write_meta(w, f, &err);
 *     then for each tensor: its bytes, then ll_gguf_pad_bytes(bytes, alignment) zeros.
 *
 * The byte layout is the one llama.cpp's gguf writer produces: keys in insertion order, a key
 * that is set again is removed and appended (gguf_set_val_*), tensor i starts at the sum of
 * the padded sizes before it, and the metadata is zero-padded to the alignment. */
#ifndef LL_GGUF_WRITE_H
#define LL_GGUF_WRITE_H

#include "gguf/gguf.h"

#include <stdio.h>

typedef struct ll_gguf_writer ll_gguf_writer;

ll_status ll_gguf_writer_init(ll_gguf_writer **out, uint32_t alignment, ll_error *err);
void      ll_gguf_writer_free(ll_gguf_writer *w);                 /* NULL-safe */

/* Append a key/value read by ll_gguf (borrowed: its ll_gguf must outlive the writer); an
 * existing key of the same name is removed first. */
ll_status ll_gguf_writer_add_kv(ll_gguf_writer *w, const ll_gguf_kv *kv, ll_error *err);
ll_status ll_gguf_writer_set_u32(ll_gguf_writer *w, const char *key, uint32_t v, ll_error *err);
ll_status ll_gguf_writer_set_str(ll_gguf_writer *w, const char *key, const char *v, ll_error *err);
ll_status ll_gguf_writer_set_f32(ll_gguf_writer *w, const char *key, float v, ll_error *err);
ll_status ll_gguf_writer_set_bool(ll_gguf_writer *w, const char *key, bool v, ll_error *err);
void      ll_gguf_writer_remove_key(ll_gguf_writer *w, const char *key);

/* Append a tensor info; name is borrowed. Fails on an unknown type, a row length that is not
 * a multiple of the type's block, or a size that overflows. */
ll_status ll_gguf_writer_add_tensor(ll_gguf_writer *w, ll_str name, uint32_t n_dims,
                                    const int64_t ne[4], uint32_t type, ll_error *err);

size_t    ll_gguf_writer_n_tensors(const ll_gguf_writer *w);
uint64_t  ll_gguf_writer_tensor_bytes(const ll_gguf_writer *w, size_t i);
uint64_t  ll_gguf_writer_meta_bytes(const ll_gguf_writer *w);     /* includes the padding */
uint64_t  ll_gguf_writer_file_bytes(const ll_gguf_writer *w);     /* meta + padded data */

/* Write the metadata (exactly meta_bytes) at the current position of f. */
ll_status ll_gguf_writer_write_meta(const ll_gguf_writer *w, FILE *f, ll_error *err);

/* Zero bytes that follow n bytes of data to reach the next multiple of alignment. */
static inline uint64_t ll_gguf_pad_bytes(uint64_t n, uint32_t alignment) {
    return (alignment - n % alignment) % alignment;
}

#endif
