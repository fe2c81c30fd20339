/* Tests for the GGUF metadata writer (src/gguf/gguf_write.h): every value type survives a
 * write + parse round trip, set_u32 moves a key to the end as llama.cpp's gguf_set_val does,
 * tensor offsets follow the padded sizes for the chosen alignment, and bad tensors are refused. */
#include "../test.h"
#include "../gguf_builder.h"
#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "quant/quant.h"

#include <stdint.h>
#include <unistd.h>

/* A source file with one key of every type, read back so the writer gets reader views. */
static unsigned char *make_source(size_t *len) {
    gguf_builder b;
    gb_init(&b, 3);
    gb_kv_str(&b, "general.architecture", "llama");
    gb_kv_u32(&b, "general.file_type", 0);
    gb_kv_u8(&b, "k.u8", 200);
    gb_kv_i8(&b, "k.i8", -5);
    gb_kv_u16(&b, "k.u16", 60000);
    gb_kv_i16(&b, "k.i16", -300);
    gb_kv_i32(&b, "k.i32", -70000);
    gb_kv_u64(&b, "k.u64", 1ull << 40);
    gb_kv_i64(&b, "k.i64", -(1ll << 40));
    gb_kv_f32(&b, "k.f32", 0.1f);
    gb_kv_f64(&b, "k.f64", 0.1);
    gb_kv_bool(&b, "k.bool", 1);
    const char *toks[] = { "a", "", "xyz" };
    gb_kv_arr_str(&b, "k.strs", toks, 3);
    const int32_t iv[3] = { 1, -2, 3 };
    gb_kv_arr_i32(&b, "k.i32s", iv, 3);
    float w[64] = {0};
    uint64_t ne[2] = { 32, 2 };
    gb_tensor(&b, "t.weight", 2, ne, 0, w, sizeof w);
    unsigned char *buf;
    gb_finish(&b, &buf, len);
    gb_free(&b);
    return buf;
}

static unsigned char *write_to_memory(const ll_gguf_writer *w, size_t *n) {
    char path[] = "/tmp/test_gguf_write-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "wb");
    ll_error err = {0};
    CHECK(ll_gguf_writer_write_meta(w, f, &err) == LL_OK);
    fclose(f);
    unsigned char *b = test_read_file(path, n);
    unlink(path);
    return b;
}

static void test_round_trip_every_value_type(void) {
    size_t slen;
    unsigned char *src_buf = make_source(&slen);
    ll_error err = {0};
    ll_gguf *src = NULL;
    CHECK(ll_gguf_parse(&src, src_buf, slen, &err) == LL_OK);
    if (!src) { free(src_buf); return; }
    ll_gguf_writer *w = NULL;
    CHECK(ll_gguf_writer_init(&w, 32, &err) == LL_OK);
    for (size_t i = 0; i < ll_gguf_n_kv(src); i++) CHECK(ll_gguf_writer_add_kv(w, ll_gguf_kv_at(src, i), &err) == LL_OK);
    CHECK(ll_gguf_writer_set_u32(w, "general.quantization_version", 2, &err) == LL_OK);
    CHECK(ll_gguf_writer_set_u32(w, "general.file_type", 15, &err) == LL_OK);
    ll_gguf_writer_remove_key(w, "k.u8");
    int64_t ne[4] = { 256, 3, 1, 1 };
    CHECK(ll_gguf_writer_add_tensor(w, ll_str_c("a.weight"), 2, ne, LL_TYPE_Q4_K, &err) == LL_OK);
    CHECK(ll_gguf_writer_add_tensor(w, ll_str_c("b.weight"), 2, ne, LL_TYPE_F32, &err) == LL_OK);
    CHECK_EQ_INT(ll_gguf_writer_tensor_bytes(w, 0), 3 * 144);

    size_t n;
    unsigned char *meta = write_to_memory(w, &n);
    CHECK_EQ_INT(n, ll_gguf_writer_meta_bytes(w));
    CHECK_EQ_INT(n % 32, 0);
    /* append the data section so the reader accepts the file: 432 bytes padded to 448, then 3 KiB */
    uint64_t total = ll_gguf_writer_file_bytes(w);
    CHECK_EQ_INT(total, n + 448 + 3072);
    unsigned char *file = calloc(1, (size_t)total);
    memcpy(file, meta, n);
    ll_gguf *back = NULL;
    CHECK(ll_gguf_parse(&back, file, (size_t)total, &err) == LL_OK);
    if (back) {
        /* k.u8 removed; file_type moved behind quantization_version at the end */
        CHECK_EQ_INT(ll_gguf_n_kv(back), ll_gguf_n_kv(src) + 1 - 1);
        size_t nk = ll_gguf_n_kv(back);
        CHECK(ll_str_eq_c(ll_gguf_kv_at(back, nk - 2)->key, "general.quantization_version"));
        CHECK(ll_str_eq_c(ll_gguf_kv_at(back, nk - 1)->key, "general.file_type"));
        CHECK_EQ_INT(ll_gguf_kv_at(back, nk - 1)->v.u, 15);
        CHECK(ll_str_eq_c(ll_gguf_kv_at(back, 0)->key, "general.architecture"));
        CHECK(ll_gguf_find(back, "k.u8") == NULL);
        /* every other key: same type and value as the source */
        for (size_t i = 0; i < ll_gguf_n_kv(src); i++) {
            const ll_gguf_kv *a = ll_gguf_kv_at(src, i);
            char key[64];
            snprintf(key, sizeof key, "%.*s", LL_STR(a->key));
            if (!strcmp(key, "k.u8") || !strcmp(key, "general.file_type")) continue;
            const ll_gguf_kv *b = ll_gguf_find(back, key);
            CHECK_MSG(b && b->type == a->type, "%s", key);
            if (!b || b->type != a->type) continue;
            if (a->type == LL_GGUF_TYPE_STRING) CHECK(ll_str_eq(a->v.s, b->v.s));
            else if (a->type == LL_GGUF_TYPE_FLOAT32 || a->type == LL_GGUF_TYPE_FLOAT64) CHECK(a->v.f == b->v.f);
            else if (a->type == LL_GGUF_TYPE_ARRAY) {
                CHECK(a->v.arr.type == b->v.arr.type && a->v.arr.n == b->v.arr.n);
                if (a->v.arr.type == LL_GGUF_TYPE_STRING)
                    for (uint64_t k = 0; k < a->v.arr.n; k++) CHECK(ll_str_eq(a->v.arr.strs[k], b->v.arr.strs[k]));
                else CHECK(!memcmp(a->v.arr.data, b->v.arr.data, (size_t)a->v.arr.n * 4));
            } else CHECK(a->v.u == b->v.u);
        }
        CHECK_EQ_INT(ll_gguf_n_tensors(back), 2);
        const ll_gguf_tensor *t1 = ll_gguf_find_tensor(back, "b.weight");
        CHECK(t1 && t1->offset == 448 && t1->type == LL_TYPE_F32 && t1->ne[0] == 256 && t1->ne[1] == 3);
        ll_gguf_close(back);
    }
    free(file);
    free(meta);
    ll_gguf_writer_free(w);
    ll_gguf_close(src);
    free(src_buf);
}

static void test_alignment_drives_offsets_and_padding(void) {
    ll_error err = {0};
    ll_gguf_writer *w = NULL;
    CHECK(ll_gguf_writer_init(&w, 64, &err) == LL_OK);
    int64_t ne[4] = { 32, 1, 1, 1 };
    CHECK(ll_gguf_writer_add_tensor(w, ll_str_c("x"), 1, ne, LL_TYPE_Q8_0, &err) == LL_OK);   /* 34 bytes */
    CHECK(ll_gguf_writer_add_tensor(w, ll_str_c("y"), 1, ne, LL_TYPE_Q8_0, &err) == LL_OK);
    CHECK_EQ_INT(ll_gguf_writer_meta_bytes(w) % 64, 0);
    CHECK_EQ_INT(ll_gguf_writer_file_bytes(w), ll_gguf_writer_meta_bytes(w) + 128);
    CHECK_EQ_INT(ll_gguf_pad_bytes(34, 64), 30);
    CHECK_EQ_INT(ll_gguf_pad_bytes(64, 64), 0);
    ll_gguf_writer_free(w);
    CHECK(ll_gguf_writer_init(&w, 48, &err) == LL_ERR_FORMAT);
    CHECK(w == NULL);
}

static void test_bad_tensors_refused(void) {
    ll_error err = {0};
    ll_gguf_writer *w = NULL;
    CHECK(ll_gguf_writer_init(&w, 32, &err) == LL_OK);
    int64_t ne[4] = { 96, 2, 1, 1 };
    CHECK(ll_gguf_writer_add_tensor(w, ll_str_c("k"), 2, ne, LL_TYPE_Q4_K, &err) == LL_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, "block");
    ll_error e2 = {0};
    CHECK(ll_gguf_writer_add_tensor(w, ll_str_c("k"), 2, ne, 4, &e2) == LL_ERR_FORMAT);   /* removed type */
    ll_error e3 = {0};
    int64_t huge[4] = { INT64_MAX, INT64_MAX, 1, 1 };
    CHECK(ll_gguf_writer_add_tensor(w, ll_str_c("k"), 2, huge, LL_TYPE_F32, &e3) == LL_ERR_FORMAT);
    ll_error e4 = {0};
    CHECK(ll_gguf_writer_add_tensor(w, ll_str_c("k"), 5, ne, LL_TYPE_F32, &e4) == LL_ERR_FORMAT);
    CHECK_EQ_INT(ll_gguf_writer_n_tensors(w), 0);
    ll_gguf_writer_free(w);
}

int main(void) {
    RUN(test_round_trip_every_value_type);
    RUN(test_alignment_drives_offsets_and_padding);
    RUN(test_bad_tensors_refused);
    return test_summary();
}
