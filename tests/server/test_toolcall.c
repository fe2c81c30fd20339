/* toolcall tests: the parser of §1.2.5 A on fixed model outputs — bare JSON, lists, tag
 * markers, "parameters" vs "arguments", text around calls, malformed JSON, and that feeding
 * the same output split at every byte boundary (and byte by byte) gives the same result as
 * feeding it whole. The marker derivation is checked on the Hermes-style and Llama 3.2
 * templates. */
#include "../test.h"

#include "server/json.h"
#include "server/toolcall.h"

static const char *TOOLS_JSON =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}},"
    " {\"type\":\"function\",\"function\":{\"name\":\"get\",\"parameters\":{}}},"
    " {\"type\":\"function\",\"function\":{\"name\":\"add\",\"parameters\":{}}}]";

typedef struct {
    char    content[4096];
    size_t  n_content;
    json_t *calls;
    ll_status st;
} result;

/* Feed out in pieces cut at the given offsets (sorted, may be empty), then the end. */
static result run_cuts(const char *marker, const char *out, const size_t *cuts, size_t n_cuts) {
    result r = { .calls = json_array() };
    ll_error err = { 0 };
    json_t *tools = NULL;
    ll_json_parse(TOOLS_JSON, strlen(TOOLS_JSON), &tools, &err);
    ll_toolcall *p = NULL;
    r.st = ll_toolcall_init(&p, tools, marker, &err);
    size_t n = strlen(out), at = 0;
    for (size_t i = 0; i <= n_cuts && r.st == LL_OK; i++) {
        size_t end = i < n_cuts ? cuts[i] : n;
        ll_str c;
        r.st = ll_toolcall_add(p, out + at, end - at, false, &c, r.calls, &err);
        if (r.st == LL_OK && r.n_content + c.n < sizeof r.content) { memcpy(r.content + r.n_content, c.p, c.n); r.n_content += c.n; }
        at = end;
    }
    ll_str c;
    if (r.st == LL_OK) r.st = ll_toolcall_add(p, "", 0, true, &c, r.calls, &err);
    if (r.st == LL_OK && r.n_content + c.n < sizeof r.content) { memcpy(r.content + r.n_content, c.p, c.n); r.n_content += c.n; }
    r.content[r.n_content] = 0;
    ll_toolcall_free(p);
    json_decref(tools);
    return r;
}

static result run(const char *marker, const char *out) { return run_cuts(marker, out, NULL, 0); }

static char *dump(const json_t *v) {
    return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

static void check_calls(const result *r, const char *want) {
    char *got = dump(r->calls);
    CHECK_MSG(got && !strcmp(got, want), "calls %s, want %s", got ? got : "(null)", want);
    free(got);
}

/* Every split into two pieces and the byte-by-byte feed give the whole-feed result. */
static void check_splits(const char *marker, const char *out) {
    result whole = run(marker, out);
    char *want = dump(whole.calls);
    size_t n = strlen(out);
    for (size_t cut = 0; cut <= n; cut++) {
        result r = run_cuts(marker, out, &cut, 1);
        char *got = dump(r.calls);
        CHECK_MSG(!strcmp(got, want) && !strcmp(r.content, whole.content),
                  "split at %zu of '%s': calls %s content '%s'", cut, out, got, r.content);
        free(got);
        json_decref(r.calls);
    }
    size_t *all = malloc((n + 1) * sizeof *all);
    for (size_t i = 0; i < n; i++) all[i] = i + 1;
    result r = run_cuts(marker, out, all, n ? n - 1 : 0);
    char *got = dump(r.calls);
    CHECK_MSG(!strcmp(got, want) && !strcmp(r.content, whole.content), "byte by byte '%s': %s '%s'", out, got, r.content);
    free(got);
    free(all);
    json_decref(r.calls);
    free(want);
    json_decref(whole.calls);
}

static void test_bare_json_parameters(void) {
    result r = run("{", "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"c\"}}");
    CHECK(r.st == LL_OK);
    check_calls(&r, "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\",\"unit\":\"c\"}}]");
    CHECK_EQ_INT(r.n_content, 0);
    json_decref(r.calls);
}

static void test_bare_json_arguments_keep_model_order(void) {
    result r = run("{", "  \n{\"name\":\"add\",\"arguments\":{\"z\":1,\"a\":2,\"m\":[1,{\"k\":\"}\"}]}}");
    check_calls(&r, "[{\"name\":\"add\",\"arguments\":{\"z\":1,\"a\":2,\"m\":[1,{\"k\":\"}\"}]}}]");
    CHECK_EQ_INT(r.n_content, 0);
    json_decref(r.calls);
}

static void test_arguments_as_string(void) {
    result r = run("{", "{\"name\":\"add\",\"arguments\":\"{\\\"a\\\": 1}\"}");
    check_calls(&r, "[{\"name\":\"add\",\"arguments\":{\"a\":1}}]");
    json_decref(r.calls);
}

static void test_list_of_calls(void) {
    result r = run("{", "[{\"name\":\"add\",\"arguments\":{\"a\":1}}, {\"name\":\"get_weather\",\"parameters\":{\"city\":\"Oslo\"}}]");
    check_calls(&r, "[{\"name\":\"add\",\"arguments\":{\"a\":1}},{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}]");
    CHECK_EQ_INT(r.n_content, 0);
    json_decref(r.calls);
}

static void test_tag_marker_hermes(void) {
    const char *out = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
                      "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>";
    result r = run("<tool_call>", out);
    check_calls(&r, "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}},{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}}]");
    CHECK_MSG(!strcmp(r.content, "Let me check.\n"), "content '%s'", r.content);
    json_decref(r.calls);
}

static void test_python_tag_marker(void) {
    result r = run("<|python_tag|>", "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}");
    check_calls(&r, "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Rome\"}}]");
    CHECK_EQ_INT(r.n_content, 0);
    json_decref(r.calls);
}

static void test_mistral_marker_list(void) {
    result r = run("[TOOL_CALLS]", "[TOOL_CALLS][{\"name\":\"add\",\"arguments\":{\"a\":3}}]");
    check_calls(&r, "[{\"name\":\"add\",\"arguments\":{\"a\":3}}]");
    CHECK_EQ_INT(r.n_content, 0);
    json_decref(r.calls);
}

static void test_longest_name_wins_and_name_outside_object(void) {
    /* "get" and "get_weather" both start here: the longer name is the call. */
    result r = run("<tool_call>", "<tool_call>get_weather {\"city\": \"Lima\"}");
    check_calls(&r, "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Lima\"}}]");
    json_decref(r.calls);
}

static void test_value_under_tool_name(void) {
    result r = run("{", "{\"get_weather\": {\"city\": \"Kyiv\"}}");
    check_calls(&r, "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Kyiv\"}}]");
    json_decref(r.calls);
}

static void test_call_without_arguments(void) {
    result r = run("{", "{\"name\": \"get\"}");
    check_calls(&r, "[{\"name\":\"get\",\"arguments\":{}}]");
    json_decref(r.calls);
}

static void test_text_before_bare_json_is_content(void) {
    const char *out = "The answer is {\"name\": \"add\", \"arguments\": {\"a\": 1}}";
    result r = run("{", out);
    CHECK_EQ_INT(json_array_size(r.calls), 0);
    CHECK_MSG(!strcmp(r.content, out), "content '%s'", r.content);
    json_decref(r.calls);
}

static void test_plain_text_streams(void) {
    /* Ordinary text with a bare marker is released at once, not held to the end. */
    ll_error err = { 0 };
    json_t *tools = NULL, *calls = json_array();
    ll_json_parse(TOOLS_JSON, strlen(TOOLS_JSON), &tools, &err);
    ll_toolcall *p = NULL;
    CHECK(ll_toolcall_init(&p, tools, "{", &err) == LL_OK);
    ll_str c;
    CHECK(ll_toolcall_add(p, "Hello", 5, false, &c, calls, &err) == LL_OK);
    CHECK(c.n == 5 && !memcmp(c.p, "Hello", 5));
    CHECK(ll_toolcall_add(p, " {x}", 4, false, &c, calls, &err) == LL_OK);
    CHECK(c.n == 4);
    /* With a tag marker, text streams but a partial marker is held. */
    ll_toolcall_free(p);
    CHECK(ll_toolcall_init(&p, tools, "<tool_call>", &err) == LL_OK);
    CHECK(ll_toolcall_add(p, "Hi <tool", 8, false, &c, calls, &err) == LL_OK);
    CHECK(c.n == 3 && !memcmp(c.p, "Hi ", 3));
    CHECK(ll_toolcall_add(p, "box", 3, false, &c, calls, &err) == LL_OK);
    CHECK(c.n == 8 && !memcmp(c.p, "<toolbox", 8));
    ll_toolcall_free(p);
    json_decref(tools);
    json_decref(calls);
}

static void test_malformed_json_stays_content(void) {
    const char *out = "{\"name\": \"add\", \"arguments\": {\"a\": 1,}}";
    result r = run("{", out);
    CHECK_EQ_INT(json_array_size(r.calls), 0);
    CHECK_MSG(!strcmp(r.content, out), "content '%s'", r.content);
    json_decref(r.calls);
    /* An unfinished object at the end is content too. */
    const char *cut = "{\"name\": \"add\", \"arguments\": {\"a\": 1";
    r = run("{", cut);
    CHECK_EQ_INT(json_array_size(r.calls), 0);
    CHECK_MSG(!strcmp(r.content, cut), "content '%s'", r.content);
    json_decref(r.calls);
    /* JSON that names no tool is content. */
    const char *other = "{\"answer\": 42}";
    r = run("{", other);
    CHECK_EQ_INT(json_array_size(r.calls), 0);
    CHECK_MSG(!strcmp(r.content, other), "content '%s'", r.content);
    json_decref(r.calls);
}

static void test_tag_leftovers_dropped(void) {
    result r = run("<tool_call>", "ok <tool_call>{\"name\": \"nope\"}</tool_call>");
    CHECK_EQ_INT(json_array_size(r.calls), 0);
    CHECK_MSG(!strcmp(r.content, "ok "), "content '%s'", r.content);
    json_decref(r.calls);
}

static void test_every_split_same_result(void) {
    check_splits("{", " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris \\\"{x\"}}");
    check_splits("{", "[{\"name\":\"add\",\"arguments\":{\"a\":1}},{\"name\":\"get\",\"arguments\":{}}]");
    check_splits("<tool_call>", "Sure: <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\"}}\n</tool_call>");
    check_splits("<|python_tag|>", "x<|python_tag|>{\"name\": \"add\", \"parameters\": {\"a\": 2}}");
    check_splits("{", "plain text answer, no call { at all }");
    check_splits("{", "{\"not\": \"a call\"}");
    check_splits("<tool_call>", "<tool_cal no marker here");
}

static void test_limit(void) {
    ll_error err = { 0 };
    json_t *tools = NULL, *calls = json_array();
    ll_json_parse(TOOLS_JSON, strlen(TOOLS_JSON), &tools, &err);
    ll_toolcall *p = NULL;
    CHECK(ll_toolcall_init(&p, tools, "{", &err) == LL_OK);
    size_t n = 1 << 16;
    char *big = malloc(n);
    memset(big, '{', n);
    ll_str c;
    ll_status st = LL_OK;
    for (size_t i = 0; i < 80 && st == LL_OK; i++) st = ll_toolcall_add(p, big, n, false, &c, calls, &err);
    CHECK(st == LL_ERR_LIMIT);
    free(big);
    ll_toolcall_free(p);
    json_decref(tools);
    json_decref(calls);
}

static char *marker_of(const char *src) {
    ll_tmpl *t = NULL;
    ll_error err = { 0 };
    if (ll_tmpl_parse(&t, src, strlen(src), &err) != LL_OK) { fprintf(stderr, "%s\n", err.msg); return NULL; }
    char *m = ll_toolcall_marker(t);
    ll_tmpl_free(t);
    return m;
}

static void test_marker_from_template(void) {
    const char *hermes =
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
        "{{- if and (eq .Role \"assistant\") .ToolCalls }}\n"
        "{{- range .ToolCalls }}<tool_call>\n{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}\n</tool_call>{{ end }}"
        "{{- else }}{{ .Content }}{{ end }}<|im_end|>\n{{ end }}<|im_start|>assistant\n";
    char *m = marker_of(hermes);
    CHECK_MSG(m && !strcmp(m, "<tool_call>"), "marker '%s'", m ? m : "(null)");
    ll_free(m);
    const char *llama =
        "{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 }}"
        "{{- if eq .Role \"user\" }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
        "{{- else if eq .Role \"assistant\" }}<|start_header_id|>assistant<|end_header_id|>\n"
        "{{- if .ToolCalls }}\n{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"parameters\": {{ .Function.Arguments }}}{{ end }}"
        "{{- else }}\n\n{{ .Content }}{{ end }}{{ if not $last }}<|eot_id|>{{ end }}{{ end }}{{ end }}";
    m = marker_of(llama);
    CHECK_MSG(m && !strcmp(m, "{"), "marker '%s'", m ? m : "(null)");
    ll_free(m);
    m = marker_of("{{ .Prompt }}");
    CHECK_MSG(m && !strcmp(m, "{"), "marker '%s'", m ? m : "(null)");
    ll_free(m);
}

static ll_toolcall_syntax syntax_of(const char *src) {
    ll_toolcall_syntax syn = { 0 };
    ll_tmpl *t = NULL;
    ll_error err = { 0 };
    if (ll_tmpl_parse(&t, src, strlen(src), &err) != LL_OK) { fprintf(stderr, "%s\n", err.msg); return syn; }
    ll_toolcall_syntax_of(t, &syn);
    ll_tmpl_free(t);
    return syn;
}

static void test_call_syntax_from_template(void) {
    ll_toolcall_syntax s = syntax_of(
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
        "{{- if and (eq .Role \"assistant\") .ToolCalls }}\n"
        "{{- range .ToolCalls }}<tool_call>\n{\"arguments\": {{ .Function.Arguments }}, \"name\": \"{{ .Function.Name }}\"}\n</tool_call>{{ end }}"
        "{{- else }}{{ .Content }}{{ end }}<|im_end|>\n{{ end }}<|im_start|>assistant\n");
    CHECK(s.marker && !strcmp(s.marker, "<tool_call>") && !s.bare && s.json && !s.array);
    CHECK_MSG(!strcmp(s.name_key, "name") && !strcmp(s.args_key, "arguments") && s.args_first, "%s %s", s.name_key, s.args_key);
    ll_toolcall_syntax_clear(&s);
    s = syntax_of(
        "{{- range .Messages }}{{- if eq .Role \"assistant\" }}A:{{- if .ToolCalls }}\n"
        "{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"parameters\": {{ .Function.Arguments }}}{{ end }}"
        "{{- else }}{{ .Content }}{{ end }}{{ else }}U:{{ .Content }}{{ end }}{{ end }}");
    CHECK(s.marker && !strcmp(s.marker, "{") && s.bare && s.json && !s.args_first);
    CHECK_MSG(!strcmp(s.name_key, "name") && !strcmp(s.args_key, "parameters"), "%s %s", s.name_key, s.args_key);
    ll_toolcall_syntax_clear(&s);
    /* Mistral: the array's bracket is part of the marker, each call an object */
    s = syntax_of(
        "{{- range .Messages }}{{- if eq .Role \"assistant\" }}{{- if .ToolCalls }}[TOOL_CALLS] ["
        "{{- range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ json .Function.Arguments }}}{{ end }}]"
        "{{- else }}{{ .Content }}{{ end }}{{ else }}[INST]{{ .Content }}[/INST]{{ end }}{{ end }}");
    CHECK_MSG(s.marker && s.json && !strcmp(s.args_key, "arguments"), "marker '%s' json %d", s.marker ? s.marker : "", s.json);
    ll_toolcall_syntax_clear(&s);
    /* not JSON after the marker: cannot be constrained */
    s = syntax_of(
        "{{- range .Messages }}{{- if eq .Role \"assistant\" }}{{- if .ToolCalls }}"
        "{{- range .ToolCalls }}<function={{ .Function.Name }}>{{ .Function.Arguments }}</function>{{ end }}"
        "{{- else }}{{ .Content }}{{ end }}{{ else }}{{ .Content }}{{ end }}{{ end }}");
    CHECK(s.marker && !s.json);
    ll_toolcall_syntax_clear(&s);
    s = syntax_of("{{ .Prompt }}");
    CHECK(s.marker && s.bare && !s.json);
    ll_toolcall_syntax_clear(&s);
}

static void test_calling_and_held_bytes(void) {
    json_t *tools = json_pack("[{s:{s:s}}]", "function", "name", "f");
    ll_toolcall *p = NULL;
    ll_error err = { 0 };
    json_t *calls = json_array();
    ll_str c;
    CHECK(ll_toolcall_init(&p, tools, "<tool_call>", &err) == LL_OK);
    CHECK(ll_toolcall_add(p, "hi <tool_", 9, false, &c, calls, &err) == LL_OK && !ll_toolcall_calling(p));
    CHECK(ll_toolcall_add(p, "call>\n{\"na", 10, false, &c, calls, &err) == LL_OK && ll_toolcall_calling(p));
    ll_str h = ll_toolcall_held(p);
    CHECK_MSG(h.n == 5 && !memcmp(h.p, "\n{\"na", 5), "held '%.*s'", (int)h.n, h.p);
    ll_toolcall_free(p);
    CHECK(ll_toolcall_init(&p, tools, "{", &err) == LL_OK);
    CHECK(ll_toolcall_add(p, " \n", 2, false, &c, calls, &err) == LL_OK && !ll_toolcall_calling(p));
    CHECK(ll_toolcall_add(p, " {\"", 3, false, &c, calls, &err) == LL_OK && ll_toolcall_calling(p));
    h = ll_toolcall_held(p);
    CHECK_MSG(h.n == 2 && !memcmp(h.p, "{\"", 2), "held '%.*s'", (int)h.n, h.p);
    ll_toolcall_free(p);
    json_decref(tools);
    json_decref(calls);
}

int main(void) {
    RUN(test_bare_json_parameters);
    RUN(test_bare_json_arguments_keep_model_order);
    RUN(test_arguments_as_string);
    RUN(test_list_of_calls);
    RUN(test_tag_marker_hermes);
    RUN(test_python_tag_marker);
    RUN(test_mistral_marker_list);
    RUN(test_longest_name_wins_and_name_outside_object);
    RUN(test_value_under_tool_name);
    RUN(test_call_without_arguments);
    RUN(test_text_before_bare_json_is_content);
    RUN(test_plain_text_streams);
    RUN(test_malformed_json_stays_content);
    RUN(test_tag_leftovers_dropped);
    RUN(test_every_split_same_result);
    RUN(test_limit);
    RUN(test_marker_from_template);
    RUN(test_call_syntax_from_template);
    RUN(test_calling_and_held_bytes);
    return test_summary();
}
