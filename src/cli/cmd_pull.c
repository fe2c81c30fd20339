/* cli/cmd_pull: `locallama pull MODEL [--insecure] [-q|--quiet]` (ollama-cli.md §13), a client
 * of the server as Ollama's CLI is: POST /api/pull {"model":"","username":"","password":"",
 * "name":MODEL} (plus "insecure":true), the progress objects shown on stderr. `run` pulls a
 * model the server lacks through cli_pull_model (§5.2).
 *
 * On a terminal, Ollama's display: a status without a digest is a spinner line (a new one each
 * time the text changes); a digest gets a bar line once its completed is above 0 (§13.1:
 * percent, bar, bytes done/total, rate over the last ten one-second samples, time left), and
 * finished bars stay. A thread redraws every line in place every 100 ms (cursor hidden,
 * synchronized output, §13.2). Not on a terminal, output stays clean: no escape codes, a
 * status line when the status changes and one line per layer when it completes:
 *     pulling manifest
 *     pulling dde5aa3fc5ff: 100% 2.0 GB
 *     verifying sha256 digest
 * With --quiet nothing but errors. Formatting lives in progress.c (unit-tested); push shows
 * its progress the same way through cli_progress_stream. */
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/progress.h"
#include "cli/repl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char     key[96];          /* digest, or the status text of a spinner */
    char     label[96];        /* "pulling dde5aa3fc5ff:" or the spinner's message */
    bool     bar;
    int64_t  total, done;
    bool     finished;         /* bar complete / spinner stopped */
    cli_rate rate;
} ui_line;

typedef struct {
    bool     tty, quiet;
    pthread_mutex_t mu;        /* guards everything below (the render thread reads it) */
    pthread_t th;
    bool     th_on, quit;
    ui_line *lines;
    size_t   n, cap;
    size_t   spin;             /* index of the running spinner, or SIZE_MAX */
    int      pos;              /* lines above the cursor that belong to the display */
    unsigned tick;
    char     status[128];      /* last status without a digest (Ollama's spinner switch) */
} pull_ui;

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int term_width(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

static ui_line *ui_add(pull_ui *ui, const char *key) {
    if (ui->n == ui->cap) {
        size_t cap = ui->cap ? 2 * ui->cap : 16;
        ui_line *v = realloc(ui->lines, cap * sizeof *v);
        if (!v) return NULL;
        ui->lines = v;
        ui->cap = cap;
    }
    ui_line *l = &ui->lines[ui->n++];
    memset(l, 0, sizeof *l);
    snprintf(l->key, sizeof l->key, "%s", key);
    return l;
}

/* Redraw every line in place (caller holds mu). */
static void ui_render_locked(pull_ui *ui) {
    if (!ui->n) return;
    int w = term_width();
    size_t cap = 4096 + ui->n * (size_t)(w * 3 + 64);
    char *buf = malloc(cap), line[4096];
    if (!buf) return;
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "\x1b[?2026h");
    for (int i = 0; i < ui->pos; i++) k += (size_t)snprintf(buf + k, cap - k, "\x1b[A");
    k += (size_t)snprintf(buf + k, cap - k, "\x1b[1G");
    int64_t now = mono_ns();
    for (size_t i = 0; i < ui->n && k < cap - 1; i++) {
        ui_line *l = &ui->lines[i];
        if (l->bar) {
            if (!l->finished) cli_rate_add(&l->rate, now, l->done);
            cli_bar_line(line, sizeof line, l->label, l->total, l->done, cli_rate_get(&l->rate), l->finished, w);
        } else {
            cli_spinner_line(line, sizeof line, l->label, ui->tick, l->finished);
        }
        k += (size_t)snprintf(buf + k, cap - k, "%s\x1b[K%s", line, i + 1 < ui->n ? "\n" : "");
    }
    if (k < cap) k += (size_t)snprintf(buf + k, cap - k, "\x1b[?2026l");
    if (k > cap) k = cap - 1;
    fwrite(buf, 1, k, stderr);
    fflush(stderr);
    free(buf);
    ui->pos = (int)ui->n - 1;
}

static void *ui_main(void *arg) {
    pull_ui *ui = arg;
    for (;;) {
        struct timespec ts = { 0, 100 * 1000000L };
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&ui->mu);
        bool quit = ui->quit;
        if (!quit) {
            ui->tick++;
            ui_render_locked(ui);
        }
        pthread_mutex_unlock(&ui->mu);
        if (quit) return NULL;
    }
}

static void ui_start(pull_ui *ui, bool quiet) {
    memset(ui, 0, sizeof *ui);
    ui->quiet = quiet;
    ui->tty = !quiet && isatty(STDERR_FILENO) == 1;
    ui->spin = SIZE_MAX;
    pthread_mutex_init(&ui->mu, NULL);
    if (ui->tty) {
        fputs("\x1b[?25l", stderr);                          /* cursor hidden while drawing */
        ui->th_on = pthread_create(&ui->th, NULL, ui_main, ui) == 0;
    }
}

/* End the display: spinners stopped, a last redraw, the cursor back. */
static void ui_stop(pull_ui *ui) {
    if (ui->th_on) {
        pthread_mutex_lock(&ui->mu);
        ui->quit = true;
        pthread_mutex_unlock(&ui->mu);
        pthread_join(ui->th, NULL);
    }
    if (ui->tty) {
        for (size_t i = 0; i < ui->n; i++) if (!ui->lines[i].bar) ui->lines[i].finished = true;
        ui_render_locked(ui);
        if (ui->n) fputc('\n', stderr);
        fputs("\x1b[?25h", stderr);
        fflush(stderr);
    }
    pthread_mutex_destroy(&ui->mu);
    free(ui->lines);
    ui->lines = NULL;
}

/* One progress object, as Ollama's PullHandler takes it. */
static int on_chunk(json_t *chunk, void *ud) {
    pull_ui *ui = ud;
    const char *status = json_string_value(json_object_get(chunk, "status"));
    const char *digest = json_string_value(json_object_get(chunk, "digest"));
    if (!status || ui->quiet) return 0;
    pthread_mutex_lock(&ui->mu);
    if (digest && *digest) {
        int64_t total = json_integer_value(json_object_get(chunk, "total"));
        int64_t done = json_integer_value(json_object_get(chunk, "completed"));
        if (done <= 0) goto out;                             /* the first, empty message */
        if (ui->spin != SIZE_MAX) { ui->lines[ui->spin].finished = true; ui->spin = SIZE_MAX; }
        ui_line *l = NULL;
        for (size_t i = 0; i < ui->n && !l; i++) if (ui->lines[i].bar && !strcmp(ui->lines[i].key, digest)) l = &ui->lines[i];
        if (!l) {
            if (!(l = ui_add(ui, digest))) goto out;
            l->bar = true;
            snprintf(l->label, sizeof l->label, "%s:", status);
            l->total = total;
        }
        if (l->finished) goto out;
        l->done = done;
        l->finished = total > 0 && done >= total;
        if (l->finished && !ui->tty) {
            char b[16];
            cli_human_bytes(b, sizeof b, total);
            fprintf(stderr, "%s 100%% %s\n", l->label, b);
        }
    } else if (strcmp(status, ui->status)) {
        snprintf(ui->status, sizeof ui->status, "%s", status);
        if (ui->spin != SIZE_MAX) ui->lines[ui->spin].finished = true;
        ui_line *l = ui_add(ui, status);
        if (l) {
            snprintf(l->label, sizeof l->label, "%s", status);
            ui->spin = ui->n - 1;
        }
        if (!ui->tty) fprintf(stderr, "%s\n", status);
    }
out:
    if (!ui->tty) fflush(stderr);
    pthread_mutex_unlock(&ui->mu);
    return 0;
}

int cli_progress_stream(const char *path, json_t *req, bool quiet, char *err, size_t cap) {
    pull_ui ui;
    ui_start(&ui, quiet);
    repl_sigint_install();
    int rc = cli_stream_err(path, req, on_chunk, &ui, &repl_sigint, err, cap);
    ui_stop(&ui);                            /* before any error is printed */
    return rc == CLI_STREAM_CANCELLED ? 130 : rc;
}

int cli_pull_model(const char *model, bool insecure, bool quiet) {
    json_t *req = json_pack("{s:s, s:s, s:s, s:s}", "model", "", "username", "", "password", "", "name", model);
    if (!req) return cli_fail("out of memory");
    if (insecure) json_object_set_new(req, "insecure", json_true());
    char errmsg[2048] = "";
    int rc = cli_progress_stream("/api/pull", req, quiet, errmsg, sizeof errmsg);
    json_decref(req);
    return rc == 2 ? cli_fail("%s", errmsg) : rc;
}

int cmd_pull(int argc, char **argv) {
    const char *model = NULL;
    bool insecure = false, quiet = false;
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs("Pull a model from a registry\n\nUsage:\n  locallama pull MODEL [flags]\n\n"
                  "Flags:\n  -h, --help       help for pull\n      --insecure   Use an insecure registry\n"
                  "  -q, --quiet      Only print errors\n", stdout);
            return 0;
        }
        if (!strcmp(a, "--insecure")) { insecure = true; continue; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = true; continue; }
        if (a[0] == '-' && a[1]) { fprintf(stderr, "Error: unknown flag: %s\n", a); return 2; }
        if (!n_pos++) model = a;
    }
    if (n_pos != 1) { fprintf(stderr, "Error: accepts 1 arg(s), received %d\n", n_pos); return 2; }
    if (cli_heartbeat()) return 1;
    return cli_pull_model(model, insecure, quiet);
}
