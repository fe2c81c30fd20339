/* Tests of the Go-template engine (src/template/gotmpl*): the 66 Ollama 0.33 renders of
 * ../shared/templates/rendering.jsonl byte for byte, each construct, and the T rows of
 * ../shared/spec/fault-cases.md that concern the engine. */
#include "template/gotmpl.h"
#include "../test.h"

/* ---- helpers ---- */

/* render src over data (JSON text, NULL = {}); returns the output (free) or NULL with err */
static char *render(const char *src, const char *data_json, ll_error *err) {
    ll_tmpl *t;
    if (ll_tmpl_parse(&t, src, strlen(src), err) != LL_OK) return NULL;
    json_error_t je;
    json_t *data = json_loads(data_json ? data_json : "{}", 0, &je);
    if (!data) { fprintf(stderr, "bad test JSON: %s\n", je.text); ll_tmpl_free(t); return NULL; }
    char *out = NULL;
    size_t n;
    ll_tmpl_render(t, data, NULL, &out, &n, err);
    json_decref(data);
    ll_tmpl_free(t);
    return out;
}

/* expect src over data to render exactly want */
#define CHECK_RENDER(src, data, want) do { ll_error _e = { 0 }; char *_o = render((src), (data), &_e); \
    CHECK_MSG(_o && strcmp(_o, (want)) == 0, "%s -> '%s' (want '%s') %s", (src), _o ? _o : "(null)", (want), _e.msg); \
    ll_free(_o); } while (0)

/* expect an error whose message contains needle */
#define CHECK_RENDER_ERR(src, data, want_code, needle) do { ll_error _e = { 0 }; char *_o = render((src), (data), &_e); \
    CHECK_MSG(!_o && _e.code == (want_code) && strstr(_e.msg, (needle)), "%s -> '%s' err %d '%s' (want %d '%s')", \
              (src), _o ? _o : "(null)", _e.code, _e.msg, (want_code), (needle)); ll_free(_o); } while (0)

/* ---- rendering.jsonl: Ollama 0.33's own renders ---- */

static void test_rendering_jsonl(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/templates/rendering.jsonl", LL_SHARED_DIR);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int n = 0, ok = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *rec = json_loads(line, 0, &je);
        CHECK(rec != NULL);
        if (!rec) continue;
        n++;
        const char *tid = json_string_value(json_object_get(rec, "template_id"));
        const char *rid = json_string_value(json_object_get(rec, "request_id"));
        const char *endpoint = json_string_value(json_object_get(rec, "endpoint"));
        json_t *tmpl_src = json_object_get(rec, "template");
        json_t *body = json_object_get(rec, "body");
        int status = (int)json_integer_value(json_object_get(rec, "status"));
        ll_error err = { 0 };
        ll_tmpl *t = NULL;
        ll_status st = ll_tmpl_parse(&t, json_string_value(tmpl_src), json_string_length(tmpl_src), &err);
        CHECK_MSG(st == LL_OK, "%s: parse: %s", tid, err.msg);
        if (st != LL_OK) { json_decref(rec); continue; }
        char name[128];
        snprintf(name, sizeof name, "registry.ollama.ai/library/tmpl-%s:latest", tid);
        st = ll_tmpl_check_request(t, body, endpoint, name, &err);
        if (status == 400) {
            const char *want = json_string_value(json_object_get(rec, "error"));
            bool good = st == LL_ERR_UNSUPPORTED && want && strcmp(err.msg, want) == 0;
            CHECK_MSG(good, "%s/%s: want 400 '%s', got %d '%s'", tid, rid, want ? want : "", st, err.msg);
            ok += good;
        } else {
            CHECK_MSG(st == LL_OK, "%s/%s: check: %s", tid, rid, err.msg);
            json_t *values = NULL;
            st = ll_tmpl_values_from_request(&values, body, endpoint, NULL, &err);
            CHECK_MSG(st == LL_OK && values, "%s/%s: values: %s", tid, rid, err.msg);
            char *out = NULL;
            size_t out_n = 0;
            if (values) st = ll_tmpl_execute(t, values, NULL, &out, &out_n, &err);
            json_t *want = json_object_get(rec, "rendered");
            bool good = out && out_n == json_string_length(want) &&
                        memcmp(out, json_string_value(want), out_n) == 0;
            if (!good) {
                json_t *got = out ? json_stringn(out, out_n) : NULL;
                char *g = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
                char *w = json_dumps(want, JSON_ENCODE_ANY);
                CHECK_MSG(good, "%s/%s: err '%s'\n  got  %s\n  want %s", tid, rid, err.msg, g ? g : "(null)", w);
                free(g); free(w); json_decref(got);
            }
            ok += good;
            ll_free(out);
            json_decref(values);
        }
        ll_tmpl_free(t);
        json_decref(rec);
    }
    free(line);
    fclose(f);
    printf("rendering.jsonl: %d of %d records match\n", ok, n);
    CHECK_EQ_INT(n, 66);
    CHECK_EQ_INT(ok, n);
}


/* the llama3.2 registry TEMPLATE (llama3-prompt-format.md §3), from rendering.jsonl */
static char *llama32_src(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/templates/rendering.jsonl", LL_SHARED_DIR);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *line = NULL, *src = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, f) > 0) {
        json_t *rec = json_loads(line, 0, NULL);
        const char *s = json_string_value(json_object_get(rec, "template"));
        if (s) src = strdup(s);
        json_decref(rec);
    }
    free(line);
    fclose(f);
    return src;
}

/* Ollama's full flow for a chat or generate body against template src */
static char *execute_body(const char *src, const char *endpoint, const char *body_json,
                          const ll_tmpl_model *model, ll_error *err) {
    ll_tmpl *t;
    if (ll_tmpl_parse(&t, src, strlen(src), err) != LL_OK) return NULL;
    json_t *body = json_loads(body_json, 0, NULL), *values = NULL;
    char *out = NULL;
    size_t n;
    if (body && ll_tmpl_values_from_request(&values, body, endpoint, model, err) == LL_OK && values)
        ll_tmpl_execute(t, values, NULL, &out, &n, err);
    json_decref(values);
    json_decref(body);
    ll_tmpl_free(t);
    return out;
}

/* ---- constructs ---- */

static void test_text_actions_and_trim_markers(void) {
    CHECK_RENDER("plain text", NULL, "plain text");
    CHECK_RENDER("a {{- \"x\" -}} \n b", NULL, "axb");
    CHECK_RENDER("a {{\"x\"}} b", NULL, "a x b");
    CHECK_RENDER("{{-3}}", NULL, "-3");                        /* a number, not a trim marker */
    CHECK_RENDER("a\n\t {{- /* comment */ -}} \r\n b", NULL, "ab");
    CHECK_RENDER("a{{/* c */}}b", NULL, "ab");
    CHECK_RENDER("{{ \"a\\tb\\u00e9\\x41\\101\" }}", NULL, "a\tb\xc3\xa9" "AA");
    CHECK_RENDER("{{ `raw\\n` }}", NULL, "raw\\n");
    CHECK_RENDER("{{ 'a' }} {{ 0x10 }} {{ 1_000 }} {{ 1.5 }} {{ 2.0 }} {{ 1e3 }}", NULL, "97 16 1000 1.5 2 1000");
    CHECK_RENDER("{{ true }} {{ false }}", NULL, "true false");
    CHECK_RENDER("{{\n.a\n}}", "{\"a\": \"multi-line action\"}", "multi-line action");
}

static void test_pipelines_and_parens(void) {
    CHECK_RENDER("{{ \"abc\" | len }}", NULL, "3");
    CHECK_RENDER("{{ .x | printf \"%s!\" }}", "{\"x\": \"hi\"}", "hi!");
    CHECK_RENDER("{{ .x | printf \"%s-%s\" \"a\" }}", "{\"x\": \"b\"}", "a-b");
    CHECK_RENDER("{{ len (slice .l 1) }}", "{\"l\": [1, 2, 3]}", "2");
    CHECK_RENDER("{{ (index .l 1).n }}", "{\"l\": [{\"n\": 1}, {\"n\": \"two\"}]}", "two");
    CHECK_RENDER_ERR("{{ .x | \"lit\" }}", NULL, LL_ERR_FORMAT, "non executable command");
}

static void test_variables_and_scope(void) {
    CHECK_RENDER("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", NULL, "2");
    CHECK_RENDER("{{ range .l }}{{ $.name }}{{ . }}{{ end }}", "{\"l\": [1, 2], \"name\": \"n\"}", "n1n2");
    CHECK_RENDER("{{ $x := \"out\" }}{{ if true }}{{ $x := \"in\" }}{{ $x }}{{ end }}{{ $x }}", NULL, "inout");
    CHECK_RENDER("{{ $x := 0 }}{{ range .l }}{{ $x = . }}{{ end }}{{ $x }}", "{\"l\": [1, 2, 3]}", "3");
    CHECK_RENDER_ERR("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}", NULL, LL_ERR_FORMAT, "undefined variable \"$y\"");
    CHECK_RENDER("{{ with $v := .a }}{{ $v }}{{ end }}", "{\"a\": \"w\"}", "w");
}

static void test_fields_maps_and_missing_keys(void) {
    CHECK_RENDER("{{ .a.b.c }}", "{\"a\": {\"b\": {\"c\": \"deep\"}}}", "deep");
    /* map[string]any with missingkey=zero: Go prints <no value> (Ollama's real output) */
    CHECK_RENDER("[{{ .Missing }}]", NULL, "[<no value>]");
    CHECK_RENDER("[{{ print .Missing }}]", NULL, "[<nil>]");
    CHECK_RENDER("{{ if .Missing }}y{{ else }}n{{ end }}", NULL, "n");
    CHECK_RENDER_ERR("{{ .Missing.x }}", NULL, LL_ERR_FORMAT, "nil pointer evaluating interface {}.x");
    CHECK_RENDER_ERR("{{ .s.x }}", "{\"s\": \"str\"}", LL_ERR_FORMAT, "can't evaluate field x in type string");
    CHECK_RENDER("{{ $x := .Missing }}[{{ $x.y }}]", NULL, "[<no value>]");   /* invalid receiver: zero */
}

static void test_if_else_if_chain(void) {
    const char *src = "{{ if eq .r \"a\" }}A{{ else if eq .r \"b\" }}B{{ else if .r }}other{{ else }}none{{ end }}";
    CHECK_RENDER(src, "{\"r\": \"a\"}", "A");
    CHECK_RENDER(src, "{\"r\": \"b\"}", "B");
    CHECK_RENDER(src, "{\"r\": \"c\"}", "other");
    CHECK_RENDER(src, "{\"r\": \"\"}", "none");
    /* Go truthiness: empty string/list/map, 0, false, nil are false; structs true */
    CHECK_RENDER("{{ if .a }}1{{ end }}{{ if .b }}2{{ end }}{{ if .c }}3{{ end }}{{ if .d }}4{{ end }}{{ if .e }}5{{ end }}{{ if .f }}6{{ end }}",
                 "{\"a\": [], \"b\": {}, \"c\": 0, \"d\": null, \"e\": [0], \"f\": 0.5}", "56");
}

static void test_range_forms(void) {
    CHECK_RENDER("{{ range $i, $v := .l }}{{ $i }}={{ $v }};{{ end }}", "{\"l\": [\"a\", \"b\"]}", "0=a;1=b;");
    CHECK_RENDER("{{ range $v := .l }}{{ $v }}{{ end }}", "{\"l\": [\"a\", \"b\"]}", "ab");
    /* maps range in sorted key order */
    CHECK_RENDER("{{ range $k, $v := .m }}{{ $k }}:{{ $v }} {{ end }}", "{\"m\": {\"z\": 1, \"a\": 2, \"M\": 3}}", "M:3 a:2 z:1 ");
    CHECK_RENDER("{{ range .l }}x{{ else }}empty{{ end }}", "{\"l\": []}", "empty");
    CHECK_RENDER("{{ range .nope }}x{{ else }}empty{{ end }}", NULL, "empty");
    CHECK_RENDER("{{ range .l }}{{ if eq . 3.0 }}{{ break }}{{ end }}{{ if eq . 1.0 }}{{ continue }}{{ end }}{{ . }}{{ end }}",
                 "{\"l\": [0, 1, 2, 3, 4]}", "02");
    CHECK_RENDER("{{ range 3 }}{{ . }}{{ end }}", NULL, "012");
    CHECK_RENDER_ERR("{{ range .s }}{{ end }}", "{\"s\": \"str\"}", LL_ERR_FORMAT, "range can't iterate over str");
}

static void test_with_and_else_with(void) {
    CHECK_RENDER("{{ with .a }}{{ .b }}{{ end }}", "{\"a\": {\"b\": \"in\"}}", "in");
    CHECK_RENDER("{{ with .a }}x{{ else with .c }}{{ . }}{{ else }}none{{ end }}", "{\"c\": \"C\"}", "C");
    CHECK_RENDER("{{ with .a }}x{{ else }}none{{ end }}", "{\"a\": \"\"}", "none");
}

static void test_logic_and_comparison_functions(void) {
    CHECK_RENDER("{{ and 1 0 2 }} {{ and 1 2 }} {{ or \"\" \"x\" }} {{ or 0 \"\" }}", NULL, "0 2 x ");
    CHECK_RENDER("{{ not 0 }} {{ not \"a\" }}", NULL, "true false");
    CHECK_RENDER("{{ eq 1 2 3 1 }} {{ eq \"a\" \"b\" }} {{ ne 1 2 }} {{ eq .Missing \"x\" }}", NULL, "true false true false");
    CHECK_RENDER_ERR("{{ eq 1 \"1\" }}", NULL, LL_ERR_FORMAT, "incompatible types for comparison");
    CHECK_RENDER_ERR("{{ eq 1 1.5 }}", NULL, LL_ERR_FORMAT, "incompatible types for comparison");
    CHECK_RENDER_ERR("{{ eq .l .l }}", "{\"l\": [1]}", LL_ERR_FORMAT, "non-comparable");
    CHECK_RENDER("{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}", NULL, "true true true false");
    /* JSON numbers are float64, template integers int: Go refuses to compare them */
    CHECK_RENDER_ERR("{{ lt .n 2 }}", "{\"n\": 1}", LL_ERR_FORMAT, "incompatible types");
    CHECK_RENDER("{{ lt .n 2.0 }}", "{\"n\": 1}", "true");
}

static void test_len_index_slice(void) {
    CHECK_RENDER("{{ len \"\xc3\xa9\" }} {{ len .l }} {{ len .m }}", "{\"l\": [1, 2], \"m\": {\"a\": 1}}", "2 2 1");
    CHECK_RENDER("{{ index .l 1 }} {{ index .m \"k\" }} {{ index .n 0 1 }} {{ index \"AB\" 1 }}",
                 "{\"l\": [\"a\", \"b\"], \"m\": {\"k\": \"v\"}, \"n\": [[1, 2]]}", "b v 2 66");
    CHECK_RENDER("[{{ index .m \"none\" }}]", "{\"m\": {}}", "[<no value>]");
    CHECK_RENDER("{{ slice \"hello\" 1 3 }} {{ slice .l 1 }} {{ slice .l 0 1 }}", "{\"l\": [1, 2, 3]}", "el [2 3] [1]");
}

static void test_print_printf_println(void) {
    CHECK_RENDER("{{ print 1 2 \"a\" 3 \"b\" \"c\" }}", NULL, "1 2a3bc");
    CHECK_RENDER("{{ println \"a\" 1 }}", NULL, "a 1\n");
    CHECK_RENDER("{{ printf \"%d|%5d|%-3d|%03d|%x|%X|%o|%b|%c\" 42 42 7 7 255 255 8 5 65 }}", NULL,
                 "42|   42|7  |007|ff|FF|10|101|A");
    CHECK_RENDER("{{ printf \"%s|%q|%v|%5s|%-5s|%.2s|%x\" \"hi\" \"a\\\"b\\n\" \"v\" \"r\" \"l\" \"abc\" \"hi\" }}", NULL,
                 "hi|\"a\\\"b\\n\"|v|    r|l    |ab|6869");
    CHECK_RENDER("{{ printf \"%.2f|%6.1f|%e|%g|%v|%t\" 3.14159 2.5 1234.5 0.000012 1.5 true }}", NULL,
                 "3.14|   2.5|1.234500e+03|1.2e-05|1.5|true");
    CHECK_RENDER("{{ printf \"%d %s\" 1 }}", NULL, "1 %!s(MISSING)");
    CHECK_RENDER("{{ printf \"%d\" \"x\" }}", NULL, "%!d(string=x)");
    CHECK_RENDER("{{ printf \"%d\" 1 2 }}", NULL, "1%!(EXTRA int=2)");
    CHECK_RENDER("{{ printf \"100%%\" }}", NULL, "100%");
}

static void test_go_printing_of_values(void) {
    /* JSON numbers are float64: %v switches to an exponent at 1e+06 */
    CHECK_RENDER("{{ .a }} {{ .b }} {{ .c }} {{ .d }} {{ .e }}", "{\"a\": 1, \"b\": 1.5, \"c\": 1000000, \"d\": 123456, \"e\": 0.00001}",
                 "1 1.5 1e+06 123456 1e-05");
    CHECK_RENDER("{{ .m }}", "{\"m\": {\"b\": [1, \"x\", null], \"a\": true}}", "map[a:true b:[1 x <nil>]]");
    CHECK_RENDER("{{ .l }} {{ .e }}", "{\"l\": [], \"e\": {}}", "[] map[]");
}

static void test_json_function(void) {
    CHECK_RENDER("{{ json .v }}", "{\"v\": {\"z\": 1, \"a\": [true, null, \"<&>\"], \"f\": 1.5, \"big\": 1e21, \"u\": \"\xe2\x80\xa8\"}}",
                 "{\"a\":[true,null,\"\\u003c\\u0026\\u003e\"],\"big\":1e+21,\"f\":1.5,\"u\":\"\\u2028\",\"z\":1}");
    CHECK_RENDER("{{ json \"tab\\tnl\\nctl\\u0001\\b\\f\" }}", NULL, "\"tab\\tnl\\nctl\\u0001\\b\\f\"");
    CHECK_RENDER("{{ json 3 }} {{ json .Missing }} {{ json 12345678.0 }}", NULL, "3 null 12345678");
}

static void test_ollama_types_messages_and_tools(void) {
    const char *data = "{\"Messages\": [{\"role\": \"user\", \"content\": \"hi\"},"
        "{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"z\": 1, \"a\": \"<x>\"}}}]}],"
        "\"Tools\": null}";
    /* a message prints as Go's struct, json .Messages with Go field names */
    CHECK_RENDER("{{ range .Messages }}{{ . }}|{{ end }}", data,
                 "{user hi  [] []  }|{assistant   [] [{ {0 f {\"a\":\"\\u003cx\\u003e\",\"z\":1}}}]  }|");
    CHECK_RENDER("{{ json (index .Messages 0) }}", data,
                 "{\"Role\":\"user\",\"Content\":\"hi\",\"Thinking\":\"\",\"Images\":null,\"ToolCalls\":null,\"ToolName\":\"\",\"ToolCallID\":\"\"}");
    CHECK_RENDER("{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Name }}{{ .Function.Arguments }}{{ .Function.Index }}{{ end }}{{ end }}",
                 data, "f{\"a\":\"\\u003cx\\u003e\",\"z\":1}0");
    CHECK_RENDER("{{ .Tools }}|{{ json .Tools }}|{{ if .Tools }}y{{ else }}n{{ end }}", data, "null|null|n");
    /* example F of llama3-prompt-format.md §5: property names sorted, <>& escaped */
    const char *tools = "{\"Tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\", \"description\": \"Add a & b <fast>\","
        "\"parameters\": {\"type\": \"object\", \"properties\": {\"b\": {\"type\": \"integer\"}, \"a\": {\"type\": \"integer\"}},"
        "\"required\": [\"a\", \"b\"]}}}]}";
    CHECK_RENDER("{{ range .Tools }}{{ . }}{{ end }}", tools,
                 "{\"type\":\"function\",\"function\":{\"name\":\"add\",\"description\":\"Add a \\u0026 b \\u003cfast\\u003e\","
                 "\"parameters\":{\"type\":\"object\",\"required\":[\"a\",\"b\"],\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"}}}}}");
    /* example L: no description, no properties */
    CHECK_RENDER("{{ .Tools }}", "{\"Tools\": [{\"type\": \"function\", \"function\": {\"name\": \"now\", \"parameters\": {\"type\": \"object\"}}}]}",
                 "[{\"type\":\"function\",\"function\":{\"name\":\"now\",\"description\":\"\",\"parameters\":{\"type\":\"object\",\"properties\":null}}}]");
    CHECK_RENDER("{{ range .Tools }}{{ range $k, $p := .Function.Parameters.Properties }}{{ $k }}:{{ $p.Type }}:{{ toTypeScriptType $p }} {{ end }}{{ end }}",
                 "{\"Tools\": [{\"function\": {\"parameters\": {\"properties\": {\"u\": {\"type\": [\"string\", \"null\"]}, \"o\": {\"anyOf\": [{\"type\": \"object\"}, {\"type\": \"array\"}]}}}}}]}",
                 "o::Record<string, any> | any[] u:[string null]:string | null ");
    CHECK_RENDER("{{ toTypeScriptType \"x\" }}", NULL, "any");
    /* §5 D10: keywords outside Ollama's struct are kept (after its own, as received), at the
     * top and inside properties; an empty schema is an empty object schema */
    CHECK_RENDER("{{ json .Tools }}",
                 "{\"Tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\","
                 "\"additionalProperties\": false, \"properties\": {\"d\": {\"type\": \"string\", \"format\": \"date\"},"
                 "\"k\": {\"const\": \"x<y\", \"description\": \"kind\"}}, \"required\": [\"d\"], \"$schema\": \"s\"}}}]}",
                 "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":\"\",\"parameters\":{\"type\":\"object\","
                 "\"required\":[\"d\"],\"properties\":{\"d\":{\"type\":\"string\",\"format\":\"date\"},"
                 "\"k\":{\"description\":\"kind\",\"const\":\"x\\u003cy\"}},\"additionalProperties\":false,\"$schema\":\"s\"}}}]");
    CHECK_RENDER("{{ json .Tools }}", "{\"Tools\": [{\"type\": \"function\", \"function\": {\"name\": \"g\", \"parameters\": {}}}]}",
                 "[{\"type\":\"function\",\"function\":{\"name\":\"g\",\"description\":\"\",\"parameters\":{\"type\":\"object\",\"properties\":{}}}}]");
}

static void test_define_template_block(void) {
    CHECK_RENDER("{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" \"a\" }}{{ template \"t\" 1 }}", NULL, "[a][1]");
    CHECK_RENDER("{{ block \"b\" .x }}<{{ . }}>{{ end }}", "{\"x\": \"y\"}", "<y>");
    CHECK_RENDER_ERR("{{ template \"none\" }}", NULL, LL_ERR_FORMAT, "no such template \"none\"");
}

static void test_currentDate_functions(void) {
    ll_tmpl *t;
    ll_error err = { 0 };
    const char *src = "{{ currentDate }} {{ yesterdayDate \"fmt\" }}";
    CHECK(ll_tmpl_parse(&t, src, strlen(src), &err) == LL_OK);
    ll_tmpl_limits lim = { .now_unix = 1704110400 };   /* 2024-01-01 12:00 UTC */
    char *out = NULL;
    size_t n;
    json_t *data = json_object();
    CHECK(ll_tmpl_render(t, data, &lim, &out, &n, &err) == LL_OK);
    CHECK_MSG(out && strlen(out) == 21 && out[4] == '-' && out[10] == ' ', "%s", out ? out : "");
    ll_free(out);
    json_decref(data);
    ll_tmpl_free(t);
}

static void test_ollama_parse_appends_response_and_uses(void) {
    ll_tmpl *t;
    ll_error err = { 0 };
    char *src = llama32_src();
    CHECK(src != NULL);
    if (!src) return;
    CHECK(ll_tmpl_parse(&t, src, strlen(src), &err) == LL_OK);
    CHECK(ll_tmpl_uses(t, "tools") && ll_tmpl_uses(t, "TOOLS") && ll_tmpl_uses(t, "messages") &&
          ll_tmpl_uses(t, "toolcalls") && !ll_tmpl_uses(t, "suffix") && !ll_tmpl_uses(t, "response"));
    ll_tmpl_free(t);
    free(src);
    const char *legacy = "{{ .Prompt }}";   /* neither Messages nor Response: {{ .Response }} appended */
    CHECK(ll_tmpl_parse(&t, legacy, strlen(legacy), &err) == LL_OK);
    CHECK(ll_tmpl_uses(t, "response") && ll_tmpl_uses(t, "prompt"));
    json_t *data = json_pack("{s:s,s:s}", "Prompt", "p", "Response", "r");
    char *out;
    size_t n;
    CHECK(ll_tmpl_render(t, data, NULL, &out, &n, &err) == LL_OK);   /* Go's tree: no Response */
    CHECK(out && strcmp(out, "p") == 0);
    ll_free(out);
    json_t *values = json_pack("{s:[{s:s,s:s}]}", "Messages", "role", "user", "content", "p");
    CHECK(ll_tmpl_execute(t, values, NULL, &out, &n, &err) == LL_OK);  /* Ollama's: with it */
    CHECK(out && strcmp(out, "p") == 0);
    json_decref(values);
    ll_free(out);
    json_decref(data);
    ll_tmpl_free(t);
}

static void test_legacy_mode_exchanges(void) {
    ll_error err = { 0 };
    /* §9.5: `{{ .System }} {{ .Prompt }}` with S, u1, a1, u2 -> "S u1a1 u2" */
    char *out = execute_body("{{ .System }} {{ .Prompt }}", "chat",
        "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"u1\"},"
        "{\"role\": \"assistant\", \"content\": \"a1\"}, {\"role\": \"user\", \"content\": \"u2\"}]}", NULL, &err);
    CHECK_MSG(out && strcmp(out, "S u1a1 u2") == 0, "'%s' %s", out ? out : "", err.msg);
    ll_free(out);
    /* the last exchange is cut after {{ .Response }}, also inside a block */
    out = execute_body("[{{ .Prompt }}]{{ if .Prompt }}<{{ .Response }}>{{ end }}END", "chat",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"a\"},"
        "{\"role\": \"user\", \"content\": \"v\"}]}", NULL, &err);
    CHECK_MSG(out && strcmp(out, "[u]<a>END[v]<") == 0, "'%s' %s", out ? out : "", err.msg);
    ll_free(out);
    /* no template layer: {{ .Prompt }}: system prompts and history are lost (§9.5) */
    out = execute_body("", "chat", "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"u1\"}]}", NULL, &err);
    CHECK_MSG(out && strcmp(out, "u1") == 0, "'%s' %s", out ? out : "", err.msg);
    ll_free(out);
}

static void test_request_values_generate(void) {
    ll_error err = { 0 };
    json_t *values = NULL;
    json_t *body = json_loads("{\"prompt\": \"p\", \"raw\": true, \"system\": \"s\"}", 0, NULL);
    CHECK(ll_tmpl_values_from_request(&values, body, "generate", NULL, &err) == LL_ERR_ARG);
    CHECK_STR_CONTAINS(err.msg, "raw mode does not support template, system, or context");
    json_decref(body);
    body = json_loads("{\"prompt\": \"p\", \"raw\": true}", 0, NULL);
    CHECK(ll_tmpl_values_from_request(&values, body, "generate", NULL, &err) == LL_OK && values == NULL);
    json_decref(body);
    /* the model's SYSTEM and MESSAGE history; history dropped when context is sent */
    json_t *hist = json_loads("[{\"role\": \"user\", \"content\": \"h1\"}, {\"role\": \"assistant\", \"content\": \"h2\"}]", 0, NULL);
    ll_tmpl_model m = { .system = "MS", .messages = hist };
    const char *src = "{{ range .Messages }}{{ .Role }}={{ .Content }};{{ end }}";
    char *out = execute_body(src, "generate", "{\"prompt\": \"p\"}", &m, &err);
    CHECK_MSG(out && !strcmp(out, "system=MS;user=h1;assistant=h2;user=p;"), "'%s'", out ? out : "");
    ll_free(out);
    out = execute_body(src, "generate", "{\"prompt\": \"p\", \"system\": \"RS\", \"context\": [1, 2]}", &m, &err);
    CHECK_MSG(out && !strcmp(out, "system=RS;user=p;"), "'%s'", out ? out : "");
    ll_free(out);
    /* chat: the model SYSTEM goes first unless the request starts with a system message */
    out = execute_body(src, "chat", "{\"messages\": [{\"role\": \"User\", \"content\": \"q\"}]}", &m, &err);
    CHECK_MSG(out && !strcmp(out, "system=MS;user=h1;assistant=h2;user=q;"), "'%s'", out ? out : "");
    ll_free(out);
    out = execute_body(src, "chat", "{\"messages\": [{\"role\": \"system\", \"content\": \"RS\"}, {\"role\": \"user\", \"content\": \"q\"}]}", &m, &err);
    CHECK_MSG(out && !strcmp(out, "user=h1;assistant=h2;system=RS;user=q;"), "'%s'", out ? out : "");
    ll_free(out);
    json_decref(hist);
    /* keys are matched case-insensitively and wrong types rejected, as Go's decoder does */
    out = execute_body(src, "chat", "{\"messages\": [{\"ROLE\": \"user\", \"Content\": \"ci\", \"extra\": 1}]}", NULL, &err);
    CHECK_MSG(out && !strcmp(out, "user=ci;"), "'%s'", out ? out : "");
    ll_free(out);
    err = (ll_error){ 0 };
    out = execute_body(src, "chat", "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", NULL, &err);
    CHECK(!out && err.code == LL_ERR_FORMAT);
    CHECK_STR_CONTAINS(err.msg, "messages.content: expected string");
    /* think values */
    out = execute_body("{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }} {{ .Messages }}", "chat",
                       "{\"messages\": [], \"think\": \"high\"}", NULL, &err);
    CHECK_MSG(out && !strcmp(out, "true high true []"), "'%s'", out ? out : "");
    ll_free(out);
    /* fill-in-middle; insert needs .Suffix */
    out = execute_body("<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>", "generate",
                       "{\"prompt\": \"def f(\", \"suffix\": \"return x\"}", NULL, &err);
    CHECK_MSG(out && !strcmp(out, "<PRE> def f( <SUF>return x <MID>"), "'%s'", out ? out : "");
    ll_free(out);
    ll_tmpl *t;
    CHECK(ll_tmpl_parse(&t, "{{ .Prompt }}", 13, &err) == LL_OK);
    body = json_loads("{\"prompt\": \"a\", \"suffix\": \"b\"}", 0, NULL);
    err = (ll_error){ 0 };
    CHECK(ll_tmpl_check_request(t, body, "generate", "registry.ollama.ai/library/llama3.2:latest", &err) == LL_ERR_UNSUPPORTED);
    CHECK(strcmp(err.msg, "registry.ollama.ai/library/llama3.2:latest does not support insert") == 0);
    json_decref(body);
    ll_tmpl_free(t);
}

/* ---- fault rows (fault-cases.md, T) ---- */

static void test_T1_syntax_errors(void) {
    CHECK_RENDER_ERR("a\nb\n0123456789abc{{end}}", NULL, LL_ERR_FORMAT, "template: 3:14: unexpected {{end}}");
    CHECK_RENDER_ERR("x {{/* never closed", NULL, LL_ERR_FORMAT, "unclosed comment");
    CHECK_RENDER_ERR("{{break}}", NULL, LL_ERR_FORMAT, "{{break}} outside {{range}}");
    CHECK_RENDER_ERR("{{ if true }}open", NULL, LL_ERR_FORMAT, "unexpected EOF");
    CHECK_RENDER_ERR("{{ .x", NULL, LL_ERR_FORMAT, "unclosed action");
    CHECK_RENDER_ERR("{{ \"unterminated }}", NULL, LL_ERR_FORMAT, "unterminated quoted string");
    CHECK_RENDER_ERR("{{ else }}", NULL, LL_ERR_FORMAT, "unexpected {{else}}");
    CHECK_RENDER_ERR("{{ }}", NULL, LL_ERR_FORMAT, "missing value for command");
    CHECK_RENDER_ERR("{{ .a.b(c) }}", NULL, LL_ERR_FORMAT, "unexpected");
}

static void test_T2_empty_template_is_prompt(void) {
    ll_error err = { 0 };
    char *out = execute_body("", "generate", "{\"prompt\": \"Tell me a joke\", \"system\": \"dropped\"}", NULL, &err);
    CHECK_MSG(out && strcmp(out, "Tell me a joke") == 0, "'%s' %s", out ? out : "", err.msg);
    ll_free(out);
}

static void test_T3_source_over_1_MiB(void) {
    size_t n = LL_TMPL_MAX_SOURCE_BYTES + 1;
    char *src = malloc(n);
    if (!src) return;
    memset(src, 'a', n);
    ll_tmpl *t = NULL;
    ll_error err = { 0 };
    CHECK(ll_tmpl_parse(&t, src, n, &err) == LL_ERR_LIMIT && t == NULL);
    CHECK_STR_CONTAINS(err.msg, "limit");
    CHECK(ll_tmpl_parse(&t, src, n - 1, &err) == LL_OK);   /* exactly 1 MiB is fine */
    ll_tmpl_free(t);
    free(src);
}

static void test_T4_deep_nesting(void) {
    size_t k = 10000;
    char *src = malloc(k * 20 + 1), *p = src;
    if (!src) return;
    for (size_t i = 0; i < k; i++) p += sprintf(p, "{{if 1}}");
    for (size_t i = 0; i < k; i++) p += sprintf(p, "{{end}}");
    ll_tmpl *t = NULL;
    ll_error err = { 0 };
    CHECK(ll_tmpl_parse(&t, src, (size_t)(p - src), &err) == LL_ERR_LIMIT);
    CHECK_STR_CONTAINS(err.msg, "nesting deeper than 100");
    /* parentheses nest too */
    p = src;
    for (size_t i = 0; i < k; i++) *p++ = '(';
    *p = 0;
    char *src2 = malloc(k * 2 + 16);
    if (!src2) { free(src); return; }
    sprintf(src2, "{{ %s", src);
    err = (ll_error){ 0 };
    CHECK(ll_tmpl_parse(&t, src2, strlen(src2), &err) == LL_ERR_LIMIT);
    free(src2);
    /* 100 levels are allowed */
    p = src;
    for (size_t i = 0; i < 99; i++) p += sprintf(p, "{{if 1}}");
    p += sprintf(p, "x");
    for (size_t i = 0; i < 99; i++) p += sprintf(p, "{{end}}");
    *p = 0;
    CHECK_RENDER(src, NULL, "x");
    free(src);
}

static void test_T5_recursive_template_call(void) {
    CHECK_RENDER_ERR("{{define \"a\"}}{{template \"a\"}}{{end}}{{template \"a\"}}", NULL, LL_ERR_LIMIT,
                     "template call depth exceeds 64");
    CHECK_RENDER_ERR("{{define \"a\"}}x{{template \"a\" .}}{{end}}{{template \"a\" .}}", NULL, LL_ERR_LIMIT,
                     "template call depth exceeds 64");
}

static void test_T6_huge_range_output_and_steps(void) {
    json_t *msgs = json_array();
    for (int i = 0; i < 100000; i++) json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    json_t *data = json_pack("{s:o}", "Messages", msgs);
    ll_error err = { 0 };
    ll_tmpl *t;
    const char *nested = "{{ range .Messages }}{{ range $.Messages }}{{ end }}{{ end }}";
    CHECK(ll_tmpl_parse(&t, nested, strlen(nested), &err) == LL_OK);
    char *out = NULL;
    size_t n;
    CHECK(ll_tmpl_render(t, data, NULL, &out, &n, &err) == LL_ERR_LIMIT && !out);
    CHECK_STR_CONTAINS(err.msg, "steps");
    ll_tmpl_free(t);
    err = (ll_error){ 0 };
    const char *big = "{{ range .Messages }}{{ .Content }}{{ .Content }}{{ end }}";
    CHECK(ll_tmpl_parse(&t, big, strlen(big), &err) == LL_OK);
    CHECK(ll_tmpl_render(t, data, NULL, &out, &n, &err) == LL_ERR_LIMIT && !out);
    CHECK_STR_CONTAINS(err.msg, "rendered prompt exceeds 16 MiB");
    ll_tmpl_free(t);
    /* one print of a huge value is bounded too */
    err = (ll_error){ 0 };
    const char *one = "{{ range .Messages }}{{ print $.Messages }}{{ end }}";
    CHECK(ll_tmpl_parse(&t, one, strlen(one), &err) == LL_OK);
    CHECK(ll_tmpl_render(t, data, NULL, &out, &n, &err) == LL_ERR_LIMIT && !out);
    ll_tmpl_free(t);
    json_decref(data);
}

static void test_T7_printf_width_limits(void) {
    CHECK_RENDER_ERR("{{ printf \"%*d\" 100000000 1 }}", NULL, LL_ERR_LIMIT, "width");
    CHECK_RENDER_ERR("{{ printf \"%.*s\" 100000000 \"x\" }}", NULL, LL_ERR_LIMIT, "precision");
    CHECK_RENDER_ERR("{{ printf \"%99999999d\" 1 }}", NULL, LL_ERR_LIMIT, "width");
    CHECK_RENDER("{{ printf \"%*d|%-*d|%.*s\" 4 1 3 2 2 \"abc\" }}", NULL, "   1|2  |ab");
}

static void test_T8_undefined_fields(void) {
    const char *data = "{\"Messages\": [{\"role\": \"user\", \"content\": \"c\"}], \"Tools\": [{\"type\": \"function\"}],"
                       "\"System\": \"\", \"Response\": \"\", \"Think\": false, \"ThinkLevel\": \"\", \"IsThinkSet\": false}";
    /* top level: Go's missingkey=zero on map[string]any prints <no value> (what Ollama answers) */
    CHECK_RENDER("[{{ .Foo }}]", data, "[<no value>]");
    CHECK_RENDER_ERR("{{ range .Messages }}\n{{ .Foo }}{{ end }}", data, LL_ERR_FORMAT, "template: 2:4: message has no field 'Foo'");
    CHECK_RENDER_ERR("{{ range .Tools }}{{ .Foo }}{{ end }}", data, LL_ERR_FORMAT, "tool has no field 'Foo'");
    CHECK_RENDER_ERR("{{ range .Tools }}{{ .Function.Bar }}{{ end }}", data, LL_ERR_FORMAT, "tool function has no field 'Bar'");
    /* every field Ollama provides exists */
    ll_error err = { 0 };
    char *out = execute_body("{{ .System }}{{ .Response }}{{ .Think }}{{ .ThinkLevel }}{{ .IsThinkSet }}{{ .Tools }}"
                             "{{ range .Messages }}{{ .Role }}{{ .Content }}{{ .Thinking }}{{ .Images }}{{ .ToolCalls }}{{ .ToolName }}{{ .ToolCallID }}{{ end }}",
                             "chat", "{\"messages\": [{\"role\": \"user\", \"content\": \"c\"}]}", NULL, &err);
    CHECK_MSG(out && !strcmp(out, "falsefalsenulluserc[][]"), "'%s' %s", out ? out : "", err.msg);
    ll_free(out);
    out = execute_body("{{ .Prompt }}|{{ .Suffix }}|{{ .System }}|{{ .Response }}", "generate", "{\"prompt\": \"p\"}", NULL, &err);
    CHECK_MSG(out && !strcmp(out, "p|<no value>||"), "'%s' %s", out ? out : "", err.msg);
    ll_free(out);
}

static void test_T9_unknown_functions(void) {
    CHECK_RENDER_ERR("{{exec \"x\"}}", NULL, LL_ERR_FORMAT, "function \"exec\" not defined");
    CHECK_RENDER_ERR("{{ env \"HOME\" }}", NULL, LL_ERR_FORMAT, "function \"env\" not defined");
    CHECK_RENDER_ERR("{{ .x | readFile }}", NULL, LL_ERR_FORMAT, "function \"readFile\" not defined");
}

static void test_T10_index_slice_len_errors(void) {
    CHECK_RENDER_ERR("{{ index .l 5 }}", "{\"l\": [1]}", LL_ERR_FORMAT, "index out of range: 5");
    CHECK_RENDER_ERR("\n  {{ index .l -1 }}", "{\"l\": [1]}", LL_ERR_FORMAT, "template: 2:");
    CHECK_RENDER_ERR("{{ slice .l 2 1 }}", "{\"l\": [1, 2]}", LL_ERR_FORMAT, "invalid slice index: 2 > 1");
    CHECK_RENDER_ERR("{{ slice \"ab\" 0 3 }}", NULL, LL_ERR_FORMAT, "index out of range: 3");
    CHECK_RENDER_ERR("{{ len 3 }}", NULL, LL_ERR_FORMAT, "len of type int");
    CHECK_RENDER_ERR("{{ index .Missing 0 }}", NULL, LL_ERR_FORMAT, "index of untyped nil");
    CHECK_RENDER_ERR("{{ index .m 0 }}", "{\"m\": {}}", LL_ERR_FORMAT, "should be string");
}

static void test_T11_empty_inputs(void) {
    char *src = llama32_src();
    ll_error err = { 0 };
    CHECK(src != NULL);
    if (!src) return;
    ll_tmpl *t;
    CHECK(ll_tmpl_parse(&t, src, strlen(src), &err) == LL_OK);
    json_t *values = json_object();
    char *out = NULL;
    size_t n;
    CHECK(ll_tmpl_execute(t, values, NULL, &out, &n, &err) == LL_OK);
    CHECK_MSG(out && !strcmp(out, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n\n<|eot_id|>"),
              "'%s'", out ? out : "");
    ll_free(out);
    json_object_set_new(values, "Messages", json_array());
    json_object_set_new(values, "Tools", json_null());
    json_object_set_new(values, "System", json_string(""));
    CHECK(ll_tmpl_execute(t, values, NULL, &out, &n, &err) == LL_OK);
    ll_free(out);
    CHECK(ll_tmpl_render(t, NULL, NULL, &out, &n, &err) == LL_OK);   /* no data at all */
    ll_free(out);
    json_decref(values);
    ll_tmpl_free(t);
    free(src);
}

static void test_T12_trim_markers_next_to_multibyte(void) {
    /* U+00A0 (C2 A0) and U+3000 (E3 80 80) are not ASCII whitespace: they stay */
    CHECK_RENDER("\xc3\xa9 \xc2\xa0 {{- \"x\" -}} \xe3\x80\x80 \xc3\xa9", NULL, "\xc3\xa9 \xc2\xa0x\xe3\x80\x80 \xc3\xa9");
    CHECK_RENDER("\xc3\xa9\n\t{{- /* c */ -}}\n \xc3\xa9", NULL, "\xc3\xa9\xc3\xa9");
}

static void test_T13_data_is_never_parsed(void) {
    CHECK_RENDER("{{ .Content }}", "{\"Content\": \"{{ .System }} {{end}} {{/*\"}", "{{ .System }} {{end}} {{/*");
}

static void test_T14_template_outlives_its_owner(void) {
    ll_tmpl *t, *held;
    ll_error err = { 0 };
    CHECK(ll_tmpl_parse(&t, "{{ .a }}", 8, &err) == LL_OK);
    held = ll_tmpl_ref(t);
    ll_tmpl_free(t);                      /* the model's copy is replaced... */
    json_t *data = json_pack("{s:s}", "a", "still here");
    char *out;
    size_t n;
    CHECK(ll_tmpl_render(held, data, NULL, &out, &n, &err) == LL_OK);   /* ...the request's lives on */
    CHECK(out && !strcmp(out, "still here"));
    ll_free(out);
    json_decref(data);
    ll_tmpl_free(held);
}

/* every allocation failure is reported and leaks nothing (ASan checks the leaks) */
static void test_allocation_failures(void) {
    char *src = llama32_src();
    if (!src) return;
    json_t *body = json_loads("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}], \"tools\": [{\"type\": \"function\","
                              "\"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}}}}}]}", 0, NULL);
    json_t *values = NULL;
    ll_error err = { 0 };
    CHECK(ll_tmpl_values_from_request(&values, body, "chat", NULL, &err) == LL_OK);
    int oks = 0;
    for (long k = 0; k < 400; k++) {
        ll_tmpl *t = NULL;
        err = (ll_error){ 0 };
        ll_alloc_fail_after(k);
        ll_status st = ll_tmpl_parse(&t, src, strlen(src), &err);
        if (st == LL_OK) {
            char *out = NULL;
            size_t n;
            st = ll_tmpl_execute(t, values, NULL, &out, &n, &err);
            if (st == LL_OK) oks++;
            ll_free(out);
            ll_tmpl_free(t);
        }
        ll_alloc_fail_after(-1);
        CHECK_MSG(st == LL_OK || st == LL_ERR_NOMEM, "k=%ld st=%d %s", k, st, err.msg);
    }
    CHECK(oks > 0);
    json_decref(values);
    json_decref(body);
    free(src);
}

int main(void) {
    RUN(test_rendering_jsonl);
    RUN(test_text_actions_and_trim_markers);
    RUN(test_pipelines_and_parens);
    RUN(test_variables_and_scope);
    RUN(test_fields_maps_and_missing_keys);
    RUN(test_if_else_if_chain);
    RUN(test_range_forms);
    RUN(test_with_and_else_with);
    RUN(test_logic_and_comparison_functions);
    RUN(test_len_index_slice);
    RUN(test_print_printf_println);
    RUN(test_go_printing_of_values);
    RUN(test_json_function);
    RUN(test_ollama_types_messages_and_tools);
    RUN(test_define_template_block);
    RUN(test_currentDate_functions);
    RUN(test_ollama_parse_appends_response_and_uses);
    RUN(test_legacy_mode_exchanges);
    RUN(test_request_values_generate);
    RUN(test_T1_syntax_errors);
    RUN(test_T2_empty_template_is_prompt);
    RUN(test_T3_source_over_1_MiB);
    RUN(test_T4_deep_nesting);
    RUN(test_T5_recursive_template_call);
    RUN(test_T6_huge_range_output_and_steps);
    RUN(test_T7_printf_width_limits);
    RUN(test_T8_undefined_fields);
    RUN(test_T9_unknown_functions);
    RUN(test_T10_index_slice_len_errors);
    RUN(test_T11_empty_inputs);
    RUN(test_T12_trim_markers_next_to_multibyte);
    RUN(test_T13_data_is_never_parsed);
    RUN(test_T14_template_outlives_its_owner);
    RUN(test_allocation_failures);
    return test_summary();
}
