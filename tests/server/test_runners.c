/* runners tests: one load for concurrent requests (R11), keep-alive expiry and keep_alive 0,
 * never unloading a runner in use (R10), LRU eviction at max_loaded, reload on another context
 * size, a bad file leaving nothing behind. */
#include "../test.h"

#include "server/runners.h"

#include <pthread.h>
#include <time.h>

#define STORIES LL_SHARED_DIR "/reference/stories260K/stories260K.gguf"
#define TINY LL_SHARED_DIR "/reference/llama3.2-tiny/llama3.2-tiny-v2k-Q4_0.gguf"

static void sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static ll_runners *make(int max_loaded) {
    ll_error err = { 0 };
    ll_runners *rs = NULL;
    ll_runners_params p = { .max_loaded = max_loaded, .n_parallel = 2, .reap_interval_ms = 20 };
    CHECK_MSG(ll_runners_init(&rs, &p, &err) == LL_OK, "%s", err.msg);
    return rs;
}

struct acq { ll_runners *rs; ll_runner *r; ll_status st; };

static void *acquire_thread(void *arg) {
    struct acq *a = arg;
    ll_error err = { 0 };
    a->st = ll_runners_acquire(a->rs, "stories", STORIES, 64, &a->r, &err);
    return NULL;
}

static void test_R11_one_load_for_concurrent_requests(void) {
    ll_runners *rs = make(2);
    if (!rs) return;
    struct acq a[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) { a[i] = (struct acq){ rs, NULL, LL_ERR_ARG }; pthread_create(&th[i], NULL, acquire_thread, &a[i]); }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) { CHECK(a[i].st == LL_OK); CHECK(a[i].r == a[0].r); }
    ll_runner_info info[4];
    CHECK_EQ_INT(ll_runners_list(rs, info, 4), 1);
    CHECK_EQ_INT(info[0].in_flight, 4);
    CHECK_EQ_INT(info[0].n_ctx, 64);
    CHECK_EQ_INT(info[0].n_parallel, 2);
    CHECK(info[0].size_bytes > ll_model_size_bytes(ll_runner_model(a[0].r)));
    CHECK_EQ_INT(info[0].expires_at_ns, 0);
    for (int i = 0; i < 4; i++) ll_runners_release(rs, a[i].r, -1);
    CHECK_EQ_INT(ll_runners_list(rs, info, 4), 1);
    CHECK(info[0].expires_at_ns == INT64_MAX);          /* negative keep_alive: forever */
    ll_runners_free(rs);
}

static void test_keep_alive_expiry_and_zero(void) {
    ll_runners *rs = make(3);
    if (!rs) return;
    ll_error err = { 0 };
    ll_runner *r = NULL, *r2 = NULL;
    ll_runner_info info[3];
    CHECK(ll_runners_acquire(rs, "a", STORIES, 0, &r, &err) == LL_OK);
    ll_runners_release(rs, r, 100 * 1000000LL);          /* 100 ms */
    CHECK_EQ_INT(ll_runners_list(rs, info, 3), 1);
    sleep_ms(400);
    CHECK_EQ_INT(ll_runners_list(rs, info, 3), 0);       /* expired and unloaded */

    CHECK(ll_runners_acquire(rs, "b", STORIES, 0, &r, &err) == LL_OK);
    CHECK(ll_runners_acquire(rs, "b", STORIES, 0, &r2, &err) == LL_OK);
    ll_runners_release(rs, r, 0);                        /* keep_alive 0, but still in use (R10) */
    CHECK_EQ_INT(ll_runners_list(rs, info, 3), 1);
    ll_runners_release(rs, r2, -1);                      /* the last one leaves: unloaded */
    CHECK_EQ_INT(ll_runners_list(rs, info, 3), 0);

    CHECK(ll_runners_acquire(rs, "c", STORIES, 0, &r, &err) == LL_OK);
    ll_runners_unload(rs, "c");                          /* in use: when it ends */
    CHECK_EQ_INT(ll_runners_list(rs, info, 3), 1);
    ll_runners_release(rs, r, -1);
    CHECK_EQ_INT(ll_runners_list(rs, info, 3), 0);
    ll_runners_free(rs);
}

static void test_lru_eviction_and_reload(void) {
    ll_runners *rs = make(2);
    if (!rs) return;
    ll_error err = { 0 };
    ll_runner *a = NULL, *b = NULL, *c = NULL;
    ll_runner_info info[4];
    CHECK(ll_runners_acquire(rs, "a", STORIES, 0, &a, &err) == LL_OK);
    ll_runners_release(rs, a, -1);
    CHECK(ll_runners_acquire(rs, "b", TINY, 0, &b, &err) == LL_OK);
    ll_runners_release(rs, b, -1);
    CHECK(ll_runners_acquire(rs, "a", STORIES, 0, &a, &err) == LL_OK);   /* a is now newer */
    ll_runners_release(rs, a, -1);
    CHECK(ll_runners_acquire(rs, "c", STORIES, 0, &c, &err) == LL_OK);   /* evicts b */
    size_t n = ll_runners_list(rs, info, 4);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK(!strcmp(info[0].key, "c"));                /* most recently used first */
        CHECK(!strcmp(info[1].key, "a"));
    }
    /* Another context size: reloaded once idle. */
    ll_runners_release(rs, c, -1);
    CHECK(ll_runners_acquire(rs, "c", STORIES, 128, &c, &err) == LL_OK);
    CHECK_EQ_INT(ll_sched_n_ctx(ll_runner_sched(c)), 128);
    ll_runners_release(rs, c, -1);
    /* A file that is not a model: an error, nothing left loading. */
    err = (ll_error){ 0 };
    CHECK(ll_runners_acquire(rs, "bad", LL_SHARED_DIR "/README.md", 0, &c, &err) != LL_OK);
    CHECK(c == NULL);
    CHECK(err.msg[0] != 0);
    n = ll_runners_list(rs, info, 4);
    for (size_t i = 0; i < n && i < 4; i++) CHECK(strcmp(info[i].key, "bad") != 0);
    ll_runners_free(rs);
}

int main(void) {
    RUN(test_R11_one_load_for_concurrent_requests);
    RUN(test_keep_alive_expiry_and_zero);
    RUN(test_lru_eviction_and_reload);
    return test_summary();
}
