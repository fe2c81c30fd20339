/* cli: the locallama command line. main.c dispatches to one cmd_* per file.
 * Each command returns the process exit status: 0 ok, 1 error (message already printed as
 * "Error: ..." on stderr), 2 usage error. */
#ifndef LL_CLI_H
#define LL_CLI_H

#include "locallama.h"

int cmd_tokenize(int argc, char **argv);    /* cmd_tokenize.c */
int cmd_detokenize(int argc, char **argv);  /* cmd_tokenize.c */
int cmd_logits(int argc, char **argv);      /* cmd_logits.c */
int cmd_run(int argc, char **argv);         /* cmd_run.c */
int cmd_bench(int argc, char **argv);       /* cmd_bench.c */
int cmd_serve(int argc, char **argv);       /* cmd_serve.c */
int cmd_list(int argc, char **argv);        /* cmd_models.c: list, ls */
int cmd_ps(int argc, char **argv);          /* cmd_models.c */
int cmd_show(int argc, char **argv);        /* cmd_models.c */
int cmd_rm(int argc, char **argv);          /* cmd_models.c */
int cmd_cp(int argc, char **argv);          /* cmd_models.c */
int cmd_stop(int argc, char **argv);        /* cmd_models.c */
int cmd_create(int argc, char **argv);      /* cmd_create.c */
int cmd_quantize(int argc, char **argv);    /* cmd_quantize.c */
int cmd_pull(int argc, char **argv);        /* cmd_pull.c */
int cmd_push(int argc, char **argv);        /* cmd_push.c */

/* The progress display of pull and push (cmd_pull.c): a cli_chunk_fn over the §1.11/§1.12
 * objects, drawing on stderr. Zero-initialise with tty = isatty(2); after the stream, end an
 * open line with a newline. */
typedef struct {
    bool tty;
    char cur[80];          /* status of the line being redrawn (tty), "" when none */
    bool open;             /* a tty line without its newline yet */
    char done_last[80];    /* not a tty: last blob line printed, to print each once */
} cli_progress;
struct json_t;
int cli_progress_chunk(struct json_t *chunk, void *ud);

/* Print "Error: <msg>" to stderr and return 1. */
int cli_fail(const char *fmt, ...);
/* Print "Error: <err->msg>" and return 1. */
int cli_fail_err(const ll_error *err);

#endif
