/* cli/cmd_models: list/ls, ps, show, rm, cp, stop — clients of `locallama serve` that print
 * what Ollama's CLI prints (ollama-cli.md §7-11, §14, formatting helpers §15). */
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/progress.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

// ---------------------------------------------------------------------------------------------
// formatting helpers (§15)

/* §15.3 HumanNumber for parameter counts. */
static void human_number(char *out, size_t cap, double b) {
    if (b >= 1e9) snprintf(out, cap, b / 1e9 == floor(b / 1e9) ? "%.0fB" : "%.1fB", b / 1e9);
    else if (b >= 1e6) snprintf(out, cap, b / 1e6 == floor(b / 1e6) ? "%.0fM" : "%.2fM", b / 1e6);
    else if (b >= 1e3) snprintf(out, cap, "%.0fK", b / 1e3);
    else snprintf(out, cap, "%.0f", b);
}

/* go-units HumanDuration, which Ollama's HumanTime wraps (§15.2). */
static void human_duration(char *out, size_t cap, double sec) {
    long s = (long)sec, m = (long)(sec / 60), h = (long)(sec / 3600 + 0.5);
    if (s < 1) snprintf(out, cap, "Less than a second");
    else if (s == 1) snprintf(out, cap, "1 second");
    else if (s < 60) snprintf(out, cap, "%ld seconds", s);
    else if (m == 1) snprintf(out, cap, "About a minute");
    else if (m < 60) snprintf(out, cap, "%ld minutes", m);
    else if (h == 1) snprintf(out, cap, "About an hour");
    else if (h < 48) snprintf(out, cap, "%ld hours", h);
    else if (h < 24 * 7 * 2) snprintf(out, cap, "%ld days", h / 24);
    else if (h < 24 * 30 * 2) snprintf(out, cap, "%ld weeks", h / 24 / 7);
    else if (h < 24 * 365 * 2) snprintf(out, cap, "%ld months", h / 24 / 30);
    else snprintf(out, cap, "%ld years", (long)(sec / 3600) / 24 / 365);
}

/* RFC 3339 ("2026-12-02T03:54:38.123456789+01:00" or "...Z") to seconds since the epoch.
 * 0 when it does not parse (Go's zero time shows as the caller's default). */
static double parse_rfc3339(const char *s) {
    if (!s) return 0;
    struct tm tm = {0};
    int n = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6)
        return 0;
    if (tm.tm_year <= 1) return 0;               /* 0001-01-01: Go's zero time */
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    double t = (double)timegm(&tm);
    const char *p = s + n;
    if (*p == '.') {
        double frac = 0, scale = 0.1;
        for (p++; isdigit((unsigned char)*p); p++, scale /= 10) frac += (*p - '0') * scale;
        t += frac;
    }
    int oh = 0, om = 0;
    if ((*p == '+' || *p == '-') && sscanf(p + 1, "%d:%d", &oh, &om) == 2)
        t -= (*p == '+' ? 1 : -1) * (oh * 3600.0 + om * 60.0);
    return t;
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* §15.2 HumanTime: "3 minutes ago", "4 minutes from now", Forever past 20 years. */
static void human_time(char *out, size_t cap, const char *rfc3339, const char *zero) {
    double t = parse_rfc3339(rfc3339), now = now_sec();
    if (t == 0) { snprintf(out, cap, "%s", zero); return; }
    if (t - now > 20 * 365.25 * 86400) { snprintf(out, cap, "Forever"); return; }
    char d[40];
    human_duration(d, sizeof d, fabs(now - t));
    snprintf(out, cap, "%s%s", d, t > now ? " from now" : " ago");
}

// ---------------------------------------------------------------------------------------------
// table layout (§15.4): every cell padded to its column's width plus four spaces; a header line
// ends with one space after its last cell's padding instead.

enum { TABLE_MAX_COLS = 8 };

typedef struct {
    char *(*cells)[TABLE_MAX_COLS];   /* (n_rows, TABLE_MAX_COLS) owned strings, NULL = absent */
    size_t n_rows, cap_rows;
    int has_header;
} table;

static int table_add(table *t, const char *const *row, size_t n) {
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
        void *p = realloc(t->cells, cap * sizeof *t->cells);
        if (!p) return -1;
        t->cells = p;
        t->cap_rows = cap;
    }
    for (size_t c = 0; c < TABLE_MAX_COLS; c++)
        t->cells[t->n_rows][c] = c < n && row[c] ? strdup(row[c]) : NULL;
    t->n_rows++;
    return 0;
}

/* Columns on a terminal, counted as code points (no East Asian wide characters yet). */
static size_t text_width(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void table_print(table *t, const char *indent) {
    size_t w[TABLE_MAX_COLS] = {0};
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < TABLE_MAX_COLS; c++)
            if (t->cells[r][c] && text_width(t->cells[r][c]) > w[c]) w[c] = text_width(t->cells[r][c]);
    for (size_t r = 0; r < t->n_rows; r++) {
        size_t last = 0;
        for (size_t c = 0; c < TABLE_MAX_COLS; c++) if (t->cells[r][c]) last = c;
        fputs(indent, stdout);
        for (size_t c = 0; c <= last; c++) {
            const char *s = t->cells[r][c] ? t->cells[r][c] : "";
            int header_end = t->has_header && r == 0 && c == last;
            printf("%s%*s%s", s, (int)(w[c] - text_width(s)), "", header_end ? " " : "    ");
        }
        putchar('\n');
    }
}

static void table_free(table *t) {
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < TABLE_MAX_COLS; c++) free(t->cells[r][c]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

// ---------------------------------------------------------------------------------------------
// shared plumbing

/* Heartbeat then one call; on HTTP >= 400 prints the server's error. *out gets the parsed JSON
 * body (may be NULL for an empty body). */
static int request_json(const char *method, const char *path, json_t *req, json_t **out, long *status) {
    cli_resp r;
    if (cli_call(method, path, req, &r)) return 1;
    if (status) *status = r.status;
    if (r.status >= 400) {
        if (status) { *out = cli_resp_json(&r); cli_resp_free(&r); return 0; }
        int ret = cli_resp_fail(&r);
        cli_resp_free(&r);
        return ret;
    }
    *out = cli_resp_json(&r);
    cli_resp_free(&r);
    return 0;
}

static int args_exact(int n_want, int n_got) {
    if (n_want == n_got) return 0;
    fprintf(stderr, "Error: accepts %d arg(s), received %d\n", n_want, n_got);
    return 2;
}

static int unknown_flag(const char *a) {
    fprintf(stderr, "Error: unknown flag: %s\n", a);
    return 2;
}

static void short_id(char *out, const char *digest) {
    if (!digest) digest = "";
    if (!strncmp(digest, "sha256:", 7)) digest += 7;
    snprintf(out, 13, "%s", digest);
}

/* Per-command help in the layout of ollama-cli.md §2.2: description, usage, aliases, flags,
 * then the environment block (six spaces, name in 27 columns, three spaces, text). */
static int help(const char *desc, const char *use, const char *aliases, const char *flags) {
    printf("%s\n\nUsage:\n  locallama %s [flags]\n\n", desc, use);
    if (aliases) printf("Aliases:\n  %s\n\n", aliases);
    printf("Flags:\n  -h, --help         help for %.*s\n%s\n", (int)strcspn(use, " "), use, flags ? flags : "");
    printf("Environment Variables:\n      %-27s   %s\n      %-27s   %s\n",
           "LOCALLAMA_HOST", "Address of the locallama server (default 127.0.0.1:11434)",
           "OLLAMA_HOST", "Used when LOCALLAMA_HOST is unset");
    return 0;
}

// ---------------------------------------------------------------------------------------------
// list / ls (§7)

int cmd_list(int argc, char **argv) {
    const char *prefix = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return help("List the server's models", "list [PREFIX]", "list, ls", NULL);
        }
        if (argv[i][0] == '-') return unknown_flag(argv[i]);
        if (!prefix) prefix = argv[i];           /* extra arguments are accepted silently */
    }
    if (cli_heartbeat()) return 1;
    json_t *j = NULL;
    if (request_json("GET", "/api/tags", NULL, &j, NULL)) return 1;
    table t = { .has_header = 1 };
    const char *hdr[] = { "NAME", "ID", "SIZE", "MODIFIED" };
    table_add(&t, hdr, 4);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(j, "models"), i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (!name) continue;
        if (prefix && strncasecmp(name, prefix, strlen(prefix))) continue;
        char id[13], size[32], mod[80];
        short_id(id, json_string_value(json_object_get(m, "digest")));
        if (json_object_get(m, "remote_host")) snprintf(size, sizeof size, "-");
        else cli_human_bytes(size, sizeof size, json_integer_value(json_object_get(m, "size")));
        human_time(mod, sizeof mod, json_string_value(json_object_get(m, "modified_at")), "Never");
        const char *row[] = { name, id, size, mod };
        table_add(&t, row, 4);
    }
    table_print(&t, "");
    table_free(&t);
    json_decref(j);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// ps (§8)

static int ps_cmp(const void *a, const void *b) {
    double x = parse_rfc3339(json_string_value(json_object_get(*(json_t *const *)a, "expires_at")));
    double y = parse_rfc3339(json_string_value(json_object_get(*(json_t *const *)b, "expires_at")));
    return (x < y) - (x > y);                    /* latest expiry first */
}

int cmd_ps(int argc, char **argv) {
    const char *prefix = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return help("List the models loaded in memory", "ps", NULL, NULL);
        }
        if (argv[i][0] == '-') return unknown_flag(argv[i]);
        if (!prefix) prefix = argv[i];
    }
    if (cli_heartbeat()) return 1;
    json_t *j = NULL;
    if (request_json("GET", "/api/ps", NULL, &j, NULL)) return 1;
    json_t *models = json_object_get(j, "models");
    size_t n = json_array_size(models), i;
    json_t **v = calloc(n ? n : 1, sizeof *v);
    if (!v) { json_decref(j); return cli_fail("out of memory"); }
    for (i = 0; i < n; i++) v[i] = json_array_get(models, i);
    qsort(v, n, sizeof *v, ps_cmp);
    table t = { .has_header = 1 };
    const char *hdr[] = { "NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL" };
    table_add(&t, hdr, 6);
    for (i = 0; i < n; i++) {
        const char *name = json_string_value(json_object_get(v[i], "name"));
        if (!name || (prefix && strncmp(name, prefix, strlen(prefix)))) continue;
        char id[13], size[32], proc[48], ctx[24], until[80];
        short_id(id, json_string_value(json_object_get(v[i], "digest")));
        json_int_t sz = json_integer_value(json_object_get(v[i], "size"));
        json_int_t vr = json_integer_value(json_object_get(v[i], "size_vram"));
        cli_human_bytes(size, sizeof size, sz);
        if (vr == 0) snprintf(proc, sizeof proc, "100%% CPU");
        else if (vr == sz) snprintf(proc, sizeof proc, "100%% GPU");
        else if (vr > sz || sz == 0) snprintf(proc, sizeof proc, "Unknown");
        else {
            int cpu = (int)lround(100.0 * (double)(sz - vr) / (double)sz);
            snprintf(proc, sizeof proc, "%d%%/%d%% CPU/GPU", cpu, 100 - cpu);
        }
        snprintf(ctx, sizeof ctx, "%lld", (long long)json_integer_value(json_object_get(v[i], "context_length")));
        const char *exp = json_string_value(json_object_get(v[i], "expires_at"));
        double te = parse_rfc3339(exp);
        if (te != 0 && te < now_sec()) snprintf(until, sizeof until, "Stopping...");
        else human_time(until, sizeof until, exp, "Never");
        const char *row[] = { name, id, size, proc, ctx, until };
        table_add(&t, row, 6);
    }
    table_print(&t, "");
    table_free(&t);
    free(v);
    json_decref(j);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// show (§9)

/* Append rows ["", line] for the first two non-empty trimmed lines of text, then "..." when
 * more lines follow. */
static void add_text_rows(table *t, const char *text) {
    int shown = 0;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *a = p, *b = p + n;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (b > a) {
            if (shown == 2) { const char *row[] = { "", "..." }; table_add(t, row, 2); break; }
            /* the renderer wraps cells past 100 columns at spaces (exact breaks are not a
             * compatibility surface, ollama-cli.md §15.4) */
            while (b > a) {
                const char *cut = b;
                if (b - a > 100) {
                    cut = a + 100;
                    while (cut > a && *cut != ' ') cut--;
                    if (cut == a) cut = a + 100;
                }
                char *line = strndup(a, (size_t)(cut - a));
                const char *row[] = { "", line };
                table_add(t, row, 2);
                free(line);
                for (a = cut; a < b && *a == ' '; a++) {}
            }
            shown++;
        }
        p = e ? e + 1 : p + n;
    }
}

static void section(const char *title, table *t) {
    printf("  %s\n", title);
    table_print(t, "");
    putchar('\n');
    table_free(t);
}

static void fmt_number(char *out, size_t cap, json_t *v) {
    if (json_is_integer(v)) snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 1e18) snprintf(out, cap, "%.0f", d);
        else snprintf(out, cap, "%g", d);
    } else if (json_is_string(v)) snprintf(out, cap, "%s", json_string_value(v));
    else out[0] = 0;
}

/* Go's %v of a float64 (model_info numbers arrive as JSON floats in Ollama's CLI): the shortest
 * digits that read back, in %e form when the exponent is < -4 or >= 6 (3.212749888e+09,
 * 500000). */
static void go_float(char *out, size_t cap, double d) {
    char e[40];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (strtod(e, NULL) == d) break;
    }
    snprintf(e, sizeof e, "%.*e", p - 1, d);
    int x = d == 0 ? 0 : atoi(strchr(e, 'e') + 1);
    if (x < -4 || x >= 6) snprintf(out, cap, "%s", e);
    else snprintf(out, cap, "%.*f", p - 1 - x > 0 ? p - 1 - x : 0, d);
}

/* %v of one model_info value; arrays keep what fits in 10 columns, then " ...+N more]". */
static void go_value(char *out, size_t cap, json_t *v) {
    if (json_is_boolean(v)) snprintf(out, cap, "%s", json_is_true(v) ? "true" : "false");
    else if (json_is_string(v)) snprintf(out, cap, "%s", json_string_value(v));
    else if (json_is_number(v)) go_float(out, cap, json_number_value(v));
    else if (json_is_array(v)) {
        size_t n = json_array_size(v), shown = 0, width = 1, len = 1;
        char item[256];
        snprintf(out, cap, "[");
        for (size_t i = 0; i < n; i++) {
            go_value(item, sizeof item, json_array_get(v, i));
            size_t w = text_width(item) + (i ? 2 : 0);   /* Ollama counts ", " between items */
            if (width + w > 10) break;
            width += w;
            len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s", i ? " " : "", item);
            if (len >= cap) len = cap - 1;
            shown++;
        }
        if (shown < n) snprintf(out + len, cap - len, " ...+%zu more]", n - shown);
        else snprintf(out + len, cap - len, "]");
    } else if (json_is_null(v)) snprintf(out, cap, "<nil>");
    else { char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY); snprintf(out, cap, "%s", d ? d : ""); free(d); }
}

/* The license field is a string in Ollama's API; accept an array of strings as well. */
static char *license_text(json_t *l) {
    if (json_is_string(l)) return strdup(json_string_value(l));
    size_t n = 1, i;
    json_t *x;
    json_array_foreach(l, i, x) n += json_string_length(x) + 1;
    char *s = calloc(n, 1);
    if (!s) return NULL;
    json_array_foreach(l, i, x) {
        if (i) strcat(s, "\n");
        strcat(s, json_string_value(x) ? json_string_value(x) : "");
    }
    return s;
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void show_default(json_t *j, int verbose) {
    json_t *info = json_object_get(j, "model_info"), *details = json_object_get(j, "details");
    table t = {0};
    char buf[64];
    const char *arch = json_string_value(json_object_get(info, "general.architecture"));
    if (info && arch) {
        const char *r1[] = { "", "architecture", arch };
        table_add(&t, r1, 3);
        const char *ps = json_string_value(json_object_get(details, "parameter_size"));
        if (!ps || !ps[0]) {
            json_t *pc = json_object_get(info, "general.parameter_count");
            human_number(buf, sizeof buf, json_number_value(pc));
            ps = buf;
        }
        const char *r2[] = { "", "parameters", ps };
        table_add(&t, r2, 3);
        char key[128], v1[64], v2[64];
        snprintf(key, sizeof key, "%s.context_length", arch);
        fmt_number(v1, sizeof v1, json_object_get(info, key));
        if (v1[0]) { const char *r[] = { "", "context length", v1 }; table_add(&t, r, 3); }
        snprintf(key, sizeof key, "%s.embedding_length", arch);
        fmt_number(v2, sizeof v2, json_object_get(info, key));
        if (v2[0]) { const char *r[] = { "", "embedding length", v2 }; table_add(&t, r, 3); }
    } else {
        const char *r1[] = { "", "architecture", json_string_value(json_object_get(details, "family")) };
        table_add(&t, r1, 3);
        const char *r2[] = { "", "parameters", json_string_value(json_object_get(details, "parameter_size")) };
        table_add(&t, r2, 3);
    }
    const char *q = json_string_value(json_object_get(details, "quantization_level"));
    const char *rq[] = { "", "quantization", q ? q : "" };
    table_add(&t, rq, 3);
    const char *req = json_string_value(json_object_get(j, "requires"));
    if (req && req[0]) { const char *r[] = { "", "requires", req }; table_add(&t, r, 3); }
    section("Model", &t);

    json_t *caps = json_object_get(j, "capabilities");
    if (json_array_size(caps)) {
        size_t i;
        json_t *c;
        json_array_foreach(caps, i, c) {
            const char *r[] = { "", json_string_value(c) };
            table_add(&t, r, 2);
        }
        section("Capabilities", &t);
    }

    /* Parameters: whitespace-separated cells of each line (a value with spaces spreads over
     * several cells, as in Ollama). */
    const char *params = json_string_value(json_object_get(j, "parameters"));
    if (params && params[0]) {
        char *copy = strdup(params), *save = NULL;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            const char *row[TABLE_MAX_COLS] = { "" };
            size_t n = 1;
            char *s2 = NULL;
            for (char *w = strtok_r(line, " \t", &s2); w && n < TABLE_MAX_COLS; w = strtok_r(NULL, " \t", &s2))
                row[n++] = w;
            if (n > 1) table_add(&t, row, n);
        }
        free(copy);
        if (t.n_rows) section("Parameters", &t);
    }

    if (verbose) {
        /* -v: every model_info key sorted (jansson iterates in insertion order), then tensors */
        json_t *info_all = json_object_get(j, "model_info");
        size_t n_keys = json_object_size(info_all), k = 0;
        const char **keys = calloc(n_keys ? n_keys : 1, sizeof *keys);
        const char *key;
        json_t *val;
        if (keys) json_object_foreach(info_all, key, val) keys[k++] = key;
        if (keys) qsort(keys, k, sizeof *keys, str_cmp);
        for (size_t i = 0; i < k; i++) {
            char v[512];
            go_value(v, sizeof v, json_object_get(info_all, keys[i]));
            const char *row[] = { "", keys[i], v };
            table_add(&t, row, 3);
        }
        free(keys);
        if (t.n_rows) section("Metadata", &t);
        size_t i;
        json_t *ten;
        json_array_foreach(json_object_get(j, "tensors"), i, ten) {
            char shape[256];
            go_value(shape, sizeof shape, json_object_get(ten, "shape"));
            if (json_array_size(json_object_get(ten, "shape")) > 0) {   /* whole shape, no "...more" */
                size_t len = 1, d;
                json_t *dim;
                shape[0] = '[';
                shape[1] = 0;
                json_array_foreach(json_object_get(ten, "shape"), d, dim)
                    if (len < sizeof shape - 24)
                        len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", d ? " " : "",
                                                (long long)json_number_value(dim));
                snprintf(shape + len, sizeof shape - len, "]");
            }
            const char *row[] = { "", json_string_value(json_object_get(ten, "name")),
                                  json_string_value(json_object_get(ten, "type")), shape };
            table_add(&t, row, 4);
        }
        if (t.n_rows) section("Tensors", &t);
    }

    const char *sys = json_string_value(json_object_get(j, "system"));
    if (sys && sys[0]) {
        add_text_rows(&t, sys);
        if (t.n_rows) section("System", &t); else table_free(&t);
    }
    char *lic = license_text(json_object_get(j, "license"));
    if (lic && lic[0]) {
        add_text_rows(&t, lic);
        if (t.n_rows) section("License", &t); else table_free(&t);
    }
    free(lic);
}

int cmd_show(int argc, char **argv) {
    static const char *flags[] = { "--license", "--modelfile", "--parameters", "--system", "--template" };
    int which = -1, n_flags = 0, n_args = 0, verbose = 0;
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return help("Show a model's details, Modelfile, parameters, template, system or license",
                        "show MODEL", NULL,
                        "      --license      Show the license of a model\n"
                        "      --modelfile    Show the Modelfile of a model\n"
                        "      --parameters   Show the parameters of a model\n"
                        "      --system       Show the system message of a model\n"
                        "      --template     Show the template of a model\n"
                        "  -v, --verbose      Show detailed model information\n");
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { verbose = 1; continue; }
        if (a[0] == '-') {
            int k = -1;
            for (int f = 0; f < 5; f++) if (!strcmp(a, flags[f])) k = f;
            if (k < 0) return unknown_flag(a);
            if (k != which) n_flags++;
            which = k;
            continue;
        }
        n_args++;
        model = a;
    }
    if (n_args != 1) return args_exact(1, n_args);
    if (n_flags > 1)
        return cli_fail("only one of '--license', '--modelfile', '--parameters', '--system', or '--template' can be specified");
    if (cli_heartbeat()) return 1;
    json_t *req = json_pack("{s:s,s:b}", "model", model, "verbose", verbose), *j = NULL;
    int rc = request_json("POST", "/api/show", req, &j, NULL);
    json_decref(req);
    if (rc) return 1;
    const char *s;
    switch (which) {
    case 0: { char *lic = license_text(json_object_get(j, "license")); printf("%s\n", lic ? lic : ""); free(lic); break; }
    case 1: printf("%s\n", (s = json_string_value(json_object_get(j, "modelfile"))) ? s : ""); break;
    case 2: printf("%s\n", (s = json_string_value(json_object_get(j, "parameters"))) ? s : ""); break;
    case 3: fputs((s = json_string_value(json_object_get(j, "system"))) ? s : "", stdout); break;
    case 4: s = json_string_value(json_object_get(j, "template"));
            fputs(s && s[0] ? s : "{{ .Prompt }}", stdout); break;
    default: show_default(j, verbose);
    }
    json_decref(j);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// rm (§10), cp (§11), stop (§14)

/* Unload through generate with keep_alive 0. 0 ok, 404 not found, -1 other failure (printed
 * nothing), 1 transport error (printed). */
static int unload(const char *model) {
    json_t *req = json_pack("{s:s,s:s,s:s,s:b}", "model", model, "prompt", "", "keep_alive", "0s",
                            "stream", 0), *j = NULL;
    long status = 0;
    int rc = request_json("POST", "/api/generate", req, &j, &status);
    json_decref(req);
    json_decref(j);
    if (rc) return 1;
    if (status == 404) return 404;
    return status >= 400 ? -1 : 0;
}

int cmd_rm(int argc, char **argv) {
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return help("Remove models (unloading them first)", "rm MODEL [MODEL...]", NULL, NULL);
        }
        if (argv[i][0] == '-') return unknown_flag(argv[i]);
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "Error: requires at least 1 arg(s), only received 0\n");
        return 2;
    }
    if (cli_heartbeat()) return 1;
    for (int i = 1; i < argc; i++) {
        const char *m = argv[i];
        int u = unload(m);
        if (u == 1) return 1;
        if (u == -1) fprintf(stderr, "Warning: unable to stop model '%s'\n", m);
        json_t *req = json_pack("{s:s}", "model", m), *j = NULL;
        int rc = request_json("DELETE", "/api/delete", req, &j, NULL);
        json_decref(req);
        json_decref(j);
        if (rc) return 1;
        printf("deleted '%s'\n", m);
    }
    return 0;
}

int cmd_cp(int argc, char **argv) {
    const char *args[2] = { NULL, NULL };
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return help("Copy a model under a new name", "cp SOURCE DESTINATION", NULL, NULL);
        }
        if (argv[i][0] == '-') return unknown_flag(argv[i]);
        if (n < 2) args[n] = argv[i];
        n++;
    }
    if (n != 2) return args_exact(2, n);
    if (cli_heartbeat()) return 1;
    json_t *req = json_pack("{s:s,s:s}", "source", args[0], "destination", args[1]), *j = NULL;
    int rc = request_json("POST", "/api/copy", req, &j, NULL);
    json_decref(req);
    json_decref(j);
    if (rc) return 1;
    printf("copied '%s' to '%s'\n", args[0], args[1]);
    return 0;
}

int cmd_stop(int argc, char **argv) {
    const char *model = NULL;
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return help("Unload a running model", "stop MODEL", NULL, NULL);
        }
        if (argv[i][0] == '-') return unknown_flag(argv[i]);
        model = argv[i];
        n++;
    }
    if (n != 1) return args_exact(1, n);
    if (cli_heartbeat()) return 1;
    json_t *req = json_pack("{s:s}", "model", model), *j = NULL;
    long status = 0;
    int rc = request_json("POST", "/api/show", req, &j, &status);
    json_decref(req);
    if (rc) { json_decref(j); return 1; }
    if (status == 404) { json_decref(j); return cli_fail("couldn't find model \"%s\" to stop", model); }
    if (status >= 400) {
        const char *e = json_string_value(json_object_get(j, "error"));
        rc = cli_fail("%s", e ? e : "show failed");
        json_decref(j);
        return rc;
    }
    json_decref(j);
    int u = unload(model);
    if (u == 1) return 1;
    if (u == 404) return cli_fail("couldn't find model \"%s\" to stop", model);
    if (u != 0) return cli_fail("unable to stop model '%s'", model);
    return 0;
}
