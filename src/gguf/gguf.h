/* gguf: the GGUF v2/v3 container (spec: ../shared/spec/gguf-and-quants.md part A).
 *
 * File layout: header (magic "GGUF", u32 version, u64 n_tensors, u64 n_kv), n_kv key/value
 * pairs, n_tensors tensor infos, zero padding to general.alignment, tensor data.
 *
 * The parser reads a whole file (mmap) or a caller's buffer, validates every count, length,
 * offset, type and size against the bytes present and the caps of fault-cases.md (rows G1-G44)
 * with overflow-checked arithmetic, and keeps views into the buffer: keys, strings, array
 * payloads and tensor data are never copied. It knows nothing about models. */
#ifndef LL_GGUF_H
#define LL_GGUF_H

#include "core/core.h"

enum ll_gguf_type {
    LL_GGUF_TYPE_UINT8 = 0, LL_GGUF_TYPE_INT8 = 1, LL_GGUF_TYPE_UINT16 = 2, LL_GGUF_TYPE_INT16 = 3,
    LL_GGUF_TYPE_UINT32 = 4, LL_GGUF_TYPE_INT32 = 5, LL_GGUF_TYPE_FLOAT32 = 6, LL_GGUF_TYPE_BOOL = 7,
    LL_GGUF_TYPE_STRING = 8, LL_GGUF_TYPE_ARRAY = 9, LL_GGUF_TYPE_UINT64 = 10, LL_GGUF_TYPE_INT64 = 11,
    LL_GGUF_TYPE_FLOAT64 = 12,
    LL_GGUF_TYPE_COUNT
};

/* Caps (fault-cases.md, "Default caps"). */
#define LL_GGUF_MAX_KEY        65535u
#define LL_GGUF_MAX_STRING     (64u << 20)
#define LL_GGUF_MAX_ARRAY      (1u << 24)
#define LL_GGUF_MAX_KV         (1u << 16)
#define LL_GGUF_MAX_TENSORS    (1u << 20)
#define LL_GGUF_MAX_NAME       64u
#define LL_GGUF_MAX_DIMS       4u
#define LL_GGUF_MAX_ALIGNMENT  (1u << 20)
#define LL_GGUF_DEFAULT_ALIGNMENT 32u

typedef struct {
    ll_str   key;
    uint32_t type;               /* enum ll_gguf_type */
    union {
        uint64_t u;              /* UINT8..UINT64, BOOL (0/1) */
        int64_t  i;              /* INT8..INT64 */
        double   f;              /* FLOAT32, FLOAT64 */
        ll_str   s;              /* STRING */
        struct {
            uint32_t    type;    /* element type (never ARRAY: nested arrays are rejected, G20) */
            uint64_t    n;       /* element count (<= LL_GGUF_MAX_ARRAY) */
            const void *data;    /* packed little-endian elements; for STRING see strs */
            const ll_str *strs;  /* STRING arrays only: n views, owned by the ll_gguf */
        } arr;
    } v;
} ll_gguf_kv;

typedef struct {
    ll_str      name;
    uint32_t    n_dims;          /* 1..4 */
    int64_t     ne[4];           /* missing dims are 1 */
    uint32_t    type;            /* ggml type id; known and with a block size (quant.h) */
    uint64_t    offset;          /* relative to the data section */
    uint64_t    n_bytes;         /* exact byte size (checked) */
    const void *data;            /* view into the buffer */
} ll_gguf_tensor;

typedef struct ll_gguf ll_gguf;

/* Map and parse a file: refuses non-regular files before reading a byte (G2, G3). */
ll_status ll_gguf_open(ll_gguf **out, const char *path, ll_error *err);
/* Parse a caller's buffer (borrowed: it must outlive the ll_gguf). Used by tests and fuzzing. */
ll_status ll_gguf_parse(ll_gguf **out, const void *buf, size_t n, ll_error *err);
void      ll_gguf_close(ll_gguf *g);                      /* NULL-safe; unmaps if it mapped */

uint32_t  ll_gguf_version(const ll_gguf *g);
size_t    ll_gguf_n_kv(const ll_gguf *g);
const ll_gguf_kv *ll_gguf_kv_at(const ll_gguf *g, size_t i);
const ll_gguf_kv *ll_gguf_find(const ll_gguf *g, const char *key);   /* NULL when absent */
size_t    ll_gguf_n_tensors(const ll_gguf *g);
const ll_gguf_tensor *ll_gguf_tensor_at(const ll_gguf *g, size_t i);
const ll_gguf_tensor *ll_gguf_find_tensor(const ll_gguf *g, const char *name);
uint32_t  ll_gguf_alignment(const ll_gguf *g);
uint64_t  ll_gguf_data_offset(const ll_gguf *g);          /* start of the data section */
size_t    ll_gguf_file_size(const ll_gguf *g);

/* Typed getters. Each returns LL_OK and sets *found (found may be NULL) when the key exists
 * with an acceptable type; LL_OK with *found = false (and *out untouched) when absent;
 * LL_ERR_FORMAT naming the key, its type and the expected type otherwise (G25).
 * Integer getters accept any integer type whose value fits. get_f32 accepts FLOAT32/FLOAT64. */
ll_status ll_gguf_get_u32(const ll_gguf *g, const char *key, uint32_t *out, bool *found, ll_error *err);
ll_status ll_gguf_get_i64(const ll_gguf *g, const char *key, int64_t *out, bool *found, ll_error *err);
ll_status ll_gguf_get_f32(const ll_gguf *g, const char *key, float *out, bool *found, ll_error *err);
ll_status ll_gguf_get_bool(const ll_gguf *g, const char *key, bool *out, bool *found, ll_error *err);
ll_status ll_gguf_get_str(const ll_gguf *g, const char *key, ll_str *out, bool *found, ll_error *err);
/* Array of exactly elem_type (G25: element types must match). */
ll_status ll_gguf_get_arr(const ll_gguf *g, const char *key, uint32_t elem_type,
                          const ll_gguf_kv **out, bool *found, ll_error *err);

const char *ll_gguf_type_name(uint32_t type);             /* "u32", "string", ... or "?" */

#endif
