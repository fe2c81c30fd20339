/* cmd_bench: `locallama bench --model PATH [-p 512] [-n 128] [-d DEPTH] [-t THREADS]
 * [-np SEQS] [-r REPS] [-o md|json]` — prompt-processing and generation speed, measured the
 * way llama-bench measures it, so the two tools' numbers can be set side by side.
 *
 *   pp N   N random token ids (BOS first when the vocab adds one) decoded in one call
 *   tg N   one token per decode call, N times; the ids are random, not sampled, so only the
 *          forward pass is timed (llama-bench does the same: no tokenizer, no sampler)
 *   -d D   before each repetition the cache is cleared and D random tokens are decoded,
 *          untimed, so the test runs at context depth D
 *   -np S  S sequences at once, each with its own tokens and cells (llama-batched-bench
 *          without a shared prompt): pp decodes the S prompts in one batch, tg decodes one
 *          token of every sequence per call. t/s counts the tokens of all sequences together
 *          (the aggregate), so -np 4 reading 4x the t/s of -np 1 means perfect scaling.
 *
 * Each test runs once untimed (warm-up: page in the weights, wake the workers), then -r times
 * timed. With -d the context is filled once per test (untimed) and each run starts from it
 * (what a run added is removed again), as llama-bench does. A result is the mean and sample standard deviation over the repetitions, of the
 * nanoseconds and of the tokens per second of each repetition (not tokens / mean time: this is
 * llama-bench's definition, which the JSON field names carry).
 */
#include "cli/cli.h"
#include "core/core.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef LL_BUILD_COMMIT
#define LL_BUILD_COMMIT "unknown"
#endif

#define BENCH_MAX_LIST 32

typedef struct {
    int64_t v[BENCH_MAX_LIST];
    size_t  n;
} int_list;

typedef struct {
    const char *model;
    int_list    n_prompt, n_gen, n_depth, n_threads, n_parallel;
    int64_t     reps;
    bool        json;
    ll_kv_type  kv_type;       /* --kv-type */
} bench_opts;

static const char *kv_name(ll_kv_type t) { return t == LL_KV_F16 ? "f16" : t == LL_KV_Q8_0 ? "q8_0" : "f32"; }

static void bench_usage(FILE *f) {
    fputs("Usage: locallama bench --model PATH [options]\n"
          "  -m, --model PATH         the .gguf file\n"
          "  -p, --n-prompt N[,N..]   prompt tokens decoded as one batch (default 512; 0 skips)\n"
          "  -n, --n-gen N[,N..]      tokens generated one at a time (default 128; 0 skips)\n"
          "  -d, --n-depth N[,N..]    context filled before each test, untimed (default 0)\n"
          "  -t, --threads N[,N..]    worker threads (default: all cores)\n"
          "  -np, --n-parallel N[,N..] sequences decoded together (default 1); t/s is the\n"
          "                           aggregate over all sequences\n"
          "  -r, --repetitions N      timed repetitions per test (default 5)\n"
          "  -ctk, --kv-type f32|f16|q8_0  KV cache type (default f16)\n"
          "  -o, --output md|json     markdown table (default) or llama-bench's JSON\n",
          f);
}

/* "512" or "128,512": each value in [lo, hi]. */
static bool parse_list(const char *s, int64_t lo, int64_t hi, int_list *out) {
    out->n = 0;
    if (!s || !*s) return false;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end == s || v < lo || v > hi || out->n == BENCH_MAX_LIST) return false;
        out->v[out->n++] = v;
        if (*end == '\0') return true;
        if (*end != ',') return false;
        s = end + 1;
    }
}

static int bench_parse(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){ .reps = 5 };
    o->n_prompt = (int_list){ { 512 }, 1 };
    o->n_gen = (int_list){ { 128 }, 1 };
    o->n_depth = (int_list){ { 0 }, 1 };
    o->n_threads = (int_list){ { 0 }, 1 };
    o->n_parallel = (int_list){ { 1 }, 1 };
    o->kv_type = LL_KV_F16;                        /* llama-bench's and serve's default */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { bench_usage(stdout); return 0; }
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define IS(s, l) (!strcmp(a, s) || !strcmp(a, l))
        bool ok;
        if (IS("-m", "--model")) ok = (o->model = val) != NULL;
        else if (IS("-p", "--n-prompt")) ok = parse_list(val, 0, 1 << 20, &o->n_prompt);
        else if (IS("-n", "--n-gen")) ok = parse_list(val, 0, 1 << 20, &o->n_gen);
        else if (IS("-d", "--n-depth")) ok = parse_list(val, 0, 1 << 24, &o->n_depth);
        else if (IS("-t", "--threads")) ok = parse_list(val, 1, 1024, &o->n_threads);   /* ll_ctx_init's max */
        else if (IS("-np", "--n-parallel")) ok = parse_list(val, 1, 256, &o->n_parallel);  /* n_seq_max's max */
        else if (IS("-r", "--repetitions")) {
            int_list l;
            ok = parse_list(val, 1, 100000, &l) && l.n == 1;
            if (ok) o->reps = l.v[0];
        } else if (IS("-ctk", "--kv-type")) {
            ok = val && (!strcmp(val, "f32") || !strcmp(val, "f16") || !strcmp(val, "q8_0"));
            if (ok) o->kv_type = !strcmp(val, "f16") ? LL_KV_F16 : !strcmp(val, "q8_0") ? LL_KV_Q8_0 : LL_KV_F32;
        } else if (IS("-o", "--output")) {
            ok = val && (!strcmp(val, "md") || !strcmp(val, "json"));
            if (ok) o->json = !strcmp(val, "json");
        } else {
            fprintf(stderr, "Error: unknown flag: %s\n", a);
            bench_usage(stderr);
            return 2;
        }
#undef IS
        if (!ok) {
            if (!val) fprintf(stderr, "Error: flag needs an argument: %s\n", a);
            else fprintf(stderr, "Error: invalid value for %s: \"%s\"\n", a, val);
            return 2;
        }
        i++;
    }
    if (!o->model) {
        fputs("Error: --model PATH is required\n", stderr);
        bench_usage(stderr);
        return 2;
    }
    return -1;
}

/* ---- environment facts for the report ------------------------------------------------------ */

static void cpu_info(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        size_t n = strcspn(c, "\n");
        snprintf(buf, cap, "%.*s", (int)n, c);
        break;
    }
    fclose(f);
}

static void iso8601_now(char *buf, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Bytes of the well-formed UTF-8 sequence at p (Unicode table 3-7), 0 if ill-formed. */
static size_t utf8_len(const unsigned char *p) {
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if (p[1] < lo || p[1] > hi) return 0;   /* also stops at the terminating NUL */
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

/* A JSON string: JSON text is UTF-8 (RFC 8259 §8.1), so a byte that is not part of a
 * well-formed sequence (a file name need not be UTF-8) becomes U+FFFD. */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (n == 0) { fputs("\\ufffd", f); p++; continue; }
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fwrite(p, 1, n, f);
        p += n;
    }
    fputc('"', f);
}

/* ---- the measurements -------------------------------------------------------------------------- */

/* xorshift64*: the ids only need to be spread over the vocabulary, and reproducible. */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

typedef struct {
    ll_ctx         *ctx;
    const ll_vocab *vocab;
    int32_t         n_vocab;
    int32_t         n_par;  /* sequences */
    ll_batch        batch;  /* room for n_par x max(depth, prompt) entries */
    int32_t        *pos;    /* (n_par) next position of each sequence */
    uint64_t        rng;
} bench_run;

static int32_t rand_id(bench_run *b) { return (int32_t)(rng_next(&b->rng) % (uint64_t)b->n_vocab); }

/* n random tokens for every sequence, BOS first at position 0 when the vocab adds one, as
 * one batch; only the last token of each sequence wants logits. */
static ll_status decode_each(bench_run *b, int64_t n, ll_error *err) {
    const bool bos = ll_vocab_add_bos(b->vocab) && ll_vocab_bos(b->vocab) >= 0;
    ll_batch_clear(&b->batch);
    for (int32_t s = 0; s < b->n_par; s++)
        for (int64_t i = 0; i < n; i++) {
            const int32_t tok = bos && b->pos[s] == 0 ? ll_vocab_bos(b->vocab) : rand_id(b);
            ll_batch_add(&b->batch, tok, b->pos[s]++, s, i == n - 1);
        }
    return ll_ctx_decode_batch(b->ctx, &b->batch, err);
}

static ll_status run_tg(bench_run *b, int64_t n, ll_error *err) {
    for (int64_t i = 0; i < n; i++) {
        ll_status st = decode_each(b, 1, err);
        if (st != LL_OK) return st;
    }
    return LL_OK;
}

static ll_status clear_all(bench_run *b, ll_error *err) {
    for (int32_t s = 0; s < b->n_par; s++) {
        b->pos[s] = 0;
        ll_status st = ll_ctx_seq_rm(b->ctx, s, 0, -1, err);
        if (st != LL_OK) return st;
    }
    return LL_OK;
}

/* Every sequence back to its first `depth` positions. */
static ll_status trim_to(bench_run *b, int64_t depth, ll_error *err) {
    for (int32_t s = 0; s < b->n_par; s++) {
        b->pos[s] = (int32_t)depth;
        ll_status st = ll_ctx_seq_rm(b->ctx, s, (int32_t)depth, -1, err);
        if (st != LL_OK) return st;
    }
    return LL_OK;
}

typedef struct {
    int64_t  n_prompt, n_gen, n_depth, n_threads, n_parallel;
    int32_t  n_batch;
    ll_kv_type kv_type;
    char     test_time[32];
    uint64_t *samples_ns;
    size_t   n_samples;
} bench_result;

static double mean_of(const double *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return n ? s / n : 0;
}

static double stddev_of(const double *x, size_t n) {   /* with Bessel's correction */
    if (n < 2) return 0;
    double m = mean_of(x, n), s = 0;
    for (size_t i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return sqrt(s / (n - 1));
}

typedef struct {
    const char *filename;
    char        type[128];
    char        cpu[256];
    uint64_t    size_bytes, n_params;
} model_facts;

/* Per-repetition tokens/s; NULL on allocation failure. */
static double *samples_ts(const bench_result *r) {
    double *v = malloc((r->n_samples ? r->n_samples : 1) * sizeof *v);
    if (!v) return NULL;
    double n_tok = (double)((r->n_prompt + r->n_gen) * r->n_parallel);   /* aggregate */
    for (size_t i = 0; i < r->n_samples; i++)
        v[i] = r->samples_ns[i] ? n_tok * 1e9 / (double)r->samples_ns[i] : 0;
    return v;
}

static void print_json(FILE *f, const model_facts *mf, const bench_result *r, bool first) {
    size_t n = r->n_samples;
    double *tsv = samples_ts(r), *nsv = malloc((n ? n : 1) * sizeof *nsv);
    if (!nsv || !tsv) { free(nsv); free(tsv); return; }
    for (size_t i = 0; i < n; i++) nsv[i] = (double)r->samples_ns[i];
    fputs(first ? "[\n  {\n" : ",\n  {\n", f);
    fprintf(f, "    \"build_commit\": ");
    json_str(f, LL_BUILD_COMMIT);
    fprintf(f, ",\n    \"build_number\": 0,\n    \"cpu_info\": ");
    json_str(f, mf->cpu);
    fprintf(f, ",\n    \"gpu_info\": \"\",\n    \"backends\": \"CPU\",\n    \"model_filename\": ");
    json_str(f, mf->filename);
    fprintf(f, ",\n    \"model_type\": ");
    json_str(f, mf->type);
    fprintf(f, ",\n    \"model_size\": %llu,\n    \"model_n_params\": %llu,\n",
            (unsigned long long)mf->size_bytes, (unsigned long long)mf->n_params);
    fprintf(f, "    \"n_batch\": %d,\n    \"n_ubatch\": %d,\n    \"n_threads\": %lld,\n",
            r->n_batch, r->n_batch, (long long)r->n_threads);
    fprintf(f, "    \"cpu_mask\": \"0x0\",\n    \"cpu_strict\": false,\n    \"poll\": 50,\n"
               "    \"type_k\": \"%s\",\n    \"type_v\": \"%s\",\n    \"n_gpu_layers\": 0,\n"
               "    \"n_cpu_moe\": 0,\n    \"split_mode\": \"layer\",\n    \"main_gpu\": 0,\n"
               "    \"no_kv_offload\": false,\n    \"flash_attn\": 0,\n    \"devices\": \"auto\",\n"
               "    \"tensor_split\": \"0.00\",\n    \"tensor_buft_overrides\": \"none\",\n"
               "    \"use_mmap\": true,\n    \"use_direct_io\": false,\n    \"embeddings\": false,\n"
               "    \"no_op_offload\": 0,\n    \"no_host\": false,\n    \"repack\": false,\n",
            kv_name(r->kv_type), kv_name(r->kv_type));
    fprintf(f, "    \"n_prompt\": %lld,\n    \"n_gen\": %lld,\n    \"n_depth\": %lld,\n"
               "    \"n_parallel\": %lld,\n",
            (long long)r->n_prompt, (long long)r->n_gen, (long long)r->n_depth,
            (long long)r->n_parallel);
    fprintf(f, "    \"test_time\": \"%s\",\n", r->test_time);
    fprintf(f, "    \"avg_ns\": %.0f,\n    \"stddev_ns\": %.0f,\n", mean_of(nsv, n), stddev_of(nsv, n));
    fprintf(f, "    \"avg_ts\": %.6f,\n    \"stddev_ts\": %.6f,\n", mean_of(tsv, n), stddev_of(tsv, n));
    fputs("    \"samples_ns\": [", f);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%llu", i ? ", " : " ", (unsigned long long)r->samples_ns[i]);
    fputs(n ? " ],\n    \"samples_ts\": [" : "],\n    \"samples_ts\": [", f);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%.6g", i ? ", " : " ", tsv[i]);
    fputs(n ? " ]\n  }" : "]\n  }", f);
    fflush(f);
    free(nsv);
    free(tsv);
}

static void md_header(FILE *f) {
    fprintf(f, "| %-30s | %10s | %10s | %-10s | %10s | %15s | %20s |\n", "model", "size", "params",
            "backend", "threads", "test", "t/s");
    fprintf(f, "| %s | %s: | %s: | %s | %s: | %s: | %s: |\n", "------------------------------",
            "---------", "---------", "----------", "---------", "--------------",
            "-------------------");
    fflush(f);
}

static void md_row(FILE *f, const model_facts *mf, const bench_result *r) {
    char size[32], params[32], test[48], ts[64];
    double gib = mf->size_bytes / (1024.0 * 1024.0 * 1024.0);
    if (mf->size_bytes < (1ull << 30))
        snprintf(size, sizeof size, "%.2f MiB", mf->size_bytes / (1024.0 * 1024.0));
    else snprintf(size, sizeof size, "%.2f GiB", gib);
    if (mf->n_params < 1000000000ull) snprintf(params, sizeof params, "%.2f M", mf->n_params / 1e6);
    else snprintf(params, sizeof params, "%.2f B", mf->n_params / 1e9);
    int l = r->n_prompt > 0 ? snprintf(test, sizeof test, "pp%lld", (long long)r->n_prompt)
                            : snprintf(test, sizeof test, "tg%lld", (long long)r->n_gen);
    if (r->n_depth > 0 && l > 0 && (size_t)l < sizeof test)
        l += snprintf(test + l, sizeof test - (size_t)l, " @ d%lld", (long long)r->n_depth);
    if (r->n_parallel > 1 && l > 0 && (size_t)l < sizeof test)
        snprintf(test + l, sizeof test - (size_t)l, " x%lld", (long long)r->n_parallel);
    double *v = samples_ts(r);
    if (!v) return;
    snprintf(ts, sizeof ts, "%.2f \xC2\xB1 %.2f", mean_of(v, r->n_samples), stddev_of(v, r->n_samples));
    free(v);
    fprintf(f, "| %-30s | %10s | %10s | %-10s | %10lld | %15s | %21s |\n", mf->type, size, params,
            "CPU", (long long)r->n_threads, test, ts);   /* "±" is 2 bytes, 1 column */
    fflush(f);
}

/* One test (pp or tg) at one depth, thread count and sequence count. */
static int bench_test(const ll_model *m, const bench_opts *o, const model_facts *mf,
                      int64_t n_prompt, int64_t n_gen, int64_t depth, int64_t threads,
                      int64_t n_par, bool *first) {
    ll_error err = { 0 };
    bench_result r = { .n_prompt = n_prompt, .n_gen = n_gen, .n_depth = depth, .n_parallel = n_par };
    bench_run b = { .vocab = ll_model_vocab(m), .n_vocab = ll_model_n_vocab(m), .n_par = (int32_t)n_par,
                    .rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)(n_prompt * 31 + n_gen * 7 + depth) };
    if (b.n_vocab <= 0) return cli_fail("model has no vocabulary");

    ll_ctx_params cp = ll_ctx_default_params();
    cp.fast_products = true;                 /* within f32 rounding; logits stays exact */
    int64_t need = depth + n_prompt + n_gen;
    if (need > INT32_MAX) return cli_fail("depth + prompt + generation = %lld tokens is too many", (long long)need);
    cp.n_ctx = (int32_t)(need > 0 ? need : 1);     /* per sequence */
    cp.n_seq_max = (int32_t)n_par;
    if (n_prompt > cp.n_batch) cp.n_batch = (int32_t)n_prompt;
    cp.n_threads = (int32_t)threads;
    cp.type_k = cp.type_v = o->kv_type;
    r.n_batch = cp.n_batch;
    r.kv_type = o->kv_type;
    r.n_threads = threads > 0 ? threads : sysconf(_SC_NPROCESSORS_ONLN);

    int rc = 1;
    int64_t scratch = (depth > n_prompt ? depth : n_prompt) * n_par;
    if (scratch < n_par) scratch = n_par;
    if (scratch > INT32_MAX) return cli_fail("%lld batch entries is too many", (long long)scratch);
    b.pos = calloc((size_t)n_par, sizeof *b.pos);
    r.samples_ns = calloc((size_t)o->reps, sizeof *r.samples_ns);
    if (!b.pos || !r.samples_ns) { rc = cli_fail("out of memory"); goto out; }
    if (ll_batch_init(&b.batch, (int32_t)scratch, &err) != LL_OK) { rc = cli_fail_err(&err); goto out; }
    if (ll_ctx_init(&b.ctx, m, &cp, &err) != LL_OK) { rc = cli_fail_err(&err); goto out; }

    iso8601_now(r.test_time, sizeof r.test_time);
    /* The context is filled once (as llama-bench does); each run then drops what the previous
     * one added, so every run starts from the same depth-token context. */
    ll_status st0 = clear_all(&b, &err);
    if (st0 == LL_OK && depth > 0) st0 = decode_each(&b, depth, &err);
    if (st0 != LL_OK) { rc = cli_fail_err(&err); goto out; }
    for (int64_t rep = -1; rep < o->reps; rep++) {   /* rep -1: warm-up */
        ll_status st = trim_to(&b, depth, &err);
        if (st != LL_OK) { rc = cli_fail_err(&err); goto out; }
        uint64_t t0 = ll_time_ns();
        st = n_prompt > 0 ? decode_each(&b, n_prompt, &err) : run_tg(&b, rep < 0 ? 1 : n_gen, &err);
        uint64_t t1 = ll_time_ns();
        if (st != LL_OK) { rc = cli_fail_err(&err); goto out; }
        if (rep >= 0) r.samples_ns[r.n_samples++] = t1 - t0;
    }
    if (o->json) print_json(stdout, mf, &r, *first);
    else md_row(stdout, mf, &r);
    *first = false;
    rc = 0;
out:
    ll_ctx_free(b.ctx);
    ll_batch_free(&b.batch);
    free(b.pos);
    free(r.samples_ns);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    bench_opts o;
    int st = bench_parse(argc, argv, &o);
    if (st >= 0) return st;

    struct stat sb;
    if (stat(o.model, &sb) != 0)
        return cli_fail("model '%s' not found (give a path to a .gguf file)", o.model);
    ll_error err = { 0 };
    ll_model *m = NULL;
    if (ll_model_load(&m, o.model, NULL, &err) != LL_OK) return cli_fail_err(&err);

    model_facts mf = { .filename = o.model, .size_bytes = ll_model_size_bytes(m),
                       .n_params = ll_model_n_params(m) };
    ll_model_desc(m, mf.type, sizeof mf.type);
    cpu_info(mf.cpu, sizeof mf.cpu);

    int rc = 0;
    bool first = true;
    if (!o.json) md_header(stdout);
    for (size_t ti = 0; ti < o.n_threads.n && rc == 0; ti++)
        for (size_t npi = 0; npi < o.n_parallel.n && rc == 0; npi++)
            for (size_t di = 0; di < o.n_depth.n && rc == 0; di++) {
                const int64_t np = o.n_parallel.v[npi];
                for (size_t pi = 0; pi < o.n_prompt.n && rc == 0; pi++)
                    if (o.n_prompt.v[pi] > 0)
                        rc = bench_test(m, &o, &mf, o.n_prompt.v[pi], 0, o.n_depth.v[di],
                                        o.n_threads.v[ti], np, &first);
                for (size_t gi = 0; gi < o.n_gen.n && rc == 0; gi++)
                    if (o.n_gen.v[gi] > 0)
                        rc = bench_test(m, &o, &mf, 0, o.n_gen.v[gi], o.n_depth.v[di],
                                        o.n_threads.v[ti], np, &first);
            }
    if (o.json) fputs(first ? "[]\n" : "\n]\n", stdout);
    fflush(stdout);
    ll_model_free(m);
    return rc;
}
