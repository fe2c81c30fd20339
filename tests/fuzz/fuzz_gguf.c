/* libFuzzer target for the GGUF reader (fault rows G1-G44): parse the input as a whole file;
 * when it parses, walk every KV (string arrays included) and every tensor and touch every
 * byte each view claims, so ASan catches a view that points outside the input.
 *
 *     make fuzz && build/tools/make_bad_gguf /tmp/seeds && build-fuzz/fuzz/fuzz_gguf /tmp/corpus /tmp/seeds */
#include "gguf/gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile unsigned sink;

static unsigned touch(const void *p, uint64_t n) {
    const unsigned char *b = p;
    unsigned s = 0;
    for (uint64_t i = 0; i < n; i++) s += b[i];
    return s;
}

/* A copy of the key as a C string for the getters; NULL when it holds a NUL. */
static char *key_cstr(ll_str k) {
    if (memchr(k.p, 0, k.n)) return NULL;
    char *s = malloc(k.n + 1);
    if (!s) return NULL;
    memcpy(s, k.p, k.n);
    s[k.n] = 0;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ll_log_set_level(0);                     /* errors only: no per-input warnings */
    /* an exact-size heap copy, so reading one byte past the end is an ASan report */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    ll_error err = {0};
    ll_gguf *g = NULL;
    if (ll_gguf_parse(&g, buf, size, &err) != LL_OK) {
        if (err.code == LL_OK || err.msg[0] == 0) abort();   /* a failure must say why */
        free(buf);
        return 0;
    }
    unsigned s = ll_gguf_version(g) + ll_gguf_alignment(g);
    if (ll_gguf_data_offset(g) > ll_gguf_file_size(g)) abort();
    for (size_t i = 0; i < ll_gguf_n_kv(g); i++) {
        const ll_gguf_kv *kv = ll_gguf_kv_at(g, i);
        s += touch(kv->key.p, kv->key.n);
        if (kv->type == LL_GGUF_TYPE_STRING) s += touch(kv->v.s.p, kv->v.s.n);
        if (kv->type == LL_GGUF_TYPE_ARRAY) {
            if (kv->v.arr.type == LL_GGUF_TYPE_STRING) {
                for (uint64_t k = 0; k < kv->v.arr.n; k++) s += touch(kv->v.arr.strs[k].p, kv->v.arr.strs[k].n);
            } else {
                static const uint8_t sz[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
                s += touch(kv->v.arr.data, kv->v.arr.n * sz[kv->v.arr.type]);
            }
        }
        char *key = key_cstr(kv->key);
        if (key) {
            if (ll_gguf_find(g, key) != kv) abort();         /* every key finds itself */
            uint32_t u; int64_t i64; float f; bool b; ll_str str; const ll_gguf_kv *a;
            ll_error e = {0};
            ll_gguf_get_u32(g, key, &u, NULL, &e);
            ll_gguf_get_i64(g, key, &i64, NULL, &e);
            ll_gguf_get_f32(g, key, &f, NULL, &e);
            ll_gguf_get_bool(g, key, &b, NULL, &e);
            ll_gguf_get_str(g, key, &str, NULL, &e);
            ll_gguf_get_arr(g, key, LL_GGUF_TYPE_STRING, &a, NULL, &e);
            free(key);
        }
    }
    for (size_t i = 0; i < ll_gguf_n_tensors(g); i++) {
        const ll_gguf_tensor *t = ll_gguf_tensor_at(g, i);
        if (t->n_dims < 1 || t->n_dims > 4) abort();
        s += touch(t->name.p, t->name.n);
        s += touch(t->data, t->n_bytes);
        char *name = key_cstr(t->name);
        if (name) {
            if (ll_gguf_find_tensor(g, name) != t) abort();
            free(name);
        }
    }
    sink = s;
    ll_gguf_close(g);
    free(buf);
    return 0;
}
