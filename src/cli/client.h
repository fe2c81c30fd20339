/* cli/client: a small HTTP + JSON client for the commands that talk to `locallama serve`
 * (list, ps, show, rm, cp, stop), as Ollama's CLI talks to its server (ollama-cli.md §1.3).
 * libcurl carries the requests, jansson the bodies.
 *
 * Every function that can fail prints the one "Error: ..." line itself and returns 1, so a
 * command can `return` what it gets. */
#ifndef LL_CLI_CLIENT_H
#define LL_CLI_CLIENT_H

#include <jansson.h>
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

#endif
