/* grammar_sample: random sentences of a format-"json" grammar or a JSON Schema's grammar, one
 * per line as a JSON string literal, for tests/py/test_grammar_schemas.py.
 *
 *     grammar_sample (--json | --object | --schema FILE) [--seed N] [--count N] [--budget N]
 *
 * Each sample is also fed back byte by byte through the matcher (it must be accepted and
 * complete), so the tool checks the generator and the matcher against each other.
 * Exit status: 0 ok, 1 a sample failed the matcher, 2 the schema was refused (message on
 * stderr, as the server would put it in its 400). */
#include "grammar/grammar.h"

#include <stdio.h>
#include <stdlib.h>

static void put_literal(const char *p, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') { putchar('\\'); putchar(c); }
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    puts("\"");
}

int main(int argc, char **argv) {
    const char *schema_path = NULL;
    int mode = 0;   /* 0 any value, 1 object, 2 schema */
    uint64_t seed = 1;
    long count = 10, budget = 200;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) mode = 0;
        else if (!strcmp(argv[i], "--object")) mode = 1;
        else if (!strcmp(argv[i], "--schema") && i + 1 < argc) { mode = 2; schema_path = argv[++i]; }
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--count") && i + 1 < argc) count = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc) budget = strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s (--json | --object | --schema FILE) [--seed N] [--count N] [--budget N]\n", argv[0]);
            return 2;
        }
    }
    ll_error err = {0};
    ll_grammar *g = NULL;
    ll_status st;
    if (mode == 2) {
        FILE *f = strcmp(schema_path, "-") ? fopen(schema_path, "rb") : stdin;
        if (!f) { perror(schema_path); return 2; }
        size_t cap = 1 << 16, n = 0;
        char *buf = malloc(cap);
        size_t k;
        while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
            n += k;
            if (n == cap) { cap *= 2; char *b2 = realloc(buf, cap); if (!b2) { free(buf); buf = NULL; } else buf = b2; }
        }
        if (f != stdin) fclose(f);
        if (!buf) { fputs("out of memory\n", stderr); return 2; }
        st = ll_grammar_init_schema(&g, NULL, buf, n, &err);
        free(buf);
    } else {
        st = ll_grammar_init_json(&g, NULL, mode == 1, &err);
    }
    if (st != LL_OK) { fprintf(stderr, "%s: %s\n", ll_status_name(st), err.msg); return 2; }
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    int rc = 0;
    for (long i = 0; i < count && out; i++) {
        uint64_t rng = seed * 1000003u + (uint64_t)i;
        size_t n;
        if (gr_sample(gr_of(g), &rng, (size_t)budget, out, cap, &n, &err) != LL_OK) {
            fprintf(stderr, "sample %ld: %s\n", i, err.msg);
            rc = 1;
            break;
        }
        ll_grammar_reset(g);
        for (size_t j = 0; j < n && rc == 0; j++)
            if (ll_grammar_accept_bytes(g, out + j, 1, &err) != LL_OK) {
                fprintf(stderr, "sample %ld rejected at byte %zu: %s\n", i, j, err.msg);
                rc = 1;
            }
        if (rc == 0 && !ll_grammar_can_end(g)) { fprintf(stderr, "sample %ld: matcher says incomplete\n", i); rc = 1; }
        put_literal(out, n);
        if (rc) break;
    }
    free(out);
    ll_grammar_free(g);
    return rc;
}
