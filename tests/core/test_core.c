/* core: error buffer, checked arithmetic, allocation failure injection, strings. */
#include "core/core.h"

#include "../test.h"

#include <stdint.h>

static void test_fail_keeps_the_root_cause(void) {
    ll_error err = { 0 };
    CHECK_EQ_INT(ll_fail(&err, LL_ERR_FORMAT, "tensor '%s' dim %d is 0", "blk.0.attn_q.weight", 1),
                 LL_ERR_FORMAT);
    CHECK_EQ_INT(err.code, LL_ERR_FORMAT);
    CHECK(strcmp(err.msg, "tensor 'blk.0.attn_q.weight' dim 1 is 0") == 0);
    /* A later failure on the way out returns its own code but does not overwrite the cause. */
    CHECK_EQ_INT(ll_fail(&err, LL_ERR_NOMEM, "out of memory"), LL_ERR_NOMEM);
    CHECK_EQ_INT(err.code, LL_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, "blk.0.attn_q.weight");
    /* NULL error buffers are allowed. */
    CHECK_EQ_INT(ll_fail(NULL, LL_ERR_IO, "x"), LL_ERR_IO);
}

static void test_fail_escapes_non_printable_bytes(void) {
    ll_error err = { 0 };
    ll_fail(&err, LL_ERR_FORMAT, "key '%s'", "a\x1b[2Jb\xff\n");
    CHECK(strcmp(err.msg, "key 'a\\x1b[2Jb\\xff\\x0a'") == 0);
    for (const char *p = err.msg; *p; p++) CHECK(*p >= 0x20 && *p < 0x7f);
}

static void test_fail_truncates_long_messages(void) {
    char big[1000];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ll_error err = { 0 };
    ll_fail(&err, LL_ERR_LIMIT, "%s", big);
    CHECK(strlen(err.msg) < sizeof err.msg);
    CHECK(err.msg[0] == 'A');
    memset(big, '\x01', sizeof big - 1);   /* every byte escapes to 4: still bounded */
    ll_error err2 = { 0 };
    ll_fail(&err2, LL_ERR_LIMIT, "%s", big);
    CHECK(strlen(err2.msg) < sizeof err2.msg);
}

static void test_checked_arithmetic(void) {
    uint64_t r;
    CHECK(ll_mul_u64(1ull << 31, 1ull << 32, &r) && r == 1ull << 63);
    CHECK(!ll_mul_u64(1ull << 32, 1ull << 32, &r));
    CHECK(ll_add_u64(UINT64_MAX - 1, 1, &r) && r == UINT64_MAX);
    CHECK(!ll_add_u64(UINT64_MAX, 1, &r));
    size_t s;
    CHECK(!ll_mul_size(SIZE_MAX / 2 + 1, 2, &s));
    CHECK(!ll_add_size(SIZE_MAX, 1, &s));
    CHECK(ll_calloc(SIZE_MAX / 8 + 1, 16) == NULL);          /* overflow, not a tiny block */
    CHECK(ll_malloc_array(SIZE_MAX / 4 + 1, 8) == NULL);
}

static void test_alloc_fail_after(void) {
    ll_alloc_fail_after(2);
    void *a = ll_malloc(8), *b = ll_calloc(2, 4), *c = ll_malloc(8), *d = ll_malloc_aligned(64);
    CHECK(a != NULL && b != NULL);
    CHECK(c == NULL && d == NULL);
    ll_alloc_fail_after(-1);
    void *e = ll_malloc_aligned(100);
    CHECK(e != NULL && ((uintptr_t)e % 64) == 0);
    ll_free(a);
    ll_free(b);
    ll_free_aligned(e);
}

static void test_strings(void) {
    ll_str s = ll_str_c("general.architecture");
    CHECK_EQ_INT(s.n, 20);
    CHECK(ll_str_eq_c(s, "general.architecture"));
    CHECK(!ll_str_eq_c(s, "general.architectur"));
    ll_str empty = ll_str_c(NULL);
    CHECK(empty.n == 0 && ll_str_eq(empty, ll_str_c("")));
    ll_str part = { "llama.block_count", 5 };
    char *d = ll_str_dup(part);
    CHECK(d && strcmp(d, "llama") == 0);
    ll_free(d);
    CHECK(strcmp(ll_status_name(LL_ERR_UNSUPPORTED), "unsupported") == 0);
}

int main(void) {
    RUN(test_fail_keeps_the_root_cause);
    RUN(test_fail_escapes_non_printable_bytes);
    RUN(test_fail_truncates_long_messages);
    RUN(test_checked_arithmetic);
    RUN(test_alloc_fail_after);
    RUN(test_strings);
    return test_summary();
}
