/* cli/cmd_push: `locallama push MODEL [--insecure] [-q|--quiet]` (ollama-cli.md §13), a client of the server
 * as Ollama's CLI is: POST /api/push {"model":"","username":"","password":"","name":MODEL}
 * (plus "insecure":true), the progress shown on stderr as pull shows it (cli_progress_stream,
 * with "pushing <12 hex>" labels; -q/--quiet: errors only), and at the end on stdout
 *
 *     \nYou can find your model at:\n\n\t<host/namespace/model:tag>\n
 *
 * (for Ollama's registry the https://ollama.com/<name> page, as Ollama prints). A refusal by
 * the registry (an error mentioning "unauthorized" or "access denied") becomes Ollama's
 * "you are not authorized to push to this namespace, create the model under a namespace you
 * own". */
#include "cli/cli.h"
#include "cli/client.h"
#include "store/store.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool ends_with_ci(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

int cmd_push(int argc, char **argv) {
    const char *model = NULL;
    bool insecure = false, quiet = false;
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs("Push a model to a registry\n\nUsage:\n  locallama push MODEL [flags]\n\n"
                  "Flags:\n  -h, --help       help for push\n      --insecure   Use an insecure registry\n"
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
    json_t *req = json_pack("{s:s, s:s, s:s, s:s}", "model", "", "username", "", "password", "", "name", model);
    if (!req) return cli_fail("out of memory");
    if (insecure) json_object_set_new(req, "insecure", json_true());
    char msg[1024] = "";
    int rc = cli_progress_stream("/api/push", req, quiet, msg, sizeof msg);
    json_decref(req);
    if (rc == 2) {
        char low[sizeof msg];
        size_t i = 0;
        for (; msg[i]; i++) low[i] = (char)(msg[i] >= 'A' && msg[i] <= 'Z' ? msg[i] + 32 : msg[i]);
        low[i] = 0;
        if (strstr(low, "access denied") || strstr(low, "unauthorized"))
            return cli_fail("you are not authorized to push to this namespace, create the model under a namespace you own");
        return cli_fail("%s", msg);
    }
    if (rc) return rc;
    /* where it went: the full name, or Ollama's web page for its own registry */
    ll_model_name n;
    ll_error err = { 0 };
    char dest[LL_NAME_FULL_MAX + 32];
    if (ll_name_parse(&n, model, &err) != LL_OK) snprintf(dest, sizeof dest, "%s", model);
    else if (ends_with_ci(n.host, ".ollama.ai") || ends_with_ci(n.host, ".ollama.com")) {
        char shortest[LL_NAME_FULL_MAX];
        ll_name_display(&n, shortest, sizeof shortest);
        size_t k = strlen(shortest);
        if (k > 7 && !strcmp(shortest + k - 7, ":latest")) shortest[k - 7] = 0;
        snprintf(dest, sizeof dest, "https://ollama.com/%s", shortest);
    } else {
        ll_name_full(&n, dest, sizeof dest);
    }
    printf("\nYou can find your model at:\n\n\t%s\n", dest);
    return 0;
}
