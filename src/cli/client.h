/* cli/client: a small HTTP + JSON client for the commands that talk to `locallama serve`
 * (list, ps, show, rm, cp, stop), as Ollama's CLI talks to its server (ollama-cli.md §1.3).
 * libcurl carries the requests, jansson the bodies.
 *
 * Every function that can fail prints the one "Error: ..." line itself and returns 1, so a
 * command can `return` what it gets. */
#ifndef LL_CLI_CLIENT_H
#define LL_CLI_CLIENT_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>

typedef struct {
    long status;      /* HTTP status; 0 before a response */
    char *body;       /* response body, NUL-terminated; owned, freed by cli_resp_free */
    size_t n_body;
} cli_resp;

/* Base URL from LOCALLAMA_HOST, else OLLAMA_HOST, else http://127.0.0.1:11434 (§3.1). */
const char *cli_base_url(void);

/* HEAD / (§1.2). 0 when the server answers; 1 after printing the could-not-connect error. */
int cli_heartbeat(void);

/* One request: method, path (e.g. "/api/tags"), optional JSON body (borrowed). 0 when a
 * response arrived (any status), 1 after printing the transport error. */
int cli_call(const char *method, const char *path, json_t *req, cli_resp *r);

/* The response body parsed as JSON (new reference) or NULL. */
json_t *cli_resp_json(const cli_resp *r);

/* Print "Error: <msg>" where msg is the body's "error" field, or the body verbatim when it is
 * not JSON (§1.3); returns 1. */
int cli_resp_fail(const cli_resp *r);

void cli_resp_free(cli_resp *r);

/* ---- streaming (NDJSON) calls: generate, chat, create ------------------------------------ */

/* Called once per NDJSON object of a stream (borrowed; valid during the call). Return 0 to go
 * on; anything else stops the stream, closes the connection and becomes cli_stream's result. */
typedef int (*cli_chunk_fn)(json_t *chunk, void *ud);

enum { CLI_STREAM_CANCELLED = -1 };

/* POST path with req (borrowed) and read the answer line by line (§1.3): each line is parsed
 * and handed to fn. A line {"error": msg} ends the call with "Error: msg", whatever the status;
 * a status >= 400 whose first line is not JSON prints that line. Returns 0 when the stream
 * ended, 1 after printing an error, fn's non-zero result, or CLI_STREAM_CANCELLED as soon as
 * *cancel (when given) becomes non-zero: the connection is then closed, which cancels the
 * request on the server (R8). Lines are capped at 8 MB as Ollama's scanner caps them. */
int cli_stream(const char *path, json_t *req, cli_chunk_fn fn, void *ud,
               volatile sig_atomic_t *cancel);

/* cli_stream that, when the server answers with an error (an {"error"} line or a status >= 400),
 * stores its message in err[cap] instead of printing it, and returns 2. Transport errors are
 * printed and return 1 as in cli_stream. The REPL uses it to go on after some errors (§6.3). */
int cli_stream_err(const char *path, json_t *req, cli_chunk_fn fn, void *ud,
                   volatile sig_atomic_t *cancel, char *err, size_t cap);

#endif
