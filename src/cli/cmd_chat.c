/* cmd_chat: `locallama run MODEL [PROMPT...]` as a client of `locallama serve`, the way
 * Ollama's CLI runs a model (ollama-cli.md §5, §6; run.h says how cmd_run.c gets here).
 *
 *   start-up   HEAD / (a clear error when no server runs; we start none), POST /api/show;
 *              a model the server lacks (404) is pulled first, as `pull` shows it (§5.2);
 *   one-shot   PROMPT words and/or piped stdin: one POST /api/generate, streamed to stdout
 *              (§5.3), two newlines, --verbose statistics on stderr; Ctrl-C exits 130;
 *   REPL       stdin and stdout on a terminal and no PROMPT: preload (empty generate), then
 *              a libedit prompt (repl.c) where each message is one POST /api/chat carrying the
 *              whole conversation (§6.3) and slash commands change the session (§6.5).
 *
 * Differences from Ollama, on purpose: no spinner, words wrapped on terminals only (not
 * into pipes), no bracketed paste and no Ctrl+G editor, history in ~/.locallama/history.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/repl.h"
#include "cli/run.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// small helpers

/* A float as JSON with the digits the user typed rather than float32's tail (0.9, not
 * 0.899999976). */
static json_t *f32_json(float v) {
    char b[32];
    snprintf(b, sizeof b, "%.7g", (double)v);
    return json_real(strtod(b, NULL));
}

/* The request "options" the command line sets; flags not given are left to the model. */
static json_t *options_from_flags(const run_opts *o) {
    json_t *j = json_object();
    if (o->set_temperature) json_object_set_new(j, "temperature", f32_json(o->sp.temperature));
    if (o->set_seed) json_object_set_new(j, "seed", json_integer((json_int_t)(o->sp.seed > INT64_MAX ? INT64_MAX : o->sp.seed)));
    if (o->set_num_predict) json_object_set_new(j, "num_predict", json_integer(o->num_predict));
    if (o->set_ctx) json_object_set_new(j, "num_ctx", json_integer(o->n_ctx));
    if (o->set_num_keep) json_object_set_new(j, "num_keep", json_integer(o->num_keep));
    if (o->set_threads) json_object_set_new(j, "num_thread", json_integer(o->n_threads));
    if (o->set_top_k) json_object_set_new(j, "top_k", json_integer(o->sp.top_k));
    if (o->set_top_p) json_object_set_new(j, "top_p", f32_json(o->sp.top_p));
    if (o->set_min_p) json_object_set_new(j, "min_p", f32_json(o->sp.min_p));
    if (o->set_repeat_penalty) json_object_set_new(j, "repeat_penalty", f32_json(o->sp.repeat_penalty));
    return j;
}

static json_t *think_json(const char *think) {
    if (!think) return NULL;
    if (!strcmp(think, "true")) return json_true();
    if (!strcmp(think, "false")) return json_false();
    return json_string(think);
}

static bool has_capability(json_t *show, const char *cap) {
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(show, "capabilities"), i, v)
        if (json_is_string(v) && !strcmp(json_string_value(v), cap)) return true;
    return false;
}

static void write_out(const char *s, size_t n) {
    if (n == 0) return;
    fwrite(s, 1, n, stdout);
    fflush(stdout);
}

/* All of stdin (not a terminal), or NULL after printing an error. */
static char *read_all_stdin(size_t *len) {
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap);
    if (!buf) { cli_fail("out of memory"); return NULL; }
    for (;;) {
        if (n + 1 >= cap) {
            char *q = cap < SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!q) { free(buf); cli_fail("out of memory reading stdin"); return NULL; }
            buf = q;
            cap *= 2;
        }
        ssize_t r = read(STDIN_FILENO, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { free(buf); cli_fail("reading stdin: %s", strerror(errno)); return NULL; }
        if (r == 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* POST /api/show; *status gets the HTTP status. NULL (printed) on a transport error. */
static json_t *show_model(const char *model, long *status) {
    json_t *req = json_pack("{s:s}", "model", model);
    cli_resp r;
    int rc = cli_call("POST", "/api/show", req, &r);
    json_decref(req);
    if (rc) return NULL;
    *status = r.status;
    json_t *j = cli_resp_json(&r);
    if (!j) j = json_object();
    if (r.status >= 400 && !json_object_get(j, "error") && r.body)
        json_object_set_new(j, "error", json_stringn(r.body, r.n_body));
    cli_resp_free(&r);
    return j;
}

static const char *err_of(json_t *j) {
    const char *e = json_string_value(json_object_get(j, "error"));
    return e ? e : "unknown error";
}

// ---------------------------------------------------------------------------------------------
// one streamed answer

#define GREY "\033[38;5;245m"
#define BOLD "\033[1m"
#define RESET "\033[0m"

/* Word wrap on a terminal (§5.3): the limit is the terminal width - 5. When a character would
 * pass it, the part of the word already on the line is erased (ESC[nD ESC[K) and written again
 * on a new line; a word of width - 10 columns or more stays where it is. Columns are counted
 * one per character (wide CJK characters are not measured). Not done into pipes and files,
 * a deliberate difference from Ollama that keeps scripts' output intact. */
typedef struct {
    bool   on;
    int    width;            /* wrap when the column would pass this */
    int    col;              /* the cursor's column on the current line */
    char   word[512];        /* the bytes of the word on the line so far (since the last blank) */
    size_t n_word;
    int    word_cols;        /* its columns; INT_MAX/2 once it no longer fits in word[] */
} wrapper;

static void wrap_init(wrapper *w, bool on) {
    memset(w, 0, sizeof *w);
    w->on = on && isatty(STDOUT_FILENO);
    struct winsize ws;
    int cols = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
    w->width = cols - 5 > 10 ? cols - 5 : 10;
}

static void wrap_write(wrapper *w, const char *s, size_t n) {
    if (!w->on) { write_out(s, n); return; }
    char out[4096];
    size_t k = 0;
#define PUT(p, len) do { size_t l_ = (len); if (k + l_ > sizeof out) { write_out(out, k); k = 0; } \
                         memcpy(out + k, (p), l_); k += l_; } while (0)
    for (size_t i = 0; i < n; ) {
        size_t len = 1;   /* one UTF-8 character: lead byte and its continuation bytes */
        while (i + len < n && ((unsigned char)s[i + len] & 0xC0) == 0x80) len++;
        const char *c = s + i;
        i += len;
        if (*c == '\n') {
            PUT(c, 1);
            w->col = 0; w->n_word = 0; w->word_cols = 0;
            continue;
        }
        if (*c == ' ') {
            if (w->col + 1 > w->width) { PUT("\n", 1); w->col = 0; }
            else { PUT(" ", 1); w->col++; }
            w->n_word = 0; w->word_cols = 0;
            continue;
        }
        if (w->col + 1 > w->width) {
            if (w->word_cols > 0 && w->word_cols < w->width - 10) {
                char esc[32];
                int e = snprintf(esc, sizeof esc, "\033[%dD\033[K\n", w->word_cols);
                PUT(esc, (size_t)e);
                PUT(w->word, w->n_word);
                w->col = w->word_cols;
            } else {
                PUT("\n", 1);
                w->col = 0;
                w->n_word = 0; w->word_cols = 0;
            }
        }
        PUT(c, len);
        w->col++;
        if (w->n_word + len <= sizeof w->word) {
            memcpy(w->word + w->n_word, c, len);
            w->n_word += len;
            w->word_cols++;
        } else w->word_cols = INT_MAX / 2;
    }
#undef PUT
    if (k) write_out(out, k);
}

typedef struct {
    wrapper wrap;            /* how content and thinking reach the terminal */
    bool    chat;            /* chunks of /api/chat (message.content) or /api/generate (response) */
    bool    hide_thinking;   /* --hidethinking */
    bool    tty;             /* stdout is a terminal: the thinking markers are coloured */
    bool    in_thinking;     /* "Thinking..." printed, "...done thinking." not yet */
    bool    think_nl;        /* the thinking text so far ends with a newline */
    json_t *final;           /* the done chunk (new reference) */
    char   *content;         /* the answer's text, for the conversation (chat) */
    size_t  n_content, cap_content;
    char   *thinking;        /* its thinking text */
    size_t  n_thinking, cap_thinking;
} answer;

static bool buf_append(char **p, size_t *n, size_t *cap, const char *s, size_t len) {
    if (*n + len + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *n + len + 1) c *= 2;
        char *q = realloc(*p, c);
        if (!q) return false;
        *p = q;
        *cap = c;
    }
    memcpy(*p + *n, s, len);
    *n += len;
    (*p)[*n] = '\0';
    return true;
}

static void thinking_end(answer *a) {
    if (!a->in_thinking) return;
    if (!a->think_nl) write_out("\n", 1);
    a->wrap.col = 0;
    a->wrap.n_word = 0;
    a->wrap.word_cols = 0;
    const char *done = a->tty ? GREY "...done thinking." RESET "\n\n" : "...done thinking.\n\n";
    write_out(done, strlen(done));
    a->in_thinking = false;
}

static int on_chunk(json_t *c, void *ud) {
    answer *a = ud;
    json_t *m = a->chat ? json_object_get(c, "message") : c;
    json_t *cv = json_object_get(m, a->chat ? "content" : "response");
    const char *content = json_string_value(cv);
    size_t content_n = content ? json_string_length(cv) : 0;   /* may hold NUL bytes */
    const char *thinking = json_string_value(json_object_get(m, "thinking"));
    if (thinking && thinking[0]) {
        size_t n = strlen(thinking);
        if (!buf_append(&a->thinking, &a->n_thinking, &a->cap_thinking, thinking, n))
            return cli_fail("out of memory");
        if (!a->hide_thinking) {
            if (!a->in_thinking && a->n_content == 0) {
                const char *t = a->tty ? GREY BOLD "Thinking..." RESET GREY "\n" : "Thinking...\n";
                write_out(t, strlen(t));
                a->in_thinking = true;
            }
            if (a->in_thinking) {
                wrap_write(&a->wrap, thinking, n);
                a->think_nl = thinking[n - 1] == '\n';
            }
        }
    }
    if (content && content_n) {
        size_t n = content_n;
        thinking_end(a);
        wrap_write(&a->wrap, content, n);
        if (!buf_append(&a->content, &a->n_content, &a->cap_content, content, n))
            return cli_fail("out of memory");
    }
    json_t *calls;
    size_t i;
    json_t *tc;
    if ((calls = json_object_get(m, "tool_calls")))   /* we send no tools; Ollama says this */
        json_array_foreach(calls, i, tc) {
            json_t *fn = json_object_get(tc, "function");
            char *args = json_dumps(json_object_get(fn, "arguments"), JSON_COMPACT | JSON_ENCODE_ANY);
            printf("  Model called a non-existent function '%s()' with arguments: %s\n",
                   json_string_value(json_object_get(fn, "name")) ? json_string_value(json_object_get(fn, "name")) : "",
                   args ? args : "{}");
            free(args);
        }
    if (json_is_true(json_object_get(c, "done"))) {
        thinking_end(a);
        json_decref(a->final);
        a->final = json_incref(c);
    }
    return 0;
}

static void answer_free(answer *a) {
    json_decref(a->final);
    free(a->content);
    free(a->thinking);
}

/* Ollama's --verbose block (§5.3): each line only when its value is not zero. */
static void print_stats(json_t *f) {
    if (!f) return;
    int64_t total = json_integer_value(json_object_get(f, "total_duration"));
    int64_t load = json_integer_value(json_object_get(f, "load_duration"));
    int64_t pc = json_integer_value(json_object_get(f, "prompt_eval_count"));
    int64_t pd = json_integer_value(json_object_get(f, "prompt_eval_duration"));
    int64_t ec = json_integer_value(json_object_get(f, "eval_count"));
    int64_t ed = json_integer_value(json_object_get(f, "eval_duration"));
    char d[64];
    if (total > 0) { run_fmt_duration(d, sizeof d, total); fprintf(stderr, "total duration:       %s\n", d); }
    if (load > 0) { run_fmt_duration(d, sizeof d, load); fprintf(stderr, "load duration:        %s\n", d); }
    if (pc > 0) fprintf(stderr, "prompt eval count:    %lld token(s)\n", (long long)pc);
    if (pd > 0) {
        run_fmt_duration(d, sizeof d, pd);
        fprintf(stderr, "prompt eval duration: %s\n", d);
        fprintf(stderr, "prompt eval rate:     %.2f tokens/s\n", (double)pc / (pd / 1e9));
    }
    if (ec > 0) fprintf(stderr, "eval count:           %lld token(s)\n", (long long)ec);
    if (ed > 0) {
        run_fmt_duration(d, sizeof d, ed);
        fprintf(stderr, "eval duration:        %s\n", d);
        fprintf(stderr, "eval rate:            %.2f tokens/s\n", (double)ec / (ed / 1e9));
    }
}

static int no_chunk(json_t *c, void *ud) {
    (void)c;
    (void)ud;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// one-shot (§5.3) and embeddings (§5.5)

static int one_shot(run_opts *o, const char *prompt, json_t *format, const char *think) {
    json_t *req = json_pack("{s:s,s:s,s:o}", "model", o->path, "prompt", prompt,
                            "options", options_from_flags(o));
    if (o->system) json_object_set_new(req, "system", json_string(o->system));
    if (o->raw) json_object_set_new(req, "raw", json_true());
    if (format) json_object_set(req, "format", format);
    if (o->keepalive[0]) json_object_set_new(req, "keep_alive", json_string(o->keepalive));
    if (think) json_object_set_new(req, "think", think_json(think));

    answer a = { .chat = false, .hide_thinking = o->hidethinking, .tty = isatty(STDOUT_FILENO) };
    wrap_init(&a.wrap, !o->nowordwrap);
    repl_sigint_install();
    int rc = cli_stream("/api/generate", req, on_chunk, &a, &repl_sigint);
    json_decref(req);
    if (rc == CLI_STREAM_CANCELLED) {
        thinking_end(&a);
        write_out("\n", 1);
        answer_free(&a);
        return 130;   /* the shell's code for an end by SIGINT */
    }
    if (rc == 0) {
        thinking_end(&a);
        if (prompt[0]) write_out("\n\n", 2);
        if (o->verbose) print_stats(a.final);
    }
    answer_free(&a);
    return rc ? 1 : 0;
}

static int embed(run_opts *o, const char *prompt) {
    if (!prompt[0])
        return cli_fail("embedding models require input text. Usage: locallama run %s \"your text here\"", o->path);
    json_t *req = json_pack("{s:s,s:s}", "model", o->path, "input", prompt);
    if (o->keepalive[0]) json_object_set_new(req, "keep_alive", json_string(o->keepalive));
    if (o->truncate) json_object_set_new(req, "truncate", json_true());
    if (o->dimensions) json_object_set_new(req, "dimensions", json_integer(o->dimensions));
    cli_resp r;
    int rc = cli_call("POST", "/api/embed", req, &r);
    json_decref(req);
    if (rc) return 1;
    if (r.status >= 400) { rc = cli_resp_fail(&r); cli_resp_free(&r); return rc; }
    json_t *j = cli_resp_json(&r);
    cli_resp_free(&r);
    json_t *first = json_array_get(json_object_get(j, "embeddings"), 0);
    if (!first) { json_decref(j); return cli_fail("the server returned no embedding"); }
    char *s = json_dumps(first, JSON_COMPACT | JSON_REAL_PRECISION(9));
    printf("%s\n", s ? s : "[]");
    free(s);
    json_decref(j);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// the REPL (§6)

typedef struct {
    run_opts   *o;
    char       *model;        /* the model chatted with (owned; /load changes it) */
    json_t     *show;         /* its /api/show answer */
    json_t     *messages;     /* the conversation, sent whole with each request (§6.3) */
    json_t     *options;      /* command-line options, then /set parameter values */
    char       *system;       /* the session's system message; NULL = the model's */
    json_t     *format;       /* --format or /set format json; NULL = none */
    const char *think;        /* NULL unset, "true", "false" or a level */
    bool        verbose;      /* /set verbose */
    bool        wordwrap;     /* /set wordwrap (on unless --nowordwrap) */
    repl       *ed;
} session;

/* ~/.locallama/history, the directory made when missing; NULL without HOME. */
static char *history_path(void) {
    const char *home = getenv("HOME");
    if (!home || !home[0]) return NULL;
    size_t n = strlen(home) + 32;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s/.locallama", home);
    mkdir(p, 0755);
    snprintf(p, n, "%s/.locallama/history", home);
    return p;
}

static void help_main(void) {
    fputs("Available Commands:\n"
          "  /set            Set session variables\n"
          "  /show           Show model information\n"
          "  /load <model>   Load a session or model\n"
          "  /save <model>   Save your current session\n"
          "  /clear          Clear session context\n"
          "  /bye            Exit\n"
          "  /?, /help       Help for a command\n"
          "  /? shortcuts    Help for keyboard shortcuts\n"
          "\n"
          "Use \"\"\" to begin a multi-line message.\n"
          "\n", stderr);
}

static void help_set(void) {
    fputs("Available Commands:\n"
          "  /set parameter ...     Set a parameter\n"
          "  /set system <string>   Set system message\n"
          "  /set history           Enable history\n"
          "  /set nohistory         Disable history\n"
          "  /set wordwrap          Enable wordwrap\n"
          "  /set nowordwrap        Disable wordwrap\n"
          "  /set format json       Enable JSON mode\n"
          "  /set noformat          Disable formatting\n"
          "  /set verbose           Show LLM stats\n"
          "  /set quiet             Disable LLM stats\n"
          "  /set think             Enable thinking\n"
          "  /set nothink           Disable thinking\n"
          "\n", stderr);
}

static void help_show(void) {
    fputs("Available Commands:\n"
          "  /show info         Show details for this model\n"
          "  /show license      Show model license\n"
          "  /show modelfile    Show Modelfile for this model\n"
          "  /show parameters   Show parameters for this model\n"
          "  /show system       Show system message\n"
          "  /show template     Show prompt template\n"
          "\n", stderr);
}

static void help_shortcuts(void) {
    fputs("Available keyboard shortcuts:\n"
          "  Ctrl + a            Move to the beginning of the line (Home)\n"
          "  Ctrl + e            Move to the end of the line (End)\n"
          "   Alt + b            Move back (left) one word\n"
          "   Alt + f            Move forward (right) one word\n"
          "  Ctrl + k            Delete the sentence after the cursor\n"
          "  Ctrl + u            Delete the sentence before the cursor\n"
          "  Ctrl + w            Delete the word before the cursor\n"
          "\n"
          "  Ctrl + l            Clear the screen\n"
          "  Ctrl + c            Stop the model from responding\n"
          "  Ctrl + d            Exit locallama (/bye)\n"
          "\n", stderr);
}

static void help_parameters(void) {
    fputs("Available Parameters:\n"
          "  /set parameter seed <int>             Random number seed\n"
          "  /set parameter num_predict <int>      Max number of tokens to predict\n"
          "  /set parameter top_k <int>            Pick from top k num of tokens\n"
          "  /set parameter top_p <float>          Pick token based on sum of probabilities\n"
          "  /set parameter min_p <float>          Pick token based on top token probability * min_p\n"
          "  /set parameter num_ctx <int>          Set the context size\n"
          "  /set parameter temperature <float>    Set creativity level\n"
          "  /set parameter repeat_penalty <float> How strongly to penalize repetitions\n"
          "  /set parameter repeat_last_n <int>    Set how far back to look for repetitions\n"
          "  /set parameter num_gpu <int>          The number of layers to send to the GPU\n"
          "  /set parameter stop <string> <string> ...   Set the stop parameters\n"
          "\n", stderr);
}

/* The words of a line split on blanks (Go's strings.Fields), pointing into buf, a copy the
 * caller frees. Up to 64 words: no command needs more (the rest are dropped). */
enum { MAX_WORDS = 64 };
typedef struct { char *buf; char *w[MAX_WORDS]; int n; } fields;

static bool fields_split(fields *f, const char *line) {
    f->n = 0;
    f->buf = strdup(line);
    if (!f->buf) return false;
    char *save = NULL;
    for (char *t = strtok_r(f->buf, " \t\r\n", &save); t && f->n < MAX_WORDS; t = strtok_r(NULL, " \t\r\n", &save))
        f->w[f->n++] = t;
    return true;
}

/* Modelfile PARAMETER types (§16.3). */
typedef enum { P_INT, P_FLOAT, P_BOOL, P_STRINGS } ptype;
static const struct { const char *name; ptype type; } param_types[] = {
    { "num_ctx", P_INT }, { "num_predict", P_INT }, { "temperature", P_FLOAT }, { "top_k", P_INT },
    { "top_p", P_FLOAT }, { "min_p", P_FLOAT }, { "typical_p", P_FLOAT }, { "repeat_last_n", P_INT },
    { "repeat_penalty", P_FLOAT }, { "presence_penalty", P_FLOAT }, { "frequency_penalty", P_FLOAT },
    { "seed", P_INT }, { "stop", P_STRINGS }, { "num_keep", P_INT }, { "num_batch", P_INT },
    { "num_gpu", P_INT }, { "main_gpu", P_INT }, { "use_mmap", P_BOOL }, { "num_thread", P_INT },
    { "draft_num_predict", P_INT },
};
static const char *const deprecated_params[] = {
    "penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
    "mirostat", "mirostat_tau", "mirostat_eta",
};

/* /set parameter NAME V [V...]: words w[2..n). Prints the outcome (§6.5). */
static void set_parameter(session *s, fields *f) {
    const char *name = f->w[2];
    for (size_t k = 0; k < sizeof deprecated_params / sizeof deprecated_params[0]; k++)
        if (!strcmp(name, deprecated_params[k])) {
            printf("warning: parameter %s is deprecated\n", name);
            return;
        }
    int t = -1;
    for (size_t k = 0; k < sizeof param_types / sizeof param_types[0]; k++)
        if (!strcmp(name, param_types[k].name)) t = (int)param_types[k].type;
    if (t < 0) { printf("Couldn't set parameter: \"unknown parameter '%s'\"\n", name); return; }
    const char *v = f->w[3];
    json_t *val = NULL;
    char *end;
    errno = 0;
    if (t == P_INT) {
        long long x = strtoll(v, &end, 10);
        if (errno || *end || end == v) { printf("Couldn't set parameter: \"invalid int value [%s]\"\n", v); return; }
        val = json_integer(x);
    } else if (t == P_FLOAT) {
        float x = strtof(v, &end);
        if (errno || *end || end == v || !isfinite(x)) {
            printf("Couldn't set parameter: \"invalid float value [%s]\"\n", v);
            return;
        }
        val = f32_json(x);
    } else if (t == P_BOOL) {
        static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
        static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };
        for (int k = 0; k < 6; k++) {
            if (!strcmp(v, yes[k])) val = json_true();
            if (!strcmp(v, no[k])) val = json_false();
        }
        if (!val) { printf("Couldn't set parameter: \"invalid bool value [%s]\"\n", v); return; }
    } else {
        val = json_array();
        for (int k = 3; k < f->n; k++) json_array_append_new(val, json_string(f->w[k]));
    }
    json_object_set_new(s->options, name, val);
    printf("Set parameter '%s' to '", name);
    for (int k = 3; k < f->n; k++) printf("%s%s", k > 3 ? ", " : "", f->w[k]);
    printf("'\n");
}

/* Go's %v of an option value, for /show parameters. */
static void print_value(json_t *v) {
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        putchar('[');
        json_array_foreach(v, i, x) {
            if (i) putchar(' ');
            print_value(x);
        }
        putchar(']');
    } else if (json_is_string(v)) fputs(json_string_value(v), stdout);
    else if (json_is_integer(v)) printf("%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) printf("%.7g", json_real_value(v));
    else if (json_is_boolean(v)) fputs(json_is_true(v) ? "true" : "false", stdout);
}

static int key_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* /show WORD (§6.5). Returns 0, or 1 when the server could not be reached (printed). */
static int show_cmd(session *s, fields *f) {
    if (f->n < 2) { help_show(); return 0; }
    const char *what = f->w[1];
    if (!strcmp(what, "info")) {
        /* `locallama show MODEL`'s summary, on stderr as Ollama writes it */
        fflush(stdout);
        int saved = dup(STDOUT_FILENO);
        if (saved >= 0) dup2(STDERR_FILENO, STDOUT_FILENO);
        char *argv[] = { "show", s->model, NULL };
        int rc = cmd_show(2, argv);
        fflush(stdout);
        if (saved >= 0) { dup2(saved, STDOUT_FILENO); close(saved); }
        (void)rc;   /* its error, if any, is on stderr; the session goes on */
        return 0;
    }
    static const char *const known[] = { "license", "modelfile", "parameters", "system", "template" };
    bool ok = false;
    for (int k = 0; k < 5; k++) if (!strcmp(what, known[k])) ok = true;
    if (!ok) { printf("Unknown command '/show %s'. Type /? for help\n", what); return 0; }
    long status = 0;
    json_t *j = show_model(s->model, &status);
    if (!j) return 1;
    if (status >= 400) {
        printf("error: couldn't get model: %s\n", err_of(j));
        json_decref(j);
        return 0;
    }
    json_t *v;
    const char *str;
    if (!strcmp(what, "license")) {
        v = json_object_get(j, "license");
        if (json_is_array(v) && json_array_size(v)) {
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x) printf("%s%s", i ? "\n" : "", json_string_value(x) ? json_string_value(x) : "");
            putchar('\n');
        } else if ((str = json_string_value(v)) && str[0]) printf("%s\n", str);
        else puts("No license was specified for this model.");
    } else if (!strcmp(what, "modelfile")) {
        printf("%s\n", (str = json_string_value(json_object_get(j, "modelfile"))) ? str : "");
    } else if (!strcmp(what, "parameters")) {
        puts("Model defined parameters:");
        str = json_string_value(json_object_get(j, "parameters"));
        if (!str || !str[0]) puts("  No additional parameters were specified for this model.");
        else {
            for (const char *p = str; ; ) {
                const char *nl = strchr(p, '\n');
                printf("  %.*s\n", (int)(nl ? nl - p : (long)strlen(p)), p);
                if (!nl) break;
                p = nl + 1;
            }
        }
        putchar('\n');
        size_t n = json_object_size(s->options);
        if (n > 0) {
            const char **keys = malloc(n * sizeof *keys);
            size_t k = 0;
            const char *key;
            json_t *val;
            json_object_foreach(s->options, key, val) if (keys) keys[k++] = key;
            if (keys) {
                qsort(keys, k, sizeof *keys, key_cmp);
                puts("User defined parameters:");
                for (size_t i = 0; i < k; i++) {
                    printf("  %-30s ", keys[i]);
                    print_value(json_object_get(s->options, keys[i]));
                    putchar('\n');
                }
                putchar('\n');
                free(keys);
            }
        }
    } else if (!strcmp(what, "system")) {
        str = json_string_value(json_object_get(j, "system"));
        if (s->system && s->system[0]) printf("%s\n\n", s->system);
        else if (str && str[0]) printf("%s\n\n", str);
        else puts("No system message was specified for this model.");
    } else {
        str = json_string_value(json_object_get(j, "template"));
        if (str && str[0]) printf("%s\n", str);
        else puts("No prompt template was specified for this model.");
    }
    json_decref(j);
    return 0;
}

static void set_system(session *s, const char *text) {
    free(s->system);
    s->system = strdup(text);
    size_t n = json_array_size(s->messages);
    json_t *last = n ? json_array_get(s->messages, n - 1) : NULL;
    json_t *msg = json_pack("{s:s,s:s}", "role", "system", "content", text);
    if (last && !strcmp(json_string_value(json_object_get(last, "role")) ? json_string_value(json_object_get(last, "role")) : "", "system"))
        json_array_set_new(s->messages, n - 1, msg);
    else json_array_append_new(s->messages, msg);
    puts("Set system message.");
}

/* The preload of §6.1: an empty generate; the server answers done_reason "load". Errors are
 * printed; 130 after Ctrl-C. */
static int preload(session *s) {
    json_t *req = json_pack("{s:s,s:s}", "model", s->model, "prompt", "");
    if (s->o->keepalive[0]) json_object_set_new(req, "keep_alive", json_string(s->o->keepalive));
    if (s->think) json_object_set_new(req, "think", think_json(s->think));
    int rc = cli_stream("/api/generate", req, no_chunk, NULL, &repl_sigint);
    json_decref(req);
    return rc == CLI_STREAM_CANCELLED ? 130 : rc ? 1 : 0;
}

/* Replay the model's MESSAGEs (§6.1 step 3); they stay on the server's side. */
static void replay_messages(json_t *show) {
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(show, "messages"), i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (!role || !content) continue;
        if (!strcmp(role, "user")) printf(">>> %s\n", content);
        else if (!strcmp(role, "assistant")) printf("%s\n\n", content);
    }
}

/* /load M (§6.5): another model, a fresh conversation, the same options. */
static int load_cmd(session *s, const char *model) {
    printf("Loading model '%s'\n", model);
    long status = 0;
    json_t *j = show_model(model, &status);
    if (!j) return 1;
    if (status == 404) {
        printf("Couldn't find model '%s'\n", model);
        json_decref(j);
        return 0;
    }
    if (status >= 400) { int rc = cli_fail("%s", err_of(j)); json_decref(j); return rc; }
    char *m = strdup(model);
    if (!m) { json_decref(j); return cli_fail("out of memory"); }
    free(s->model);
    s->model = m;
    json_decref(s->show);
    s->show = j;
    json_array_clear(s->messages);
    int rc = preload(s);
    if (rc == 0) replay_messages(s->show);
    return rc == 130 ? 0 : rc;
}

/* /save NAME (§6.5): a new model from this one with the session's system, options and
 * conversation. Failures are reported and the session goes on. */
static void save_cmd(session *s, const char *name) {
    const char *parent = json_string_value(json_object_get(json_object_get(s->show, "details"), "parent_model"));
    json_t *req = json_pack("{s:s,s:s,s:O,s:O}", "model", name, "from", parent && parent[0] ? parent : s->model,
                            "parameters", s->options, "messages", s->messages);
    if (s->system) json_object_set_new(req, "system", json_string(s->system));
    char err[512] = "";
    int rc = cli_stream_err("/api/create", req, no_chunk, NULL, &repl_sigint, err, sizeof err);
    json_decref(req);
    if (rc == 0) printf("Created new model '%s'\n", name);
    else if (rc == 2 && strstr(err, "invalid") && strstr(err, "name"))
        printf("error: The model name '%s' is invalid\n", name);
    else if (rc == 2) printf("error: %s\n", err);
}

/* One user turn: POST /api/chat with the whole conversation. 0 = answered (or an error the
 * REPL survives, printed), 1 = an error that ends the REPL (printed). */
static int chat_turn(session *s) {
    json_t *req = json_pack("{s:s,s:O,s:O}", "model", s->model, "messages", s->messages, "options", s->options);
    if (s->format) json_object_set(req, "format", s->format);
    if (s->o->keepalive[0]) json_object_set_new(req, "keep_alive", json_string(s->o->keepalive));
    if (s->think) json_object_set_new(req, "think", think_json(s->think));
    answer a = { .chat = true, .hide_thinking = s->o->hidethinking, .tty = isatty(STDOUT_FILENO) };
    wrap_init(&a.wrap, s->wordwrap);
    char err[1024] = "";
    repl_sigint_clear();
    int rc = cli_stream_err("/api/chat", req, on_chunk, &a, &repl_sigint, err, sizeof err);
    json_decref(req);
    int ret = 0;
    if (rc == CLI_STREAM_CANCELLED) {
        /* the partial answer stays on screen but not in the conversation; the question stays */
        thinking_end(&a);
        write_out("\n", 1);
    } else if (rc == 2) {
        thinking_end(&a);
        if (strstr(err, "does not support thinking") || strstr(err, "invalid think value"))
            printf("error: %s\n", err);
        else if (strstr(err, "upstream error"))
            puts("An error occurred while processing your message. Please try again.");
        else { fprintf(stderr, "Error: %s\n", err); ret = 1; }
    } else if (rc != 0) {
        ret = 1;
    } else {
        thinking_end(&a);
        write_out("\n\n", 2);
        json_t *msg = json_pack("{s:s,s:s}", "role", "assistant", "content", a.content ? a.content : "");
        if (a.thinking) json_object_set_new(msg, "thinking", json_string(a.thinking));
        json_array_append_new(s->messages, msg);
        if (s->verbose) print_stats(a.final);
    }
    answer_free(&a);
    repl_sigint_clear();
    return ret;
}

/* /set ... (§6.5). Returns 1 when the REPL must end (printed), else 0. *multiline_system is
 * set when `/set system """` opened a multi-line system message. */
static int set_cmd(session *s, fields *f, const char *line, char **sb, size_t *n_sb, size_t *cap_sb,
                   bool *multiline_system) {
    if (f->n < 2) { help_set(); return 0; }
    const char *w = f->w[1];
    bool thinks = has_capability(s->show, "thinking");
    if (!strcmp(w, "history")) repl_history_save(s->ed, true);
    else if (!strcmp(w, "nohistory")) repl_history_save(s->ed, false);
    else if (!strcmp(w, "wordwrap")) { s->wordwrap = true; puts("Set 'wordwrap' mode."); }
    else if (!strcmp(w, "nowordwrap")) { s->wordwrap = false; puts("Set 'nowordwrap' mode."); }
    else if (!strcmp(w, "verbose")) { s->verbose = true; puts("Set 'verbose' mode."); }
    else if (!strcmp(w, "quiet")) { s->verbose = false; puts("Set 'quiet' mode."); }
    else if (!strcmp(w, "format")) {
        if (f->n < 3 || strcmp(f->w[2], "json")) puts("Invalid or missing format. For 'json' mode use '/set format json'");
        else {
            json_decref(s->format);
            s->format = json_string("json");
            puts("Set format to 'json' mode.");
        }
    } else if (!strcmp(w, "noformat")) {
        json_decref(s->format);
        s->format = NULL;
        puts("Disabled format.");
    } else if (!strcmp(w, "think")) {
        if (!thinks) fprintf(stderr, "warning: model \"%s\" does not support thinking output\n", s->model);
        static const char *const levels[] = { "high", "medium", "low", "max" };
        if (f->n >= 3) {
            const char *lv = NULL;
            for (int k = 0; k < 4; k++) if (!strcmp(f->w[2], levels[k])) lv = levels[k];
            if (!strcmp(f->w[2], "true")) lv = "true";
            if (!strcmp(f->w[2], "false")) lv = "false";
            if (!lv) { printf("Invalid think level '%s'. Use true, false, high, medium, low, or max\n", f->w[2]); return 0; }
            s->think = lv;
            printf("Set 'think' mode to '%s'.\n", lv);
        } else {
            s->think = "true";
            puts("Set 'think' mode.");
        }
    } else if (!strcmp(w, "nothink")) {
        if (!thinks) fprintf(stderr, "warning: model \"%s\" does not support thinking output\n", s->model);
        s->think = "false";
        puts("Set 'nothink' mode.");
    } else if (!strcmp(w, "parameter")) {
        if (f->n < 4) help_parameters();
        else set_parameter(s, f);
    } else if (!strcmp(w, "system")) {
        if (f->n < 3) { help_set(); return 0; }
        /* the text after "/set system ", as typed */
        const char *t = strstr(line, "system") + 6;
        while (*t == ' ' || *t == '\t') t++;
        size_t tl = strlen(t);
        while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t')) tl--;
        if (tl >= 3 && !strncmp(t, "\"\"\"", 3)) {
            t += 3;
            tl -= 3;
            if (tl >= 3 && !strncmp(t + tl - 3, "\"\"\"", 3)) tl -= 3;
            else {
                *n_sb = 0;
                if (!buf_append(sb, n_sb, cap_sb, t, tl) || !buf_append(sb, n_sb, cap_sb, "\n", 1))
                    return cli_fail("out of memory");
                *multiline_system = true;
                return 0;
            }
        }
        char *text = strndup(t, tl);
        if (!text) return cli_fail("out of memory");
        set_system(s, text);
        free(text);
    } else printf("Unknown command '/set %s'. Type /? for help\n", w);
    return 0;
}

enum { ML_NONE, ML_PROMPT, ML_SYSTEM };

static int repl_loop(session *s) {
    char *sb = NULL;            /* the message being built (multi-line) */
    size_t n_sb = 0, cap_sb = 0;
    int ml = ML_NONE, rc = 0;
    for (;;) {
        repl_sigint_clear();
        char *line = NULL;
        int r = repl_read(s->ed, ml == ML_NONE ? ">>> " : "... ", &line);
        if (r == REPL_EOF) { putchar('\n'); break; }
        if (r == REPL_ERROR) { rc = 1; break; }
        if (r == REPL_INTERRUPTED) {
            puts("\nUse Ctrl + d or /bye to exit.");
            ml = ML_NONE;
            n_sb = 0;
            continue;
        }
        repl_history_add(s->ed, line);
        fields f;
        if (!fields_split(&f, line)) { free(line); rc = cli_fail("out of memory"); break; }
        bool send = false, quit = false, fail = false;
        size_t ll = strlen(line);
        if (ml != ML_NONE) {
            /* a line ending in """ closes the message; the text before the quotes is kept */
            bool closes = ll >= 3 && !strcmp(line + ll - 3, "\"\"\"");
            fail = !buf_append(&sb, &n_sb, &cap_sb, line, closes ? ll - 3 : ll);
            if (!closes) fail = fail || !buf_append(&sb, &n_sb, &cap_sb, "\n", 1);
            else if (ml == ML_SYSTEM) {
                set_system(s, sb ? sb : "");
                n_sb = 0;
                ml = ML_NONE;
            } else {
                ml = ML_NONE;
                send = true;
            }
        } else if (!strncmp(line, "\"\"\"", 3)) {
            const char *t = line + 3;
            size_t tl = ll - 3;
            bool closes = tl >= 3 && !strcmp(t + tl - 3, "\"\"\"");
            n_sb = 0;
            fail = !buf_append(&sb, &n_sb, &cap_sb, t, closes ? tl - 3 : tl);
            if (closes) send = true;
            else {
                fail = fail || !buf_append(&sb, &n_sb, &cap_sb, "\n", 1);
                ml = ML_PROMPT;
            }
        } else if (!strncmp(line, "/list", 5)) {
            char *argv[] = { "list", NULL };
            cmd_list(1, argv);
        } else if (!strncmp(line, "/load", 5)) {
            if (f.n != 2) puts("Usage:\n  /load <modelname>");
            else if (load_cmd(s, f.w[1])) fail = true;
        } else if (!strncmp(line, "/save", 5)) {
            if (f.n != 2) puts("Usage:\n  /save <modelname>");
            else save_cmd(s, f.w[1]);
        } else if (!strncmp(line, "/clear", 6)) {
            json_array_clear(s->messages);
            if (s->system && s->system[0])
                json_array_append_new(s->messages, json_pack("{s:s,s:s}", "role", "system", "content", s->system));
            puts("Cleared session context");
        } else if (!strncmp(line, "/set", 4)) {
            bool mls = false;
            if (set_cmd(s, &f, line, &sb, &n_sb, &cap_sb, &mls)) fail = true;
            if (mls) ml = ML_SYSTEM;
        } else if (!strncmp(line, "/show", 5)) {
            if (show_cmd(s, &f)) fail = true;
        } else if (!strncmp(line, "/help", 5) || !strncmp(line, "/?", 2)) {
            if (f.n > 1) {
                const char *a = f.w[1];
                if (!strcmp(a, "set") || !strcmp(a, "/set")) help_set();
                else if (!strcmp(a, "show") || !strcmp(a, "/show")) help_show();
                else if (!strcmp(a, "shortcut") || !strcmp(a, "shortcuts")) help_shortcuts();
            } else help_main();
        } else if (!strncmp(line, "/exit", 5) || !strncmp(line, "/bye", 4)) {
            quit = true;
        } else if (line[0] == '/') {
            printf("Unknown command '%s'. Type /? for help\n", f.n ? f.w[0] : line);
        } else if (line[0]) {
            n_sb = 0;
            fail = !buf_append(&sb, &n_sb, &cap_sb, line, ll);
            send = true;
        }
        free(f.buf);
        free(line);
        fflush(stdout);
        if (fail) { rc = 1; break; }
        if (quit) break;
        if (send && n_sb > 0) {
            json_array_append_new(s->messages, json_pack("{s:s,s:s%}", "role", "user", "content", sb, n_sb));
            n_sb = 0;
            if (chat_turn(s)) { rc = 1; break; }
        }
        n_sb = ml == ML_NONE ? 0 : n_sb;
    }
    free(sb);
    return rc;
}

static int interactive(run_opts *o, json_t *show, json_t *format, const char *think) {
    session s = { .o = o, .show = json_incref(show), .messages = json_array(),
                  .options = options_from_flags(o), .format = json_incref(format), .think = think,
                  .verbose = o->verbose, .wordwrap = !o->nowordwrap };
    s.model = strdup(o->path);
    int rc = 1;
    if (!s.model) { cli_fail("out of memory"); goto out; }
    if (o->system) {
        s.system = strdup(o->system);
        json_array_append_new(s.messages, json_pack("{s:s,s:s}", "role", "system", "content", o->system));
    }
    repl_sigint_install();
    rc = preload(&s);
    if (rc) goto out;
    replay_messages(show);
    /* history: ~/.locallama/history unless LOCALLAMA_NOHISTORY / OLLAMA_NOHISTORY is set */
    const char *nohist = getenv("LOCALLAMA_NOHISTORY");
    if (!nohist || !nohist[0]) nohist = getenv("OLLAMA_NOHISTORY");
    char *hp = nohist && nohist[0] ? NULL : history_path();
    s.ed = repl_open(hp);
    free(hp);
    if (!s.ed) { rc = 1; goto out; }
    rc = repl_loop(&s);
out:
    repl_close(s.ed);
    free(s.model);
    free(s.system);
    json_decref(s.show);
    json_decref(s.messages);
    json_decref(s.options);
    json_decref(s.format);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// entry

int run_client(run_opts *o) {
    /* --format: "json", or a JSON schema given as text; checked before any request */
    json_t *format = NULL;
    if (o->format) {
        if (!strcmp(o->format, "json")) format = json_string("json");
        else {
            json_error_t je;
            format = json_loads(o->format, JSON_DECODE_ANY, &je);
            if (!format) {
                fprintf(stderr, "Error: invalid value for --format: \"%s\" (not \"json\" and not JSON: %s)\n",
                        o->format, je.text);
                return 2;
            }
        }
    }
    /* §5.1: piped stdin goes in front of the prompt words, joined by one space */
    bool in_tty = isatty(STDIN_FILENO), out_tty = isatty(STDOUT_FILENO);
    char *prompt = NULL;
    if (!in_tty) {
        size_t n = 0;
        char *in = read_all_stdin(&n);
        if (!in) { json_decref(format); return 1; }
        if (n > 0 && o->prompt) {
            size_t pl = strlen(o->prompt);
            prompt = malloc(n + 1 + pl + 1);
            if (prompt) {
                memcpy(prompt, in, n);
                prompt[n] = ' ';
                memcpy(prompt + n + 1, o->prompt, pl + 1);
            }
            free(in);
        } else if (n > 0) prompt = in;
        else free(in);
    }
    if (!prompt && o->prompt) prompt = strdup(o->prompt);
    if (!prompt) prompt = strdup("");
    if (!prompt) { json_decref(format); return cli_fail("out of memory"); }
    bool repl_mode = !o->prompt && in_tty && out_tty;

    int rc = 1;
    json_t *show = NULL;
    if (cli_heartbeat()) goto out;
    long status = 0;
    show = show_model(o->path, &status);
    if (!show) goto out;
    if (status == 404) {                     /* §5.2: pulled first, with pull's display */
        json_decref(show);
        show = NULL;
        if ((rc = cli_pull_model(o->path, o->insecure, false)) != 0) goto out;
        rc = 1;
        if (!(show = show_model(o->path, &status))) goto out;
    }
    if (status >= 400) { rc = cli_fail("%s", err_of(show)); goto out; }
    const char *think = o->think;
    if (!think && has_capability(show, "thinking")) think = "true";   /* §5.2 */
    if (has_capability(show, "embedding")) rc = embed(o, prompt);
    else if (repl_mode) rc = interactive(o, show, format, think);
    else rc = one_shot(o, prompt, format, think);
out:
    json_decref(show);
    json_decref(format);
    free(prompt);
    return rc;
}
