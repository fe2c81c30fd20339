/* logits: run the forward pass on given token ids (issue 2 command contract).
 *
 *   locallama logits --model PATH --ids 1,2,3 [--out FILE] [--greedy N] [--threads T]
 *                    [--ctx N] [--batch N] [--one-by-one] [--force ID,ID,...]
 *                    [--kv-type f32|f16]
 *
 * Writes float32 little-endian logits for every prompt position (n_ids x n_vocab, row-major)
 * to FILE. The prompt is evaluated as one batch (--one-by-one: one token per decode call).
 * --force feeds these ids after the prompt, one per decode call (teacher forcing), and appends
 * each step's logits to FILE. --greedy N then generates N tokens by argmax (ties to the lowest
 * id; EOS is not a stop) through the KV cache, one token per call, and prints their ids as one
 * JSON array on the last line of stdout. --kv-type f16 keeps the KV cache as F16 (llama.cpp's
 * default) instead of F32 (ours, and the references'). */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char logits_usage[] =
    "usage: locallama logits --model PATH --ids 1,2,3 [--out FILE] [--greedy N] [--threads T]\n"
    "                        [--ctx N] [--batch N] [--one-by-one] [--force ID,ID,...]\n"
    "                        [--kv-type f32|f16]\n";

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

int cmd_logits(int argc, char **argv) {
    const char *model_path = NULL, *ids_s = NULL, *out_path = NULL, *force_s = NULL;
    long greedy = 0, threads = 0, n_ctx = 0, n_batch = 0;
    bool one_by_one = false, kv_f16 = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() do { if (!v) return usage_error("%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "--model") || !strcmp(a, "-m")) { NEED_VALUE(); model_path = v; }
        else if (!strcmp(a, "--ids")) { NEED_VALUE(); ids_s = v; }
        else if (!strcmp(a, "--out") || !strcmp(a, "-o")) { NEED_VALUE(); out_path = v; }
        else if (!strcmp(a, "--force")) { NEED_VALUE(); force_s = v; }
        else if (!strcmp(a, "--greedy")) {
            NEED_VALUE();
            if (!parse_int(v, 0, INT32_MAX, &greedy)) return usage_error("bad --greedy '%s'", v);
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            NEED_VALUE();
            if (!parse_int(v, 0, 1024, &threads)) return usage_error("bad --threads '%s'", v);
        } else if (!strcmp(a, "--ctx") || !strcmp(a, "-c")) {
            NEED_VALUE();
            if (!parse_int(v, 1, INT32_MAX, &n_ctx)) return usage_error("bad --ctx '%s'", v);
        } else if (!strcmp(a, "--batch") || !strcmp(a, "-b")) {
            NEED_VALUE();
            if (!parse_int(v, 1, INT32_MAX, &n_batch)) return usage_error("bad --batch '%s'", v);
        } else if (!strcmp(a, "--kv-type") || !strcmp(a, "-ctk")) {
            NEED_VALUE();
            if (!strcmp(v, "f16")) kv_f16 = true;
            else if (!strcmp(v, "f32")) kv_f16 = false;
            else return usage_error("bad --kv-type '%s' (f32 or f16)", v);
        } else if (!strcmp(a, "--one-by-one")) one_by_one = true;
        else return usage_error("unknown option '%s'", a);
#undef NEED_VALUE
    }
    if (!model_path) return usage_error("%s", "--model is required");
    if (!ids_s) return usage_error("%s", "--ids is required");

    int32_t *ids = NULL, *force = NULL, *gen = NULL;
    size_t n_ids = 0, n_force = 0;
    if (!parse_ids(ids_s, &ids, &n_ids) || n_ids == 0) {
        free(ids);
        return usage_error("bad --ids '%s' (comma-separated token ids)", ids_s);
    }
    if (force_s && !parse_ids(force_s, &force, &n_force)) {
        free(ids);
        free(force);
        return usage_error("bad --force '%s' (comma-separated token ids)", force_s);
    }

    int rc = 1;
    ll_error err = { 0 };
    ll_model *m = NULL;
    ll_ctx *c = NULL;
    FILE *out = NULL;
    if (ll_model_load(&m, model_path, NULL, &err) != LL_OK) { rc = cli_fail_err(&err); goto done; }
    const int32_t n_vocab = ll_model_n_vocab(m);

    /* Room for everything this run decodes, unless --ctx says otherwise. */
    ll_ctx_params cp = ll_ctx_default_params();
    uint64_t need = (uint64_t)n_ids + n_force + (greedy > 0 ? (uint64_t)greedy - 1 : 0);
    if (n_ctx) cp.n_ctx = (int32_t)n_ctx;
    else if (need > 4096) {
        int64_t train = ll_model_n_ctx_train(m);
        cp.n_ctx = (int32_t)(need < (uint64_t)train ? need : (uint64_t)train);
    }
    /* The prompt is one batch: llama.cpp's reference ran with n_batch = n_ubatch = n_ctx. */
    cp.n_batch = n_batch ? (int32_t)n_batch : (n_ids > 512 ? (int32_t)n_ids : 512);
    cp.n_threads = (int32_t)threads;
    cp.all_logits = true;
    cp.kv_f16 = kv_f16;
    if (ll_ctx_init(&c, m, &cp, &err) != LL_OK) { rc = cli_fail_err(&err); goto done; }

    if (out_path && !(out = fopen(out_path, "wb"))) {
        rc = cli_fail("cannot open '%s': %s", out_path, strerror(errno));
        goto done;
    }

    /* Prompt: one batch, or one token per call. Rows go to --out in position order. */
    const float *last = NULL;
    for (size_t i = 0; i < n_ids; i += one_by_one ? 1 : n_ids) {
        size_t n = one_by_one ? 1 : n_ids;
        if (ll_ctx_decode(c, ids + i, n, NULL, &err) != LL_OK) { rc = cli_fail_err(&err); goto done; }
        for (size_t r = 0; r < n && out; r++)
            if (fwrite(ll_ctx_logits(c, (int32_t)r), sizeof(float), (size_t)n_vocab, out) != (size_t)n_vocab) {
                rc = cli_fail("writing '%s': %s", out_path, strerror(errno));
                goto done;
            }
        last = ll_ctx_logits(c, -1);
    }

    /* Teacher forcing: each forced id at the next position, its logits appended. */
    for (size_t i = 0; i < n_force; i++) {
        if (ll_ctx_decode(c, force + i, 1, NULL, &err) != LL_OK) { rc = cli_fail_err(&err); goto done; }
        last = ll_ctx_logits(c, -1);
        if (out && fwrite(last, sizeof(float), (size_t)n_vocab, out) != (size_t)n_vocab) {
            rc = cli_fail("writing '%s': %s", out_path, strerror(errno));
            goto done;
        }
    }

    /* Greedy: step s picks the argmax of the current logits and feeds it back. */
    if (greedy > 0) {
        gen = malloc((size_t)greedy * sizeof *gen);
        if (!gen) { rc = cli_fail("out of memory for %ld ids", greedy); goto done; }
        for (long s = 0; s < greedy; s++) {
            gen[s] = argmax(last, n_vocab);
            if (s + 1 == greedy) break;
            if (ll_ctx_decode(c, &gen[s], 1, NULL, &err) != LL_OK) { rc = cli_fail_err(&err); goto done; }
            last = ll_ctx_logits(c, -1);
        }
    }
    if (out) {
        int e = fclose(out);
        out = NULL;
        if (e != 0) { rc = cli_fail("writing '%s': %s", out_path, strerror(errno)); goto done; }
    }
    if (greedy > 0) {
        putchar('[');
        for (long s = 0; s < greedy; s++) printf(s ? ", %d" : "%d", gen[s]);
        printf("]\n");
    }
    rc = fflush(stdout) == 0 ? 0 : cli_fail("writing stdout: %s", strerror(errno));
done:
    if (out) fclose(out);
    ll_ctx_free(c);
    ll_model_free(m);
    free(ids);
    free(force);
    free(gen);
    return rc;
}
