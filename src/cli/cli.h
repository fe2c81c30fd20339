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

/* POST /api/pull with Ollama's progress display on stderr (cmd_pull.c; also `run` of a model
 * the server lacks, §5.2): 0 done, 1 after printing the error, 130 on Ctrl-C. */
int cli_pull_model(const char *model, bool insecure, bool quiet);

/* The progress display for any §1.11/§1.12 stream (pull, push): POST path with req (borrowed),
 * bars and spinners on a terminal, plain lines otherwise, nothing with quiet. Returns 0 when
 * the stream ended, 1 after printing a transport error, 2 with the server's error in err[cap]
 * (not printed), 130 on Ctrl-C. */
struct json_t;
int cli_progress_stream(const char *path, struct json_t *req, bool quiet, char *err, size_t cap);

/* Print "Error: <msg>" to stderr and return 1. */
int cli_fail(const char *fmt, ...);
/* Print "Error: <err->msg>" and return 1. */
int cli_fail_err(const ll_error *err);

#endif
