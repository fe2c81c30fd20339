/* gotmpl: Ollama's prompt templates — the subset of Go's text/template that Ollama's TEMPLATE
 * layers use — parsed and executed by our own code, sandboxed.
 *
 *     ll_tmpl *t;
 *     if (ll_tmpl_parse(&t, text, len, &err) != LL_OK) ... 400 with err.msg (T1, T3, T4, T9) ...
 *     json_t *values;                                   // what Ollama's template.Values holds
 *     ll_tmpl_values_from_request(&values, body, "chat", NULL, &err);
 *     if (json_array_size(json_object_get(body, "tools")) && !ll_tmpl_uses(t, "tools"))
 *         ... 400 "<model> does not support tools" (or ll_tmpl_check_request) ...
 *     char *prompt; size_t n;
 *     ll_tmpl_execute(t, values, NULL, &prompt, &n, &err);   // Ollama's Template.Execute
 *     ... tokenize prompt ...; ll_free(prompt); json_decref(values); ll_tmpl_free(t);
 *
 * Two levels:
 *   ll_tmpl_render   is Go's tmpl.Execute(w, data): one run over a data tree.
 *   ll_tmpl_execute  is Ollama's template.Execute(w, Values) (template/template.go at
 *                    v0.33.0-rc2): collate the messages (system contents joined with "\n\n",
 *                    same-role neighbours merged), then pick one of three modes — fill-in-middle
 *                    (Prompt and Suffix set), messages (the template mentions Messages), or the
 *                    legacy Prompt/Response mode, run once per exchange with the last run cut
 *                    after {{ .Response }} (llama3-prompt-format.md §9.5).
 *
 * Data model. The data is a jansson tree. The root is Go's map[string]any: a missing key is
 * Go's nil interface (prints "<no value>"). Under the root keys "Messages" and "Tools" the tree
 * holds Ollama API JSON (lower-case keys: "role", "tool_calls", "function", ...) and the engine
 * views it through the Go types Ollama hands its templates (templateMessage, templateTool,
 * api.ToolProperty, ...): `.Role` reads key "role", a missing key is the Go zero value, a
 * field the Go type lacks is an error (T8), a tool list / tool / argument map / properties map
 * prints as Go's json.Marshal of those types (fixed key order, sorted map keys, <>& escaped),
 * a message prints as a Go struct. Anything else is dynamic JSON as Go's encoding/json decodes
 * it into `any`: objects are map[string]any (sorted keys when ranged or printed), numbers are
 * float64 (printed with %v: 1e+06), arrays []any. ll_tmpl_values_from_request builds such a
 * tree from a request body, normalised the way Go's json.Unmarshal reads it (case-insensitive
 * keys, unknown keys dropped, wrong types rejected).
 *
 * Go semantics kept: truthiness (empty string/slice/map, 0, false, nil are false; structs are
 * true), `and`/`or` return the deciding operand, `eq` with mixed kinds is an error unless one
 * side is missing, `len` of a string counts bytes, range over a map is in sorted key order,
 * printing of nil/maps/slices/structs as fmt does, `{{-`/`-}}` trim ASCII whitespace only.
 * Deliberate differences (no Go equivalent worth copying): an unknown field on a message or
 * tool names the type in words ("message has no field 'Foo'"); a nested pointer prints as
 * &{...} instead of a memory address; errors carry "template: LINE:COL: " positions.
 *
 * Sandbox (fault rows T3-T7): source <= 1 MiB, nesting <= 100 (parser and executor use bounded
 * recursion only), template calls <= 64 deep, output <= 16 MiB, <= 10^7 steps, scratch memory
 * bounded, printf widths <= 4096. No function touches files, the environment or the network.
 * A parsed template is immutable and reference counted (T14): renders may run on it from any
 * number of threads at once.
 */
#ifndef LL_TEMPLATE_GOTMPL_H
#define LL_TEMPLATE_GOTMPL_H

#include "core/core.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ll_tmpl ll_tmpl;

#define LL_TMPL_MAX_SOURCE_BYTES ((size_t)1 << 20)   /* T3 */
#define LL_TMPL_MAX_NESTING      100                 /* T4 */
#define LL_TMPL_MAX_CALL_DEPTH   64                  /* T5 */

typedef struct {
    size_t   max_output_bytes;  /* 0: 16 MiB (T6) */
    uint64_t max_steps;         /* 0: 10^7 (T6); a step is one node, command or iteration */
    size_t   max_scratch_bytes; /* 0: 64 MiB of intermediate strings (print, printf, json) */
    int64_t  now_unix;          /* 0: time(NULL); what currentDate/yesterdayDate see */
} ll_tmpl_limits;

/* Parses src[0, n) (need not be NUL-terminated). An empty source is Ollama's default template
 * `{{ .Prompt }}` (T2). As Ollama's template.Parse does, a template that mentions neither
 * Messages nor Response gets `{{ .Response }}` appended. Errors: LL_ERR_FORMAT with Go's
 * parser message and position ("template: 3:14: unexpected {{end}}"), LL_ERR_LIMIT (T3, T4),
 * LL_ERR_NOMEM. On success *out has one reference. */
ll_status ll_tmpl_parse(ll_tmpl **out, const char *src, size_t n, ll_error *err);

/* Takes another reference (T14: a request keeps the template it started with). */
ll_tmpl *ll_tmpl_ref(ll_tmpl *t);
/* Drops a reference; the last one frees. NULL-safe. */
void ll_tmpl_free(ll_tmpl *t);

/* Whether the template (or one it defines) names the identifier, compared case-insensitively
 * as Ollama's Template.Vars does: field names and variable names, e.g. "tools" (capability
 * `tools`), "suffix" (`insert`), "messages" (chat mode), "response", "toolcalls". */
bool ll_tmpl_uses(const ll_tmpl *t, const char *ident);

/* Runs the template once over data (Go's Execute). *out is NUL-terminated, ll_free it.
 * lim may be NULL (defaults). Errors: LL_ERR_FORMAT for execution errors (bad types, index
 * out of range, missing struct field; HTTP 500), LL_ERR_LIMIT (T5, T6, T7), LL_ERR_NOMEM. */
ll_status ll_tmpl_render(const ll_tmpl *t, const json_t *data, const ll_tmpl_limits *lim,
                         char **out, size_t *out_len, ll_error *err);

/* Ollama's template.Execute over a Values tree (see ll_tmpl_values_from_request):
 *   {"Messages": [api messages], "Tools": [api tools] | null, "Prompt": "", "Suffix": "",
 *    "Think": false, "ThinkLevel": "", "IsThinkSet": false}
 * Missing keys count as zero values. Same outputs and errors as ll_tmpl_render. */
ll_status ll_tmpl_execute(const ll_tmpl *t, const json_t *values, const ll_tmpl_limits *lim,
                          char **out, size_t *out_len, ll_error *err);

/* What the model contributes to a request (NULL = nothing). */
typedef struct {
    const char   *system;     /* the model's SYSTEM, or NULL */
    const json_t *messages;   /* the model's MESSAGE history (array of API messages), or NULL */
    bool          thinking;   /* the model has the thinking capability: `think` defaults on */
} ll_tmpl_model;

/* Builds the Values Ollama 0.33 renders for a request body (server/routes.go):
 *   endpoint "chat":     Messages = model history + body.messages, with the model's SYSTEM in
 *                        front unless the request starts with a system message; Tools =
 *                        body.tools (null when absent).
 *   endpoint "generate": with a non-empty suffix, only Prompt and Suffix; otherwise Messages =
 *                        [system (body.system, else the model's)] + model history (not when
 *                        body.context is present) + [user prompt, with body.images]; Tools =
 *                        [] (Ollama passes an empty list), null when body.template is set.
 *                        raw: true -> *out = NULL (the prompt is used verbatim), and LL_ERR_ARG
 *                        "raw mode does not support template, system, or context" when one
 *                        of those is also given.
 * Think/ThinkLevel/IsThinkSet from body.think as api.ThinkValue reads it. Messages and tools
 * are normalised as Go's json.Unmarshal reads them into api.Message / api.Tool: keys matched
 * case-insensitively, unknown keys dropped, roles lower-cased; a wrong type is LL_ERR_FORMAT
 * naming the field (HTTP 400). The caller owns *out (json_decref). Truncation to the context
 * window (§7) is the caller's: run ll_tmpl_execute on values with fewer messages. */
ll_status ll_tmpl_values_from_request(json_t **out, const json_t *body, const char *endpoint,
                                      const ll_tmpl_model *model, ll_error *err);

/* The capability checks Ollama makes before rendering: tools in a chat request need a
 * template that uses Tools, a generate suffix one that uses Suffix. LL_ERR_UNSUPPORTED with
 * Ollama's text "<model_name> does not support tools|insert" (HTTP 400). (Thinking is inferred
 * from think tags, which is the server's business.) */
ll_status ll_tmpl_check_request(const ll_tmpl *t, const json_t *body, const char *endpoint,
                                const char *model_name, ll_error *err);

#endif
