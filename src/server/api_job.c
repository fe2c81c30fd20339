/* server/api_job: the worker hand-off that /api/create, /api/pull and /api/push share.
 *
 * Such a request runs for minutes and reports progress as NDJSON lines. Its work runs on a
 * detached worker thread while the connection's thread waits in api_job_run: until the worker
 * has opened the stream with its first status line (api_job_release), or has answered
 * without one (an error status, or stream:false) and returned. The connection's thread then
 * returns, so MHD sends every line as the worker writes it, live. Two owners (the waiting
 * handler and the worker); the last to leave frees the job. The worker is counted in
 * ctx->n_background, so shutdown (ll_api_ollama_drain) waits for it before the store closes. */
#include "server/api_internal.h"

#include <stdlib.h>

typedef struct {
    api_job         pub;
    void          (*fn)(api_job *);
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    bool            released;   /* the handler may return: resp is answered or streaming */
    int             refs;
} job_impl;

void api_job_release(api_job *j) {
    job_impl *ji = (job_impl *)j;
    pthread_mutex_lock(&ji->mu);
    ji->released = true;
    pthread_cond_signal(&ji->cv);
    pthread_mutex_unlock(&ji->mu);
}

static void job_unref(job_impl *ji) {
    pthread_mutex_lock(&ji->mu);
    bool last = --ji->refs == 0;
    pthread_mutex_unlock(&ji->mu);
    if (!last) return;
    pthread_mutex_destroy(&ji->mu);
    pthread_cond_destroy(&ji->cv);
    free(ji);
}

static void *job_main(void *arg) {
    job_impl *ji = arg;
    ll_api_ctx *ctx = ji->pub.ctx;
    ji->fn(&ji->pub);
    api_job_release(&ji->pub);           /* answered without a stream: the handler sends it */
    job_unref(ji);
    atomic_fetch_sub(&ctx->n_background, 1);
    return NULL;
}

void api_job_run(ll_api_ctx *ctx, ll_http_req *req, ll_http_resp *resp, void (*fn)(api_job *), void *user) {
    job_impl *ji = calloc(1, sizeof *ji);
    if (!ji) { ll_http_resp_error(resp, 500, "out of memory"); return; }
    ji->pub = (api_job){ .ctx = ctx, .req = req, .resp = resp, .user = user };
    ji->fn = fn;
    ji->refs = 2;
    pthread_mutex_init(&ji->mu, NULL);
    pthread_cond_init(&ji->cv, NULL);
    atomic_fetch_add(&ctx->n_background, 1);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, job_main, ji) != 0) {   /* no thread: do it here */
        atomic_fetch_sub(&ctx->n_background, 1);
        ji->refs = 1;
        fn(&ji->pub);
        job_unref(ji);
        pthread_attr_destroy(&a);
        return;
    }
    pthread_attr_destroy(&a);
    pthread_mutex_lock(&ji->mu);
    while (!ji->released) pthread_cond_wait(&ji->cv, &ji->mu);
    pthread_mutex_unlock(&ji->mu);
    job_unref(ji);
}
