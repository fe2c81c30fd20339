/* tests for src/grammar/json_schema.c: each supported keyword accepts valid instances byte by
 * byte and rejects invalid ones at the first byte that cannot be part of a valid instance;
 * keywords we cannot enforce, bad and contradictory schemas fail with a message naming them. */
#include "grammar/grammar.h"
#include "../test.h"

/* Index of the first byte of text the schema's grammar rejects; -1 when all is accepted and
 * complete, -2 when all is accepted but incomplete, -3 when the schema was refused. */
static long run(const char *schema, const char *text) {
    ll_error err = {0};
    ll_grammar *g;
    if (ll_grammar_init_schema(&g, NULL, schema, strlen(schema), &err) != LL_OK) {
        fprintf(stderr, "  schema refused: %s\n", err.msg);
        return -3;
    }
    long at = -1;
    for (size_t i = 0; text[i]; i++)
        if (ll_grammar_accept_bytes(g, text + i, 1, &err) != LL_OK) { at = (long)i; break; }
    if (at == -1 && !ll_grammar_can_end(g)) at = -2;
    ll_grammar_free(g);
    return at;
}

#define VALID(schema, text) CHECK_MSG(run(schema, text) == -1, "%s: '%s' -> %ld", schema, text, run(schema, text))
#define REJECT_AT(schema, text, idx) CHECK_MSG(run(schema, text) == (idx), "%s: '%s' -> %ld, expected %d", schema, text, run(schema, text), idx)
#define INCOMPLETE(schema, text) REJECT_AT(schema, text, -2)

/* Compile must fail with code and a message containing needle. */
static void refuse(const char *schema, ll_status code, const char *needle) {
    ll_error err = {0};
    ll_grammar *g = NULL;
    ll_status st = ll_grammar_init_schema(&g, NULL, schema, strlen(schema), &err);
    CHECK_MSG(st == code, "%s: status %s, expected %s (%s)", schema, ll_status_name(st), ll_status_name(code), err.msg);
    if (needle) CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", schema, err.msg, needle);
    ll_grammar_free(g);
}

static void test_type_each_and_unions(void) {
    VALID("{\"type\":\"string\"}", "\"hi\"");
    REJECT_AT("{\"type\":\"string\"}", "12", 0);
    VALID("{\"type\":\"integer\"}", "-12");
    REJECT_AT("{\"type\":\"integer\"}", "1.5", 1);
    VALID("{\"type\":\"number\"}", "1.5e3");
    VALID("{\"type\":\"boolean\"}", "false");
    REJECT_AT("{\"type\":\"boolean\"}", "null", 0);
    VALID("{\"type\":\"null\"}", "null");
    VALID("{\"type\":\"array\"}", "[1, \"a\", {}]");
    VALID("{\"type\":\"object\"}", "{\"x\": [true]}");
    VALID("{\"type\":[\"string\",\"null\"]}", "null");
    VALID("{\"type\":[\"string\",\"null\"]}", "\"s\"");
    REJECT_AT("{\"type\":[\"string\",\"null\"]}", "1", 0);
    VALID("{}", "[{\"a\":null}]");
    VALID("true", "3");
    refuse("{\"type\":\"strin\"}", LL_ERR_FORMAT, "type");
    refuse("false", LL_ERR_UNSUPPORTED, "never complete");
}

static void test_properties_in_order_with_required(void) {
    const char *s = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"},"
                    "\"c\":{\"type\":\"boolean\"}},\"required\":[\"a\",\"c\"]}";
    VALID(s, "{\"a\":1,\"b\":\"x\",\"c\":true}");
    VALID(s, "{\"a\": 1, \"c\": false}");
    VALID(s, "{\n  \"a\" : 1,\n  \"c\" : true\n}");
    REJECT_AT(s, "{\"b\":\"x\"", 2);                 /* a is required and first */
    REJECT_AT(s, "{\"a\":1,\"c\":true,\"b\":\"x\"}", 15);  /* schema order: b before c */
    REJECT_AT(s, "{\"a\":1}", 6);                    /* c missing */
    REJECT_AT(s, "{\"a\":\"1\"}", 5);                /* wrong type */
    /* all optional: empty object fine */
    VALID("{\"properties\":{\"a\":{\"type\":\"integer\"}}}", "{}");
    /* required name without a properties entry: any value */
    VALID("{\"type\":\"object\",\"required\":[\"z\"]}", "{\"z\":[1]}");
}

static void test_additional_properties(void) {
    const char *closed = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"additionalProperties\":false}";
    REJECT_AT(closed, "{\"a\":1,\"z\":2}", 6);
    const char *open = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"additionalProperties\":true}";
    VALID(open, "{\"a\":1,\"z\":2}");
    VALID(open, "{\"zz\":\"q\"}");
    VALID(open, "{\"ab\":0}");
    REJECT_AT(open, "{\"a\":1,\"a\":2}", 9);        /* an extra key may not repeat a declared one */
    const char *typed = "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}";
    VALID(typed, "{\"x\":1,\"y\":2}");
    REJECT_AT(typed, "{\"x\":\"s\"}", 5);
    /* properties given, additionalProperties absent: only the declared ones (a valid subset) */
    REJECT_AT("{\"properties\":{\"a\":{}}}", "{\"q\":1}", 2);
    refuse("{\"type\":\"object\",\"required\":[\"q\"],\"additionalProperties\":false}", LL_ERR_UNSUPPORTED, "'q'");
}

static void test_items_prefix_min_max(void) {
    VALID("{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}", "[1, 2, 3]");
    REJECT_AT("{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}", "[1, \"a\"]", 4);
    const char *mm = "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}";
    REJECT_AT(mm, "[1]", 2);
    VALID(mm, "[1,2]");
    VALID(mm, "[1,2,3]");
    REJECT_AT(mm, "[1,2,3,4]", 6);
    REJECT_AT(mm, "[]", 1);
    const char *tup = "{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false}";
    VALID(tup, "[\"a\",1]");
    VALID(tup, "[\"a\"]");
    VALID(tup, "[]");
    REJECT_AT(tup, "[\"a\",1,2]", 6);
    REJECT_AT(tup, "[\"a\",\"b\"]", 5);
    const char *tup_rest = "{\"prefixItems\":[{\"const\":\"x\"}],\"items\":{\"type\":\"boolean\"},\"minItems\":3}";
    VALID(tup_rest, "[\"x\",true,false]");
    REJECT_AT(tup_rest, "[\"x\",true]", 9);
    REJECT_AT(tup_rest, "[true", 1);
    refuse("{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", LL_ERR_UNSUPPORTED, "minItems");
    refuse("{\"type\":\"array\",\"items\":[{}]}", LL_ERR_UNSUPPORTED, "items");
}

static void test_enum_and_const(void) {
    const char *e = "{\"enum\":[\"red\",\"green\",42,null,{\"k\":[1]}]}";
    VALID(e, "\"red\"");
    VALID(e, "42");
    VALID(e, "null");
    VALID(e, "{\"k\":[1]}");
    REJECT_AT(e, "\"blue\"", 1);
    REJECT_AT(e, "43", 1);
    VALID("{\"const\":\"x\\\"y\"}", "\"x\\\"y\"");
    REJECT_AT("{\"const\":3}", "4", 0);
    /* type filters the enum */
    REJECT_AT("{\"type\":\"string\",\"enum\":[\"a\",1]}", "1", 0);
    refuse("{\"enum\":[\"a\"],\"minLength\":3}", LL_ERR_UNSUPPORTED, "minLength");
    refuse("{\"type\":\"integer\",\"enum\":[\"a\"]}", LL_ERR_UNSUPPORTED, "never complete");
}

static void test_anyof_oneof_allof(void) {
    const char *any = "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\",\"minimum\":0}]}";
    VALID(any, "\"s\"");
    VALID(any, "5");
    REJECT_AT(any, "-5", 0);
    VALID("{\"oneOf\":[{\"type\":\"boolean\"},{\"type\":\"null\"}]}", "null");
    /* oneOf is a union only when branches cannot overlap: types, values, or a required tag */
    const char *tagged = "{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"a\"},\"x\":{\"type\":\"integer\"}},\"required\":[\"k\"]},"
                         "{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"b\"}},\"required\":[\"k\"]}]}";
    VALID(tagged, "{\"k\":\"b\"}");
    VALID("{\"oneOf\":[{\"enum\":[1,2]},{\"enum\":[3]}]}", "3");
    refuse("{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", LL_ERR_UNSUPPORTED, "both match");
    refuse("{\"oneOf\":[{\"type\":\"object\"},{\"type\":\"object\",\"required\":[\"a\"]}]}", LL_ERR_UNSUPPORTED, "anyOf");
    const char *all = "{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}},"
                      "{\"properties\":{\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}]}";
    VALID(all, "{\"a\":1,\"b\":\"x\"}");
    VALID(all, "{\"b\":\"x\"}");
    REJECT_AT(all, "{\"a\":1}", 6);
    /* siblings of anyOf apply to each branch */
    const char *sib = "{\"type\":\"object\",\"required\":[\"t\"],\"anyOf\":[{\"properties\":{\"t\":{\"const\":1}}},"
                      "{\"properties\":{\"t\":{\"const\":2}}}]}";
    VALID(sib, "{\"t\":2}");
    REJECT_AT(sib, "{\"t\":3}", 5);
    refuse("{\"allOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", LL_ERR_UNSUPPORTED, "no type in common");
    refuse("{\"allOf\":[{\"pattern\":\"a\"},{\"pattern\":\"b\"}]}", LL_ERR_UNSUPPORTED, "pattern");
}

static void test_ref_defs_and_recursion(void) {
    const char *tree = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
                       "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}},"
                       "\"$ref\":\"#/$defs/node\"}";
    VALID(tree, "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[{\"v\":4,\"kids\":[]}]}]}");
    REJECT_AT(tree, "{\"v\":1,\"kids\":[{\"w\":2}]}", 17);
    VALID("{\"definitions\":{\"s\":{\"type\":\"string\"}},\"type\":\"array\",\"items\":{\"$ref\":\"#/definitions/s\"}}", "[\"a\"]");
    /* JSON pointer escapes */
    VALID("{\"$defs\":{\"a/b\":{\"const\":1}},\"$ref\":\"#/$defs/a~1b\"}", "1");
    /* recursion through the root */
    VALID("{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}", "[[],[[]]]");
    refuse("{\"$ref\":\"#\"}", LL_ERR_LIMIT, "$ref");
    refuse("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}", LL_ERR_LIMIT, "cycle");
    refuse("{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#\"}},\"required\":[\"x\"]}", LL_ERR_UNSUPPORTED, "never complete");
    refuse("{\"$ref\":\"#/$defs/nope\"}", LL_ERR_FORMAT, "does not resolve");
    refuse("{\"$ref\":\"https://example.com/s.json\"}", LL_ERR_UNSUPPORTED, "local");
}

static void test_string_lengths(void) {
    const char *s = "{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}";
    REJECT_AT(s, "\"a\"", 2);
    VALID(s, "\"ab\"");
    VALID(s, "\"a\\\"c\"");                    /* an escape is one character */
    VALID(s, "\"\xe6\x97\xa5\xe6\x9c\xac\"");  /* so is a multi-byte one */
    REJECT_AT(s, "\"abcd\"", 4);
    REJECT_AT(s, "\"a\\u0041\"", 3);           /* no \u escapes where length counts */
    refuse("{\"type\":\"string\",\"minLength\":5,\"maxLength\":2}", LL_ERR_UNSUPPORTED, "minLength");
    refuse("{\"type\":\"string\",\"minLength\":-1}", LL_ERR_FORMAT, "minLength");
}

static void test_string_formats(void) {
    VALID("{\"format\":\"date\"}", "\"2024-02-28\"");
    REJECT_AT("{\"format\":\"date\"}", "\"2024-13-01\"", 7);
    REJECT_AT("{\"format\":\"date\"}", "\"2024-04-31\"", 10);
    VALID("{\"type\":\"string\",\"format\":\"date-time\"}", "\"2024-01-02T03:04:05.123+02:00\"");
    REJECT_AT("{\"type\":\"string\",\"format\":\"date-time\"}", "\"2024-01-02 03", 11);
    VALID("{\"type\":\"string\",\"format\":\"time\"}", "\"23:59:59Z\"");
    VALID("{\"type\":\"string\",\"format\":\"uuid\"}", "\"123e4567-e89b-12d3-a456-426614174000\"");
    REJECT_AT("{\"type\":\"string\",\"format\":\"uuid\"}", "\"123e4567e", 9);
    VALID("{\"type\":\"string\",\"format\":\"email\"}", "\"first.last@example.com\"");
    REJECT_AT("{\"type\":\"string\",\"format\":\"email\"}", "\"ab\"", 3);
    refuse("{\"type\":\"string\",\"format\":\"uri\"}", LL_ERR_UNSUPPORTED, "uri");
    refuse("{\"type\":\"string\",\"format\":\"date\",\"pattern\":\"x\"}", LL_ERR_UNSUPPORTED, "pattern");
}

static void test_string_patterns(void) {
    const char *p = "{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}[0-9]+$\"}";
    VALID(p, "\"AB12\"");
    REJECT_AT(p, "\"A1\"", 2);
    REJECT_AT(p, "\"AB\"", 3);
    /* unanchored: search semantics, anything around */
    const char *u = "{\"pattern\":\"abc\"}";
    VALID(u, "\"xxabcyy\"");
    VALID(u, "\"abc\"");
    INCOMPLETE(u, "\"xxab");
    REJECT_AT(u, "\"xxab\"", 5);
    VALID("{\"pattern\":\"^(?:cat|dog)s?$\"}", "\"dogs\"");
    REJECT_AT("{\"pattern\":\"^(?:cat|dog)s?$\"}", "\"cow\"", 2);
    VALID("{\"pattern\":\"^a.c$\"}", "\"a\xc3\xa9" "c\"");
    VALID("{\"pattern\":\"^\\\\d{3}-\\\\w+$\"}", "\"123-ab_c\"");
    REJECT_AT("{\"pattern\":\"^\\\\d{3}-\\\\w+$\"}", "\"12-\"", 3);
    VALID("{\"pattern\":\"^[^0-9]*$\"}", "\"ab\\\"c\"");   /* a quote inside: written escaped */
    REJECT_AT("{\"pattern\":\"^[^0-9]*$\"}", "\"a1\"", 2);
    VALID("{\"pattern\":\"^a\\\\.b\\\\\\\\$\"}", "\"a.b\\\\\"");
    refuse("{\"pattern\":\"(?=a)b\"}", LL_ERR_UNSUPPORTED, "lookaround");
    refuse("{\"pattern\":\"(a)\\\\1\"}", LL_ERR_UNSUPPORTED, "offset");
    refuse("{\"pattern\":\"a^b\"}", LL_ERR_UNSUPPORTED, "^");
    refuse("{\"pattern\":\"[a-\"}", LL_ERR_UNSUPPORTED, "pattern");
}

static void test_integer_ranges(void) {
    const char *r = "{\"type\":\"integer\",\"minimum\":10,\"maximum\":99}";
    VALID(r, "10");
    VALID(r, "99");
    VALID(r, "55");
    INCOMPLETE(r, "9");
    REJECT_AT(r, "100", 2);
    REJECT_AT(r, "-1", 0);
    const char *z = "{\"type\":\"integer\",\"minimum\":-5,\"maximum\":5}";
    VALID(z, "-5");
    VALID(z, "0");
    REJECT_AT(z, "-6", 1);
    REJECT_AT(z, "-0", 1);
    REJECT_AT(z, "6", 0);
    const char *pos = "{\"type\":\"integer\",\"exclusiveMinimum\":0}";
    REJECT_AT(pos, "0", 0);
    VALID(pos, "12345");
    REJECT_AT(pos, "-1", 0);
    const char *big = "{\"type\":\"integer\",\"minimum\":1234,\"maximum\":56789}";
    for (int v = 1200; v < 60000; v += 37) {
        char t[16];
        snprintf(t, sizeof t, "%d", v);
        long at = run(big, t);
        CHECK_MSG((at == -1) == (v >= 1234 && v <= 56789), "%d -> %ld", v, at);
    }
    VALID("{\"type\":\"integer\",\"maximum\":-10}", "-123");
    REJECT_AT("{\"type\":\"integer\",\"maximum\":-10}", "-9", -2);
    refuse("{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", LL_ERR_UNSUPPORTED, "minimum");
    refuse("{\"type\":\"integer\",\"minimum\":1e30}", LL_ERR_LIMIT, "minimum");
}

static void test_number_bounds(void) {
    const char *n = "{\"type\":\"number\",\"minimum\":0,\"maximum\":10}";
    VALID(n, "3.5");
    VALID(n, "10");
    VALID(n, "0.25");
    REJECT_AT(n, "10.5", 2);
    REJECT_AT(n, "-1", 0);
    REJECT_AT(n, "11", 1);
    const char *neg = "{\"type\":\"number\",\"minimum\":-2}";
    VALID(neg, "-1.99");
    VALID(neg, "-2");
    REJECT_AT(neg, "-2.5", 2);
    VALID(neg, "12.5");
    REJECT_AT(neg, "1e3", 1);   /* no exponents where bounds apply */
}

static void test_unsupported_keywords_are_named(void) {
    const char *kw[] = { "multipleOf", "uniqueItems", "not", "if", "patternProperties", "minProperties",
                         "propertyNames", "contains", "dependentRequired", "unevaluatedProperties" };
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++) {
        char s[160];
        snprintf(s, sizeof s, "{\"type\":\"object\",\"properties\":{\"n\":{\"%s\":2}}}", kw[i]);
        char needle[64];
        snprintf(needle, sizeof needle, "'%s' at #/properties/n", kw[i]);
        refuse(s, LL_ERR_UNSUPPORTED, needle);
    }
    /* annotations are fine */
    VALID("{\"title\":\"T\",\"description\":\"d\",\"examples\":[1],\"default\":1,\"$schema\":\"x\",\"type\":\"integer\"}", "1");
}

static void test_bad_schemas(void) {
    refuse("{\"type\":", LL_ERR_FORMAT, "invalid JSON");
    refuse("[1]", LL_ERR_FORMAT, "object");
    refuse("{\"a\":1,\"a\":2}", LL_ERR_FORMAT, "invalid JSON");
    refuse("{\"properties\":3}", LL_ERR_FORMAT, "properties");
    size_t big = 10u << 20;
    char *s = malloc(big + 1);
    memset(s, ' ', big);
    s[0] = '{'; s[big - 1] = '}'; s[big] = 0;
    refuse(s, LL_ERR_LIMIT, "cap");
    free(s);
    /* deep nesting of schemas: a clear limit, no stack overflow */
    size_t depth = 2000, n = 0;
    char *d = malloc(depth * 40 + 64);
    for (size_t i = 0; i < depth; i++) n += (size_t)sprintf(d + n, "{\"type\":\"array\",\"items\":");
    n += (size_t)sprintf(d + n, "{}");
    for (size_t i = 0; i < depth; i++) d[n++] = '}';
    d[n] = 0;
    refuse(d, LL_ERR_LIMIT, "deeper");
    free(d);
}

/* Every allocation failure on the compile path is reported and leaks nothing (run under asan). */
static void test_allocation_failures(void) {
    const char *s = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^x+$\"},"
                    "\"b\":{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}},\"required\":[\"a\"]}";
    int ok_at = -1;
    for (long k = 0; k < 4000; k++) {
        ll_error err = {0};
        ll_grammar *g = NULL;
        ll_alloc_fail_after(k);
        ll_status st = ll_grammar_init_schema(&g, NULL, s, strlen(s), &err);
        ll_alloc_fail_after(-1);
        if (st == LL_OK) { ok_at = (int)k; ll_grammar_free(g); break; }
        CHECK_MSG(st == LL_ERR_NOMEM || st == LL_ERR_LIMIT, "fail after %ld: %s %s", k, ll_status_name(st), err.msg);
    }
    CHECK(ok_at > 0);
}

/* ---- tool calls (gr_compile_tools) ---- */

static long run_tools(const char *spec, const char *text) {
    ll_error err = {0};
    ll_grammar *g;
    if (ll_grammar_init_tools(&g, NULL, spec, strlen(spec), &err) != LL_OK) {
        fprintf(stderr, "  tools refused: %s\n", err.msg);
        return -3;
    }
    long at = -1;
    for (size_t i = 0; text[i]; i++)
        if (ll_grammar_accept_bytes(g, text + i, 1, &err) != LL_OK) { at = (long)i; break; }
    if (at == -1 && !ll_grammar_can_end(g)) at = -2;
    ll_grammar_free(g);
    return at;
}
#define TOOL_OK(spec, text) CHECK_MSG(run_tools(spec, text) == -1, "'%s' -> %ld", text, run_tools(spec, text))
#define TOOL_AT(spec, text, idx) CHECK_MSG(run_tools(spec, text) == (idx), "'%s' -> %ld, expected %d", text, run_tools(spec, text), idx)

#define WEATHER "{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}," \
                "\"unit\":{\"enum\":[\"c\",\"f\"]}},\"required\":[\"city\",\"unit\"]}}"
#define ADD "{\"name\":\"add\",\"strict\":true,\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}," \
            "\"b\":{\"type\":\"integer\"}},\"required\":[\"a\",\"b\"],\"additionalProperties\":false}}"

static void test_tool_call_union_over_tools(void) {
    const char *spec = "{\"tools\":[" WEATHER "," ADD "],\"name_key\":\"name\",\"args_key\":\"parameters\"}";
    TOOL_OK(spec, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"c\"}}");
    TOOL_OK(spec, "{\"name\":\"add\",\"parameters\":{\"a\":1,\"b\":-2}}");
    TOOL_AT(spec, "{\"name\":\"sub\"", 9);                                  /* not a tool name */
    TOOL_AT(spec, "{\"name\":\"add\",\"parameters\":{\"a\":\"1\"", 32);     /* add's a is an integer */
    TOOL_AT(spec, "{\"name\":\"add\",\"parameters\":{\"city\"", 29);        /* that is the other tool's */
    TOOL_AT(spec, "{\"name\":\"get_weather\",\"parameters\":{\"city\":\"x\",\"unit\":\"k\"", 55);
    TOOL_AT(spec, "{\"parameters\"", 2);                                   /* name comes first */
    TOOL_AT(spec, "{\"name\":\"add\",\"arguments\"", 15);                  /* the template's key */
    TOOL_AT(spec, " {", 0);                                                /* no leading space */
    TOOL_AT(spec, "{\"name\":\"add\",\"parameters\":{\"a\":1,\"b\":2}} x", 41);   /* one call, then the end */
}

static void test_tool_call_syntax_variants(void) {
    /* a tag marker in front, whitespace after it, arguments first */
    const char *tag = "{\"tools\":[" ADD "],\"name_key\":\"name\",\"args_key\":\"arguments\",\"args_first\":true,"
                      "\"prefix\":\"<tool_call>\",\"lead_ws\":true}";
    TOOL_OK(tag, "<tool_call>\n{\"arguments\": {\"a\": 1, \"b\": 2}, \"name\": \"add\"}");
    TOOL_AT(tag, "{\"arguments\"", 0);
    TOOL_AT(tag, "<tool_call>\n{\"name\"", 14);
    /* Mistral-style: an array of calls, one at least */
    const char *arr = "{\"tools\":[" ADD "," WEATHER "],\"name_key\":\"name\",\"args_key\":\"arguments\",\"array\":true}";
    TOOL_OK(arr, "[{\"name\":\"add\",\"arguments\":{\"a\":1,\"b\":2}}, {\"name\":\"get_weather\",\"arguments\":{\"city\":\"R\",\"unit\":\"f\"}}]");
    TOOL_AT(arr, "[]", 1);
}

static void test_tool_call_loose_and_strict_schemas(void) {
    /* not strict: multipleOf is not enforced, so n may be any JSON value, but the rest holds */
    const char *loose = "{\"tools\":[{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{"
                        "\"n\":{\"type\":\"integer\",\"multipleOf\":3},\"s\":{\"type\":\"string\"}},\"required\":[\"n\",\"s\"]}}],"
                        "\"name_key\":\"name\",\"args_key\":\"arguments\"}";
    TOOL_OK(loose, "{\"name\":\"f\",\"arguments\":{\"n\":[1,\"x\"],\"s\":\"ok\"}}");
    TOOL_AT(loose, "{\"name\":\"f\",\"arguments\":{\"n\":4,\"s\":5", 35);
    /* not strict, parameters that do not compile at all (a $ref that does not resolve), or none: any object */
    const char *broken = "{\"tools\":[{\"name\":\"g\",\"parameters\":{\"$ref\":\"#/nowhere\"}},{\"name\":\"h\"}],"
                         "\"name_key\":\"name\",\"args_key\":\"arguments\"}";
    TOOL_OK(broken, "{\"name\":\"g\",\"arguments\":{\"any\":[1]}}");
    TOOL_OK(broken, "{\"name\":\"h\",\"arguments\":{}}");
    TOOL_AT(broken, "{\"name\":\"h\",\"arguments\":3", 24);
    /* strict: the same keyword is an error naming the tool and the keyword */
    const char *strict = "{\"tools\":[{\"name\":\"f\",\"strict\":true,\"parameters\":{\"type\":\"object\",\"properties\":{"
                         "\"n\":{\"type\":\"integer\",\"multipleOf\":3}}}}],\"name_key\":\"name\",\"args_key\":\"arguments\"}";
    ll_error err = {0};
    ll_grammar *g = NULL;
    CHECK(ll_grammar_init_tools(&g, NULL, strict, strlen(strict), &err) == LL_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "tool 'f'") && strstr(err.msg, "multipleOf"), "%s", err.msg);
    ll_grammar_free(g);
    /* bad specs */
    CHECK(ll_grammar_init_tools(&g, NULL, "{\"tools\":[]}", 12, &err) == LL_ERR_FORMAT);
    CHECK(ll_grammar_init_tools(&g, NULL, "{\"tools\":[{}],\"name_key\":\"n\",\"args_key\":\"a\"}", 44, &err) == LL_ERR_FORMAT);
    CHECK(ll_grammar_init_tools(&g, NULL, "[", 1, &err) == LL_ERR_FORMAT);
}

int main(void) {
    RUN(test_type_each_and_unions);
    RUN(test_properties_in_order_with_required);
    RUN(test_additional_properties);
    RUN(test_items_prefix_min_max);
    RUN(test_enum_and_const);
    RUN(test_anyof_oneof_allof);
    RUN(test_ref_defs_and_recursion);
    RUN(test_string_lengths);
    RUN(test_string_formats);
    RUN(test_string_patterns);
    RUN(test_integer_ranges);
    RUN(test_number_bounds);
    RUN(test_unsupported_keywords_are_named);
    RUN(test_bad_schemas);
    RUN(test_allocation_failures);
    RUN(test_tool_call_union_over_tools);
    RUN(test_tool_call_syntax_variants);
    RUN(test_tool_call_loose_and_strict_schemas);
    return test_summary();
}
