/* Fault rows G1-G44 of ../shared/spec/fault-cases.md: one test per row, each building the
 * bad file with tests/gguf_builder.h (or raw bytes), parsing it from memory and through
 * ll_gguf_open on a temp file, and checking the status AND a message fragment naming the
 * problem. Rows G45+ are about models and tokenizers and live with those modules. */
#include "../test.h"
#include "../gguf_builder.h"

#include "gguf/gguf.h"
#include "quant/quant.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char tmp_dir[256];

/* Parse buf from memory and from a temp file; both must give want and a message with frag. */
static void expect_buf(const void *buf, size_t len, ll_status want, const char *frag) {
    ll_error err = {0};
    ll_gguf *g = NULL;
    ll_status st = ll_gguf_parse(&g, buf, len, &err);
    CHECK_MSG(st == want, "parse: got %s, want %s: %s", ll_status_name(st), ll_status_name(want), err.msg);
    if (frag) CHECK_STR_CONTAINS(err.msg, frag);
    CHECK(want == LL_OK ? g != NULL : g == NULL);
    ll_gguf_close(g);

    char path[512];
    snprintf(path, sizeof path, "%s/case.gguf", tmp_dir);
    if (gb_write_file(path, buf, len) != 0) { CHECK(!"cannot write temp file"); return; }
    ll_error err2 = {0};
    g = NULL;
    st = ll_gguf_open(&g, path, &err2);
    CHECK_MSG(st == want, "open: got %s, want %s: %s", ll_status_name(st), ll_status_name(want), err2.msg);
    if (frag) CHECK_STR_CONTAINS(err2.msg, frag);
    ll_gguf_close(g);
    unlink(path);
}

static void expect_b(gguf_builder *b, ll_status want, const char *frag) {
    unsigned char *buf;
    size_t len;
    gb_finish(b, &buf, &len);
    expect_buf(buf, len, want, frag);
    free(buf);
    gb_free(b);
}

static void expect_open(const char *path, ll_status want, const char *frag) {
    ll_error err = {0};
    ll_gguf *g = NULL;
    ll_status st = ll_gguf_open(&g, path, &err);
    CHECK_MSG(st == want, "open %s: got %s, want %s: %s", path, ll_status_name(st), ll_status_name(want), err.msg);
    CHECK_STR_CONTAINS(err.msg, frag);
    CHECK(g == NULL);
    ll_gguf_close(g);
}

/* A valid file: a few KVs (one long enough that a cut tensor info still passes the G11
 * minimum-size check) and two F32 tensors, the last ending at the last byte. */
static void base(gguf_builder *b) {
    gb_init(b, 3);
    gb_kv_str(b, "general.architecture", "llama");
    gb_kv_str(b, "general.name", "a test file with a name long enough to leave slack for cut tensor infos");
    gb_kv_u32(b, "llama.block_count", 1);
}
static void base_tensors(gguf_builder *b) {
    float w[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    uint64_t ne[2] = { 4, 2 };
    gb_tensor_f32(b, "a.weight", 2, ne, w);
    gb_tensor_f32(b, "b.weight", 1, ne, w);
}

/* A header with given counts and nothing else but `extra` zero bytes. */
static void raw_header(unsigned char *h, const char *magic, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    memcpy(h, magic, 4);
    memcpy(h + 4, &version, 4);
    memcpy(h + 8, &n_tensors, 8);
    memcpy(h + 16, &n_kv, 8);
}

static void test_base_file_is_valid(void) {
    gguf_builder b;
    base(&b);
    base_tensors(&b);
    expect_b(&b, LL_OK, NULL);
}

static void test_G1_empty_file(void) {
    expect_buf("", 0, LL_ERR_FORMAT, "file is empty (0 bytes), not a GGUF file");
}

static void test_G2_directory(void) {
    expect_open(tmp_dir, LL_ERR_IO, "is a directory");
    /* the message never echoes the path (fault rule 3) */
    ll_error err = {0};
    ll_gguf *g;
    ll_gguf_open(&g, tmp_dir, &err);
    CHECK(strstr(err.msg, tmp_dir) == NULL);
}

static void test_G3_fifo_device_socket(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/fifo", tmp_dir);
    CHECK(mkfifo(path, 0600) == 0);
    expect_open(path, LL_ERR_IO, "not a regular file (FIFO)");   /* returns at once: no writer needed */
    unlink(path);
    expect_open("/dev/zero", LL_ERR_IO, "not a regular file (character device)");
    expect_open("/dev/urandom", LL_ERR_IO, "not a regular file");
    snprintf(path, sizeof path, "%s/sock", tmp_dir);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof addr.sun_path, "%.100s", path);
    if (s >= 0 && bind(s, (struct sockaddr *)&addr, sizeof addr) == 0)
        expect_open(path, LL_ERR_IO, "not a regular file");
    if (s >= 0) close(s);
    unlink(path);
    expect_open("/nonexistent/x.gguf", LL_ERR_IO, "No such file");
}

static void test_G4_short_header(void) {
    unsigned char h[24];
    raw_header(h, "GGUF", 3, 0, 0);
    expect_buf(h, 13, LL_ERR_FORMAT, "truncated header: file is 13 bytes, need 24");
    expect_buf(h, 2, LL_ERR_FORMAT, "truncated header: file is 2 bytes, need 24");
    expect_buf(h, 23, LL_ERR_FORMAT, "truncated header: file is 23 bytes, need 24");
    expect_buf(h, 24, LL_OK, NULL);                   /* header only: no KVs, no tensors */
}

static void test_G5_bad_magic(void) {
    unsigned char h[64] = {0};
    raw_header(h, "GGJT", 3, 0, 0);
    expect_buf(h, 24, LL_ERR_FORMAT, "not a GGUF file (magic 'GGJT', looks like a legacy GGJT file");
    raw_header(h, "tjgg", 3, 0, 0);
    expect_buf(h, 24, LL_ERR_FORMAT, "legacy GGJT file");
    raw_header(h, "lmgg", 3, 0, 0);
    expect_buf(h, 24, LL_ERR_FORMAT, "legacy GGML file");
    raw_header(h, "PK\x03\x04", 3, 0, 0);
    expect_buf(h, 30, LL_ERR_FORMAT, "not a GGUF file (magic 'PK\\x03\\x04', looks like a zip archive");
    memset(h, 0, sizeof h);
    uint64_t hl = 40;
    memcpy(h, &hl, 8);
    memcpy(h + 8, "{\"__metadata__\":{}}", 19);
    expect_buf(h, 40, LL_ERR_FORMAT, "safetensors");
    const char *text = "<!DOCTYPE html><html>not a model</html>";
    expect_buf(text, strlen(text), LL_ERR_FORMAT, "not a GGUF file (magic '<!DO', looks like a text file)");
    expect_buf("\x01\x02\x03\x04\x05", 5, LL_ERR_FORMAT, "not a GGUF file (magic '\\x01\\x02\\x03\\x04')");
}

static void test_G6_version_0(void) {
    gguf_builder b;
    base(&b);
    b.version = 0;
    expect_b(&b, LL_ERR_FORMAT, "GGUF version 0 is invalid");
}

static void test_G7_version_1(void) {
    gguf_builder b;
    base(&b);
    b.version = 1;
    expect_b(&b, LL_ERR_UNSUPPORTED, "GGUFv1 is not supported; re-convert the model");
}

static void test_G8_version_4(void) {
    gguf_builder b;
    base(&b);
    b.version = 4;
    expect_b(&b, LL_ERR_UNSUPPORTED, "GGUF version 4 is newer than supported (2..3)");
    base(&b);
    b.version = 0x7fffffff;
    expect_b(&b, LL_ERR_UNSUPPORTED, "newer than supported");
    base(&b);
    b.version = 2;
    expect_b(&b, LL_OK, NULL);
}

static void test_G9_big_endian(void) {
    gguf_builder b;
    base(&b);
    b.version = 0x03000000;
    expect_b(&b, LL_ERR_UNSUPPORTED, "big-endian GGUF is not supported");
    base(&b);
    b.version = 0x02000000;
    expect_b(&b, LL_ERR_UNSUPPORTED, "big-endian GGUF is not supported");
}

static void test_G10_negative_counts(void) {
    unsigned char h[64] = {0};
    raw_header(h, "GGUF", 3, 1ull << 63, 0);
    expect_buf(h, sizeof h, LL_ERR_FORMAT, "n_tensors at byte 8 is 9223372036854775808 (negative as i64)");
    raw_header(h, "GGUF", 3, 0, UINT64_MAX);
    expect_buf(h, sizeof h, LL_ERR_FORMAT, "n_kv at byte 16 is 18446744073709551615 (negative as i64)");
}

static void test_G11_counts_over_cap_or_bytes(void) {
    unsigned char h[256] = {0};
    raw_header(h, "GGUF", 3, 0, 70000);
    expect_buf(h, sizeof h, LL_ERR_LIMIT, "n_kv at byte 16 is 70000, over the cap 65536");
    raw_header(h, "GGUF", 3, (1u << 20) + 1, 0);
    expect_buf(h, sizeof h, LL_ERR_LIMIT, "n_tensors at byte 8 is 1048577, over the cap 1048576");
    /* within the caps but far more than 232 bytes can hold: refused before any allocation */
    raw_header(h, "GGUF", 3, 0, 65536);
    expect_buf(h, sizeof h, LL_ERR_FORMAT, "need at least 917504 bytes; only 232 follow the header");
    raw_header(h, "GGUF", 3, 1u << 20, 0);
    expect_buf(h, sizeof h, LL_ERR_FORMAT, "1048576 tensors");
    /* and proven: with no allocation allowed at all the result is still FORMAT, not NOMEM */
    ll_error err = {0};
    ll_gguf *g;
    ll_alloc_fail_after(1);        /* only the reader struct itself */
    ll_status st = ll_gguf_parse(&g, h, sizeof h, &err);
    ll_alloc_fail_after(-1);
    CHECK_EQ_INT(st, LL_ERR_FORMAT);
}

static void test_G12_truncated_at_every_byte(void) {
    gguf_builder b;
    base(&b);
    const char *toks[] = { "a", "bb", "ccc" };
    gb_kv_arr_str(&b, "tokenizer.ggml.tokens", toks, 3);
    float sc[3] = { 1, 2, 3 };
    gb_kv_arr_f32(&b, "tokenizer.ggml.scores", sc, 3);
    gb_kv_bool(&b, "tokenizer.ggml.add_bos_token", 1);
    base_tensors(&b);
    size_t kv_end = 24 + b.kv.n;
    unsigned char *buf;
    size_t len;
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    expect_buf(buf, len, LL_OK, NULL);
    for (size_t cut = 0; cut < len; cut++) {
        /* a private copy of exactly cut bytes so ASan sees any read past it */
        unsigned char *p = malloc(cut ? cut : 1);
        memcpy(p, buf, cut);
        ll_error err = {0};
        ll_gguf *g = NULL;
        ll_status st = ll_gguf_parse(&g, p, cut, &err);
        CHECK_MSG(st == LL_ERR_FORMAT && g == NULL, "cut %zu: %s %s", cut, ll_status_name(st), err.msg);
        /* past the header, inside the KVs: either the G11 minimum-size check (the declared
         * counts no longer fit) or the field that was cut */
        if (cut >= 24 && cut < kv_end)
            CHECK_MSG(strstr(err.msg, "truncated at byte") || strstr(err.msg, "need at least"),
                      "cut %zu: %s", cut, err.msg);
        ll_gguf_close(g);
        free(p);
    }
    free(buf);

    /* the message names the field and the key: a file with two KVs, cut where the declared
     * counts still pass the minimum-size check */
    gb_init(&b, 3);
    gb_kv_str(&b, "general.architecture", "llama");     /* bytes 24..69 */
    gb_kv_u8(&b, "x.y", 7);
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    static const struct { size_t cut; const char *frag; } cuts[] = {
        { 24 + 8 + 20 + 2, "truncated at byte 52 (file is 54 bytes) while reading the type of 'general.architecture'" },
        { 24 + 8 + 20 + 4 + 4, "truncated at byte 56 (file is 60 bytes) while reading value of 'general.architecture'" },
        { 24 + 8 + 20 + 4 + 8 + 2, "truncated at byte 64: value of 'general.architecture' has length 5, only 2 bytes left" },
        { 69 + 4, "truncated at byte 69 (file is 73 bytes) while reading the key length of KV #1" },
        { 69 + 8 + 1, "truncated at byte 77: key of KV #1 has length 3, only 1 bytes left" },
        { 69 + 8 + 3 + 4, "truncated at byte 84 (file is 84 bytes) while reading value of 'x.y'" },
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_buf(buf, cuts[i].cut, LL_ERR_FORMAT, cuts[i].frag);
    expect_buf(buf, len, LL_OK, NULL);
    free(buf);
}

static void test_G13_key_too_long(void) {
    gguf_builder b;
    base(&b);
    char *key = malloc(70000);
    memset(key, 'k', 70000);
    gb_kv_beginn(&b, key, 70000, GB_U8);
    gb_put_u8(&b.kv, 1);
    free(key);
    expect_b(&b, LL_ERR_FORMAT, "KV #3: key length 70000 at byte");
    base(&b);
    gb_put_u64(&b.kv, 1ull << 62);            /* a key length only, far past the end */
    gb_put_zeros(&b.kv, 16);
    b.n_kv++;
    expect_b(&b, LL_ERR_FORMAT, "KV #3: key length 4611686018427387904");
    base(&b);
    key = malloc(65535);
    memset(key, 'k', 65535);
    gb_kv_beginn(&b, key, 65535, GB_U8);      /* the maximum is fine */
    gb_put_u8(&b.kv, 1);
    free(key);
    expect_b(&b, LL_OK, NULL);
}

static void test_G14_empty_key(void) {
    gguf_builder b;
    base(&b);
    gb_kv_u32(&b, "", 1);
    expect_b(&b, LL_ERR_FORMAT, "KV #3 has an empty key");
}

static void test_G15_key_bytes(void) {
    gguf_builder b;
    base(&b);
    gb_kv_beginn(&b, "gen\0eral", 8, GB_U8);
    gb_put_u8(&b.kv, 1);
    expect_b(&b, LL_ERR_FORMAT, "KV #3: key 'gen\\x00eral' at byte");
    base(&b);
    gb_kv_u8(&b, "a.\x01" "b", 1);
    expect_b(&b, LL_ERR_FORMAT, "has control byte 0x01 at position 2");
    base(&b);
    gb_kv_u8(&b, "a.\xff", 1);
    expect_b(&b, LL_ERR_FORMAT, "has invalid UTF-8 byte 0xff at position 2");
    base(&b);
    gb_kv_u8(&b, "a.\xc0\xaf", 1);                     /* overlong '/' */
    expect_b(&b, LL_ERR_FORMAT, "invalid UTF-8 byte 0xc0");
    base(&b);
    gb_kv_u8(&b, "a.\xed\xa0\x80", 1);                 /* surrogate */
    expect_b(&b, LL_ERR_FORMAT, "invalid UTF-8 byte 0xed");
    base(&b);
    gb_kv_u8(&b, "a.\xe2\x82", 1);                     /* cut sequence */
    expect_b(&b, LL_ERR_FORMAT, "invalid UTF-8");
    /* style violations only warn */
    base(&b);
    gb_kv_u8(&b, "General.Name", 1);
    gb_kv_u8(&b, "caf\xc3\xa9..x", 1);
    expect_b(&b, LL_OK, NULL);
}

static void test_G16_duplicate_key(void) {
    gguf_builder b;
    base(&b);
    gb_kv_u8(&b, "x.y", 1);
    gb_kv_str(&b, "general.architecture", "bert");
    expect_b(&b, LL_ERR_FORMAT, "duplicate key 'general.architecture' (KV #0 and #4)");
}

static void test_G17_unknown_value_type(void) {
    gguf_builder b;
    base(&b);
    gb_kv_begin(&b, "x.y", 77);
    gb_put_u64(&b.kv, 0);
    expect_b(&b, LL_ERR_FORMAT, "key 'x.y' has unknown type 77");
    base(&b);
    gb_kv_begin(&b, "x.y", 13);
    gb_put_u64(&b.kv, 0);
    expect_b(&b, LL_ERR_FORMAT, "has unknown type 13");
}

static void test_G18_bad_bool(void) {
    gguf_builder b;
    base(&b);
    gb_kv_bool(&b, "tokenizer.ggml.add_bos_token", 2);
    expect_b(&b, LL_ERR_FORMAT, "key 'tokenizer.ggml.add_bos_token': invalid bool 0x02");
    base(&b);
    uint8_t v[3] = { 0, 1, 0xff };
    gb_kv_arr_begin(&b, "x.bools", GB_BOOL, 3);
    gb_put_bytes(&b.kv, v, 3);
    expect_b(&b, LL_ERR_FORMAT, "key 'x.bools': invalid bool 0xff at element 2");
}

static void test_G19_string_length(void) {
    gguf_builder b;
    base(&b);
    gb_kv_begin(&b, "x.s", GB_STR);
    gb_put_u64(&b.kv, 1ull << 63);
    gb_put_zeros(&b.kv, 16);
    expect_b(&b, LL_ERR_FORMAT, "value of 'x.s': length at byte");
    base(&b);
    gb_kv_begin(&b, "x.s", GB_STR);
    gb_put_u64(&b.kv, 1000);
    gb_put_zeros(&b.kv, 100);
    expect_b(&b, LL_ERR_FORMAT, "value of 'x.s' has length 1000, only 100 bytes left");
    /* over the 64 MiB cap with every byte present: LIMIT */
    base(&b);
    size_t n = (64u << 20) + 1;
    gb_kv_begin(&b, "x.s", GB_STR);
    gb_put_u64(&b.kv, n);
    gb_put_zeros(&b.kv, n);
    expect_b(&b, LL_ERR_LIMIT, "value of 'x.s' at byte");
    /* the same inside a string array */
    base(&b);
    gb_kv_arr_begin(&b, "x.a", GB_STR, 2);
    gb_put_str(&b.kv, "ok");
    gb_put_u64(&b.kv, UINT64_MAX);
    expect_b(&b, LL_ERR_FORMAT, "string #1 of 'x.a': length at byte");
}

static void test_G20_nested_array(void) {
    gguf_builder b;
    base(&b);
    gb_kv_arr_begin(&b, "x.nest", GB_ARR, 1);
    gb_put_u32(&b.kv, GB_U8);
    gb_put_u64(&b.kv, 1);
    gb_put_u8(&b.kv, 7);
    expect_b(&b, LL_ERR_FORMAT, "key 'x.nest': nested arrays are not supported");
    /* a deep nest is refused at the first level: no recursion, no stack growth */
    base(&b);
    gb_kv_begin(&b, "x.deep", GB_ARR);
    for (int i = 0; i < 100000; i++) { gb_put_u32(&b.kv, GB_ARR); gb_put_u64(&b.kv, 1); }
    expect_b(&b, LL_ERR_FORMAT, "nested arrays are not supported");
}

static void test_G21_unknown_element_type(void) {
    gguf_builder b;
    base(&b);
    gb_kv_arr_begin(&b, "x.a", 13, 1);
    gb_put_zeros(&b.kv, 8);
    expect_b(&b, LL_ERR_FORMAT, "key 'x.a': array element type 13 at byte");
    base(&b);
    gb_kv_arr_begin(&b, "x.a", 0xffffffffu, 1);
    gb_put_zeros(&b.kv, 8);
    expect_b(&b, LL_ERR_FORMAT, "array element type 4294967295");
}

static void test_G22_array_size(void) {
    gguf_builder b;
    base(&b);
    gb_kv_arr_begin(&b, "x.a", GB_U64, 1ull << 61);      /* 2^61 * 8 overflows u64 */
    gb_put_zeros(&b.kv, 16);
    expect_b(&b, LL_ERR_FORMAT, "key 'x.a': array of 2305843009213693952 u64 at byte");
    base(&b);
    gb_kv_arr_begin(&b, "x.a", GB_U32, 1000);
    gb_put_zeros(&b.kv, 100);
    expect_b(&b, LL_ERR_FORMAT, "array of 1000 u32 needs 4000 bytes, only 100 left");
}

static void test_G23_string_array_count(void) {
    gguf_builder b;
    base(&b);
    gb_kv_arr_begin(&b, "tokenizer.ggml.tokens", GB_STR, 1ull << 40);
    gb_put_zeros(&b.kv, 64);
    unsigned char *buf;
    size_t len;
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    expect_buf(buf, len, LL_ERR_FORMAT, "key 'tokenizer.ggml.tokens' array of 1099511627776 strings");
    /* refused before the view table is allocated: with allocations failing from the 6th on
     * (reader, KV table, tensor table, two indexes), the answer is still FORMAT */
    ll_error err = {0};
    ll_gguf *g;
    ll_alloc_fail_after(5);
    ll_status st = ll_gguf_parse(&g, buf, len, &err);
    ll_alloc_fail_after(-1);
    CHECK_MSG(st == LL_ERR_FORMAT, "%s", err.msg);
    free(buf);
    base(&b);
    gb_kv_arr_begin(&b, "x.a", GB_STR, 10);              /* 80 bytes needed, 79 present */
    gb_put_zeros(&b.kv, 79);
    expect_b(&b, LL_ERR_FORMAT, "array of 10 strings (count at byte");
}

static void test_G24_array_over_cap(void) {
    gguf_builder b;
    base(&b);
    size_t n = (1u << 24) + 1;
    gb_kv_arr_begin(&b, "x.big", GB_U8, n);
    gb_put_zeros(&b.kv, n);
    expect_b(&b, LL_ERR_LIMIT, "key 'x.big': array of 16777217 elements at byte");
    base(&b);
    gb_kv_arr_begin(&b, "x.big", GB_STR, n);
    gb_put_zeros(&b.kv, n * 8);
    expect_b(&b, LL_ERR_LIMIT, "key 'x.big': array of 16777217 strings at byte");
}

static void test_G25_wrong_key_type(void) {
    gguf_builder b;
    base(&b);
    gb_kv_i32(&b, "general.alignment", 32);
    expect_b(&b, LL_ERR_FORMAT, "key 'general.alignment' has type i32, expected u32");
    /* model keys go through the typed getters */
    base(&b);
    gb_kv_str(&b, "llama.context_length", "4096");
    gb_kv_i32(&b, "llama.embedding_length", 64);
    uint8_t sc[3] = { 1, 2, 3 };
    gb_kv_arr_u8(&b, "tokenizer.ggml.scores", sc, 3);
    unsigned char *buf;
    size_t len;
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    ll_error err = {0};
    ll_gguf *g = NULL;
    CHECK(ll_gguf_parse(&g, buf, len, &err) == LL_OK);
    if (g) {
        uint32_t u = 0;
        bool found;
        ll_error e1 = {0}, e2 = {0}, e3 = {0};
        CHECK(ll_gguf_get_u32(g, "llama.context_length", &u, &found, &e1) == LL_ERR_FORMAT);
        CHECK_STR_CONTAINS(e1.msg, "key 'llama.context_length' has type string, expected u32");
        CHECK(ll_gguf_get_u32(g, "llama.embedding_length", &u, &found, &e2) == LL_OK && u == 64);  /* fits */
        const ll_gguf_kv *a;
        CHECK(ll_gguf_get_arr(g, "tokenizer.ggml.scores", LL_GGUF_TYPE_FLOAT32, &a, &found, &e3) == LL_ERR_FORMAT);
        CHECK_STR_CONTAINS(e3.msg, "key 'tokenizer.ggml.scores' has type u8[], expected f32[]");
        ll_gguf_close(g);
    }
    free(buf);
}

static void test_G26_bad_alignment(void) {
    static const uint32_t bad[] = { 0, 48, 3, 1u << 21, 0xffffffffu };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gguf_builder b;
        base(&b);
        gb_kv_u32(&b, "general.alignment", bad[i]);
        base_tensors(&b);
        char frag[96];
        snprintf(frag, sizeof frag, "general.alignment is %u: must be a power of two in [1, 1048576]", bad[i]);
        expect_b(&b, LL_ERR_FORMAT, frag);
    }
    static const uint32_t good[] = { 1, 4, 8, 64, 1u << 20 };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        gguf_builder b;
        base(&b);
        gb_kv_u32(&b, "general.alignment", good[i]);
        base_tensors(&b);
        expect_b(&b, LL_OK, NULL);
    }
}

static void test_G27_truncated_tensor_info(void) {
    gguf_builder b;
    base(&b);
    base_tensors(&b);
    size_t ti0 = 24 + b.kv.n;                       /* tensor #0 info starts here */
    unsigned char *buf;
    size_t len;
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    /* name length, name, n_dims, dim 0, dim 1, type, offset */
    static const struct { size_t at; const char *frag; } cuts[] = {
        { 4, "while reading the name length of tensor #0" },
        { 8 + 3, "tensor #0 name length 8, only 3 bytes left" },
        { 16 + 2, "while reading n_dims of tensor #0 'a.weight'" },
        { 20 + 5, "while reading dim 0 of tensor #0 'a.weight'" },
        { 28 + 7, "while reading dim 1 of tensor #0 'a.weight'" },
        { 36 + 1, "while reading the type of tensor #0 'a.weight'" },
        { 40 + 4, "while reading the offset of tensor #0 'a.weight'" },
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_buf(buf, ti0 + cuts[i].at, LL_ERR_FORMAT, cuts[i].frag);
    free(buf);
}

static void test_G28_bad_tensor_name(void) {
    uint64_t ne[1] = { 4 };
    gguf_builder b;
    base(&b);
    gb_tensor_info_raw(&b, "", 0, 1, ne, 1, 0, 0);
    gb_put_zeros(&b.data, 16);
    expect_b(&b, LL_ERR_FORMAT, "tensor #0: name is empty");
    char name[81];
    memset(name, 'n', 80);
    name[80] = 0;
    base(&b);
    gb_tensor(&b, name, 1, ne, 0, NULL, 16);
    expect_b(&b, LL_ERR_FORMAT, "tensor #0: name is 80 bytes (max 64)");
    name[64] = 0;
    base(&b);
    gb_tensor(&b, name, 1, ne, 0, NULL, 16);         /* 64 bytes: the cap itself is fine */
    expect_b(&b, LL_OK, NULL);
    base(&b);
    gb_tensor_info_raw(&b, "a\0b", 3, 1, ne, 1, 0, 0);
    gb_put_zeros(&b.data, 16);
    expect_b(&b, LL_ERR_FORMAT, "tensor #0: name 'a\\x00b' has control byte 0x00 at position 1");
    base(&b);
    gb_tensor(&b, "blk.\xfe", 1, ne, 0, NULL, 16);
    expect_b(&b, LL_ERR_FORMAT, "has invalid UTF-8 byte 0xfe at position 4");
}

static void test_G29_duplicate_tensor(void) {
    uint64_t ne[1] = { 4 };
    gguf_builder b;
    base(&b);
    gb_tensor(&b, "a.weight", 1, ne, 0, NULL, 16);
    gb_tensor(&b, "b.weight", 1, ne, 0, NULL, 16);
    gb_tensor(&b, "a.weight", 1, ne, 0, NULL, 16);
    expect_b(&b, LL_ERR_FORMAT, "duplicate tensor name 'a.weight' (tensor #0 and #2)");
}

static void test_G30_n_dims(void) {
    uint64_t ne[8] = { 4, 1, 1, 1, 1, 1, 1, 1 };
    gguf_builder b;
    base(&b);
    gb_tensor_info_raw(&b, "w", 1, 0, ne, 0, 0, 0);
    gb_put_zeros(&b.data, 16);
    expect_b(&b, LL_ERR_FORMAT, "tensor 'w': n_dims is 0 at byte");
    base(&b);
    gb_tensor_info_raw(&b, "w", 1, 5, ne, 5, 0, 0);
    gb_put_zeros(&b.data, 16);
    expect_b(&b, LL_ERR_FORMAT, "tensor 'w': n_dims is 5 at byte");
    base(&b);
    gb_tensor_info_raw(&b, "w", 1, 0xffffffffu, ne, 8, 0, 0);
    gb_put_zeros(&b.data, 16);
    expect_b(&b, LL_ERR_FORMAT, "n_dims is 4294967295");
    base(&b);
    gb_tensor(&b, "w", 4, ne, 0, NULL, 16);          /* 4 is fine */
    expect_b(&b, LL_OK, NULL);
}

static void test_G31_zero_dim(void) {
    uint64_t ne[2] = { 4, 0 };
    gguf_builder b;
    base(&b);
    gb_tensor(&b, "w", 2, ne, 0, NULL, 16);
    expect_b(&b, LL_ERR_FORMAT, "tensor 'w' dim 1 is 0");
}

static void test_G32_negative_dim(void) {
    uint64_t ne[2] = { 4, 1ull << 63 };
    gguf_builder b;
    base(&b);
    gb_tensor(&b, "w", 2, ne, 0, NULL, 16);
    expect_b(&b, LL_ERR_FORMAT, "tensor 'w' dim 1 is 9223372036854775808 (negative as i64");
}

static void test_G33_size_overflow(void) {
    static const struct { uint32_t n_dims; uint64_t ne[4]; uint32_t type; } cases[] = {
        { 2, { INT64_MAX, 2 }, LL_TYPE_F32 },                       /* elements past 2^63 */
        { 2, { (1ull << 42) + 1, 1ull << 22 }, LL_TYPE_F32 },
        { 4, { 1ull << 16, 1ull << 16, 1ull << 16, 1ull << 16 }, LL_TYPE_F32 },
        { 1, { 1ull << 62 }, LL_TYPE_F32 },                         /* bytes past 2^64 */
        { 1, { (1ull << 61) - 1 }, 28 /* F64 */ },                   /* padding would wrap */
        { 2, { 256ull << 40, 1ull << 20 }, LL_TYPE_Q4_K },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gguf_builder b;
        base(&b);
        gb_tensor_at(&b, "w", cases[i].n_dims, cases[i].ne, cases[i].type, 0, NULL, 64);
        expect_b(&b, LL_ERR_FORMAT, "tensor 'w' size overflows");
    }
}

static void test_G34_unknown_ggml_type(void) {
    static const uint32_t bad[] = { 4, 5, 31, 32, 33, 36, 37, 38, 40, 1000, 0xffffffffu };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ne[1] = { 256 };
        gguf_builder b;
        base(&b);
        gb_tensor(&b, "w", 1, ne, bad[i], NULL, 1024);
        char frag[64];
        snprintf(frag, sizeof frag, "tensor 'w' has unknown type %u", bad[i]);
        expect_b(&b, LL_ERR_FORMAT, frag);
    }
}

/* G35 is the model loader's (UNSUPPORTED by name); the container must accept such files. */
static void test_G35_container_accepts_types_without_kernels(void) {
    uint64_t ne[1] = { 256 };
    gguf_builder b;
    base(&b);
    gb_tensor(&b, "w", 1, ne, 16 /* IQ2_XXS */, NULL, 66);
    unsigned char *buf;
    size_t len;
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    ll_error err = {0};
    ll_gguf *g = NULL;
    CHECK_MSG(ll_gguf_parse(&g, buf, len, &err) == LL_OK, "%s", err.msg);
    if (g) {
        const ll_gguf_tensor *t = ll_gguf_find_tensor(g, "w");
        CHECK(t && t->type == 16 && t->n_bytes == 66);
        CHECK(!ll_type_traits_of(16)->supported);
        ll_gguf_close(g);
    }
    free(buf);
}

static void test_G36_row_not_block_multiple(void) {
    uint64_t ne[2] = { 100, 2 };
    gguf_builder b;
    base(&b);
    gb_tensor(&b, "w", 2, ne, LL_TYPE_Q4_K, NULL, 1024);
    expect_b(&b, LL_ERR_FORMAT, "tensor 'w': ne[0] = 100 is not a multiple of the block size 256 of Q4_K");
    ne[0] = 48;
    base(&b);
    gb_tensor(&b, "w", 2, ne, LL_TYPE_Q8_0, NULL, 1024);
    expect_b(&b, LL_ERR_FORMAT, "ne[0] = 48 is not a multiple of the block size 32 of Q8_0");
}

static void test_G37_misaligned_offset(void) {
    uint64_t ne[1] = { 4 };
    gguf_builder b;
    base(&b);
    gb_tensor_at(&b, "w", 1, ne, 0, 16, NULL, 16);
    expect_b(&b, LL_ERR_FORMAT, "tensor 'w': offset 16 (at byte");
    base(&b);
    gb_tensor_at(&b, "w", 1, ne, 0, 16, NULL, 16);
    unsigned char *buf;
    size_t len;
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    expect_buf(buf, len, LL_ERR_FORMAT, "is not a multiple of the alignment 32");
    free(buf);
    base(&b);
    gb_kv_u32(&b, "general.alignment", 16);         /* same offset, alignment 16: fine */
    gb_tensor_at(&b, "w", 1, ne, 0, 16, NULL, 16);
    expect_b(&b, LL_OK, NULL);
}

static void test_G38_data_start_past_eof(void) {
    gguf_builder b;
    base(&b);
    base_tensors(&b);
    size_t info_end = 24 + b.kv.n + b.ti.n, start = gb_data_start(&b);
    CHECK(start > info_end);                          /* the base file needs padding */
    unsigned char *buf;
    size_t len;
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    char frag[96];
    snprintf(frag, sizeof frag, "data section starts at %zu, file is %zu bytes", start, info_end);
    expect_buf(buf, info_end, LL_ERR_FORMAT, frag);
    free(buf);
}

static void test_G39_tensor_past_eof(void) {
    gguf_builder b;
    base(&b);
    base_tensors(&b);
    size_t start = gb_data_start(&b);
    unsigned char *buf;
    size_t len;
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    /* b.weight: 4 floats at offset 32 */
    char frag[96];
    snprintf(frag, sizeof frag, "tensor 'b.weight' needs bytes [%zu, %zu), file has %zu", start + 32, start + 48, len - 1);
    expect_buf(buf, len - 1, LL_ERR_FORMAT, frag);
    free(buf);
    /* a tensor whose offset alone is past the end */
    uint64_t ne[1] = { 4 };
    base(&b);
    gb_tensor_at(&b, "far", 1, ne, 0, 1ull << 40, NULL, 0);
    expect_b(&b, LL_ERR_FORMAT, "tensor 'far' needs bytes [");
}

static void test_G40_offset_plus_size_overflows(void) {
    uint64_t ne[1] = { 64 };
    gguf_builder b;
    base(&b);
    gb_tensor_at(&b, "w", 1, ne, 0, UINT64_MAX - 31, NULL, 0);
    expect_b(&b, LL_ERR_FORMAT, "tensor 'w': offset 18446744073709551584 + size 256 overflows");
    /* offset + size fits, data start + offset does not */
    ne[0] = 4;
    base(&b);
    gb_tensor_at(&b, "w", 1, ne, 0, UINT64_MAX - 31, NULL, 0);
    expect_b(&b, LL_ERR_FORMAT, "tensor 'w': data start 256 + offset 18446744073709551584 + size 16 overflows");
}

static void test_G41_overlapping_tensors(void) {
    uint64_t ne[1] = { 16 };                          /* 64 bytes each */
    gguf_builder b;
    base(&b);
    gb_tensor_at(&b, "c", 1, ne, 0, 128, NULL, 64);
    gb_tensor_at(&b, "a", 1, ne, 0, 0, NULL, 64);
    gb_tensor_at(&b, "b", 1, ne, 0, 32, NULL, 64);
    expect_b(&b, LL_ERR_FORMAT, "tensors 'a' [0, 64) and 'b' [32, 96) overlap");
    base(&b);
    gb_tensor_at(&b, "a", 1, ne, 0, 0, NULL, 64);
    gb_tensor_at(&b, "b", 1, ne, 0, 0, NULL, 64);     /* same range */
    expect_b(&b, LL_ERR_FORMAT, "overlap");
    /* out of order with gaps is fine */
    base(&b);
    gb_tensor_at(&b, "c", 1, ne, 0, 256, NULL, 64);
    gb_tensor_at(&b, "a", 1, ne, 0, 0, NULL, 64);
    gb_tensor_at(&b, "b", 1, ne, 0, 64, NULL, 64);
    expect_b(&b, LL_OK, NULL);
}

static void test_G42_zero_tensors(void) {
    gguf_builder b;
    base(&b);
    unsigned char *buf;
    size_t len;
    gb_finish(&b, &buf, &len);
    gb_free(&b);
    CHECK_EQ_INT(len % 32 != 0, 1);                   /* ends right after the KVs, unaligned */
    expect_buf(buf, len, LL_OK, NULL);
    ll_error err = {0};
    ll_gguf *g = NULL;
    CHECK(ll_gguf_parse(&g, buf, len, &err) == LL_OK);
    if (g) {
        CHECK_EQ_INT(ll_gguf_n_tensors(g), 0);
        CHECK_EQ_INT(ll_gguf_n_kv(g), 3);
        ll_gguf_close(g);
    }
    free(buf);
    base(&b);
    b.force_pad = true;
    expect_b(&b, LL_OK, NULL);
}

static void test_G43_trailing_bytes(void) {
    gguf_builder b;
    base(&b);
    base_tensors(&b);
    gb_put_zeros(&b.tail, 1000);
    gb_put_bytes(&b.tail, "junk", 4);
    expect_b(&b, LL_OK, NULL);
}

static void test_G44_split_file(void) {
    gguf_builder b;
    base(&b);
    gb_kv_u16(&b, "split.no", 0);
    gb_kv_u16(&b, "split.count", 3);
    gb_kv_i32(&b, "split.tensors.count", 2);
    base_tensors(&b);
    expect_b(&b, LL_ERR_UNSUPPORTED, "shard 1 of 3; merge shards first");
    base(&b);
    gb_kv_u16(&b, "split.no", 2);
    gb_kv_u16(&b, "split.count", 3);
    expect_b(&b, LL_ERR_UNSUPPORTED, "shard 3 of 3");
    base(&b);
    gb_kv_i64(&b, "split.no", INT64_MAX);             /* 1-based printing overflowed (UBSan) */
    gb_kv_u16(&b, "split.count", 3);
    expect_b(&b, LL_ERR_UNSUPPORTED, "split.no 9223372036854775807, split.count 3");
    base(&b);
    gb_kv_i64(&b, "split.no", -1);
    gb_kv_u16(&b, "split.count", 3);
    expect_b(&b, LL_ERR_UNSUPPORTED, "split.no -1, split.count 3");
    base(&b);
    gb_kv_u16(&b, "split.no", 0);
    gb_kv_u16(&b, "split.count", 1);                  /* a single shard is a whole model */
    base_tensors(&b);
    expect_b(&b, LL_OK, NULL);
    base(&b);
    gb_kv_str(&b, "split.count", "3");
    expect_b(&b, LL_ERR_FORMAT, "key 'split.count' has type string");
}

int main(void) {
    ll_log_set_level(0);
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/ll_faults_gguf.XXXXXX");
    if (!mkdtemp(tmp_dir)) { perror("mkdtemp"); return 1; }
    RUN(test_base_file_is_valid);
    RUN(test_G1_empty_file);
    RUN(test_G2_directory);
    RUN(test_G3_fifo_device_socket);
    RUN(test_G4_short_header);
    RUN(test_G5_bad_magic);
    RUN(test_G6_version_0);
    RUN(test_G7_version_1);
    RUN(test_G8_version_4);
    RUN(test_G9_big_endian);
    RUN(test_G10_negative_counts);
    RUN(test_G11_counts_over_cap_or_bytes);
    RUN(test_G12_truncated_at_every_byte);
    RUN(test_G13_key_too_long);
    RUN(test_G14_empty_key);
    RUN(test_G15_key_bytes);
    RUN(test_G16_duplicate_key);
    RUN(test_G17_unknown_value_type);
    RUN(test_G18_bad_bool);
    RUN(test_G19_string_length);
    RUN(test_G20_nested_array);
    RUN(test_G21_unknown_element_type);
    RUN(test_G22_array_size);
    RUN(test_G23_string_array_count);
    RUN(test_G24_array_over_cap);
    RUN(test_G25_wrong_key_type);
    RUN(test_G26_bad_alignment);
    RUN(test_G27_truncated_tensor_info);
    RUN(test_G28_bad_tensor_name);
    RUN(test_G29_duplicate_tensor);
    RUN(test_G30_n_dims);
    RUN(test_G31_zero_dim);
    RUN(test_G32_negative_dim);
    RUN(test_G33_size_overflow);
    RUN(test_G34_unknown_ggml_type);
    RUN(test_G35_container_accepts_types_without_kernels);
    RUN(test_G36_row_not_block_multiple);
    RUN(test_G37_misaligned_offset);
    RUN(test_G38_data_start_past_eof);
    RUN(test_G39_tensor_past_eof);
    RUN(test_G40_offset_plus_size_overflows);
    RUN(test_G41_overlapping_tensors);
    RUN(test_G42_zero_tensors);
    RUN(test_G43_trailing_bytes);
    RUN(test_G44_split_file);
    rmdir(tmp_dir);
    return test_summary();
}
