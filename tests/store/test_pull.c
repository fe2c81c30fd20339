/* store/pull without a registry: registry URLs from names, the refusals that come before any
 * transfer, and a registry that is not there (the error names the manifest URL and nothing is
 * written). The protocol itself is tested against Debian's docker-registry in
 * tests/py/test_registry_pull.py. */
#include "store/pull.h"
#include "../test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

static void test_base_url(void) {
    ll_error err = { 0 };
    ll_model_name n;
    char buf[512];
    CHECK(ll_name_parse(&n, "llama3.2", &err) == LL_OK);
    ll_pull_base_url(&n, false, buf, sizeof buf);
    CHECK(!strcmp(buf, "https://registry.ollama.ai"));
    CHECK(ll_name_parse(&n, "localhost:5000/ns/m:t", &err) == LL_OK);
    ll_pull_base_url(&n, true, buf, sizeof buf);
    CHECK(!strcmp(buf, "http://localhost:5000"));
    CHECK(ll_name_parse(&n, "hf.co/unsloth/Qwen3-GGUF:Q4_K_M", &err) == LL_OK);
    ll_pull_base_url(&n, false, buf, sizeof buf);
    CHECK(!strcmp(buf, "https://hf.co"));
}

/* A loopback port nothing listens on: bound, then closed. */
static int dead_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len)) return 1;
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct { int n; char first[64]; } seen;

static bool on_progress(void *user, const char *status, const char *digest, uint64_t total, uint64_t done) {
    seen *s = user;
    if (!s->n++) snprintf(s->first, sizeof s->first, "%s", status);
    return true;
}

static void test_refusals_and_unreachable(void) {
    char dir[] = "/tmp/ll-test-pull-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    ll_error err = { 0 };
    ll_store *s = NULL;
    CHECK(ll_store_open(&s, dir, NULL, &err) == LL_OK);
    ll_model_name n;
    CHECK(ll_name_parse(&n, "http://127.0.0.1:1/library/m:latest", &err) == LL_OK);
    CHECK(ll_store_pull(s, &n, NULL, &err) == LL_ERR_ARG);
    CHECK(!strcmp(err.msg, "insecure protocol http"));

    char name[128];
    int port = dead_port();
    snprintf(name, sizeof name, "127.0.0.1:%d/library/m:latest", port);
    CHECK(ll_name_parse(&n, name, &err) == LL_OK);
    err = (ll_error){ 0 };
    seen sn = { 0 };
    ll_pull_opts o = { .insecure = true, .progress = on_progress, .user = &sn };
    ll_status st = ll_store_pull(s, &n, &o, &err);
    CHECK_MSG(st == LL_ERR_IO, "status %d: %s", (int)st, err.msg);
    char want[256];
    snprintf(want, sizeof want, "pull model manifest: Get \"http://127.0.0.1:%d/v2/library/m/manifests/latest\": ", port);
    CHECK_STR_CONTAINS(err.msg, want);
    CHECK(sn.n == 1 && !strcmp(sn.first, "pulling manifest"));
    ll_model_info *list = NULL;
    size_t k = 99;
    CHECK(ll_store_list(s, &list, &k, &err) == LL_OK);
    CHECK_EQ_INT(k, 0);
    ll_model_info_free(list, k);
    ll_store_close(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    RUN(test_base_url);
    RUN(test_refusals_and_unreachable);
    return test_summary();
}
