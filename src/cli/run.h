/* cli/run: what `locallama run` shares between its two halves.
 *
 *   run PATH.gguf [PROMPT...]   the engine in this process (cmd_run.c): nothing is created,
 *                               the file is loaded and chatted with, no server involved;
 *   run MODEL [PROMPT...]       a client of `locallama serve` (cmd_chat.c), as Ollama's CLI is
 *                               (ollama-cli.md §5, §6): one-shot answers or the REPL.
 *
 * cmd_run.c parses and checks every option first (a bad value is a usage error, exit 2, before
 * a file is opened or a request sent), then picks the half by the MODEL argument. */
#ifndef LL_CLI_RUN_H
#define LL_CLI_RUN_H

#include "locallama.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *path;          /* MODEL: a .gguf file, or the server's model name */
    char       *prompt;        /* words after MODEL joined by spaces (owned); NULL = none */
    const char *system;        /* --system */
    ll_sampler_params sp;      /* --temperature, --seed, --top-k, ... */
    int64_t     num_predict;   /* tokens per answer; -1 = until EOG (at most 10 x n_ctx, R4) */
    int32_t     n_ctx;         /* requested context; capped to the training context */
    int32_t     num_keep;      /* tokens after BOS kept by the context shift (Ollama's 4) */
    int32_t     n_threads;     /* 0 = all cores */
    ll_kv_type  kv_type;       /* --kv-type */
    bool        raw;           /* no chat template */
    bool        verbose;       /* timing summary on stderr */

    /* Which sampler/context flags were given: the client sends only those in "options", so
     * the model's own parameters (Modelfile PARAMETER) apply to the rest. */
    bool set_temperature, set_seed, set_num_predict, set_ctx, set_num_keep, set_threads,
         set_top_k, set_top_p, set_min_p, set_repeat_penalty, set_kv_type;

    /* Ollama's run flags (§2.2, §5.2); only the client half uses them. */
    const char *format;        /* --format: "json" or a JSON schema text; NULL = none */
    char        keepalive[48]; /* --keepalive as Go prints the duration ("10m0s"); "" = unset */
    const char *think;         /* --think: "true", "false", "high", "medium", "low", "max"; NULL unset */
    bool        hidethinking;  /* --hidethinking */
    bool        nowordwrap;    /* --nowordwrap: no word wrap on a terminal (none into pipes anyway) */
    bool        insecure;      /* --insecure: for the pull of a model the server lacks */
    bool        truncate;      /* --truncate (embedding models) */
    int64_t     dimensions;    /* --dimensions (embedding models); 0 = unset */
} run_opts;

/* True when MODEL names a local file for the engine: it ends in ".gguf" or is an existing
 * regular file. Anything else is a name for the server. */
bool run_is_local(const char *model);

/* The client half: `run MODEL` against the server (cmd_chat.c). Returns the exit status. */
int run_client(run_opts *o);

/* Go's time.Duration.String() for ns ("1.5s", "950µs", "1m30s"), as Ollama's --verbose block
 * and --keepalive print durations. */
void run_fmt_duration(char *buf, size_t cap, int64_t ns);

/* Parse a Go duration ("5m", "1h30m", "-1s", "1.5h", "300ms"); false (with Go's message in
 * why) when it is not one, e.g. `time: missing unit in duration "10"`. */
bool run_parse_duration(const char *s, int64_t *ns, char *why, size_t why_cap);

#endif
