/* quantize: rewrite a GGUF model in another weight type, as llama-quantize does (issue 10).
 *
 *   locallama quantize [options] IN.gguf OUT.gguf TYPE
 *
 * TYPE is a llama.cpp file type (F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M
 * Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K, and Q2_K_S with --imatrix; Q3_K/Q4_K/Q5_K mean the
 * _M mixes) or its number. --imatrix takes llama-imatrix's output (GGUF or the older .dat).
 * Prints one line per tensor on stdout and a summary; errors go to stderr as "Error: ..."
 * with exit status 1 (2 for a usage error). OUT appears only when complete. */
#include "cli/cli.h"
#include "model/quantize.h"
#include "quant/quant.h"
#include "quant/quantize.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

static const char quantize_usage[] =
    "usage: locallama quantize [--pure] [--allow-requantize] [--leave-output-tensor]\n"
    "                          [--output-tensor-type TYPE] [--token-embedding-type TYPE]\n"
    "                          [--imatrix FILE [--include-weights NAME | --exclude-weights NAME]...]\n"
    "                          [--tensor-type REGEX=TYPE]... [--tensor-type-file FILE]\n"
    "                          [--override-kv KEY=TYPE:VALUE]... [--prune-layers N,N...] [--dry-run]\n"
    "                          [--threads N] [--stats] IN.gguf OUT.gguf TYPE\n";

static int usage_error(const char *fmt, const char *arg) {
    fputs("Error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    fputs(quantize_usage, stderr);
    size_t n;
    const ll_ftype_info *ft = ll_ftype_list(&n);
    fputs("types:", stderr);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %s", ft[i].name);
    fputs(" (Q3_K, Q4_K, Q5_K: the _M mixes)\n", stderr);
    return 2;
}

/* Ctrl-C or SIGTERM: stop between slabs so the temporary file is removed (exit 130). */
static atomic_bool quantize_cancel;
static void on_signal(int sig) { (void)sig; atomic_store(&quantize_cancel, true); }

/* A ggml tensor type by name, for the two override options; -1 when not one we write. */
static int32_t parse_tensor_type(const char *s) {
    for (uint32_t t = 0; t < LL_TYPE_COUNT; t++) {
        const ll_type_traits *tt = ll_type_traits_of(t);
        if (tt && !strcasecmp(tt->name, s) && ll_quantize_supported(t)) return (int32_t)t;
    }
    return -1;
}

/* --tensor-type NAME=TYPE: the pattern lower-cased (as llama-quantize does), the type by name. */
#define MAX_TT 256
typedef struct { char *pat[MAX_TT]; int32_t type[MAX_TT]; size_t n; } tt_list;

static int tt_add(tt_list *tt, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) return usage_error("--tensor-type wants REGEX=TYPE, not '%s'", arg);
    if (tt->n == MAX_TT) return usage_error("more than 256 tensor types at '%s'", arg);
    int32_t t = parse_tensor_type(eq + 1);
    if (t < 0) return usage_error("--tensor-type: unknown or unsupported type in '%s'", arg);
    char *pat = strndup(arg, (size_t)(eq - arg));
    if (!pat) return cli_fail("out of memory");
    for (char *c = pat; *c; c++) *c = (char)tolower((unsigned char)*c);
    tt->pat[tt->n] = pat;
    tt->type[tt->n++] = t;
    return 0;
}

/* --tensor-type-file: whitespace-separated REGEX=TYPE words. */
static int tt_add_file(tt_list *tt, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return usage_error("cannot open the --tensor-type-file '%s'", path);
    char word[1024];
    int rc = 0;
    while (!rc && fscanf(f, "%1023s", word) == 1) rc = tt_add(tt, word);
    fclose(f);
    return rc;
}

static void tt_free(tt_list *tt) {
    for (size_t i = 0; i < tt->n; i++) free(tt->pat[i]);
}

/* per destination type: the error sums over the tensors converted to it */
typedef struct {
    bool   stats;
    double err2[LL_TYPE_COUNT], ref2[LL_TYPE_COUNT];
    int64_t n_elem[LL_TYPE_COUNT];
} progress_state;

static void on_tensor(void *ud, const ll_quantize_tensor_info *t) {
    progress_state *ps = ud;
    char shape[64];
    int nd = 4;
    while (nd > 1 && t->ne[nd - 1] == 1) nd--;
    int o = snprintf(shape, sizeof shape, "[%lld", (long long)t->ne[0]);
    for (int d = 1; d < nd && o < (int)sizeof shape; d++) o += snprintf(shape + o, sizeof shape - (size_t)o, ", %lld", (long long)t->ne[d]);
    if (o < (int)sizeof shape) snprintf(shape + o, sizeof shape - (size_t)o, "]");
    const char *sn = ll_type_traits_of(t->src_type) ? ll_type_traits_of(t->src_type)->name : "?";
    const char *dn = ll_type_traits_of(t->dst_type) ? ll_type_traits_of(t->dst_type)->name : "?";
    printf("[%4zu/%4zu] %-36s %-16s %5s -> %-5s %9.3f MiB -> %9.3f MiB", t->index + 1, t->count,
           t->name, shape, sn, dn, t->src_bytes / 1048576.0, t->dst_bytes / 1048576.0);
    if (t->fallback) printf("  (row length: fallback type)");
    if (ps->stats && t->converted && t->ref2 > 0) {
        printf("  nrmse %.6f", sqrt(t->err2 / t->ref2));
        ps->err2[t->dst_type] += t->err2;
        ps->ref2[t->dst_type] += t->ref2;
        ps->n_elem[t->dst_type] += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    putchar('\n');
    fflush(stdout);
}

int cmd_quantize(int argc, char **argv) {
    ll_quantize_params p;
    ll_quantize_params_default(&p);
    const char *pos[3];
    const char *incl[64], *excl[64];
    static tt_list tt;
    static ll_kv_override kvo[64];
    size_t n_kvo = 0;
    static int prune[1024];
    size_t n_prune = 0;
    int n_pos = 0;
    bool stats = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--pure")) p.pure = true;
        else if (!strcmp(a, "--allow-requantize")) p.allow_requantize = true;
        else if (!strcmp(a, "--leave-output-tensor")) p.leave_output = true;
        else if (!strcmp(a, "--stats")) stats = true;
        else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (++i >= argc) return usage_error("%s needs a value", a);
            char *end;
            errno = 0;
            long n = strtol(argv[i], &end, 10);
            if (errno || *end || end == argv[i] || n < 1 || n > 1024)
                return usage_error("--threads wants a number from 1 to 1024, not '%s'", argv[i]);
            p.n_threads = (int)n;
        } else if (!strcmp(a, "--imatrix")) {
            if (++i >= argc) return usage_error("%s needs a value", a);
            p.imatrix_path = argv[i];
        } else if (!strcmp(a, "--prune-layers")) {
            if (++i >= argc) return usage_error("%s needs a value", a);
            /* comma-separated layer ids, then sorted and made unique as llama-quantize does */
            for (const char *c = argv[i];;) {
                char *end;
                errno = 0;
                long v = strtol(c, &end, 10);
                if (errno || end == c || v < 0 || v > 1000000 || (*end && *end != ','))
                    return usage_error("--prune-layers wants layer ids like 3,4,7, not '%s'", argv[i]);
                if (n_prune == sizeof prune / sizeof prune[0]) return usage_error("too many layers in '%s'", argv[i]);
                prune[n_prune++] = (int)v;
                if (!*end) break;
                c = end + 1;
            }
        } else if (!strcmp(a, "--dry-run")) {
            p.dry_run = true;
        } else if (!strcmp(a, "--override-kv")) {
            if (++i >= argc) return usage_error("%s needs a value", a);
            if (n_kvo == 64) return usage_error("too many --override-kv at '%s'", argv[i]);
            if (!ll_kv_override_parse(argv[i], &kvo[n_kvo]))
                return usage_error("--override-kv wants KEY=int:N, float:X, bool:true|false or str:TEXT, not '%s'", argv[i]);
            n_kvo++;
        } else if (!strcmp(a, "--tensor-type") || !strcmp(a, "--tensor-type-file")) {
            if (++i >= argc) return usage_error("%s needs a value", a);
            int rc = a[13] ? tt_add_file(&tt, argv[i]) : tt_add(&tt, argv[i]);
            if (rc) { tt_free(&tt); return rc; }
        } else if (!strcmp(a, "--include-weights") || !strcmp(a, "--exclude-weights")) {
            if (++i >= argc) return usage_error("%s needs a value", a);
            bool inc = a[2] == 'i';
            size_t *n = inc ? &p.n_imatrix_include : &p.n_imatrix_exclude;
            if (*n == 64) return usage_error("too many %s options", a);
            (inc ? incl : excl)[(*n)++] = argv[i];
        } else if (!strcmp(a, "--output-tensor-type") || !strcmp(a, "--token-embedding-type")) {
            if (++i >= argc) return usage_error("%s needs a value", a);
            int32_t t = parse_tensor_type(argv[i]);
            if (t < 0) return usage_error("unknown or unsupported tensor type '%s'", argv[i]);
            if (a[2] == 'o') p.output_type = t; else p.token_embd_type = t;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(quantize_usage, stdout);
            return 0;
        } else if (a[0] == '-' && a[1] == '-') {
            return usage_error("unknown option '%s'", a);
        } else {
            if (n_pos == 3) return usage_error("unexpected argument '%s'", a);
            pos[n_pos++] = a;
        }
    }
    if (n_pos < 3) return usage_error("%s", n_pos == 0 ? "missing IN.gguf OUT.gguf TYPE" :
                                            n_pos == 1 ? "missing OUT.gguf and TYPE" : "missing TYPE");
    if (p.n_imatrix_include && p.n_imatrix_exclude)
        return usage_error("%s", "--include-weights and --exclude-weights exclude each other");
    /* sort + unique */
    for (size_t x = 1; x < n_prune; x++)
        for (size_t y = x; y > 0 && prune[y - 1] > prune[y]; y--) { int t = prune[y]; prune[y] = prune[y - 1]; prune[y - 1] = t; }
    size_t u = 0;
    for (size_t x = 0; x < n_prune; x++) if (!u || prune[u - 1] != prune[x]) prune[u++] = prune[x];
    p.prune = prune;
    p.n_prune = u;
    p.kv_overrides = kvo;
    p.n_kv_overrides = n_kvo;
    p.tt_patterns = (const char *const *)tt.pat;
    p.tt_types = tt.type;
    p.n_tt = tt.n;
    p.imatrix_include = incl;
    p.imatrix_exclude = excl;
    const ll_ftype_info *fi = ll_ftype_find(pos[2]);
    if (!fi) return usage_error("unknown type '%s'", pos[2]);

    progress_state ps = { .stats = stats };
    p.ftype = fi->ftype;
    p.stats = stats;
    p.progress = on_tensor;
    p.progress_ud = &ps;
    printf("%s '%s' to '%s' as %s%s\n", p.dry_run ? "planning" : "quantizing", pos[0], pos[1], fi->name,
           p.pure ? " (pure)" : "");
    p.cancel = &quantize_cancel;
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    ll_quantize_result res;
    ll_error err = {0};
    ll_status st = ll_quantize_file(pos[0], pos[1], &p, &res, &err);
    tt_free(&tt);
    if (st == LL_ERR_CANCELLED) {
        fputs("Error: interrupted; no output written\n", stderr);
        return 130;
    }
    if (st != LL_OK) return cli_fail_err(&err);
    printf("model size:  %10.2f MiB (%.2f bits per weight)\n", res.src_bytes / 1048576.0,
           res.n_elements ? res.src_bytes * 8.0 / (double)res.n_elements : 0.0);
    printf("quant size:  %10.2f MiB (%.2f bits per weight)\n", res.dst_bytes / 1048576.0,
           res.n_elements ? res.dst_bytes * 8.0 / (double)res.n_elements : 0.0);
    if (p.dry_run) printf("dry run: nothing written\n");
    if (res.needs_imatrix) printf("warning: the real run needs an importance matrix (--imatrix)\n");
    printf("tensors: %zu, converted %zu", res.n_tensors, res.n_converted);
    if (res.n_fallback) printf(", %zu with a fallback type", res.n_fallback);
    putchar('\n');
    if (stats) {
        /* NRMSE = sqrt(sum (dequantized - original)^2 / sum original^2) over each type's tensors */
        double e = 0, r = 0;
        for (uint32_t t = 0; t < LL_TYPE_COUNT; t++) {
            if (ps.ref2[t] <= 0) continue;
            printf("nrmse %-5s %.6f  (%lld weights)\n", ll_type_traits_of(t)->name,
                   sqrt(ps.err2[t] / ps.ref2[t]), (long long)ps.n_elem[t]);
            e += ps.err2[t];
            r += ps.ref2[t];
        }
        if (r > 0) printf("nrmse all   %.6f\n", sqrt(e / r));
    }
    return 0;
}
