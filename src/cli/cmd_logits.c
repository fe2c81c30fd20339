/* logits: run the forward pass on given token ids (issue 2 command contract).
 *
 *   locallama logits --model PATH --ids 1,2,3 [--out FILE] [--greedy N] [--threads T]
 *                    [--ctx N] [--batch N] [--one-by-one] [--force ID,ID,...]
 *                    [--kv-type f32|f16|q8_0] [--parallel N] [--fast]
 *
 * Writes float32 little-endian logits for every prompt position (n_ids x n_vocab, row-major)
 * to FILE. The prompt is evaluated as one batch (--one-by-one: one token per decode call).
 * --force feeds these ids after the prompt, one per decode call (teacher forcing), and appends
 * each step's logits to FILE. --greedy N then generates N tokens by argmax (ties to the lowest
 * id; EOS is not a stop) through the KV cache, one token per call, and prints their ids as one
 * JSON array on the last line of stdout. --kv-type f16 keeps the KV cache as F16 (llama.cpp's
 * default) instead of F32 (ours, and the references'). --parallel N decodes N - 1 companion
 * sequences of pseudo-random tokens in the same batches as the given ids (sequence 0), one
 * companion token per given token, interleaved: the output is sequence 0's, which must not
 * change (a sequence in a batch gets its solo logits). --fast lets prompts take the products
 * `run` and `serve` use (ll_ctx_params.fast_products: within f32 rounding of the exact ones,
 * not bit-identical; F16 weights on AMX-BF16), still independent of the companions. */
#include "cli/cli.h"
#include "core/core.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char logits_usage[] =
    "usage: locallama logits --model PATH --ids 1,2,3 [--out FILE] [--greedy N] [--threads T]\n"
    "                        [--ctx N] [--batch N] [--one-by-one] [--force ID,ID,...]\n"
    "                        [--kv-type f32|f16|q8_0] [--parallel N] [--fast]\n";

static int usage_error(const char *fmt, const char *arg) {
    fputs("Error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    fputs(logits_usage, stderr);
    return 2;
}

static bool parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* "1,2,3" -> malloc'd ids; false on a malformed list. An empty string gives zero ids. */
static bool parse_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    *ids = malloc(cap * sizeof **ids);
    *n = 0;
    if (!*ids) return false;
    if (!*s) return true;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < INT32_MIN || v > INT32_MAX) return false;
        (*ids)[(*n)++] = (int32_t)v;
        while (*end == ' ') end++;
        if (*end == 0) return true;
        if (*end != ',') return false;
        p = end + 1;
    }
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++) if (x[i] > x[best]) best = i;   /* ties: lowest id */
    return best;
}

/* ---- options ---- */

struct logits_opts {
    const char *model_path, *out_path;   /* out_path: NULL without --out */
    int32_t    *ids, *force;             /* malloc'd: the prompt (n_ids > 0), --force (may be 0) */
    size_t      n_ids, n_force;
    long        greedy, threads, n_ctx, n_batch;   /* 0: not given */
    long        n_par;                   /* --parallel: sequences per batch, 1 = alone */
    bool        one_by_one;
    bool        fast;                    /* --fast: ll_ctx_params.fast_products */
    ll_kv_type  kv_type;       /* --kv-type: f32 (default, the references' setting), f16, q8_0 */
};

/* Fill o from argv. Returns 0, or 2 after printing the usage error (nothing left to free). */
static int logits_parse_args(int argc, char **argv, struct logits_opts *o) {
    *o = (struct logits_opts){ .n_par = 1 };
    const char *ids_s = NULL, *force_s = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() do { if (!v) return usage_error("%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "--model") || !strcmp(a, "-m")) { NEED_VALUE(); o->model_path = v; }
        else if (!strcmp(a, "--ids")) { NEED_VALUE(); ids_s = v; }
        else if (!strcmp(a, "--out") || !strcmp(a, "-o")) { NEED_VALUE(); o->out_path = v; }
        else if (!strcmp(a, "--force")) { NEED_VALUE(); force_s = v; }
        else if (!strcmp(a, "--greedy")) {
            NEED_VALUE();
            if (!parse_int(v, 0, INT32_MAX, &o->greedy)) return usage_error("bad --greedy '%s'", v);
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            NEED_VALUE();
            if (!parse_int(v, 0, 1024, &o->threads)) return usage_error("bad --threads '%s'", v);
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            NEED_VALUE();
            if (!parse_int(v, 1, INT32_MAX, &o->n_ctx)) return usage_error("bad --ctx '%s'", v);
        } else if (!strcmp(a, "--batch") || !strcmp(a, "-b")) {
            NEED_VALUE();
            if (!parse_int(v, 1, INT32_MAX, &o->n_batch)) return usage_error("bad --batch '%s'", v);
        } else if (!strcmp(a, "--kv-type") || !strcmp(a, "-ctk")) {
            NEED_VALUE();
            if (!strcmp(v, "f16")) o->kv_type = LL_KV_F16;
            else if (!strcmp(v, "f32")) o->kv_type = LL_KV_F32;
            else if (!strcmp(v, "q8_0")) o->kv_type = LL_KV_Q8_0;
            else return usage_error("bad --kv-type '%s' (f32, f16 or q8_0)", v);
        } else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) {
            NEED_VALUE();
            if (!parse_int(v, 1, 256, &o->n_par)) return usage_error("bad --parallel '%s' (1 to 256)", v);
        } else if (!strcmp(a, "--one-by-one")) o->one_by_one = true;
        else if (!strcmp(a, "--fast")) o->fast = true;
        else return usage_error("unknown option '%s'", a);
#undef NEED_VALUE
    }
    if (!o->model_path) return usage_error("%s", "--model is required");
    if (!ids_s) return usage_error("%s", "--ids is required");
    if (!parse_ids(ids_s, &o->ids, &o->n_ids) || o->n_ids == 0) {
        free(o->ids);
        return usage_error("bad --ids '%s' (comma-separated token ids)", ids_s);
    }
    if (force_s && !parse_ids(force_s, &o->force, &o->n_force)) {
        free(o->ids);
        free(o->force);
        return usage_error("bad --force '%s' (comma-separated token ids)", force_s);
    }
    return 0;
}

/* Room for everything this run decodes, unless --ctx says otherwise. */
static ll_ctx_params logits_ctx_params(const struct logits_opts *o, const ll_model *m) {
    ll_ctx_params cp = ll_ctx_default_params();
    uint64_t need = (uint64_t)o->n_ids + o->n_force + (o->greedy > 0 ? (uint64_t)o->greedy - 1 : 0);
    if (o->n_ctx) cp.n_ctx = (int32_t)o->n_ctx;
    else if (need > 4096) {
        int64_t train = ll_model_n_ctx_train(m);
        cp.n_ctx = (int32_t)(need < (uint64_t)train ? need : (uint64_t)train);
    }
    /* The prompt is one batch: llama.cpp's reference ran with n_batch = n_ubatch = n_ctx. */
    cp.n_batch = o->n_batch ? (int32_t)o->n_batch : (o->n_ids > 512 ? (int32_t)o->n_ids : 512);
    cp.n_seq_max = (int32_t)o->n_par;
    cp.fast_products = o->fast;
    if (!o->n_batch && cp.n_batch * o->n_par <= INT32_MAX) cp.n_batch *= (int32_t)o->n_par;
    cp.n_threads = (int32_t)o->threads;
    cp.all_logits = true;
    cp.type_k = cp.type_v = o->kv_type;
    return cp;
}

/* ---- decoding ----
 * Each step returns 0, or the exit status after printing the error. */

struct logits_run {
    ll_ctx      *c;
    FILE        *out;        /* --out, NULL without it */
    const char  *out_path;
    int32_t      n_vocab;
    const float *last;       /* logits of the last decoded position */
    int32_t      n_par;      /* --parallel */
    ll_batch     batch;      /* n_par > 1: sequence 0's tokens and the companions' */
    int32_t     *pos;        /* (n_par) next position of each sequence */
    int32_t     *entry;      /* (cap) batch entry of sequence 0's k-th token of a call */
    uint64_t     rng;
};

/* Decode n ids of sequence 0. Alone: ll_ctx_decode. With companions: one batch holding, for
 * each id, the id (output wanted) followed by one pseudo-random token of every companion. */
static ll_status logits_decode(struct logits_run *r, const int32_t *ids, size_t n, ll_error *err) {
    if (r->n_par <= 1) return ll_ctx_decode(r->c, ids, n, NULL, err);
    const size_t need = n * (size_t)r->n_par;
    if (need > (size_t)r->batch.cap) {
        ll_batch_free(&r->batch);
        free(r->entry);
        r->entry = malloc(n * sizeof *r->entry);
        if (need > INT32_MAX || !r->entry) return ll_fail(err, LL_ERR_NOMEM, "batch of %zu entries", need);
        ll_status st = ll_batch_init(&r->batch, (int32_t)need, err);
        if (st != LL_OK) return st;
    }
    ll_batch_clear(&r->batch);
    for (size_t k = 0; k < n; k++) {
        r->entry[k] = r->batch.n_tokens;
        ll_batch_add(&r->batch, ids[k], r->pos[0]++, 0, true);
        for (int32_t s = 1; s < r->n_par; s++) {
            r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull;
            ll_batch_add(&r->batch, (int32_t)((r->rng >> 33) % (uint64_t)r->n_vocab), r->pos[s]++, s, false);
        }
    }
    ll_status st = ll_ctx_decode_batch(r->c, &r->batch, err);
    if (st != LL_OK) r->pos[0] -= (int32_t)n;   /* nothing was added (refused or rolled back) */
    return st;
}

/* Logits of sequence 0's k-th token of the last call (k < 0 counts from the end). */
static const float *logits_row(const struct logits_run *r, int32_t k, size_t n) {
    if (r->n_par <= 1) return ll_ctx_logits(r->c, k);
    if (k < 0) k += (int32_t)n;
    return ll_ctx_logits_ith(r->c, r->entry[k]);
}

/* Append one row of n_vocab logits to --out (nothing without it). */
static int logits_write_row(const struct logits_run *r, const float *row) {
    if (r->out && fwrite(row, sizeof(float), (size_t)r->n_vocab, r->out) != (size_t)r->n_vocab)
        return cli_fail("writing '%s': %s", r->out_path, strerror(errno));
    return 0;
}

/* Prompt: one batch, or one token per call. Rows go to --out in position order. */
static int logits_eval_prompt(struct logits_run *r, const int32_t *ids, size_t n_ids, bool one_by_one) {
    ll_error err = { 0 };
    for (size_t i = 0; i < n_ids; i += one_by_one ? 1 : n_ids) {
        size_t n = one_by_one ? 1 : n_ids;
        if (logits_decode(r, ids + i, n, &err) != LL_OK) return cli_fail_err(&err);
        for (size_t k = 0; k < n && r->out; k++) {
            int rc = logits_write_row(r, logits_row(r, (int32_t)k, n));
            if (rc) return rc;
        }
        r->last = logits_row(r, -1, n);
    }
    return 0;
}

/* Teacher forcing: each forced id at the next position, its logits appended. */
static int logits_teacher_force(struct logits_run *r, const int32_t *force, size_t n_force) {
    ll_error err = { 0 };
    for (size_t i = 0; i < n_force; i++) {
        if (logits_decode(r, force + i, 1, &err) != LL_OK) return cli_fail_err(&err);
        r->last = logits_row(r, -1, 1);
        int rc = logits_write_row(r, r->last);
        if (rc) return rc;
    }
    return 0;
}

/* Greedy: step s picks the argmax of the current logits and feeds it back; the last pick is
 * not decoded. gen has room for n ids. */
static int logits_greedy(struct logits_run *r, int32_t *gen, long n) {
    ll_error err = { 0 };
    for (long s = 0; s < n; s++) {
        gen[s] = argmax(r->last, r->n_vocab);
        if (s + 1 == n) break;
        if (logits_decode(r, &gen[s], 1, &err) != LL_OK) return cli_fail_err(&err);
        r->last = logits_row(r, -1, 1);
    }
    return 0;
}

/* The generated ids as one JSON array line. */
static void print_ids(const int32_t *gen, long n) {
    putchar('[');
    for (long s = 0; s < n; s++) printf(s ? ", %d" : "%d", gen[s]);
    printf("]\n");
}

int cmd_logits(int argc, char **argv) {
    struct logits_opts o;
    int rc = logits_parse_args(argc, argv, &o);
    if (rc) return rc;

    rc = 1;
    ll_error err = { 0 };
    ll_model *m = NULL;
    struct logits_run r = { .out_path = o.out_path, .n_par = (int32_t)o.n_par, .rng = 0x243F6A8885A308D3ull };
    int32_t *gen = NULL;
    if (ll_model_load(&m, o.model_path, NULL, &err) != LL_OK) { rc = cli_fail_err(&err); goto done; }
    r.n_vocab = ll_model_n_vocab(m);
    if (!(r.pos = calloc((size_t)r.n_par, sizeof *r.pos))) { rc = cli_fail("out of memory"); goto done; }
    ll_ctx_params cp = logits_ctx_params(&o, m);
    if (ll_ctx_init(&r.c, m, &cp, &err) != LL_OK) { rc = cli_fail_err(&err); goto done; }
    if (o.out_path && !(r.out = fopen(o.out_path, "wb"))) {
        rc = cli_fail("cannot open '%s': %s", o.out_path, strerror(errno));
        goto done;
    }

    if ((rc = logits_eval_prompt(&r, o.ids, o.n_ids, o.one_by_one)) != 0 ||
        (rc = logits_teacher_force(&r, o.force, o.n_force)) != 0)
        goto done;
    if (o.greedy > 0) {
        gen = malloc((size_t)o.greedy * sizeof *gen);
        if (!gen) { rc = cli_fail("out of memory for %ld ids", o.greedy); goto done; }
        if ((rc = logits_greedy(&r, gen, o.greedy)) != 0) goto done;
    }
    if (r.out) {
        int e = fclose(r.out);
        r.out = NULL;
        if (e != 0) { rc = cli_fail("writing '%s': %s", o.out_path, strerror(errno)); goto done; }
    }
    if (o.greedy > 0) print_ids(gen, o.greedy);
    rc = fflush(stdout) == 0 ? 0 : cli_fail("writing stdout: %s", strerror(errno));
done:
    if (r.out) fclose(r.out);
    ll_ctx_free(r.c);
    ll_batch_free(&r.batch);
    free(r.pos);
    free(r.entry);
    ll_model_free(m);
    free(o.ids);
    free(o.force);
    free(gen);
    return rc;
}
