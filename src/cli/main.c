/* locallama: command dispatch. Every command lives in its own file (cli.h). */
#include "cli/cli.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cli_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("Error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail_err(const ll_error *err) {
    return cli_fail("%s", err->msg[0] ? err->msg : ll_status_name(err->code));
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    { "serve",      cmd_serve,      "serve                     start the server (Ollama-compatible API on LOCALLAMA_HOST)" },
    { "run",        cmd_run,        "run PATH.gguf [PROMPT]    chat with a model (streams the answer)" },
    { "list",       cmd_list,       "list [PREFIX]             list the server's models (alias: ls)" },
    { "ls",         cmd_list,       NULL },
    { "ps",         cmd_ps,         "ps                        list the models loaded in memory" },
    { "show",       cmd_show,       "show MODEL [--modelfile|--parameters|--template|--system|--license]" },
    { "rm",         cmd_rm,         "rm MODEL...               remove models" },
    { "cp",         cmd_cp,         "cp SOURCE DESTINATION     copy a model" },
    { "create",     cmd_create,     "create MODEL -f Modelfile [--quantize TYPE]  create a model from a Modelfile" },
    { "stop",       cmd_stop,       "stop MODEL                unload a running model" },
    { "tokenize",   cmd_tokenize,   "tokenize --model PATH [--no-bos] [--parse-special] [TEXT]" },
    { "detokenize", cmd_detokenize, "detokenize --model PATH [--pieces] ID..." },
    { "logits",     cmd_logits,     "logits --model PATH --ids 1,2,3 [--out FILE] [--greedy N] [--threads T] [--kv-type f32|f16]" },
    { "bench",      cmd_bench,      "bench --model PATH [-p 512] [-n 128] [-d DEPTH] [-t THREADS] [-r REPS] [-ctk f32|f16] [-o md|json]" },
    { "quantize",   cmd_quantize,   "quantize IN.gguf OUT.gguf TYPE [--pure] [--threads N] [--stats]  rewrite a model in another weight type" },
};

static void usage(FILE *f) {
    fprintf(f, "locallama %s: run Llama-family GGUF models on the CPU\n\nUsage:\n", LL_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].help) fprintf(f, "  locallama %s\n", commands[i].help);
    fprintf(f, "  locallama --version\n");
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);   /* R13: a closed pipe is EPIPE on write, not death */
    if (argc < 2) { usage(stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-v") || !strcmp(cmd, "version")) {
        printf("locallama version %s\n", LL_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "Error: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
