/* libFuzzer target for the Go-template engine (src/template/gotmpl*).
 *
 * The input is template source. It is parsed, then run three ways over a fixed conversation
 * (system, user, assistant with a tool call, tool result, user; one tool with nested
 * properties; plus a JSON value with every kind of number, string and container): Go's
 * Execute over the chat data (ll_tmpl_render), and Ollama's Execute over chat and over
 * fill-in-middle Values (ll_tmpl_execute), with small limits so that loops end fast.
 * Checks: no crash, no leak, only the documented statuses, output NUL-terminated at the
 * reported length and within the output cap. */
#include "template/gotmpl.h"

#include <stdlib.h>
#include <string.h>

static json_t *chat_values, *fim_values, *raw_data;

static const char *chat_body =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"Be brief.\"},"
    "{\"role\": \"user\", \"content\": \"Weather in <Paris> & \\\"Rome\\\"?\", \"images\": [\"iVBORw0KGgo=\"]},"
    "{\"role\": \"assistant\", \"content\": \"\", \"thinking\": \"hmm\", \"tool_calls\": [{\"id\": \"call_1\", \"function\": {\"index\": 0,"
    "  \"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\", \"days\": 3, \"nested\": {\"b\": [1.5, null, true], \"a\": 1e21}}}}]},"
    "{\"role\": \"tool\", \"content\": \"{\\\"temp\\\": 18}\", \"tool_name\": \"get_weather\"},"
    "{\"role\": \"user\", \"content\": \"\\u00e9\\u2028 and {{ .System }}\"}],"
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get <weather>\","
    "  \"parameters\": {\"type\": \"object\", \"required\": [\"location\"], \"$defs\": {\"x\": 1},"
    "  \"properties\": {\"location\": {\"type\": \"string\", \"enum\": [\"a\", 2]},"
    "  \"days\": {\"type\": [\"integer\", \"null\"]}, \"opt\": {\"anyOf\": [{\"type\": \"object\", \"properties\": {\"k\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}}}, {\"type\": \"boolean\"}]}}}}}],"
    "\"think\": \"low\"}";

static void setup(void) {
    ll_error err = { 0 };
    json_t *body = json_loads(chat_body, 0, NULL);
    if (!body || ll_tmpl_values_from_request(&chat_values, body, "chat", NULL, &err) != LL_OK) abort();
    json_decref(body);
    body = json_loads("{\"prompt\": \"def f(\", \"suffix\": \"return x\"}", 0, NULL);
    if (!body || ll_tmpl_values_from_request(&fim_values, body, "generate", NULL, &err) != LL_OK) abort();
    json_decref(body);
    raw_data = json_deep_copy(chat_values);
    json_object_set_new(raw_data, "System", json_string("Be brief."));
    json_object_set_new(raw_data, "Response", json_string(""));
    json_object_set_new(raw_data, "Extra", json_loads("{\"n\": [0, -1, 1.5, 1e-7, 123456789, 1e300],"
        "\"s\": \"\\u0000x\", \"m\": {\"z\": {}, \"a\": []}, \"b\": false}", 0, NULL));
}

static void check(ll_status st, char *out, size_t n, const ll_tmpl_limits *lim) {
    if (st != LL_OK && st != LL_ERR_FORMAT && st != LL_ERR_LIMIT && st != LL_ERR_NOMEM) abort();
    if (st == LL_OK) {
        if (!out || out[n] != 0 || n > lim->max_output_bytes) abort();
    } else if (out) abort();
    ll_free(out);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (!chat_values) setup();
    ll_tmpl *t = NULL;
    ll_error err = { 0 };
    ll_status st = ll_tmpl_parse(&t, (const char *)data, size, &err);
    if (st != LL_OK) {
        if (t || (st != LL_ERR_FORMAT && st != LL_ERR_LIMIT && st != LL_ERR_NOMEM)) abort();
        return 0;
    }
    (void)ll_tmpl_uses(t, "tools");
    ll_tmpl_limits lim = { .max_output_bytes = 1 << 20, .max_steps = 20000, .max_scratch_bytes = 4 << 20,
                           .now_unix = 1700000000 };
    char *out = NULL;
    size_t n = 0;
    err = (ll_error){ 0 };
    st = ll_tmpl_render(t, raw_data, &lim, &out, &n, &err);
    check(st, out, n, &lim);
    out = NULL; err = (ll_error){ 0 };
    st = ll_tmpl_execute(t, chat_values, &lim, &out, &n, &err);
    check(st, out, n, &lim);
    out = NULL; err = (ll_error){ 0 };
    st = ll_tmpl_execute(t, fim_values, &lim, &out, &n, &err);
    check(st, out, n, &lim);
    ll_tmpl_free(t);
    return 0;
}
