/* cmd_run: `locallama run MODEL [PROMPT...]`.
 *
 * MODEL that names a .gguf file (run_is_local) is run here, by the engine in this process;
 * any other MODEL is a model of `locallama serve` and cmd_chat.c talks to the server as
 * Ollama's CLI does (run.h). Options are parsed and checked here for both, before anything
 * is loaded or sent.
 *
 * The local half: with PROMPT, one answer, then exit. Without: a multi-turn chat reading one
 * user turn per line of stdin (prompt ">>> " on stderr when stdin is a terminal), until `/bye`
 * or EOF.
 *
 * Each turn renders the whole conversation with the model's chat template and tokenizes it,
 * then decodes only the tokens after the longest prefix already in the KV cache. For a
 * template whose rendering of earlier turns does not change (all the families we know), that
 * is exactly the new turn; when re-tokenizing the previous answer gives different ids than the
 * ones generated, the cache is cut back to where they part and the rest is recomputed. The
 * cost of that simplicity is a few re-decoded tokens at worst; the gain is that a cancelled
 * answer, a dropped old message or an unusual template can never leave the cache out of step
 * with the text.
 *
 * Output is written with write(2), whole UTF-8 characters only (fault R20); SIGPIPE is
 * ignored in main.c, so a closed stdout (R13) ends generation quietly.
 */
#include "cli/cli.h"
#include "cli/run.h"
#include "template/chat.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- options --------------------------------------------------------------------------------- */

static void run_usage(FILE *f) {
    fputs("Chat with a model: a model of the server, or a .gguf file run in this process\n"
          "\n"
          "Usage:\n"
          "  locallama run MODEL [PROMPT] [flags]\n"
          "  locallama run PATH.gguf [PROMPT] [flags]\n"
          "\n"
          "Flags:\n"
          "      --dimensions int       Truncate embeddings to this many dimensions (embedding models)\n"
          "      --format string        Response format (e.g. json)\n"
          "  -h, --help                 help for run\n"
          "      --hidethinking         Hide the thinking text of thinking models\n"
          "      --insecure             Use an insecure registry (to pull a model the server lacks)\n"
          "      --keepalive string     How long the server keeps the model loaded (e.g. 5m)\n"
          "      --nowordwrap           Do not wrap words on a terminal (output into pipes is never wrapped)\n"
          "      --think string[=\"true\"] Thinking: true/false or high/medium/low for models that think\n"
          "      --truncate             Truncate embedding inputs that exceed the context\n"
          "      --verbose              Show timings for the response\n"
          "\n"
          "Sampling and context (sent as request options to the server, or used directly):\n"
          "      --temperature F        sampling temperature, >= 0 (0 = greedy; default 0.8)\n"
          "      --seed N               sampling seed (default: from the clock)\n"
          "      --num-predict N        tokens per answer (-1 = until end of generation; 0 = none)\n"
          "      --ctx N                context length (default 4096, capped to the model's)\n"
          "      --num-keep N           tokens kept from the start when a full context shifts (default 4)\n"
          "      --threads N            worker threads (default: all cores; capped to the CPU count)\n"
          "      --top-k N              top-k, >= 0 (0 = off)\n"
          "      --top-p F              top-p, in [0, 1]\n"
          "      --min-p F              min-p, in [0, 1]\n"
          "      --repeat-penalty F     repeat penalty, > 0 (1 = off)\n"
          "      --system TEXT          system message\n"
          "      --raw                  no chat template: the prompt is the model's input\n"
          "      --kv-type T            KV cache type f32, f16 or q8_0 (PATH.gguf only)\n"
          "\n"
          "MODEL is a name of `locallama serve` (see `locallama list`); the server must run.\n"
          "PATH.gguf is loaded here; without PROMPT its chat reads one turn per line of stdin.\n"
          "\n"
          "Environment Variables:\n"
          "      LOCALLAMA_HOST                Address of the locallama server (default 127.0.0.1:11434)\n"
          "      OLLAMA_HOST                   Used when LOCALLAMA_HOST is unset\n"
          "      LOCALLAMA_NOHISTORY           Do not keep the REPL's history (~/.locallama/history)\n",
          f);
}

static int usage_err(const char *fmt, const char *a) {
    fputs("Error: ", stderr);
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    return 2;
}

/* The one wording of a bad option value (exit 2); why adds the reason when there is one. */
static int bad_value(const char *name, const char *val, const char *why) {
    fprintf(stderr, "Error: invalid value for %s: \"%s\"%s%s%s\n", name, val,
            why ? " (" : "", why ? why : "", why ? ")" : "");
    return 2;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out) {
    if (!s || *s < '0' || *s > '9') return false;   /* strtoull takes " -5" as 2^64 - 5 */
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

/* A finite float in [lo, hi]. */
static bool parse_f32(const char *s, double lo, double hi, float *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi) return false;
    *out = (float)v;
    return true;
}

bool run_is_local(const char *model) {
    size_t n = strlen(model);
    if (n >= 5 && !strcasecmp(model + n - 5, ".gguf")) return true;
    struct stat st;
    return stat(model, &st) == 0 && S_ISREG(st.st_mode);
}

/* Go durations (time.ParseDuration): [-+]? then one or more of <decimal><unit>, units ns us
 * µs ms s m h; "0" alone is zero. Overflow past int64 nanoseconds is an error. */
bool run_parse_duration(const char *s, int64_t *ns, char *why, size_t why_cap) {
    const char *p = s;
    bool neg = false;
    if (*p == '-' || *p == '+') neg = *p++ == '-';
    if (!strcmp(p, "0")) { *ns = 0; return true; }
    if (!*p) goto invalid;
    double total = 0;
    while (*p) {
        if (!((*p >= '0' && *p <= '9') || *p == '.')) goto invalid;
        char *end;
        double v = strtod(p, &end);
        if (end == p || (end == p + 1 && *p == '.')) goto invalid;
        p = end;
        static const struct { const char *u; double mul; } units[] = {
            { "ns", 1 }, { "us", 1e3 }, { "\xC2\xB5s", 1e3 }, { "\xCE\xBCs", 1e3 }, { "ms", 1e6 },
            { "s", 1e9 }, { "m", 60e9 }, { "h", 3600e9 },
        };
        size_t best = 0, best_len = 0;
        for (size_t k = 0; k < sizeof units / sizeof units[0]; k++) {
            size_t l = strlen(units[k].u);
            if (!strncmp(p, units[k].u, l) && l > best_len) { best = k; best_len = l; }
        }
        if (best_len == 0) {
            if (!*p) snprintf(why, why_cap, "time: missing unit in duration \"%s\"", s);
            else snprintf(why, why_cap, "time: unknown unit \"%.*s\" in duration \"%s\"",
                          (int)strcspn(p, "0123456789."), p, s);
            return false;
        }
        total += v * units[best].mul;
        p += best_len;
    }
    if (total > 9.2e18) { snprintf(why, why_cap, "time: invalid duration \"%s\"", s); return false; }
    *ns = (int64_t)(neg ? -total : total);
    return true;
invalid:
    snprintf(why, why_cap, "time: invalid duration \"%s\"", s);
    return false;
}

/* v/10^digits with trailing zeros (and a bare dot) dropped, as Go's fmtFrac does. */
static void frac_str(char *buf, size_t cap, uint64_t v, int digits) {
    uint64_t p = 1;
    for (int i = 0; i < digits; i++) p *= 10;
    uint64_t ip = v / p, fp = v % p;
    char f[24];
    snprintf(f, sizeof f, "%0*llu", digits, (unsigned long long)fp);
    int n = digits;
    while (n > 0 && f[n - 1] == '0') n--;
    f[n] = '\0';
    snprintf(buf, cap, n ? "%llu.%s" : "%llu", (unsigned long long)ip, f);
}

void run_fmt_duration(char *buf, size_t cap, int64_t ns) {
    if (ns == 0) { snprintf(buf, cap, "0s"); return; }
    const char *sign = ns < 0 ? "-" : "";
    uint64_t u = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    char num[48];
    if (u < 1000) { snprintf(buf, cap, "%s%lluns", sign, (unsigned long long)u); return; }
    if (u < 1000000) { frac_str(num, sizeof num, u, 3); snprintf(buf, cap, "%s%s\xC2\xB5s", sign, num); return; }
    if (u < 1000000000) { frac_str(num, sizeof num, u, 6); snprintf(buf, cap, "%s%sms", sign, num); return; }
    uint64_t h = u / 3600000000000ull, m = u / 60000000000ull % 60;
    frac_str(num, sizeof num, u % 60000000000ull, 9);
    if (h) snprintf(buf, cap, "%s%lluh%llum%ss", sign, (unsigned long long)h, (unsigned long long)m, num);
    else if (m) snprintf(buf, cap, "%s%llum%ss", sign, (unsigned long long)m, num);
    else snprintf(buf, cap, "%s%ss", sign, num);
}

/* words: room for argc prompt words (the options among them are skipped, the rest joined). */
static int run_parse_words(int argc, char **argv, run_opts *o, int *status, const char **words) {
    *o = (run_opts){ .sp = ll_sampler_default_params(), .num_predict = -1, .n_ctx = 4096, .num_keep = 4 };
    size_t n_words = 0;
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (opts_done || a[0] != '-' || a[1] == '\0') {
            if (!o->path) o->path = a;
            else words[n_words++] = a;
            continue;
        }
        if (!strcmp(a, "--")) { opts_done = true; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { run_usage(stdout); *status = 0; return -1; }
        if (!strcmp(a, "--raw")) { o->raw = true; continue; }
        if (!strcmp(a, "--verbose")) { o->verbose = true; continue; }
        if (!strcmp(a, "--hidethinking")) { o->hidethinking = true; continue; }
        if (!strcmp(a, "--nowordwrap")) { o->nowordwrap = true; continue; }
        if (!strcmp(a, "--insecure")) { o->insecure = true; continue; }
        if (!strcmp(a, "--truncate")) { o->truncate = true; continue; }
        if (!strcmp(a, "--think")) { o->think = "true"; continue; }   /* alone: no value taken */
        /* options with a value: "--name VALUE" or "--name=VALUE" */
        char name[32];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        if (nlen >= sizeof name) { *status = usage_err("unknown flag: %s", a); return -1; }
        memcpy(name, a, nlen);
        name[nlen] = '\0';
        static const char *const with_value[] = {
            "--temperature", "--seed", "--num-predict", "--ctx", "--threads", "--system",
            "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--kv-type", "--num-keep",
            "--format", "--keepalive", "--think", "--dimensions",
        };
        bool known = false;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            if (!strcmp(name, with_value[k])) known = true;
        if (!known) { *status = usage_err("unknown flag: %s", a); return -1; }
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else { *status = usage_err("flag needs an argument: %s", name); return -1; }

        int64_t iv;
        bool ok = true;
        const char *why = NULL;
        char why_buf[160];
        if (!strcmp(name, "--temperature")) {
            ok = parse_f32(val, 0, 1e30, &o->sp.temperature);
            o->set_temperature = true;
        } else if (!strcmp(name, "--seed")) {
            ok = parse_u64(val, &o->sp.seed);
            o->set_seed = true;
        } else if (!strcmp(name, "--num-predict")) {
            ok = parse_i64(val, -1, INT64_MAX, &iv);
            if (ok) o->num_predict = iv;
            o->set_num_predict = true;
        } else if (!strcmp(name, "--ctx")) {
            ok = parse_i64(val, 1, INT32_MAX, &iv);
            if (ok) o->n_ctx = (int32_t)iv;
            o->set_ctx = true;
        } else if (!strcmp(name, "--threads")) {
            ok = parse_i64(val, 0, 1024, &iv);      /* R18: negative is an error; ll_ctx_init's max */
            if (ok) o->n_threads = (int32_t)iv;
            o->set_threads = true;
        } else if (!strcmp(name, "--num-keep")) {
            ok = parse_i64(val, 0, INT32_MAX, &iv);  /* clamped below n_ctx once it is known (H36) */
            if (ok) o->num_keep = (int32_t)iv;
            o->set_num_keep = true;
        } else if (!strcmp(name, "--kv-type")) {
            ok = !strcmp(val, "f32") || !strcmp(val, "f16") || !strcmp(val, "q8_0");
            o->kv_type = !strcmp(val, "f16") ? LL_KV_F16 : !strcmp(val, "q8_0") ? LL_KV_Q8_0 : LL_KV_F32;
            o->set_kv_type = true;
        } else if (!strcmp(name, "--system")) o->system = val;
        else if (!strcmp(name, "--top-k")) {
            ok = parse_i64(val, 0, INT32_MAX, &iv);
            if (ok) o->sp.top_k = (int32_t)iv;
            o->set_top_k = true;
        } else if (!strcmp(name, "--top-p")) {
            ok = parse_f32(val, 0, 1, &o->sp.top_p);
            o->set_top_p = true;
        } else if (!strcmp(name, "--min-p")) {
            ok = parse_f32(val, 0, 1, &o->sp.min_p);
            o->set_min_p = true;
        } else if (!strcmp(name, "--repeat-penalty")) {
            /* 0 would divide positive logits by zero; negative flips their order */
            ok = parse_f32(val, 0, 1e30, &o->sp.repeat_penalty) && o->sp.repeat_penalty > 0;
            o->set_repeat_penalty = true;
        } else if (!strcmp(name, "--format")) {
            ok = val[0] != '\0';
            o->format = val;
        } else if (!strcmp(name, "--keepalive")) {
            int64_t ns;
            ok = run_parse_duration(val, &ns, why_buf, sizeof why_buf);
            if (ok) run_fmt_duration(o->keepalive, sizeof o->keepalive, ns);
            else why = why_buf;
        } else if (!strcmp(name, "--think")) {
            static const char *const levels[] = { "true", "false", "high", "medium", "low", "max" };
            ok = false;
            for (size_t k = 0; k < sizeof levels / sizeof levels[0]; k++)
                if (!strcmp(val, levels[k])) { o->think = levels[k]; ok = true; }
            if (!ok) why = "must be true, false, high, medium, low, or max";
        } else if (!strcmp(name, "--dimensions")) {
            ok = parse_i64(val, 1, INT32_MAX, &iv);
            if (ok) o->dimensions = iv;
        }
        if (!ok) { *status = bad_value(name, val, why); return -1; }
    }
    if (!o->path) {
        fputs("Error: requires at least 1 arg(s), only received 0\n", stderr);
        *status = 2;
        return -1;
    }
    if (n_words > 0) {
        size_t len = 1;
        for (size_t k = 0; k < n_words; k++) len += strlen(words[k]) + 1;
        o->prompt = malloc(len);
        if (!o->prompt) { *status = cli_fail("out of memory"); return -1; }
        char *p = o->prompt;
        for (size_t k = 0; k < n_words; k++) {
            if (k) *p++ = ' ';
            size_t wl = strlen(words[k]);
            memcpy(p, words[k], wl);
            p += wl;
        }
        *p = '\0';
    }
    return 0;
}

/* Returns 0 when parsed, else -1 with *status the exit status (2 usage error, 0 after --help). */
static int run_parse(int argc, char **argv, run_opts *o, int *status) {
    const char **words = malloc((size_t)argc * sizeof *words);
    if (!words) { *status = cli_fail("out of memory"); return -1; }
    int r = run_parse_words(argc, argv, o, status, words);
    free(words);
    return r;
}

/* ---- Ctrl-C ------------------------------------------------------------------------------------
 * The handler raises a flag and writes a byte to a pipe (the self-pipe trick). ll_ctx_decode
 * polls the flag between layers (its cancel argument) and the generation loop between tokens.
 * At the prompt we poll() stdin and the pipe together, so a Ctrl-C that lands after the prompt
 * is printed but before the read starts still wakes us: a flag alone, or EINTR, would be lost
 * in that window, and a signal delivered to a worker thread would not interrupt our read. */

static volatile bool g_interrupted;
static int g_sigpipe[2] = { -1, -1 };

static void on_sigint(int sig) {
    int saved = errno;
    g_interrupted = true;
    if (g_sigpipe[1] >= 0) {
        ssize_t w = write(g_sigpipe[1], "", 1);   /* full pipe: a byte is already waiting */
        (void)w;
    }
    errno = saved;
    (void)sig;
}

static void install_sigint(void) {
    if (pipe2(g_sigpipe, O_NONBLOCK | O_CLOEXEC) != 0) g_sigpipe[0] = g_sigpipe[1] = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
}

static void uninstall_sigint(void) {
    signal(SIGINT, SIG_DFL);
    for (int i = 0; i < 2; i++)
        if (g_sigpipe[i] >= 0) close(g_sigpipe[i]);
    g_sigpipe[0] = g_sigpipe[1] = -1;
}

/* Forget Ctrl-Cs that came before now (the one that cancelled an answer, say). */
static void sigint_clear(void) {
    char junk[64];
    if (g_sigpipe[0] >= 0)
        while (read(g_sigpipe[0], junk, sizeof junk) > 0) {}
    g_interrupted = false;
}

/* ---- output: whole UTF-8 characters only (R20) --------------------------------------------------- */

typedef struct {
    unsigned char held[4];  /* the start of a sequence still waiting for its continuation bytes */
    size_t n_held;
    bool   broken;          /* stdout failed (EPIPE): stop generating */
} utf8_out;

static bool write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Length of the well-formed sequence a lead byte starts (Unicode 15, table 3-7), 0 if it
 * cannot start one; lo/hi bound the second byte. */
static int utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi) {
    *lo = 0x80; *hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c == 0xE0) { *lo = 0xA0; return 3; }
    if (c == 0xED) { *hi = 0x9F; return 3; }
    if (c >= 0xE1 && c <= 0xEF) return 3;
    if (c == 0xF0) { *lo = 0x90; return 4; }
    if (c == 0xF4) { *hi = 0x8F; return 4; }
    if (c >= 0xF1 && c <= 0xF3) return 4;
    return 0;
}

static const char REPLACEMENT[] = "\xEF\xBF\xBD";   /* U+FFFD */

/* Append bytes; write every complete character, replace ill-formed ones with U+FFFD, hold an
 * incomplete sequence at the end until the next call. */
static void out_bytes(utf8_out *o, const char *s, size_t n) {
    if (o->broken) return;
    char buf[1024];
    size_t nb = 0;
    unsigned char seq[4];
    size_t ns = o->n_held;
    memcpy(seq, o->held, ns);
    o->n_held = 0;
    size_t i = 0;
#define EMIT(p, len) do { \
        if (nb + (len) > sizeof buf) { if (!write_all(buf, nb)) { o->broken = true; return; } nb = 0; } \
        memcpy(buf + nb, (p), (len)); nb += (len); } while (0)
    for (;;) {
        /* seq holds a partial sequence (ns bytes); complete it from s */
        while (ns > 0) {
            unsigned char lo, hi;
            int len = utf8_lead(seq[0], &lo, &hi);
            if ((int)ns == len) { EMIT(seq, ns); ns = 0; break; }
            if (i >= n) {                         /* still incomplete: hold it */
                memcpy(o->held, seq, ns);
                o->n_held = ns;
                goto done;
            }
            unsigned char c = (unsigned char)s[i];
            bool ok = ns == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
            if (!ok) { EMIT(REPLACEMENT, 3); ns = 0; break; }   /* reprocess c as a lead */
            seq[ns++] = c;
            i++;
        }
        if (i >= n) break;
        unsigned char c = (unsigned char)s[i++];
        unsigned char lo, hi;
        int len = utf8_lead(c, &lo, &hi);
        if (len == 1) EMIT(&c, 1);
        else if (len == 0) EMIT(REPLACEMENT, 3);
        else { seq[0] = c; ns = 1; }
    }
done:
    if (nb > 0 && !write_all(buf, nb)) o->broken = true;
#undef EMIT
}

/* End of an answer: a sequence cut off by a stop is one U+FFFD. */
static void out_finish(utf8_out *o) {
    if (o->n_held > 0 && !o->broken && !write_all(REPLACEMENT, 3)) o->broken = true;
    o->n_held = 0;
}

static void out_str(utf8_out *o, const char *s) {
    if (!o->broken && !write_all(s, strlen(s))) o->broken = true;
}

/* ---- the chat ------------------------------------------------------------------------------------ */

typedef struct {
    const run_opts *o;
    ll_model       *model;
    const ll_vocab *vocab;
    ll_ctx         *ctx;
    ll_sampler     *smp;
    ll_str          tmpl;       /* the model's chat template; n == 0 with --raw or none usable */
    char            bos_text[64], eos_text[64];
    int32_t         n_ctx;

    ll_chat_msg    *msgs;       /* the conversation: role and content strings we own */
    size_t          n_msgs, cap_msgs;

    int32_t        *kv;         /* ids in the KV cache, in order (kv[0..n_kv)) */
    size_t          n_kv, cap_kv;
    int32_t        *ids;        /* scratch for tokenizing a rendered conversation */
    size_t          cap_ids;
    char           *piece;      /* scratch for one token's bytes */
    size_t          cap_piece;

    utf8_out        out;
    uint64_t        t_load_ns;
} chat;

static bool ensure_i32(int32_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 256;
    while (c < need) {
        if (c > SIZE_MAX / 2 / sizeof **p) return false;
        c *= 2;
    }
    int32_t *q = realloc(*p, c * sizeof *q);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

static bool chat_push(chat *ch, const char *role, const char *content) {
    if (ch->n_msgs == ch->cap_msgs) {
        size_t c = ch->cap_msgs ? 2 * ch->cap_msgs : 8;
        ll_chat_msg *q = realloc(ch->msgs, c * sizeof *q);
        if (!q) return false;
        ch->msgs = q;
        ch->cap_msgs = c;
    }
    char *r = strdup(role), *t = strdup(content);
    if (!r || !t) { free(r); free(t); return false; }
    ch->msgs[ch->n_msgs++] = (ll_chat_msg){ r, t };
    return true;
}

static void chat_drop(chat *ch, size_t i) {
    free((char *)ch->msgs[i].role);
    free((char *)ch->msgs[i].content);
    memmove(ch->msgs + i, ch->msgs + i + 1, (ch->n_msgs - i - 1) * sizeof ch->msgs[0]);
    ch->n_msgs--;
}

/* Render the conversation and tokenize it into ch->ids; *n gets the count. */
static ll_status chat_tokenize(chat *ch, size_t *n, ll_error *err) {
    char *text = NULL;
    size_t len = 0;
    bool heap_ll = false;    /* text from ll_chat_render (ll_free) or our own (free) */
    if (ch->tmpl.n > 0) {
        ll_chat_opts co = { .add_generation_prompt = true, .style = LL_CHAT_STYLE_OLLAMA,
                            .bos_text = ch->bos_text[0] ? ch->bos_text : NULL,
                            .eos_text = ch->eos_text[0] ? ch->eos_text : NULL };
        ll_status st = ll_chat_render_ex(ch->tmpl, ch->msgs, ch->n_msgs, &co, &text, &len, err);
        if (st != LL_OK) return st;
        heap_ll = true;
    } else {
        /* raw: the turns one after another, exactly as typed */
        for (size_t i = 0; i < ch->n_msgs; i++) len += strlen(ch->msgs[i].content);
        text = malloc(len + 1);
        if (!text) return ll_fail(err, LL_ERR_NOMEM, "out of memory for a %zu-byte prompt", len);
        size_t off = 0;
        for (size_t i = 0; i < ch->n_msgs; i++) {
            size_t l = strlen(ch->msgs[i].content);
            memcpy(text + off, ch->msgs[i].content, l);
            off += l;
        }
        text[len] = '\0';
    }

    /* A template that writes the BOS text itself, tokenized by a vocab that adds BOS, would
     * give two BOS tokens (llama.cpp warns about exactly this); drop the text. */
    const char *p = text;
    size_t plen = len;
    bool add_special = ll_vocab_add_bos(ch->vocab);
    size_t bl = strlen(ch->bos_text);
    if (add_special && bl > 0 && plen >= bl && !memcmp(p, ch->bos_text, bl)) {
        p += bl;
        plen -= bl;
    }

    ll_status st = LL_OK;
    size_t want = plen + 8;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!ensure_i32(&ch->ids, &ch->cap_ids, want)) {
            st = ll_fail(err, LL_ERR_NOMEM, "out of memory for %zu prompt tokens", want);
            break;
        }
        st = ll_tok_encode(ch->vocab, p, plen, add_special, true, ch->ids, ch->cap_ids, n, err);
        if (st != LL_OK || *n <= ch->cap_ids) break;
        want = *n;
    }
    if (heap_ll) ll_free(text);
    else free(text);
    return st;
}

/* Bytes of a token, grown as needed. */
static size_t token_piece(chat *ch, int32_t id) {
    size_t n = ll_tok_piece(ch->vocab, id, false, ch->piece, ch->cap_piece);
    if (n > ch->cap_piece) {
        char *q = realloc(ch->piece, n);
        if (!q) return 0;
        ch->piece = q;
        ch->cap_piece = n;
        n = ll_tok_piece(ch->vocab, id, false, ch->piece, ch->cap_piece);
    }
    return n;
}

/* Decode ids[0..n) at the end of the KV cache, keeping ch->kv in step. On failure (including
 * a cancel) the cache is cut back to what it held before. */
static ll_status kv_decode(chat *ch, const int32_t *ids, size_t n, ll_error *err) {
    size_t before = ch->n_kv;
    if (!ensure_i32(&ch->kv, &ch->cap_kv, before + n))
        return ll_fail(err, LL_ERR_NOMEM, "out of memory for %zu context tokens", before + n);
    ll_status st = ll_ctx_decode(ch->ctx, ids, n, &g_interrupted, err);
    if (st != LL_OK) {
        int32_t pos = ll_ctx_pos(ch->ctx);
        if (pos > (int32_t)before) ll_ctx_truncate(ch->ctx, (int32_t)before);
        else ch->n_kv = pos < 0 ? 0 : (size_t)pos;
        return st;
    }
    memcpy(ch->kv + before, ids, n * sizeof *ids);
    ch->n_kv = before + n;
    return LL_OK;
}

enum { TURN_OK, TURN_CANCELLED, TURN_ERROR, TURN_TOO_LONG };

/* What one answer cost, for --verbose (Ollama's statistics block). */
typedef struct {
    uint64_t t_start;              /* the turn began (before tokenizing) */
    uint64_t t_prompt0, t_prompt1; /* prompt evaluation began, ended (= generation began) */
    uint64_t t_end;                /* generation ended */
    size_t   n_prompt;             /* prompt tokens decoded, not reused from the cache */
    int64_t  n_gen;                /* tokens generated, the end-of-generation one not counted */
} turn_stats;

/* Render and tokenize the conversation into ch->ids (*n tokens), dropping the oldest
 * non-system messages whole until it fits the context (Ollama's rule, R2). Without
 * may_drop_old (one-shot), or with nothing left to drop, a conversation that does not fit is
 * TURN_TOO_LONG. Errors are printed. */
static int chat_fit(chat *ch, bool may_drop_old, size_t *n) {
    ll_error err = { 0 };
    for (;;) {
        if (chat_tokenize(ch, n, &err) != LL_OK) { cli_fail_err(&err); return TURN_ERROR; }
        if (*n < (size_t)ch->n_ctx) break;
        size_t first = 0;
        while (first < ch->n_msgs && !strcmp(ch->msgs[first].role, "system")) first++;
        if (!may_drop_old || first + 1 >= ch->n_msgs) {
            cli_fail("input length %zu tokens exceeds the context length %d (see --ctx)", *n,
                     ch->n_ctx);
            return TURN_TOO_LONG;
        }
        chat_drop(ch, first);
    }
    if (*n == 0) {
        cli_fail("the prompt is empty after tokenization");
        return TURN_TOO_LONG;
    }
    return TURN_OK;
}

/* Bring the KV cache to ch->ids[0..n): keep the longest prefix it already holds, decode the
 * rest, and set the penalty history to the same tokens. A Ctrl-C during the decode ends the
 * line (R14) and leaves the cache as it was before (kv_decode rolls back). Fills the prompt
 * fields of *ts. Errors are printed. */
static int chat_eval_prompt(chat *ch, size_t n, turn_stats *ts) {
    /* Always recompute at least the last prompt token so that its logits are current. */
    size_t keep = 0;
    while (keep < ch->n_kv && keep < n && ch->kv[keep] == ch->ids[keep]) keep++;
    if (keep == n) keep = n - 1;
    if (keep < ch->n_kv) {
        ll_ctx_truncate(ch->ctx, (int32_t)keep);
        ch->n_kv = keep;
    }
    /* The penalty history is the conversation as the model sees it, each token once: rebuilt
     * every turn rather than patched, because the sampler already recorded the last answer's
     * tokens as it drew them, including its final one (end of generation, or the one cut off
     * by --num-predict) that the rendered conversation then repeats, and a cache cut back
     * after re-tokenization would record its tail again. n < n_ctx: cheap next to a decode. */
    ll_sampler_reset(ch->smp);
    for (size_t i = 0; i < n; i++) ll_sampler_accept(ch->smp, ch->ids[i]);

    ll_error err = { 0 };
    ts->n_prompt = n - keep;
    ts->t_prompt0 = ll_time_ns();
    ll_status st = kv_decode(ch, ch->ids + keep, n - keep, &err);
    ts->t_prompt1 = ll_time_ns();
    if (st == LL_ERR_CANCELLED) {   /* Ctrl-C while reading the prompt: end the line (R14) */
        out_str(&ch->out, "\n");
        return TURN_CANCELLED;
    }
    if (st != LL_OK) { cli_fail_err(&err); return TURN_ERROR; }
    return TURN_OK;
}

/* The answer's bytes, kept to append it to the conversation. */
typedef struct {
    char  *p;       /* NUL-terminated once anything was appended; NULL before */
    size_t n, cap;
} answer_buf;

static bool answer_append(answer_buf *a, const char *s, size_t n) {
    if (a->n + n + 1 > a->cap) {
        size_t c = a->cap ? a->cap : 256;
        while (c < a->n + n + 1) c *= 2;
        char *q = realloc(a->p, c);
        if (!q) return false;
        a->p = q;
        a->cap = c;
    }
    if (n > 0) memcpy(a->p + a->n, s, n);   /* a control token: no piece */
    a->n += n;
    a->p[a->n] = '\0';
    return true;
}

/* The context is full: keep BOS and the first num_keep tokens, drop half of the rest, move the
 * newer tokens down (their keys re-rotated), as Ollama and llama.cpp do (R3). ch->kv follows. */
static ll_status kv_shift(chat *ch, ll_error *err) {
    size_t keep = (size_t)ch->o->num_keep;
    if (ch->n_kv > 0 && ch->kv[0] == ll_vocab_bos(ch->vocab)) keep++;
    if (keep + 2 > ch->n_kv) keep = ch->n_kv >= 2 ? ch->n_kv - 2 : 0;   /* H36: clamped */
    int32_t nd = 0;
    ll_status st = ll_ctx_seq_shift(ch->ctx, 0, (int32_t)keep, &nd, err);
    if (st != LL_OK) return st;
    memmove(ch->kv + keep, ch->kv + keep + (size_t)nd, (ch->n_kv - keep - (size_t)nd) * sizeof *ch->kv);
    ch->n_kv -= (size_t)nd;
    if (ll_log_level() >= 2)
        fprintf(stderr, "context shift: kept %zu, dropped %d, %zu tokens now\n", keep, nd, ch->n_kv);
    return LL_OK;
}

/* Sample, stream and decode tokens after the prompt until end of generation, --num-predict
 * (or, without one, 10 x n_ctx tokens: Ollama's bound for a model that never stops, R4),
 * Ctrl-C, or a reader that went away (R13). A full context shifts (R3) and generation goes on.
 * The streamed bytes also go to *ans; *stop says why generation ended ("eog", "length",
 * "closed"), ts->n_gen counts the tokens. Returns TURN_*; errors are printed. */
static int chat_generate(chat *ch, answer_buf *ans, const char **stop, turn_stats *ts) {
    const run_opts *o = ch->o;
    ll_error err = { 0 };
    *stop = "eog";
    if (o->num_predict == 0) { *stop = "length"; return TURN_OK; }   /* nothing at all */
    for (;;) {
        if (g_interrupted) return TURN_CANCELLED;
        const float *logits = ll_ctx_logits(ch->ctx, -1);
        if (!logits) { cli_fail("no logits after decode"); return TURN_ERROR; }
        int32_t id;
        if (ll_sampler_sample(ch->smp, logits, &id, &err) != LL_OK) {
            /* R17: the sampler's message already starts "numerical error: NaN logits"; the
             * logits are those of the last token in the cache */
            cli_fail("%s at position %zu", err.msg, ch->n_kv - 1);
            return TURN_ERROR;
        }
        if (ll_vocab_is_eog(ch->vocab, id)) return TURN_OK;
        ts->n_gen++;
        size_t pn = token_piece(ch, id);
        out_bytes(&ch->out, ch->piece, pn);
        if (ch->out.broken) { *stop = "closed"; return TURN_OK; }   /* R13: reader went away */
        if (!answer_append(ans, ch->piece, pn)) { cli_fail("out of memory"); return TURN_ERROR; }
        if (o->num_predict >= 0 && ts->n_gen >= o->num_predict) { *stop = "length"; return TURN_OK; }
        if (o->num_predict < 0 && ts->n_gen >= 10 * (int64_t)ch->n_ctx) { *stop = "length"; return TURN_OK; }
        if (ch->n_kv >= (size_t)ch->n_ctx && kv_shift(ch, &err) != LL_OK) { cli_fail_err(&err); return TURN_ERROR; }
        /* id is in the penalty history already: ll_sampler_sample recorded it */
        ll_status st = kv_decode(ch, &id, 1, &err);
        if (st == LL_ERR_CANCELLED) return TURN_CANCELLED;
        if (st != LL_OK) { cli_fail_err(&err); return TURN_ERROR; }
    }
}

/* Close the streamed answer: flush a cut-off character, end the line (a blank line after a
 * whole answer, as Ollama prints). */
static void chat_end_answer(chat *ch, int result, const char *stop) {
    (void)stop;
    out_finish(&ch->out);
    if (result != TURN_ERROR && !ch->out.broken) out_str(&ch->out, result == TURN_CANCELLED ? "\n" : "\n\n");
}

/* Ollama's --verbose block; the load time counts towards the first answer only. */
static void print_turn_stats(const turn_stats *ts, uint64_t t_load_ns) {
    char d[64];
    double tp = (ts->t_prompt1 - ts->t_prompt0) / 1e9, te = (ts->t_end - ts->t_prompt1) / 1e9;
    run_fmt_duration(d, sizeof d, (int64_t)(ts->t_end - ts->t_start + t_load_ns));
    fprintf(stderr, "total duration:       %s\n", d);
    if (t_load_ns) {
        run_fmt_duration(d, sizeof d, (int64_t)t_load_ns);
        fprintf(stderr, "load duration:        %s\n", d);
    }
    fprintf(stderr, "prompt eval count:    %zu token(s)\n", ts->n_prompt);
    run_fmt_duration(d, sizeof d, (int64_t)(ts->t_prompt1 - ts->t_prompt0));
    fprintf(stderr, "prompt eval duration: %s\n", d);
    if (tp > 0) fprintf(stderr, "prompt eval rate:     %.2f tokens/s\n", ts->n_prompt / tp);
    fprintf(stderr, "eval count:           %lld token(s)\n", (long long)ts->n_gen);
    run_fmt_duration(d, sizeof d, (int64_t)(ts->t_end - ts->t_prompt1));
    fprintf(stderr, "eval duration:        %s\n", d);
    if (te > 0 && ts->n_gen > 0) fprintf(stderr, "eval rate:            %.2f tokens/s\n", ts->n_gen / te);
}

/* One answer to the conversation as it stands. The answer is appended to the conversation
 * unless it was cancelled. Returns TURN_*; errors are printed. */
static int chat_turn(chat *ch, bool may_drop_old) {
    turn_stats ts = { .t_start = ll_time_ns() };
    size_t n = 0;
    int r = chat_fit(ch, may_drop_old, &n);
    if (r == TURN_OK) r = chat_eval_prompt(ch, n, &ts);
    if (r != TURN_OK) return r;

    answer_buf ans = { 0 };
    const char *stop;
    int result = chat_generate(ch, &ans, &stop, &ts);
    ts.t_end = ll_time_ns();
    chat_end_answer(ch, result, stop);
    if (result == TURN_OK && !chat_push(ch, "assistant", ans.p ? ans.p : "")) {
        cli_fail("out of memory");
        result = TURN_ERROR;
    }
    free(ans.p);

    if (ch->o->verbose && result != TURN_ERROR) print_turn_stats(&ts, ch->t_load_ns);
    ch->t_load_ns = 0;   /* reported with the first answer only */
    return result;
}

/* Lines from stdin, read with read(2) so that poll() sees exactly what stdio would hide in
 * its buffer. */
typedef struct {
    char  *buf;
    size_t n, cap;    /* bytes held, capacity */
    bool   eof;
} line_reader;

enum { LINE_OK, LINE_EOF, LINE_INTERRUPTED, LINE_NOMEM };

/* One line without its line ending into *out (caller frees). */
static int read_line(line_reader *r, char **out) {
    *out = NULL;
    for (;;) {
        char *nl = r->n ? memchr(r->buf, '\n', r->n) : NULL;
        if (nl || (r->eof && r->n > 0)) {
            size_t len = nl ? (size_t)(nl - r->buf) : r->n;
            char *line = malloc(len + 1);
            if (!line) return LINE_NOMEM;
            memcpy(line, r->buf, len);
            line[len] = '\0';
            size_t used = nl ? len + 1 : len;
            memmove(r->buf, r->buf + used, r->n - used);
            r->n -= used;
            while (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
            *out = line;
            return LINE_OK;
        }
        if (r->eof) return LINE_EOF;

        struct pollfd pf[2] = { { .fd = STDIN_FILENO, .events = POLLIN },
                                { .fd = g_sigpipe[0], .events = POLLIN } };
        if (g_interrupted) return LINE_INTERRUPTED;
        int pr = poll(pf, g_sigpipe[0] >= 0 ? 2 : 1, -1);
        if (g_interrupted) return LINE_INTERRUPTED;
        if (pr < 0) {
            if (errno == EINTR) continue;
            r->eof = true;
            continue;
        }
        if (r->n == r->cap) {
            size_t c = r->cap ? 2 * r->cap : 4096;
            char *q = realloc(r->buf, c);
            if (!q) return LINE_NOMEM;
            r->buf = q;
            r->cap = c;
        }
        ssize_t got = read(STDIN_FILENO, r->buf + r->n, r->cap - r->n);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) r->eof = true;
        else r->n += (size_t)got;
    }
}

static int chat_interactive(chat *ch) {
    bool tty = isatty(STDIN_FILENO);
    line_reader lr = { 0 };
    int rc = 0;
    for (;;) {
        sigint_clear();
        if (tty) fputs(">>> ", stderr);
        char *line;
        int lst = read_line(&lr, &line);
        if (lst == LINE_NOMEM) { rc = cli_fail("out of memory"); break; }
        if (lst != LINE_OK) {                   /* EOF, or Ctrl-C at the prompt (R14) */
            if (tty) fputc('\n', stderr);
            break;
        }
        const char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) { free(line); continue; }
        if (!strcmp(s, "/bye")) { free(line); break; }
        bool ok = chat_push(ch, "user", line);
        free(line);
        if (!ok) { rc = cli_fail("out of memory"); break; }
        int r = chat_turn(ch, true);
        if (ch->out.broken) break;
        if (r == TURN_ERROR) { rc = 1; break; }
        if (r == TURN_TOO_LONG) chat_drop(ch, ch->n_msgs - 1);   /* forget the turn, go on */
        /* TURN_CANCELLED: the user message stays, the partial answer is not kept (Ollama) */
    }
    free(lr.buf);
    return rc;
}

int cmd_run(int argc, char **argv) {
    run_opts o;
    int status = 0;
    if (run_parse(argc, argv, &o, &status) != 0) return status;
    if (!run_is_local(o.path)) {
        if (o.set_kv_type) {
            free(o.prompt);
            return usage_err("%s", "--kv-type applies to a .gguf file only (the server picks its KV cache type)");
        }
        int rc = run_client(&o);
        free(o.prompt);
        return rc;
    }
    /* The server's flags have no meaning for a file run here: refuse rather than ignore. */
    const char *server_only = o.format ? "--format" : o.keepalive[0] ? "--keepalive"
                            : (o.think && strcmp(o.think, "false")) ? "--think"
                            : o.dimensions ? "--dimensions" : NULL;
    if (server_only) {
        free(o.prompt);
        fprintf(stderr, "Error: %s needs a model of the server, not a .gguf file\n", server_only);
        return 2;
    }
    /* R18: more workers than cores only fight over them */
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_cpu > 0 && o.n_threads > n_cpu) {
        fprintf(stderr, "Warning: --threads %d is more than the %ld CPUs; using %ld\n", (int)o.n_threads,
                n_cpu, n_cpu);
        o.n_threads = (int32_t)n_cpu;
    }

    struct stat stbuf;
    if (stat(o.path, &stbuf) != 0) {
        free(o.prompt);
        return cli_fail("model '%s' not found (give a path to a .gguf file)", o.path);
    }

    chat ch = { .o = &o };
    ll_error err = { 0 };
    int rc = 1;
    uint64_t t0 = ll_time_ns();
    if (ll_model_load(&ch.model, o.path, NULL, &err) != LL_OK) { rc = cli_fail_err(&err); goto out; }
    ch.vocab = ll_model_vocab(ch.model);

    ll_ctx_params cp = ll_ctx_default_params();
    cp.fast_products = true;                 /* within f32 rounding; logits stays exact */
    int32_t n_train = ll_model_n_ctx_train(ch.model);
    cp.n_ctx = o.n_ctx;
    if (n_train > 0 && cp.n_ctx > n_train) cp.n_ctx = n_train;
    cp.n_threads = o.n_threads;
    cp.type_k = cp.type_v = o.kv_type;

    /* Workers inherit the signal mask: SIGINT goes to the main thread, never to a worker. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    ll_status st = ll_ctx_init(&ch.ctx, ch.model, &cp, &err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (st != LL_OK) { rc = cli_fail_err(&err); goto out; }
    ch.n_ctx = ll_ctx_n_ctx(ch.ctx);

    if (ll_sampler_init(&ch.smp, &o.sp, ll_model_n_vocab(ch.model), &err) != LL_OK) {
        rc = cli_fail_err(&err);
        goto out;
    }
    ch.t_load_ns = ll_time_ns() - t0;

    int32_t bos = ll_vocab_bos(ch.vocab), eos = ll_vocab_eos(ch.vocab);
    if (bos >= 0) {
        size_t l = ll_tok_piece(ch.vocab, bos, true, ch.bos_text, sizeof ch.bos_text - 1);
        ch.bos_text[l < sizeof ch.bos_text ? l : 0] = '\0';
    }
    if (eos >= 0) {
        size_t l = ll_tok_piece(ch.vocab, eos, true, ch.eos_text, sizeof ch.eos_text - 1);
        ch.eos_text[l < sizeof ch.eos_text ? l : 0] = '\0';
    }
    if (!o.raw) {
        ll_str t = ll_model_meta_str(ch.model, "tokenizer.chat_template");
        if (t.n > 0 && ll_chat_detect(t) != LL_CHAT_NONE) ch.tmpl = t;
        else if (o.verbose)
            fprintf(stderr, "%s: using the prompt as it is\n",
                    t.n ? "chat template not recognised" : "no chat template");
    }

    if (o.system && !chat_push(&ch, "system", o.system)) { rc = cli_fail("out of memory"); goto out; }
    install_sigint();
    if (o.prompt) {
        if (!chat_push(&ch, "user", o.prompt)) { rc = cli_fail("out of memory"); goto out; }
        int r = chat_turn(&ch, false);
        /* Ctrl-C in one-shot: the shell's convention for death by SIGINT, 128 + 2 */
        rc = r == TURN_OK ? 0 : r == TURN_CANCELLED ? 130 : 1;
    } else {
        rc = chat_interactive(&ch);
    }

out:
    uninstall_sigint();
    for (size_t i = 0; i < ch.n_msgs; i++) {
        free((char *)ch.msgs[i].role);
        free((char *)ch.msgs[i].content);
    }
    free(ch.msgs);
    free(ch.kv);
    free(ch.ids);
    free(ch.piece);
    ll_sampler_free(ch.smp);
    ll_ctx_free(ch.ctx);
    ll_model_free(ch.model);
    free(o.prompt);
    return rc;
}
