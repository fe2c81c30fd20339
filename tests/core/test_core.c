/* core: error buffer, checked arithmetic, allocation failure injection, strings, logging. */
#include "core/core.h"

#include "../test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

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

/* ---- logging ---- */

/* What a capturing callback saw last. */
struct log_capture { int n_calls, level; char msg[1200]; };

static void log_capture_fn(int level, const char *msg, void *user) {
    struct log_capture *c = user;
    c->n_calls++;
    c->level = level;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
}

/* Run while fd 2 points at a temporary file; returns what was written (static buffer). */
static int stderr_saved = -1;
static FILE *stderr_file;
static void stderr_capture_begin(void) {
    fflush(stderr);
    stderr_file = tmpfile();
    stderr_saved = dup(2);
    dup2(fileno(stderr_file), 2);
}
static const char *stderr_capture_end(void) {
    static char out[4096];
    fflush(stderr);
    dup2(stderr_saved, 2);
    close(stderr_saved);
    rewind(stderr_file);
    size_t n = fread(out, 1, sizeof out - 1, stderr_file);
    out[n] = 0;
    fclose(stderr_file);
    return out;
}

/* main sets LOCALLAMA_LOG_LEVEL=2 before anything logs; this test runs first. */
static void test_log_level_from_environment(void) {
    CHECK_EQ_INT(ll_log_level(), 2);
    ll_log_set_level(1);
    CHECK_EQ_INT(ll_log_level(), 1);
}

static void test_log_callback_gets_level_and_message(void) {
    struct log_capture c = { 0 };
    ll_log_set_level(3);
    ll_log_set_callback(log_capture_fn, &c);
    LL_WARN("vocab: %d empty token texts", 7);
    CHECK_EQ_INT(c.n_calls, 1);
    CHECK_EQ_INT(c.level, 1);
    CHECK(strcmp(c.msg, "vocab: 7 empty token texts") == 0);
    LL_DEBUG("model: ignoring tensor '%s'", "x");
    CHECK_EQ_INT(c.level, 3);
    ll_log(0, "bad");
    CHECK_EQ_INT(c.level, 0);
    /* One line: control bytes escaped as ll_fail does, the trailing newline dropped. */
    ll_log(1, "key '%s'\n", "a\x1b[2Jb\xff\nc");
    CHECK(strcmp(c.msg, "key 'a\\x1b[2Jb\\xff\\x0ac'") == 0);
    /* Bounded: a huge message is cut, still printable. */
    char big[5000];
    memset(big, '\x01', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ll_log(1, "%s", big);
    CHECK(strlen(c.msg) > 0 && strlen(c.msg) < 1024);
    for (const char *p = c.msg; *p; p++) CHECK(*p >= 0x20 && *p < 0x7f);
    ll_log_set_callback(NULL, NULL);
    ll_log_set_level(1);
}

static void test_log_level_filters_messages(void) {
    struct log_capture c = { 0 };
    ll_log_set_callback(log_capture_fn, &c);
    ll_log_set_level(1);
    LL_INFO("not shown");
    LL_DEBUG("not shown");
    CHECK_EQ_INT(c.n_calls, 0);
    LL_WARN("shown");
    ll_log(0, "shown");
    CHECK_EQ_INT(c.n_calls, 2);
    ll_log_set_level(0);
    LL_WARN("not shown");
    CHECK_EQ_INT(c.n_calls, 2);
    ll_log_set_level(2);
    LL_INFO("shown");
    CHECK_EQ_INT(c.n_calls, 3);
    CHECK_EQ_INT(ll_log_level(), 2);
    ll_log_set_callback(NULL, NULL);
    ll_log_set_level(1);
}

static void test_log_null_callback_restores_stderr(void) {
    struct log_capture c = { 0 };
    ll_log_set_callback(log_capture_fn, &c);
    stderr_capture_begin();
    LL_WARN("to the callback");
    ll_log_set_callback(NULL, NULL);
    LL_WARN("to stderr %d", 42);
    const char *out = stderr_capture_end();
    CHECK_EQ_INT(c.n_calls, 1);
    CHECK(strcmp(out, "locallama: warning: to stderr 42\n") == 0);
}

/* A callback that logs (e.g. through a library call of its own) must not deadlock: the
 * inner message goes to stderr. */
static void log_reentrant_fn(int level, const char *msg, void *user) {
    (*(int *)user)++;
    LL_WARN("inner");
}

static void test_log_from_inside_the_callback(void) {
    int n = 0;
    ll_log_set_callback(log_reentrant_fn, &n);
    stderr_capture_begin();
    LL_WARN("outer");
    ll_log_set_callback(NULL, NULL);
    const char *out = stderr_capture_end();
    CHECK_EQ_INT(n, 1);
    CHECK(strcmp(out, "locallama: warning: inner\n") == 0);
}

/* Four threads log while a fifth flips the level (1..3, so every warning passes whatever the
 * timing; a level of 0 could drop all of them on a loaded machine) and swaps between two
 * callbacks, each with its own user pointer: a callback must only ever see its own pointer. Run under
 * -fsanitize=thread to check the level and the pair for races. */
struct log_sink { atomic_int n_calls, n_mismatch; };
static struct log_sink log_sink_a, log_sink_b;
static atomic_bool log_stop;

static void log_sink_a_fn(int level, const char *msg, void *user) {
    atomic_fetch_add(&log_sink_a.n_calls, 1);
    if (user != &log_sink_a || strncmp(msg, "worker ", 7) != 0) atomic_fetch_add(&log_sink_a.n_mismatch, 1);
}
static void log_sink_b_fn(int level, const char *msg, void *user) {
    atomic_fetch_add(&log_sink_b.n_calls, 1);
    if (user != &log_sink_b || strncmp(msg, "worker ", 7) != 0) atomic_fetch_add(&log_sink_b.n_mismatch, 1);
}

static void *log_worker(void *arg) {
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 2000; i++) {
        if (i % 2) LL_WARN("worker %d message %d", id, i);
        else LL_DEBUG("worker %d message %d", id, i);
    }
    return NULL;
}

static void *log_flipper(void *arg) {
    for (int i = 0; !atomic_load(&log_stop); i++) {
        ll_log_set_level(1 + i % 3);          /* warnings always pass: 4000 calls at least */
        if (i % 2) ll_log_set_callback(log_sink_a_fn, &log_sink_a);
        else ll_log_set_callback(log_sink_b_fn, &log_sink_b);
        (void)ll_log_level();
    }
    return NULL;
}

static void test_log_threads_race_free(void) {
    ll_log_set_callback(log_sink_a_fn, &log_sink_a);
    ll_log_set_level(3);
    atomic_store(&log_stop, false);
    pthread_t flip, work[4];
    CHECK(pthread_create(&flip, NULL, log_flipper, NULL) == 0);
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&work[i], NULL, log_worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < 4; i++) pthread_join(work[i], NULL);
    atomic_store(&log_stop, true);
    pthread_join(flip, NULL);
    ll_log_set_callback(NULL, NULL);
    ll_log_set_level(1);
    CHECK_EQ_INT(atomic_load(&log_sink_a.n_mismatch), 0);
    CHECK_EQ_INT(atomic_load(&log_sink_b.n_mismatch), 0);
    int total = atomic_load(&log_sink_a.n_calls) + atomic_load(&log_sink_b.n_calls);
    CHECK_MSG(total >= 4 * 1000 && total <= 4 * 2000, "%d calls", total);
}

int main(void) {
    setenv("LOCALLAMA_LOG_LEVEL", "2", 1);   /* read once, at the first logging call */
    RUN(test_log_level_from_environment);
    RUN(test_fail_keeps_the_root_cause);
    RUN(test_fail_escapes_non_printable_bytes);
    RUN(test_fail_truncates_long_messages);
    RUN(test_checked_arithmetic);
    RUN(test_alloc_fail_after);
    RUN(test_strings);
    RUN(test_log_callback_gets_level_and_message);
    RUN(test_log_level_filters_messages);
    RUN(test_log_null_callback_restores_stderr);
    RUN(test_log_from_inside_the_callback);
    RUN(test_log_threads_race_free);
    return test_summary();
}
