/* tokenize / detokenize: the tokenizer from the command line (issue 2 command contracts).
 *
 *   locallama tokenize --model PATH [--no-bos] [--parse-special] [TEXT]
 *       prints the ids as one JSON array; without TEXT the text is all of stdin (raw bytes)
 *   locallama detokenize --model PATH [--pieces] ID...
 *       IDs as numbers, comma lists or tokenize's JSON array; "-" reads them from stdin;
 *       writes the decoded bytes (special tokens rendered, spec 4.2) and nothing else;
 *       --pieces writes the plain concatenation of the pieces instead (no clean-up) */
#include "cli/cli.h"
#include "tokenizer/tokenizer.h"   /* ll_vocab_load_decode_only */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char tokenize_usage[] =
    "usage: locallama tokenize --model PATH [--no-bos] [--parse-special] [TEXT]\n";
static const char detokenize_usage[] =
    "usage: locallama detokenize --model PATH [--pieces] ID... | -\n"
    "  ID: 17, 17,42 or tokenize's output [17, 42]; - reads them from stdin\n";

static int usage_error(const char *usage, const char *fmt, const char *arg) {
    fputs("Error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    fputs(usage, stderr);
    return 2;
}

/* All of stdin; NULL on a read error or out of memory. */
static char *read_stdin(size_t *n) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (len == cap) {
            char *b = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!b) { free(buf); return NULL; }
            buf = b;
            cap *= 2;
        }
        size_t k = fread(buf + len, 1, cap - len, stdin);
        len += k;
        if (k == 0) {
            if (ferror(stdin)) { free(buf); return NULL; }
            break;
        }
    }
    *n = len;
    return buf;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    bool no_bos = false, parse_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--model") || !strcmp(a, "-m")) {
            if (++i >= argc) return usage_error(tokenize_usage, "%s needs a value", a);
            model = argv[i];
        } else if (!strcmp(a, "--no-bos")) {
            no_bos = true;
        } else if (!strcmp(a, "--parse-special")) {
            parse_special = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(tokenize_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--")) {
            if (i + 1 < argc) text = argv[++i];
            if (i + 1 < argc) return usage_error(tokenize_usage, "unexpected argument '%s'", argv[i + 1]);
        } else if (a[0] == '-' && a[1] != '\0' && !text) {
            return usage_error(tokenize_usage, "unknown option '%s'", a);
        } else if (!text) {
            text = a;
        } else {
            return usage_error(tokenize_usage, "unexpected argument '%s' (quote the text)", a);
        }
    }
    if (!model) return usage_error(tokenize_usage, "%s", "--model is required");

    char *owned = NULL;
    size_t len;
    if (text) {
        len = strlen(text);
    } else {
        owned = read_stdin(&len);
        if (!owned) return cli_fail("reading stdin: %s", strerror(errno ? errno : ENOMEM));
        text = owned;
    }
    ll_error err = { 0 };
    ll_vocab *v = NULL;
    if (ll_vocab_load(&v, model, &err) != LL_OK) { free(owned); return cli_fail_err(&err); }

    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    int rc = 0;
    if (!ids) { rc = cli_fail("out of memory"); goto done; }
    if (ll_tok_encode(v, text, len, !no_bos, parse_special, ids, cap, &n, &err) != LL_OK) {
        rc = cli_fail_err(&err);
        goto done;
    }
    if (n > cap) {   /* cannot happen (at most one id per byte plus BOS/EOS), but be exact */
        free(ids);
        cap = n;
        ids = malloc(cap * sizeof *ids);
        if (!ids) { rc = cli_fail("out of memory"); goto done; }
        if (ll_tok_encode(v, text, len, !no_bos, parse_special, ids, cap, &n, &err) != LL_OK) {
            rc = cli_fail_err(&err);
            goto done;
        }
    }
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    puts("]");
    if (fflush(stdout) != 0) rc = 1;
done:
    free(ids);
    free(owned);
    ll_vocab_free(v);
    return rc;
}

/* Ids from one argument or from stdin: decimal integers separated by commas and/or blanks,
 * optionally inside [ ] so that tokenize's own output ("[1, 2, 3]", whole or split into
 * words by the shell) reads back. Returns 0, -1 for text that is not an id, -2 out of memory. */
static int parse_ids(const char *a, int32_t **ids, size_t *n, size_t *cap) {
    const char *p = a;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',' || *p == '[' || *p == ']') p++;
        if (*p == '\0') return 0;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno) return -1;
        if (*end && !strchr(" \t\n\r,[]", *end)) return -1;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 64;
            int32_t *b = realloc(*ids, c * sizeof *b);
            if (!b) return -2;
            *ids = b;
            *cap = c;
        }
        (*ids)[(*n)++] = x < INT32_MIN ? INT32_MIN : x > INT32_MAX ? INT32_MAX : (int32_t)x;
        p = end;
    }
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL;
    bool pieces = false, from_stdin = false;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--model") || !strcmp(a, "-m")) {
            if (++i >= argc) { rc = usage_error(detokenize_usage, "%s needs a value", a); goto done; }
            model = argv[i];
        } else if (!strcmp(a, "--pieces")) {
            pieces = true;
        } else if (!strcmp(a, "-")) {
            from_stdin = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(detokenize_usage, stdout);
            goto done;
        } else if (a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')) {
            rc = usage_error(detokenize_usage, "unknown option '%s'", a);
            goto done;
        } else {
            int r = parse_ids(a, &ids, &n, &cap);
            if (r == -2) { rc = cli_fail("out of memory"); goto done; }
            if (r < 0) { rc = usage_error(detokenize_usage, "'%s' is not a token id", a); goto done; }
        }
    }
    if (!model) { rc = usage_error(detokenize_usage, "%s", "--model is required"); goto done; }
    if (from_stdin) {   /* `tokenize ... | detokenize --model M -` */
        size_t len = 0;
        char *in = read_stdin(&len);
        if (!in) { rc = cli_fail("cannot read stdin"); goto done; }
        char *z = realloc(in, len + 1);
        if (!z) { free(in); rc = cli_fail("out of memory"); goto done; }
        z[len] = '\0';
        int r = parse_ids(z, &ids, &n, &cap);
        free(z);
        if (r == -2) { rc = cli_fail("out of memory"); goto done; }
        if (r < 0) { rc = usage_error(detokenize_usage, "%s", "stdin holds something that is not a token id"); goto done; }
    }

    ll_error err = { 0 };
    ll_vocab *v = NULL;
    if (ll_vocab_load_decode_only(&v, model, &err) != LL_OK) { rc = cli_fail_err(&err); goto done; }
    int32_t n_vocab = ll_vocab_n_tokens(v);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= n_vocab) {
            rc = cli_fail("token id %d is out of range (the vocabulary has %d tokens)", ids[i], n_vocab);
            ll_vocab_free(v);
            goto done;
        }
    }
    size_t len = 0;
    char *out = NULL;
    if (pieces) {
        for (size_t i = 0; i < n; i++) len += ll_tok_piece(v, ids[i], true, NULL, 0);
        out = malloc(len ? len : 1);
        if (out) {
            size_t k = 0;
            for (size_t i = 0; i < n; i++) k += ll_tok_piece(v, ids[i], true, out + k, len - k);
        }
    } else {
        len = ll_tok_decode(v, ids, n, false, true, NULL, 0);
        out = malloc(len ? len : 1);
        if (out) len = ll_tok_decode(v, ids, n, false, true, out, len);
    }
    ll_vocab_free(v);
    if (!out) { rc = cli_fail("out of memory"); goto done; }
    if (fwrite(out, 1, len, stdout) != len || fflush(stdout) != 0) rc = 1;
    free(out);
done:
    free(ids);
    return rc;
}
