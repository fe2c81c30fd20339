/* thinking tests: the §1.2.4 rules on fixed outputs, the same result for every split of the
 * output into two pieces and byte by byte, a pre-filled opening tag, and the tags inferred
 * from templates that render .Thinking. */
#include "../test.h"

#include "server/thinking.h"

typedef struct { char think[1024], content[1024]; } split;

static split run_cuts(const char *out, bool in_thinking, const size_t *cuts, size_t n_cuts) {
    split r = { "", "" };
    size_t nt = 0, nc = 0, n = strlen(out), at = 0;
    ll_error err = { 0 };
    ll_think *p = NULL;
    CHECK(ll_think_init(&p, "<think>", "</think>", in_thinking, &err) == LL_OK);
    for (size_t i = 0; i <= n_cuts + 1; i++) {
        bool final = i == n_cuts + 1;
        size_t end = final ? n : i < n_cuts ? cuts[i] : n;
        ll_str t, c;
        CHECK(ll_think_add(p, out + at, end - at, final, &t, &c, &err) == LL_OK);
        memcpy(r.think + nt, t.p, t.n); nt += t.n;
        memcpy(r.content + nc, c.p, c.n); nc += c.n;
        at = end;
    }
    r.think[nt] = r.content[nc] = 0;
    ll_think_free(p);
    return r;
}

static void check(const char *out, bool in_thinking, const char *think, const char *content) {
    split w = run_cuts(out, in_thinking, NULL, 0);
    CHECK_MSG(!strcmp(w.think, think) && !strcmp(w.content, content), "'%s': thinking '%s' content '%s'", out, w.think, w.content);
    size_t n = strlen(out);
    for (size_t cut = 0; cut <= n; cut++) {
        split r = run_cuts(out, in_thinking, &cut, 1);
        CHECK_MSG(!strcmp(r.think, think) && !strcmp(r.content, content), "'%s' split at %zu: '%s' / '%s'", out, cut, r.think, r.content);
    }
    size_t cuts[512];
    for (size_t i = 0; i + 1 < n && i < 512; i++) cuts[i] = i + 1;
    split r = run_cuts(out, in_thinking, cuts, n > 1 ? n - 1 : 0);
    CHECK_MSG(!strcmp(r.think, think) && !strcmp(r.content, content), "'%s' byte by byte: '%s' / '%s'", out, r.think, r.content);
}

static void test_trace_then_answer(void) {
    check("<think>Paris is the capital.</think>The capital is Paris.", false, "Paris is the capital.", "The capital is Paris.");
}

static void test_whitespace_rules(void) {
    check("  \n<think>\n  let me see \n</think>\n\n Answer: 4", false, "let me see", "Answer: 4");
    check("<think>a  b \n c</think>d", false, "a  b \n c", "d");
}

static void test_no_tag_is_all_content(void) {
    check("Just an answer <think>not a trace</think>", false, "", "Just an answer <think>not a trace</think>");
    check("  <thin but not the tag", false, "", "  <thin but not the tag");
}

static void test_prefilled_opening_tag(void) {
    check("\nthe trace</think>the answer", true, "the trace", "the answer");
}

static void test_unclosed_trace(void) {
    check("<think>still thinking </thi", false, "still thinking </thi", "");
}

static void test_utf8_untouched(void) {
    check("<think>Zürich → 東京</think>Ça va", false, "Zürich → 東京", "Ça va");
}

static void tags_of(const char *src, const char *open, const char *close) {
    ll_tmpl *t = NULL;
    ll_error err = { 0 };
    CHECK(ll_tmpl_parse(&t, src, strlen(src), &err) == LL_OK);
    char *o = NULL, *c = NULL;
    bool ok = ll_think_tags(t, &o, &c);
    if (open) CHECK_MSG(ok && !strcmp(o, open) && !strcmp(c, close), "tags '%s' '%s'", o ? o : "-", c ? c : "-");
    else CHECK(!ok && !o && !c);
    ll_free(o);
    ll_free(c);
    ll_tmpl_free(t);
}

static void test_tags_from_template(void) {
    tags_of("{{- range .Messages }}<|im_start|>{{ .Role }}\n"
            "{{- if and (eq .Role \"assistant\") .Thinking }}<think>{{ .Thinking }}</think>\n{{ end }}"
            "{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n", "<think>", "</think>");
    tags_of("{{- range .Messages }}{{ if .Thinking }}[THINK]\n{{ .Thinking }}\n[/THINK]{{ end }}{{ .Content }}{{ end }}",
            "[THINK]", "[/THINK]");
    tags_of("{{- range .Messages }}{{ .Content }}{{ end }}", NULL, NULL);
    tags_of("{{ .Prompt }}", NULL, NULL);
}

int main(void) {
    RUN(test_trace_then_answer);
    RUN(test_whitespace_rules);
    RUN(test_no_tag_is_all_content);
    RUN(test_prefilled_opening_tag);
    RUN(test_unclosed_trace);
    RUN(test_utf8_untouched);
    RUN(test_tags_from_template);
    return test_summary();
}
