/* cmd_serve: `locallama serve` — the Ollama-compatible HTTP server (src/server/http.h).
 *
 * Runs until SIGINT or SIGTERM (fault row R12): the first signal stops accepting and lets running
 * requests finish for LOCALLAMA_SHUTDOWN_GRACE (10 s), then ends the streams still open with
 * {"error":"server shutting down"} and exits 0; a second signal exits at once with status 1.
 * A port in use exits 1 with "Error: listen 127.0.0.1:11434: address already in use" (R19).
 *
 * Signals are blocked in every thread and taken by one thread with sigwait, so no handler ever
 * runs inside library code and the server threads never see them.
 */
#include "cli/cli.h"

#include "server/api_ollama.h"
#include "store/store.h"
#include "server/http.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- logging: Ollama's slog text format ------------------------------------------------------ */

static void serve_log(int level, const char *msg, void *user) {
    static const char *const names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
    char ts[48];
    ll_json_fmt_time(ts, sizeof ts, ll_time_unix_ns() / 1000000 * 1000000, false);
    fprintf(stderr, "time=%s level=%s source=locallama msg=\"", ts, names[level < 0 ? 0 : level > 3 ? 3 : level]);
    for (const char *p = msg; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', stderr);
        fputc(*p, stderr);
    }
    fputs("\"\n", stderr);
}

static void serve_usage(FILE *f) {
    fputs("Start the locallama server (Ollama-compatible HTTP API)\n\n"
          "Usage:\n  locallama serve\n\n"
          "Environment variables (each LOCALLAMA_X falls back to OLLAMA_X):\n"
          "  LOCALLAMA_HOST          IP address and port to listen on (default 127.0.0.1:11434)\n"
          "  LOCALLAMA_MODELS        the path to the models directory\n"
          "  LOCALLAMA_ORIGINS       a comma separated list of allowed origins\n"
          "  LOCALLAMA_KEEP_ALIVE    the duration models stay loaded in memory (default 5m)\n"
          "  LOCALLAMA_ALLOWED_HOSTS extra Host names accepted on a loopback listener ('*': any)\n"
          "  LOCALLAMA_API_KEY       require this key as 'Authorization: Bearer KEY'\n"
          "  LOCALLAMA_DEBUG         show additional debug information\n", f);
}

/* ---- signals ----------------------------------------------------------------------------------- */

static pthread_mutex_t sig_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  sig_cv = PTHREAD_COND_INITIALIZER;
static int             sig_got;     /* the first signal, guarded by sig_mu */

static void *signal_main(void *arg) {
    sigset_t *set = arg;
    for (int n = 0;; n++) {
        int sig;
        if (sigwait(set, &sig) != 0) continue;
        if (n > 0) {
            fprintf(stderr, "Error: second signal, exiting without waiting for requests\n");
            _exit(1);
        }
        pthread_mutex_lock(&sig_mu);
        sig_got = sig;
        pthread_cond_signal(&sig_cv);
        pthread_mutex_unlock(&sig_mu);
    }
    return NULL;
}

static void log_config(const ll_http_config *cfg, const char *addr) {
    char buf[8192], models[1024], ka[64];
    const char *m = ll_env_get("MODELS", models, sizeof models);
    const char *k = ll_env_get("KEEP_ALIVE", ka, sizeof ka);
    snprintf(buf, sizeof buf,
             "server config env=map[LOCALLAMA_HOST:http://%s LOCALLAMA_KEEP_ALIVE:%s LOCALLAMA_MODELS:%s "
             "LOCALLAMA_ORIGINS:[%s] LOCALLAMA_ALLOWED_HOSTS:[%s] LOCALLAMA_API_KEY:%s LOCALLAMA_MAX_BODY_BYTES:%zu "
             "LOCALLAMA_MAX_CONNECTIONS:%d]",
             addr, k && *k ? k : "5m0s", m && *m ? m : "~/.locallama/models", cfg->origins,
             cfg->allowed_hosts, cfg->api_key[0] ? "(set)" : "(unset)", cfg->max_body_bytes, cfg->max_connections);
    serve_log(2, buf, NULL);
}

/* ---- models: the store, the shared pool and the loaded models (issue 9) ---------------------- */

typedef struct {
    ll_store   *store;
    ll_pool    *pool;      /* one compute pool for every model and embeddings context */
    ll_runners *runners;
    ll_api_ctx  api;
} serve_models;

/* LOCALLAMA_<name> else OLLAMA_<name> as a positive integer; def when unset or bad. */
static int serve_env_int(const char *name, int def) {
    char buf[64];
    const char *v = ll_env_get(name, buf, sizeof buf);
    if (!v || !*v) return def;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x <= 0 || x > 1024) {
        fprintf(stderr, "warning: ignoring %s=%s (want a number from 1 to 1024)\n", name, v);
        return def;
    }
    return (int)x;
}

static void serve_models_free(serve_models *sm) {
    ll_runners_free(sm->runners);
    ll_pool_free(sm->pool);
    ll_store_close(sm->store);
    memset(sm, 0, sizeof *sm);
}

static ll_status serve_models_init(serve_models *sm, ll_error *err) {
    memset(sm, 0, sizeof *sm);
    char *root = ll_store_root_from_env();
    if (!root) return ll_fail(err, LL_ERR_ARG, "cannot find the models directory: set LOCALLAMA_MODELS");
    ll_status st = ll_store_open(&sm->store, root, NULL, err);
    ll_free(root);
    if (st != LL_OK) goto fail;
    /* §4.9 start-up prune, unless OLLAMA_NOPRUNE (read as Ollama reads a boolean): blobs no
     * manifest references, our temp files and stale pull fragments, each once older than the
     * store's grace period (S16); a pull killed yesterday still resumes today. */
    char nb[32];
    const char *np = ll_env_get("NOPRUNE", nb, sizeof nb);
    bool noprune = np && *np && strcmp(np, "0") && strcasecmp(np, "false") && strcmp(np, "f") && strcmp(np, "F");
    if (!noprune && !ll_store_read_only(sm->store)) {
        ll_gc_stats gs;
        ll_error gerr = { 0 };
        if (ll_store_gc(sm->store, -1, &gs, &gerr) != LL_OK) LL_WARN("start-up prune skipped: %s", gerr.msg);
        else if (gs.n_blobs_removed || gs.n_temps_removed)
            LL_INFO("start-up prune: removed %zu unused blobs and %zu temporary files (%llu bytes)",
                    gs.n_blobs_removed, gs.n_temps_removed, (unsigned long long)gs.bytes_removed);
    }
    /* KV cache element type, as Ollama's OLLAMA_KV_CACHE_TYPE (default f16, as Ollama and
     * llama.cpp: half the memory of f32, logits within the reference tolerances). q4_0, which
     * Ollama also takes, is not a cache type here: it falls back to f16 with a warning. */
    ll_kv_type kv_type = LL_KV_F16;
    char kvb[32];
    const char *kvs = ll_env_get("KV_CACHE_TYPE", kvb, sizeof kvb);
    if (kvs && *kvs) {
        if (!strcasecmp(kvs, "f16")) kv_type = LL_KV_F16;
        else if (!strcasecmp(kvs, "f32")) kv_type = LL_KV_F32;
        else if (!strcasecmp(kvs, "q8_0")) kv_type = LL_KV_Q8_0;
        else LL_WARN("KV_CACHE_TYPE=%s is not f16, f32 or q8_0; using f16", kvs);
    }
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    if ((st = ll_pool_init(&sm->pool, n_cpu > 0 && n_cpu < 1024 ? (int)n_cpu : 1, err)) != LL_OK) goto fail;
    ll_runners_params rp = {
        .max_loaded = serve_env_int("MAX_LOADED_MODELS", 0),
        .n_parallel = serve_env_int("NUM_PARALLEL", 4),
        .type_k = kv_type, .type_v = kv_type,
        .pool = sm->pool,
    };
    if ((st = ll_runners_init(&sm->runners, &rp, err)) != LL_OK) goto fail;
    sm->api = (ll_api_ctx){ .store = sm->store, .runners = sm->runners, .pool = sm->pool,
                            .keep_alive_ns = 5 * 60 * 1000000000LL };
    char ka[64];
    const char *k = ll_env_get("KEEP_ALIVE", ka, sizeof ka);
    ll_error kerr = { 0 };
    if (k && *k && ll_parse_duration(k, strlen(k), &sm->api.keep_alive_ns, &kerr) != LL_OK) {
        fprintf(stderr, "warning: ignoring KEEP_ALIVE=%s: %s\n", k, kerr.msg);
        sm->api.keep_alive_ns = 5 * 60 * 1000000000LL;
    }
    return LL_OK;
fail:
    serve_models_free(sm);
    return st;
}

int cmd_serve(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { serve_usage(stdout); return 0; }
        fprintf(stderr, "Error: unknown argument '%s' for serve\n", argv[i]);
        serve_usage(stderr);
        return 2;
    }
    ll_log_set_callback(serve_log, NULL);
    if (!getenv("LOCALLAMA_LOG_LEVEL")) {
        char dbg[16];
        const char *d = ll_env_get("DEBUG", dbg, sizeof dbg);
        ll_log_set_level(d && *d && strcmp(d, "0") && strcasecmp(d, "false") ? 3 : 2);
    }

    /* Before any thread exists, so every thread inherits the mask. */
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    ll_http_config cfg;
    ll_http_config_default(&cfg);
    ll_http_config_from_env(&cfg);
    ll_error err = { 0 };
    ll_router *router = NULL;
    ll_http_server *srv = NULL;
    serve_models sm;
    if (serve_models_init(&sm, &err) != LL_OK) return cli_fail_err(&err);
    if (ll_router_init(&router, &cfg, &err) != LL_OK || ll_api_ollama_register(router, &sm.api, &err) != LL_OK) {
        ll_router_free(router);
        serve_models_free(&sm);
        return cli_fail_err(&err);
    }
    if (ll_http_server_start(&srv, &cfg, router, &err) != LL_OK) {
        ll_router_free(router);
        serve_models_free(&sm);
        return cli_fail_err(&err);
    }
    log_config(&cfg, ll_http_server_addr(srv));
    char line[512];
    snprintf(line, sizeof line, "Listening on %s (version %s, locallama %s)", ll_http_server_addr(srv),
             cfg.version, LL_VERSION);
    serve_log(2, line, NULL);

    pthread_t sig_thread;
    if (pthread_create(&sig_thread, NULL, signal_main, &set) != 0) {
        ll_http_server_free(srv);
        ll_router_free(router);
        serve_models_free(&sm);
        return cli_fail("could not start the signal thread");
    }
    pthread_detach(sig_thread);
    pthread_mutex_lock(&sig_mu);
    while (!sig_got) pthread_cond_wait(&sig_cv, &sig_mu);
    int sig = sig_got;
    pthread_mutex_unlock(&sig_mu);

    snprintf(line, sizeof line, "received %s, shutting down", sig == SIGINT ? "interrupt" : "terminated");
    serve_log(2, line, NULL);
    ll_http_server_free(srv);
    ll_api_ollama_drain(&sm.api);      /* a create still writing its model finishes first */
    serve_models_free(&sm);
    ll_router_free(router);
    serve_log(2, "server stopped", NULL);
    return 0;
}
