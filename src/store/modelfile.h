/* modelfile: Ollama's Modelfile, parsed and rendered (spec ollama-cli.md §16).
 *
 *     # Mario                                   comment: first non-blank character is '#'
 *     FROM llama3.2                             model name, or a path to a GGUF
 *     PARAMETER temperature 1                   typed per §16.3; repeated `stop` accumulate
 *     PARAMETER stop "<|eot_id|>"
 *     SYSTEM """You are Mario,                  """…""" and "…" may span lines
 *     acting as an assistant."""
 *     MESSAGE user Is Toronto in Canada?        role system | user | assistant
 *
 * Instruction names are case-insensitive; PARAMETER names and MESSAGE roles are not.
 * The parser is a transcription of the state machine in Ollama's parser/parser.go, so what
 * Ollama accepts we accept with the same result, and errors use its wording:
 *     (line 2): command must be one of "from", "license", …, or "requires"
 *     (line 5): message role must be one of "system", "user", or "assistant"
 *     unexpected EOF                      (unterminated quote)
 *     no FROM line
 *     unknown parameter 'Temperature'     invalid int value [x]   invalid float value [x]
 * Differences, all on input Ollama mishandles: CR LF counts as one line in error positions,
 * a second space after PARAMETER/MESSAGE is skipped instead of giving an empty name, and
 * float parameters that are NaN or infinite are refused (JSON cannot carry them).
 *
 * The result is an ll_modelfile: what `ollama create` turns into its request. The reverse,
 * ll_modelfile_render, prints a model the way `ollama show --modelfile` does (§16.6). */
#ifndef LL_STORE_MODELFILE_H
#define LL_STORE_MODELFILE_H

#include "core/core.h"

#include <jansson.h>

/* Caps: Modelfile text (templates are ≤ 1 MiB, licenses a few KiB; this leaves room). */
#define LL_MODELFILE_MAX_BYTES    (16u << 20)
#define LL_MODELFILE_MAX_COMMANDS 100000u

typedef struct {
    char *role;       /* "system", "user" or "assistant" */
    char *content;
} ll_mf_message;

typedef struct {
    char  **from;        /* every FROM argument in order (a name, or a path as written) */
    size_t  n_from;
    char  **adapters;    /* ADAPTER arguments (create refuses them: LL_ERR_UNSUPPORTED) */
    size_t  n_adapters;
    char   *template_text;   /* TEMPLATE; NULL when absent (last one wins) */
    char   *system;          /* SYSTEM; NULL when absent */
    char  **licenses;        /* LICENSE, each one a layer */
    size_t  n_licenses;
    ll_mf_message *messages;
    size_t  n_messages;
    char   *draft, *renderer, *parser;   /* DRAFT, RENDERER, PARSER (stored as text) */
    char   *requires;        /* REQUIRES, validated semver without the leading "v" */
    json_t *params;          /* object: name -> integer | real | true/false | array of strings
                                (stop); NULL when there is no PARAMETER */
    char  **deprecated;      /* deprecated PARAMETER names seen (dropped; the CLI prints
                                "warning: parameter <name> is deprecated") */
    size_t  n_deprecated;
} ll_modelfile;

/* Parse Modelfile text (UTF-8, or UTF-16 with a BOM). On success *out is a new ll_modelfile
 * with at least one FROM. Errors: LL_ERR_FORMAT with Ollama's message, LL_ERR_LIMIT over the
 * caps, LL_ERR_NOMEM. */
ll_status ll_modelfile_parse(ll_modelfile **out, const char *text, size_t n, ll_error *err);
void      ll_modelfile_free(ll_modelfile *mf);           /* NULL-safe */

/* An empty ll_modelfile to fill by hand (the server builds one from a create request). */
ll_modelfile *ll_modelfile_new(void);

/* Convert one PARAMETER value and merge it into *params (created when NULL): `stop` appends,
 * any other name replaces. Deprecated names return LL_OK and set *deprecated (may be NULL).
 * Errors (LL_ERR_FORMAT): unknown parameter 'x', invalid int value [x], invalid float value
 * [x], invalid bool value [x]. */
ll_status ll_modelfile_set_param(json_t **params, const char *name, const char *value,
                                 bool *deprecated, ll_error *err);

/* Render as `ollama show --modelfile` does: the three header lines naming display_name, a
 * blank line, FROM (mf->from[0]: the model blob's absolute path), ADAPTER per adapter, further
 * FROMs (projectors), TEMPLATE (always; `{{ .Prompt }}` when absent), SYSTEM, PARAMETER lines
 * sorted by name (lists one line per value), LICENSE per license, MESSAGE per message. Ends
 * with "\n". Returns a heap string (ll_free) or NULL on allocation failure. */
char *ll_modelfile_render(const ll_modelfile *mf, const char *display_name);

/* Argument quoting of the renderer: bare, "…" or """…""" (§16.6). Heap string or NULL. */
char *ll_modelfile_quote(const char *s);

/* The `parameters` text of /api/show (§4.7.5): "<name padded to 30> <Go literal>" lines,
 * sorted by name, joined by "\n" without a trailing one. Heap string ("" when params is
 * NULL or empty) or NULL on allocation failure. */
char *ll_modelfile_render_parameters(const json_t *params);

#endif
