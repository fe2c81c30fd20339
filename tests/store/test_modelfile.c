/* Tests for src/store/modelfile.c: Ollama's Modelfile syntax (ollama-cli.md §16), typed
 * PARAMETERs, errors in Ollama's wording, and rendering as `ollama show --modelfile`. */
#include "../test.h"
#include "store/modelfile.h"

static ll_modelfile *parse_ok(const char *text) {
    ll_modelfile *mf = NULL;
    ll_error err = {0};
    ll_status st = ll_modelfile_parse(&mf, text, strlen(text), &err);
    CHECK_MSG(st == LL_OK, "parse failed: %s", err.msg);
    return mf;
}

static void expect_error(const char *text, const char *msg) {
    ll_modelfile *mf = NULL;
    ll_error err = {0};
    ll_status st = ll_modelfile_parse(&mf, text, strlen(text), &err);
    CHECK_MSG(st != LL_OK, "expected an error for <<%s>>", text);
    CHECK_MSG(!strcmp(err.msg, msg), "got '%s', want '%s'", err.msg, msg);
    CHECK(mf == NULL);
}

static void test_mario_example(void) {
    ll_modelfile *mf = parse_ok(
        "# Mario\n"
        "FROM llama3.2\n"
        "PARAMETER temperature 1\n"
        "PARAMETER num_ctx 4096\n"
        "PARAMETER stop \"<|eot_id|>\"\n"
        "SYSTEM \"\"\"You are Mario from Super Mario Bros,\n"
        "acting as an assistant.\"\"\"\n"
        "MESSAGE user Is Toronto in Canada?\n"
        "MESSAGE assistant yes\n");
    if (!mf) return;
    CHECK_EQ_INT(mf->n_from, 1);
    CHECK(!strcmp(mf->from[0], "llama3.2"));
    CHECK(!strcmp(mf->system, "You are Mario from Super Mario Bros,\nacting as an assistant."));
    CHECK_EQ_INT(mf->n_messages, 2);
    CHECK(!strcmp(mf->messages[0].role, "user"));
    CHECK(!strcmp(mf->messages[0].content, "Is Toronto in Canada?"));
    CHECK(!strcmp(mf->messages[1].role, "assistant"));
    CHECK(json_is_real(json_object_get(mf->params, "temperature")));
    CHECK(json_real_value(json_object_get(mf->params, "temperature")) == 1.0);
    CHECK(json_integer_value(json_object_get(mf->params, "num_ctx")) == 4096);
    json_t *stop = json_object_get(mf->params, "stop");
    CHECK(json_is_array(stop) && json_array_size(stop) == 1);
    CHECK(!strcmp(json_string_value(json_array_get(stop, 0)), "<|eot_id|>"));
    ll_modelfile_free(mf);
}

/* ollama-cli.md §16.5, each row */
static void test_parse_results_table(void) {
    ll_modelfile *mf = parse_ok("FROM x\nSYSTEM   padded value   \n");
    if (mf) { CHECK(!strcmp(mf->system, "padded value")); ll_modelfile_free(mf); }
    mf = parse_ok("FROM x\nSYSTEM \"  keep spaces  \"\n");
    if (mf) { CHECK(!strcmp(mf->system, "  keep spaces  ")); ll_modelfile_free(mf); }
    mf = parse_ok("FROM x\nSYSTEM \"\"\"line1\nline2\"\"\"\n");
    if (mf) { CHECK(!strcmp(mf->system, "line1\nline2")); ll_modelfile_free(mf); }
    mf = parse_ok("FROM x\nSYSTEM \"multi\nline\"");
    if (mf) { CHECK(!strcmp(mf->system, "multi\nline")); ll_modelfile_free(mf); }
    mf = parse_ok("FROM x\nPARAMETER stop \"<|eot_id|>\"\nPARAMETER stop <|end_of_text|>\n");
    if (mf) {
        json_t *stop = json_object_get(mf->params, "stop");
        CHECK(json_array_size(stop) == 2);
        CHECK(!strcmp(json_string_value(json_array_get(stop, 1)), "<|end_of_text|>"));
        ll_modelfile_free(mf);
    }
    mf = parse_ok("FROM x\nPARAMETER top_p 0.95\n");
    if (mf) { CHECK(json_real_value(json_object_get(mf->params, "top_p")) == 0.95); ll_modelfile_free(mf); }
    mf = parse_ok("FROM\tllama3.2\r\nSYSTEM hi\r\n");
    if (mf) { CHECK(!strcmp(mf->from[0], "llama3.2")); CHECK(!strcmp(mf->system, "hi")); ll_modelfile_free(mf); }
}

static void test_case_insensitive_commands_and_comments(void) {
    ll_modelfile *mf = parse_ok("  # comment\nfrom a\nFrom b\nsystem s\nTemplate {{ .Prompt }}\n"
                                "LiCeNsE MIT\nlicense \"BSD\"\n");
    if (!mf) return;
    CHECK_EQ_INT(mf->n_from, 2);
    CHECK(!strcmp(mf->from[1], "b"));
    CHECK(!strcmp(mf->template_text, "{{ .Prompt }}"));
    CHECK_EQ_INT(mf->n_licenses, 2);
    CHECK(!strcmp(mf->licenses[1], "BSD"));
    ll_modelfile_free(mf);
    /* a '#' after an instruction belongs to the argument */
    mf = parse_ok("FROM llama3.2 # x\n");
    if (mf) { CHECK(!strcmp(mf->from[0], "llama3.2 # x")); ll_modelfile_free(mf); }
}

static void test_quotes(void) {
    ll_modelfile *mf = parse_ok("FROM x\nTEMPLATE \"\"\"{{ if .System }}\"sys\"{{ end }}\n\n{{ .Prompt }}\"\"\"\n");
    if (mf) { CHECK(!strcmp(mf->template_text, "{{ if .System }}\"sys\"{{ end }}\n\n{{ .Prompt }}")); ll_modelfile_free(mf); }
    mf = parse_ok("FROM x\nSYSTEM \"\"\n");
    if (mf) { CHECK(!strcmp(mf->system, "")); ll_modelfile_free(mf); }
    /* quotes only count around the whole value */
    mf = parse_ok("FROM x\nSYSTEM say \"hi\" please\n");
    if (mf) { CHECK(!strcmp(mf->system, "say \"hi\" please")); ll_modelfile_free(mf); }
    /* a quoted value followed by trailing spaces still ends at the newline */
    mf = parse_ok("FROM x\nSYSTEM \"a b\"   \nLICENSE l\n");
    if (mf) { CHECK(!strcmp(mf->system, "a b")); CHECK_EQ_INT(mf->n_licenses, 1); ll_modelfile_free(mf); }
    /* BOMs */
    mf = parse_ok("\xEF\xBB\xBF" "FROM bom\n");
    if (mf) { CHECK(!strcmp(mf->from[0], "bom")); ll_modelfile_free(mf); }
    const char u16[] = "\xFF\xFE" "F\0R\0O\0M\0 \0u\0\n\0";
    ll_error err = {0};
    CHECK(ll_modelfile_parse(&mf, u16, sizeof u16 - 1, &err) == LL_OK);
    if (mf) { CHECK(!strcmp(mf->from[0], "u")); ll_modelfile_free(mf); }
}

static void test_errors_in_ollama_wording(void) {
    expect_error("FROM x\nFOO bar\n", "(line 2): command must be one of \"from\", \"license\", \"template\", "
                 "\"system\", \"adapter\", \"draft\", \"renderer\", \"parser\", \"parameter\", \"message\", or \"requires\"");
    expect_error("FROM x\n\nMESSAGE Assistant hi\n",
                 "(line 3): message role must be one of \"system\", \"user\", or \"assistant\"");
    expect_error("FROM x\nSYSTEM \"\"\"never closed\n", "unexpected EOF");
    expect_error("FROM x\nSYSTEM \"never closed\n", "unexpected EOF");
    expect_error("SYSTEM s\n", "no FROM line");
    expect_error("", "no FROM line");
    expect_error("# only a comment", "no FROM line");
    expect_error("FROM x\nPARAMETER Temperature 1\n", "unknown parameter 'Temperature'");
    expect_error("FROM x\nPARAMETER tfs_z 1\n", "unknown parameter 'tfs_z'");
    expect_error("FROM x\nPARAMETER num_ctx 4k\n", "invalid int value [4k]");
    expect_error("FROM x\nPARAMETER num_ctx 2.5\n", "invalid int value [2.5]");
    expect_error("FROM x\nPARAMETER temperature hot\n", "invalid float value [hot]");
    expect_error("FROM x\nPARAMETER temperature 1e39\n", "invalid float value [1e39]");
    expect_error("FROM x\nPARAMETER use_mmap yes\n", "invalid bool value [yes]");
    expect_error("FROM x\nREQUIRES banana\n", "requires must be a valid semver (e.g. 0.14.0)");
    expect_error("FROM x\nPARAMETER temperature\n", "unexpected EOF: temperature");
    expect_error("FROM", "unexpected EOF");
}

static void test_typed_parameters(void) {
    ll_modelfile *mf = parse_ok("FROM x\nPARAMETER seed -3\nPARAMETER use_mmap True\nPARAMETER min_p .05\n"
                                "PARAMETER temperature 0.7\nPARAMETER temperature 0.6\nPARAMETER mirostat 2\n"
                                "PARAMETER num_predict +12\nREQUIRES v0.14.0\nRENDERER qwen3\n");
    if (!mf) return;
    CHECK(json_integer_value(json_object_get(mf->params, "seed")) == -3);
    CHECK(json_is_true(json_object_get(mf->params, "use_mmap")));
    CHECK(json_real_value(json_object_get(mf->params, "min_p")) == 0.05);
    CHECK(json_real_value(json_object_get(mf->params, "temperature")) == 0.6);   /* last wins */
    CHECK(json_integer_value(json_object_get(mf->params, "num_predict")) == 12);
    CHECK(json_object_get(mf->params, "mirostat") == NULL);
    CHECK_EQ_INT(mf->n_deprecated, 1);
    CHECK(!strcmp(mf->deprecated[0], "mirostat"));
    CHECK(!strcmp(mf->requires, "0.14.0"));
    CHECK(!strcmp(mf->renderer, "qwen3"));
    ll_modelfile_free(mf);
    /* float32 precision, as Ollama's client sends it */
    mf = parse_ok("FROM x\nPARAMETER top_p 0.123456789\n");
    if (mf) { CHECK(json_real_value(json_object_get(mf->params, "top_p")) == 0.12345679); ll_modelfile_free(mf); }
}

static void test_adapter_parsed(void) {
    ll_modelfile *mf = parse_ok("FROM x\nADAPTER ./lora.gguf\n");
    if (mf) { CHECK_EQ_INT(mf->n_adapters, 1); CHECK(!strcmp(mf->adapters[0], "./lora.gguf")); ll_modelfile_free(mf); }
}

static void test_render_like_ollama_show(void) {
    ll_modelfile *mf = parse_ok(
        "FROM /m/blobs/sha256-97\n"
        "TEMPLATE \"\"\"{{ if .System }}\"x\"{{ end }}\n{{ .Prompt }}\"\"\"\n"
        "SYSTEM You are Mario from Super Mario Bros, acting as an assistant.\n"
        "PARAMETER num_ctx 4096\nPARAMETER stop <|start_header_id|>\nPARAMETER stop <|eot_id|>\n"
        "PARAMETER temperature 1\nPARAMETER top_p 0.9\nPARAMETER use_mmap true\n"
        "LICENSE \"LLAMA\nSecond paragraph.\n\"\n"
        "MESSAGE user Is Toronto in Canada?\nMESSAGE assistant yes\n");
    if (!mf) return;
    char *out = ll_modelfile_render(mf, "mario:latest");
    const char *want =
        "# Modelfile generated by \"ollama show\"\n"
        "# To build a new Modelfile based on this, replace FROM with:\n"
        "# FROM mario:latest\n\n"
        "FROM /m/blobs/sha256-97\n"
        "TEMPLATE \"\"\"{{ if .System }}\"x\"{{ end }}\n{{ .Prompt }}\"\"\"\n"
        "SYSTEM You are Mario from Super Mario Bros, acting as an assistant.\n"
        "PARAMETER num_ctx 4096\n"
        "PARAMETER stop <|start_header_id|>\n"
        "PARAMETER stop <|eot_id|>\n"
        "PARAMETER temperature 1\n"
        "PARAMETER top_p 0.9\n"
        "PARAMETER use_mmap true\n"
        "LICENSE \"LLAMA\nSecond paragraph.\n\"\n"
        "MESSAGE user Is Toronto in Canada?\n"
        "MESSAGE assistant yes\n";
    CHECK_MSG(out && !strcmp(out, want), "got:\n%s", out ? out : "(null)");
    /* and it parses back to the same model */
    ll_modelfile *again = out ? parse_ok(out) : NULL;
    if (again) {
        CHECK(!strcmp(again->template_text, mf->template_text));
        CHECK(!strcmp(again->licenses[0], mf->licenses[0]));
        CHECK(json_equal(again->params, mf->params));
        ll_modelfile_free(again);
    }
    ll_free(out);
    char *params = ll_modelfile_render_parameters(mf->params);
    CHECK_MSG(params && !strcmp(params,
        "num_ctx                        4096\n"
        "stop                           \"<|start_header_id|>\"\n"
        "stop                           \"<|eot_id|>\"\n"
        "temperature                    1\n"
        "top_p                          0.9\n"
        "use_mmap                       true"), "got:\n%s", params ? params : "(null)");
    ll_free(params);
    ll_modelfile_free(mf);
}

static void test_render_defaults_and_quoting(void) {
    ll_modelfile *mf = ll_modelfile_new();
    char *out = ll_modelfile_render(mf, "x:latest");
    CHECK(out && strstr(out, "\nTEMPLATE {{ .Prompt }}\n"));
    ll_free(out);
    ll_modelfile_free(mf);
    char *q = ll_modelfile_quote(" lead");
    CHECK(q && !strcmp(q, "\" lead\""));
    ll_free(q);
    q = ll_modelfile_quote("a\n\"b\"");
    CHECK(q && !strcmp(q, "\"\"\"a\n\"b\"\"\"\""));
    ll_free(q);
    q = ll_modelfile_quote("bare \"quotes\" # kept");
    CHECK(q && !strcmp(q, "bare \"quotes\" # kept"));
    ll_free(q);
    json_t *p = NULL;
    ll_error err = {0};
    CHECK(ll_modelfile_set_param(&p, "stop", "\n", NULL, &err) == LL_OK);
    CHECK(ll_modelfile_set_param(&p, "seed", "1000000", NULL, &err) == LL_OK);
    char *params = ll_modelfile_render_parameters(p);
    CHECK_MSG(params && !strcmp(params, "seed                           1000000\nstop                           \"\\n\""),
              "got %s", params ? params : "(null)");
    ll_free(params);
    json_decref(p);
}

static void test_allocation_failures_free_everything(void) {
    const char *text = "FROM x\nPARAMETER stop a\nPARAMETER stop b\nSYSTEM s\nMESSAGE user hi\nLICENSE l\n";
    for (long n = 0; n < 200; n++) {
        ll_alloc_fail_after(n);
        ll_modelfile *mf = NULL;
        ll_error err = {0};
        ll_status st = ll_modelfile_parse(&mf, text, strlen(text), &err);
        ll_alloc_fail_after(-1);
        if (st == LL_OK) { ll_modelfile_free(mf); break; }
        CHECK(st == LL_ERR_NOMEM || st == LL_ERR_FORMAT);   /* jansson's own allocations */
    }
}

int main(void) {
    RUN(test_mario_example);
    RUN(test_parse_results_table);
    RUN(test_case_insensitive_commands_and_comments);
    RUN(test_quotes);
    RUN(test_errors_in_ollama_wording);
    RUN(test_typed_parameters);
    RUN(test_adapter_parsed);
    RUN(test_render_like_ollama_show);
    RUN(test_render_defaults_and_quoting);
    RUN(test_allocation_failures_free_everything);
    return test_summary();
}
