/* cli/cmd_pull: `locallama pull MODEL [--insecure]` (ollama-cli.md §13), a client of the server
 * as Ollama's CLI is: POST /api/pull {"model":"","username":"","password":"","name":MODEL}
 * (plus "insecure":true) and the progress objects shown on stderr.
 *
 * On a terminal each blob gets one line that is redrawn in place:
 *     pulling dde5aa3fc5ff:  49% 1.0 GB/2.0 GB
 * and other statuses ("pulling manifest", "verifying sha256 digest", "writing manifest",
 * "success") a line each. Not on a terminal, a blob's line is printed once when it completes,
 * so a log stays clean. Ollama's bar, speed and time left are not drawn yet. `push` (cmd_push.c)
 * shows its progress with the same cli_progress_chunk. */
#include "cli/cli.h"
#include "cli/client.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void human(double b, char *buf, size_t cap) {
    const char *u[] = { "B", "KB", "MB", "GB", "TB" };
    int i = 0;
    while (b >= 1000 && i < 4) { b /= 1000; i++; }
    if (i == 0) snprintf(buf, cap, "%.0f %s", b, u[i]);
    else snprintf(buf, cap, "%.1f %s", b, u[i]);
}

int cli_progress_chunk(json_t *chunk, void *ud) {
    cli_progress *ui = ud;
    const char *status = json_string_value(json_object_get(chunk, "status"));
    if (!status) return 0;
    json_t *jt = json_object_get(chunk, "total");
    if (jt && json_is_integer(jt) && json_integer_value(jt) > 0) {
        double total = (double)json_integer_value(jt);
        double done = (double)json_integer_value(json_object_get(chunk, "completed"));
        int pct = (int)(done * 100 / total);
        char a[32], b[32];
        human(done, a, sizeof a);
        human(total, b, sizeof b);
        if (ui->tty) {
            if (ui->open && strcmp(ui->cur, status)) fputc('\n', stderr);
            fprintf(stderr, "\r%s: %3d%% %s/%s\x1b[K", status, pct, a, b);
            snprintf(ui->cur, sizeof ui->cur, "%s", status);
            ui->open = true;
        } else if (done >= total && strcmp(ui->done_last, status)) {
            fprintf(stderr, "%s: 100%% %s\n", status, b);
            snprintf(ui->done_last, sizeof ui->done_last, "%s", status);
        }
        fflush(stderr);
        return 0;
    }
    if (ui->open) { fputc('\n', stderr); ui->open = false; ui->cur[0] = 0; }
    fprintf(stderr, "%s\n", status);
    fflush(stderr);
    return 0;
}

int cmd_pull(int argc, char **argv) {
    const char *model = NULL;
    bool insecure = false;
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs("Pull a model from a registry\n\nUsage:\n  locallama pull MODEL [flags]\n\n"
                  "Flags:\n  -h, --help       help for pull\n      --insecure   Use an insecure registry\n", stdout);
            return 0;
        }
        if (!strcmp(a, "--insecure")) { insecure = true; continue; }
        if (a[0] == '-' && a[1]) { fprintf(stderr, "Error: unknown flag: %s\n", a); return 2; }
        if (!n_pos++) model = a;
    }
    if (n_pos != 1) { fprintf(stderr, "Error: accepts 1 arg(s), received %d\n", n_pos); return 2; }
    if (cli_heartbeat()) return 1;
    json_t *req = json_pack("{s:s, s:s, s:s, s:s}", "model", "", "username", "", "password", "", "name", model);
    if (!req) return cli_fail("out of memory");
    if (insecure) json_object_set_new(req, "insecure", json_true());
    cli_progress ui = { .tty = isatty(STDERR_FILENO) == 1 };
    int rc = cli_stream("/api/pull", req, cli_progress_chunk, &ui, NULL);
    if (ui.open) fputc('\n', stderr);
    json_decref(req);
    return rc;
}
