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

/* Each command: its name, entry point, its line in the root help, and, for a command whose
 * file does not answer --help itself, the text `CMD --help` and `help CMD` print. */
static const char logits_help[] =
    "Run the forward pass on given token ids and write the logits of every position\n"
    "\n"
    "Usage:\n"
    "  locallama logits --model PATH --ids 1,2,3 [flags]\n"
    "\n"
    "Flags:\n"
    "      --model PATH           the .gguf file\n"
    "      --ids LIST             comma-separated prompt token ids\n"
    "      --out FILE             float32 little-endian logits, n_ids x n_vocab, row-major\n"
    "      --greedy N             then generate N tokens by argmax; their ids as a JSON array on stdout\n"
    "      --threads T            worker threads (0 = all cores)\n"
    "      --ctx N                context length\n"
    "      --batch N              prompt tokens per decode call\n"
    "      --one-by-one           one prompt token per decode call\n"
    "      --force LIST           ids fed after the prompt one per call; their logits appended to FILE\n"
    "      --kv-type T            KV cache type: f32 (default), f16 or q8_0\n"
    "      --parallel N           decode N - 1 companion sequences in the same batches\n"
    "  -h, --help                 help for logits\n";

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *line;        /* root help line; NULL = an alias not listed */
    const char *help;        /* per-command help printed here; NULL = the command prints its own */
} commands[] = {
    { "serve",      cmd_serve,      "serve                     start the server (Ollama-compatible API on LOCALLAMA_HOST)", NULL },
    { "run",        cmd_run,        "run MODEL|PATH.gguf [PROMPT]  chat with a model of the server, or with a .gguf file", NULL },
    { "list",       cmd_list,       "list [PREFIX]             list the server's models (alias: ls)", NULL },
    { "ls",         cmd_list,       NULL, NULL },
    { "ps",         cmd_ps,         "ps                        list the models loaded in memory", NULL },
    { "show",       cmd_show,       "show MODEL [--modelfile|--parameters|--template|--system|--license]", NULL },
    { "rm",         cmd_rm,         "rm MODEL...               remove models", NULL },
    { "cp",         cmd_cp,         "cp SOURCE DESTINATION     copy a model", NULL },
    { "create",     cmd_create,     "create MODEL -f Modelfile [--quantize TYPE]  create a model from a Modelfile", NULL },
    { "pull",       cmd_pull,       "pull MODEL [--insecure]   pull a model from a registry", NULL },
    { "push",       cmd_push,       "push MODEL [--insecure]   push a model to a registry", NULL },
    { "stop",       cmd_stop,       "stop MODEL                unload a running model", NULL },
    { "tokenize",   cmd_tokenize,   "tokenize --model PATH [--no-bos] [--parse-special] [TEXT]", NULL },
    { "detokenize", cmd_detokenize, "detokenize --model PATH [--pieces] ID...|-   (IDs as tokenize prints them)", NULL },
    { "logits",     cmd_logits,     "logits --model PATH --ids 1,2,3 [--out FILE] [--greedy N] [--threads T] [--kv-type f32|f16]", logits_help },
    { "bench",      cmd_bench,      "bench --model PATH [-p 512] [-n 128] [-d DEPTH] [-t THREADS] [-r REPS] [-ctk f32|f16] [-o md|json]", NULL },
    { "quantize",   cmd_quantize,   "quantize IN.gguf OUT.gguf TYPE [--pure] [--threads N] [--stats]  rewrite a model in another weight type", NULL },
};

static void usage(FILE *f) {
    fprintf(f, "locallama %s: run Llama-family GGUF models on the CPU\n\nUsage:\n", LL_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].line) fprintf(f, "  locallama %s\n", commands[i].line);
    fprintf(f, "  locallama --version\n\nUse \"locallama help COMMAND\" or \"locallama COMMAND --help\" for a command's flags.\n");
}

static int find_command(const char *name) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name)) return (int)i;
    return -1;
}

/* COMMAND --help (or -h anywhere before "--"): the command's own help, exit 0. */
static int command_help(int k) {
    if (commands[k].help) { fputs(commands[k].help, stdout); return 0; }
    char *argv[] = { (char *)commands[k].name, "--help", NULL };
    return commands[k].fn(2, argv);
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
        if (argc > 2 && !strcmp(cmd, "help")) {          /* help COMMAND */
            int k = find_command(argv[2]);
            if (k < 0) {
                fprintf(stderr, "Error: unknown command '%s'\n", argv[2]);
                usage(stderr);
                return 2;
            }
            return command_help(k);
        }
        usage(stdout);
        return 0;
    }
    int k = find_command(cmd);
    if (k >= 0) {
        if (commands[k].help)
            for (int i = 2; i < argc && strcmp(argv[i], "--"); i++)
                if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return command_help(k);
        return commands[k].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "Error: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
