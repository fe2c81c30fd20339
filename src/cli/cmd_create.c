/* cli/cmd_create: `create MODEL [-f Modelfile] [-q TYPE]` as a client of the server, the way
 * Ollama's CLI does it (ollama-cli.md §12, §16; ollama-api.md §1.8, §1.13):
 *
 *   1. HEAD / (§1.2), then the model name is checked and the Modelfile parsed here, with the
 *      store's parser (src/store/modelfile.c), so errors name the line before anything is sent.
 *   2. "gathering model components": every FROM that names an existing file or directory
 *      (relative to the Modelfile's directory, ~ expanded) becomes files, each hashed.
 *   3. "copying file sha256:<hex> N%": HEAD /api/blobs/<digest>, and the file is POSTed only
 *      when the server does not have it (Ollama 0.33 skips the HEAD and lets the server drop
 *      the body; asking first saves sending gigabytes again).
 *   4. POST /api/create with the fields Ollama's client sends; the server's progress statuses
 *      are printed one per line on stderr until "success".
 *
 * Display: on a terminal the current line is redrawn in place (percentages); elsewhere each
 * status is printed once, when it is final. Ollama draws spinners with escape codes even into
 * a pipe; plain lines are what a log or a test can read. */
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/upload.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// status lines on stderr

typedef struct {
    bool tty;            /* stderr is a terminal: redraw the open line in place */
    bool open;           /* the line above the cursor is still being updated */
    char last[512];      /* the last final line, so a repeated status prints once */
    int64_t last_draw_ns;
} status_ui;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A line that will change (a percentage): drawn on terminals only, at most every 60 ms. The
 * cursor always rests at the start of the line below it (a redraw goes up one line first), so
 * an "Error: ..." printed by whatever fails next starts a line of its own. */
static void ui_update(status_ui *u, const char *text) {
    if (!u->tty) return;
    int64_t t = now_ns();
    if (u->open && t - u->last_draw_ns < 60000000) return;
    u->last_draw_ns = t;
    fprintf(stderr, "%s\r\033[K%s\n", u->open ? "\033[A" : "", text);
    fflush(stderr);
    u->open = true;
}

/* A finished line (it replaces the open one on a terminal). */
static void ui_done(status_ui *u, const char *text) {
    if (!strcmp(text, u->last) && !u->open) return;
    snprintf(u->last, sizeof u->last, "%s", text);
    if (u->tty && u->open) fputs("\033[A\r\033[K", stderr);
    fprintf(stderr, "%s\n", text);
    fflush(stderr);
    u->open = false;
}

// ---------------------------------------------------------------------------------------------
// the files a Modelfile names (§16.2)

typedef struct {
    char *path;          /* absolute or Modelfile-relative path on this machine */
    char *key;           /* name in the request's `files` */
    char  hex[65];
    uint64_t size;
} local_file;

typedef struct {
    local_file *v;
    size_t n, cap;
} file_list;

static int files_add(file_list *l, const char *path, const char *key) {
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].key, key)) return 0;       /* FROM named it twice */
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 4;
        local_file *v = realloc(l->v, nc * sizeof *v);
        if (!v) return cli_fail("out of memory");
        l->v = v;
        l->cap = nc;
    }
    local_file *f = &l->v[l->n];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    f->key = strdup(key);
    if (!f->path || !f->key) { free(f->path); free(f->key); return cli_fail("out of memory"); }
    l->n++;
    return 0;
}

static void files_free(file_list *l) {
    for (size_t i = 0; i < l->n; i++) { free(l->v[i].path); free(l->v[i].key); }
    free(l->v);
}

/* ~ and ~user expanded; a relative path joined to the Modelfile's directory. */
static int resolve_path(const char *arg, const char *dir, char *out, size_t cap) {
    int n;
    if (arg[0] == '~') {
        const char *rest = arg + 1 + strcspn(arg + 1, "/");
        const char *home = NULL;
        if (rest == arg + 1) {
            home = getenv("HOME");
            if (!home || !*home) { struct passwd *pw = getpwuid(getuid()); home = pw ? pw->pw_dir : NULL; }
        } else {
            char user[256];
            snprintf(user, sizeof user, "%.*s", (int)(rest - arg - 1), arg + 1);
            struct passwd *pw = getpwnam(user);
            home = pw ? pw->pw_dir : NULL;
        }
        if (!home) return -1;                          /* not a path we can expand: a name */
        n = snprintf(out, cap, "%s%s", home, rest);
    } else if (arg[0] == '/') {
        n = snprintf(out, cap, "%s", arg);
    } else {
        while (!strncmp(arg, "./", 2)) arg += 2 + strspn(arg + 2, "/");
        n = snprintf(out, cap, "%s/%s", dir, arg);
    }
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* A FROM that reads as a path even though nothing is there: refused here with the path
 * rather than sent to the server as a model name it could only call invalid. */
static bool looks_like_path(const char *s) {
    return s[0] == '/' || s[0] == '~' || !strncmp(s, "./", 2) || !strncmp(s, "../", 3) ||
           !strcmp(s, ".") || !strcmp(s, "..") || has_suffix(s, ".gguf");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory contributes its GGUF files (safetensors import is not supported). */
static int add_directory(file_list *l, const char *path, const char *arg, bool *any) {
    DIR *d = opendir(path);
    if (!d) return cli_fail("open %s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int ret = 0;
    while ((e = readdir(d))) {
        if (!has_suffix(e->d_name, ".gguf")) continue;
        char full[PATH_MAX];
        struct stat st;
        if (snprintf(full, sizeof full, "%s/%s", path, e->d_name) >= (int)sizeof full) continue;
        if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            char **v = realloc(names, cap * sizeof *v);
            if (!v) { ret = cli_fail("out of memory"); goto out; }
            names = v;
        }
        if (!(names[n] = strdup(e->d_name))) { ret = cli_fail("out of memory"); goto out; }
        n++;
    }
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !ret; i++) {
        char full[PATH_MAX];
        if (snprintf(full, sizeof full, "%s/%s", path, names[i]) >= (int)sizeof full) continue;
        ret = files_add(l, full, names[i]);
    }
    if (n) *any = true;
    (void)arg;
out:
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    closedir(d);
    return ret;
}

// ---------------------------------------------------------------------------------------------
// upload

typedef struct {
    status_ui *ui;
    const char *hex;
} upload_view;

static void on_upload(void *user, uint64_t sent, uint64_t total) {
    upload_view *v = user;
    char line[128];
    snprintf(line, sizeof line, "copying file sha256:%s %d%%", v->hex,
             total ? (int)(sent * 100 / total) : 100);
    ui_update(v->ui, line);
}

/* HEAD first; POST only what the server lacks (§1.13: 200 have it, 404 missing). */
static int push_file(status_ui *ui, const local_file *f) {
    char digest[80], path[128], line[128];
    snprintf(digest, sizeof digest, "sha256:%s", f->hex);
    snprintf(path, sizeof path, "/api/blobs/%s", digest);
    snprintf(line, sizeof line, "copying file %s 0%%", digest);
    ui_update(ui, line);
    cli_resp r;
    if (cli_call("HEAD", path, NULL, &r)) return 1;
    long status = r.status;
    cli_resp_free(&r);
    if (status != 200) {
        if (status != 404) return cli_fail("checking blob %s: server answered HTTP %ld", digest, status);
        upload_view v = { ui, f->hex };
        if (cli_blob_upload(f->path, digest, f->size, on_upload, &v)) return 1;
    }
    snprintf(line, sizeof line, "copying file %s 100%%", digest);
    ui_done(ui, line);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// the request (§12 step 5)

static json_t *build_request(const char *model, const char *quantize, const ll_modelfile *mf,
                             const file_list *files, const char *from) {
    json_t *req = json_object();
    json_object_set_new(req, "model", json_string(model));
    if (quantize && *quantize) json_object_set_new(req, "quantize", json_string(quantize));
    if (from) json_object_set_new(req, "from", json_string(from));
    if (files->n) {
        json_t *fo = json_object();
        for (size_t i = 0; i < files->n; i++) {
            char d[80];
            snprintf(d, sizeof d, "sha256:%s", files->v[i].hex);
            json_object_set_new(fo, files->v[i].key, json_string(d));
        }
        json_object_set_new(req, "files", fo);
    }
    if (mf->template_text) json_object_set_new(req, "template", json_string(mf->template_text));
    if (mf->n_licenses) {
        json_t *a = json_array();
        for (size_t i = 0; i < mf->n_licenses; i++) json_array_append_new(a, json_string(mf->licenses[i]));
        json_object_set_new(req, "license", a);
    }
    if (mf->system) json_object_set_new(req, "system", json_string(mf->system));
    if (mf->params && json_object_size(mf->params))
        json_object_set_new(req, "parameters", json_deep_copy(mf->params));
    if (mf->n_messages) {
        json_t *a = json_array();
        for (size_t i = 0; i < mf->n_messages; i++)
            json_array_append_new(a, json_pack("{s:s, s:s}", "role", mf->messages[i].role,
                                               "content", mf->messages[i].content));
        json_object_set_new(req, "messages", a);
    }
    if (mf->renderer) json_object_set_new(req, "renderer", json_string(mf->renderer));
    if (mf->parser) json_object_set_new(req, "parser", json_string(mf->parser));
    if (mf->requires) json_object_set_new(req, "requires", json_string(mf->requires));
    json_object_set_new(req, "name", json_string(""));     /* Ollama's client sends it empty */
    return req;
}

/* One streamed progress object (§1.8): statuses are printed, a digest+total one as a
 * percentage (quantization progress). */
static int on_status(void *user, json_t *line) {
    status_ui *ui = user;
    const char *st = json_string_value(json_object_get(line, "status"));
    if (!st || !*st) return 0;
    json_t *total = json_object_get(line, "total"), *done = json_object_get(line, "completed");
    if (json_is_integer(total) && json_integer_value(total) > 0) {
        json_int_t t = json_integer_value(total), c = json_is_integer(done) ? json_integer_value(done) : 0;
        char text[600];
        snprintf(text, sizeof text, "%s %d%%", st, (int)(c * 100 / t));
        if (c >= t) ui_done(ui, text); else ui_update(ui, text);
        return 0;
    }
    ui_done(ui, st);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// the command

static int create_help(void) {
    printf("Create a model from a Modelfile\n\nUsage:\n  locallama create MODEL [flags]\n\n"
           "Flags:\n  -f, --file string       Name of the Modelfile (default \"Modelfile\")\n"
           "  -h, --help              help for create\n"
           "  -q, --quantize string   Quantize model to this level (e.g. q4_K_M)\n\n"
           "Environment Variables:\n      %-27s   %s\n      %-27s   %s\n",
           "LOCALLAMA_HOST", "Address of the locallama server (default 127.0.0.1:11434)",
           "OLLAMA_HOST", "Used when LOCALLAMA_HOST is unset");
    return 0;
}

/* The Modelfile's text and directory. A missing file falls back to "FROM ." in the current
 * directory, as Ollama does (§12 step 2). */
static int read_modelfile(const char *name, char **text, size_t *n, char *dir, size_t cap) {
    struct stat st;
    if (stat(name, &st) != 0 && errno == ENOENT) {
        *text = strdup("FROM .\n");
        *n = *text ? strlen(*text) : 0;
        snprintf(dir, cap, ".");
        return *text ? 0 : cli_fail("out of memory");
    }
    FILE *f = fopen(name, "rb");
    if (!f) return cli_fail("open %s: %s", name, strerror(errno));
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) { fclose(f); return cli_fail("read %s: is a directory", name); }
    size_t capb = 4096, len = 0;
    char *buf = malloc(capb);
    size_t got;
    while (buf && (got = fread(buf + len, 1, capb - len, f)) > 0) {
        len += got;
        if (len > LL_MODELFILE_MAX_BYTES) { free(buf); fclose(f); return cli_fail("%s: Modelfile larger than %u bytes", name, LL_MODELFILE_MAX_BYTES); }
        if (len == capb) {
            char *nb = realloc(buf, capb * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            capb *= 2;
        }
    }
    bool bad = !buf || ferror(f);
    fclose(f);
    if (bad) { free(buf); return cli_fail("read %s: %s", name, buf ? strerror(errno) : "out of memory"); }
    *text = buf;
    *n = len;
    char abs[PATH_MAX];
    if (!realpath(name, abs)) snprintf(abs, sizeof abs, "%s", name);
    char *slash = strrchr(abs, '/');
    if (slash == abs) snprintf(dir, cap, "/");
    else if (slash) snprintf(dir, cap, "%.*s", (int)(slash - abs), abs);
    else snprintf(dir, cap, ".");
    return 0;
}

int cmd_create(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *quantize = NULL;
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return create_help();
        if (!strcmp(a, "-f") || !strcmp(a, "--file") || !strcmp(a, "-q") || !strcmp(a, "--quantize")) {
            if (i + 1 >= argc) { fprintf(stderr, "Error: flag needs an argument: %s\n", a); return 2; }
            if (a[1] == 'f' || a[2] == 'f') file = argv[++i]; else quantize = argv[++i];
            continue;
        }
        if (!strncmp(a, "--file=", 7)) { file = a + 7; continue; }
        if (!strncmp(a, "--quantize=", 11)) { quantize = a + 11; continue; }
        if (a[0] == '-' && a[1]) { fprintf(stderr, "Error: unknown flag: %s\n", a); return 2; }
        if (!n_pos++) model = a;
    }
    if (n_pos != 1) { fprintf(stderr, "Error: accepts 1 arg(s), received %d\n", n_pos); return 2; }
    if (cli_heartbeat()) return 1;

    ll_model_name parsed;
    ll_error err = {0};
    if (ll_name_parse(&parsed, model, &err) != LL_OK) return cli_fail("invalid model name: %s", model);

    char *text = NULL, dir[PATH_MAX];
    size_t n_text = 0;
    if (read_modelfile(file && *file ? file : "Modelfile", &text, &n_text, dir, sizeof dir)) return 1;
    ll_modelfile *mf = NULL;
    ll_status st = ll_modelfile_parse(&mf, text, n_text, &err);
    free(text);
    if (st != LL_OK) return cli_fail_err(&err);
    for (size_t i = 0; i < mf->n_deprecated; i++)
        printf("warning: parameter %s is deprecated\n", mf->deprecated[i]);
    fflush(stdout);

    int ret = 0;
    file_list files = {0};
    const char *from = NULL;
    json_t *req = NULL;
    status_ui ui = { .tty = isatty(STDERR_FILENO) == 1 };
    if (mf->n_adapters) { ret = cli_fail("ADAPTER is not supported: LoRA adapters cannot be applied yet"); goto out; }
    if (mf->draft) { ret = cli_fail("DRAFT is not supported: there is no speculative decoding yet"); goto out; }

    ui_update(&ui, "gathering model components");
    for (size_t i = 0; i < mf->n_from; i++) {
        const char *arg = mf->from[i];
        char path[PATH_MAX];
        struct stat sb;
        if (resolve_path(arg, dir, path, sizeof path) == 0 && stat(path, &sb) == 0) {
            if (S_ISDIR(sb.st_mode)) {
                bool any = false;
                if ((ret = add_directory(&files, path, arg, &any))) goto out;
                if (!any) {
                    ret = !strcmp(arg, ".") && mf->n_from == 1
                        ? cli_fail("no Modelfile or safetensors files found")
                        : cli_fail("FROM %s: no GGUF files in %s (safetensors import is not supported)", arg, path);
                    goto out;
                }
            } else {
                const char *base = strrchr(path, '/');
                if ((ret = files_add(&files, path, base ? base + 1 : path))) goto out;
            }
            continue;
        }
        if (looks_like_path(arg)) {
            ret = !strcmp(arg, ".") ? cli_fail("no Modelfile or safetensors files found")
                                    : cli_fail("FROM %s: %s: no such file or directory", arg, path);
            goto out;
        }
        if (from) { ret = cli_fail("FROM %s: only one model can be the base (FROM %s)", arg, from); goto out; }
        from = arg;
    }
    if (from && files.n) { ret = cli_fail("FROM %s: a model cannot be combined with model files", from); goto out; }
    for (size_t i = 0; i < files.n; i++)
        if ((ret = cli_sha256_file(files.v[i].path, files.v[i].hex, &files.v[i].size))) goto out;
    ui_done(&ui, "gathering model components");

    for (size_t i = 0; i < files.n; i++)
        if ((ret = push_file(&ui, &files.v[i]))) goto out;

    req = build_request(model, quantize, mf, &files, from);
    if (!req) { ret = cli_fail("out of memory"); goto out; }
    ret = cli_stream_call("/api/create", req, on_status, &ui);
out:
    json_decref(req);
    files_free(&files);
    ll_modelfile_free(mf);
    return ret;
}
