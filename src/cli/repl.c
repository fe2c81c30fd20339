/* cli/repl: libedit line editing, history file and Ctrl-C for `run MODEL` (repl.h). */
#include "cli/repl.h"

#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <locale.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>

// ---------------------------------------------------------------------------------------------
// Ctrl-C

volatile sig_atomic_t repl_sigint;
static int sig_pipe[2] = { -1, -1 };

static void on_sigint(int sig) {
    int saved = errno;
    repl_sigint = 1;
    if (sig_pipe[1] >= 0) {
        ssize_t w = write(sig_pipe[1], "", 1);   /* a full pipe: a byte is already waiting */
        (void)w;
    }
    errno = saved;
    (void)sig;
}

void repl_sigint_install(void) {
    if (sig_pipe[0] < 0 && pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0) sig_pipe[0] = sig_pipe[1] = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;           /* no SA_RESTART: a blocked poll() returns at once */
    sigaction(SIGINT, &sa, NULL);
}

void repl_sigint_clear(void) {
    char junk[64];
    if (sig_pipe[0] >= 0)
        while (read(sig_pipe[0], junk, sizeof junk) > 0) {}
    repl_sigint = 0;
}

// ---------------------------------------------------------------------------------------------
// the editor

#define HISTORY_MAX 100   /* lines kept in the file (§6.8) */

struct repl {
    EditLine   *el;
    History    *hist;
    const char *prompt;             /* what prompt_fn shows; borrowed for one repl_read */
    mbstate_t   mbs;                /* UTF-8 decoding state of repl_getc */
    char       *path;               /* history file; NULL = none */
    bool        save;               /* /set history */
    char       *lines[HISTORY_MAX]; /* the last lines, oldest first, for the file */
    size_t      n_lines;
};

static char *prompt_fn(EditLine *el) {
    repl *r = NULL;
    el_get(el, EL_CLIENTDATA, &r);
    return (char *)(r && r->prompt ? r->prompt : "");
}

/* libedit's character source: the terminal or the Ctrl-C pipe, whichever speaks first.
 * Returns 1 with a character, 0 at end of input, -1 on Ctrl-C (repl_sigint set). */
static int repl_getc(EditLine *el, wchar_t *wc) {
    repl *r = NULL;
    el_get(el, EL_CLIENTDATA, &r);
    for (;;) {
        if (repl_sigint) { errno = EINTR; return -1; }
        struct pollfd pf[2] = { { .fd = STDIN_FILENO, .events = POLLIN },
                                { .fd = sig_pipe[0], .events = POLLIN } };
        int pr = poll(pf, sig_pipe[0] >= 0 ? 2 : 1, -1);
        if (repl_sigint) { errno = EINTR; return -1; }
        if (pr < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char b;
        ssize_t n = read(STDIN_FILENO, &b, 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return 0;
        size_t k = mbrtowc(wc, &b, 1, &r->mbs);
        if (k == (size_t)-2) continue;               /* inside a multi-byte character */
        if (k == (size_t)-1) {                       /* not UTF-8: U+FFFD, start over */
            memset(&r->mbs, 0, sizeof r->mbs);
            *wc = 0xFFFD;
        }
        return 1;
    }
}

static unsigned char tab_fn(EditLine *el, int ch) {
    (void)ch;
    return el_insertstr(el, "        ") == 0 ? CC_REFRESH : CC_ERROR;
}

static void history_load(repl *r) {
    FILE *f = fopen(r->path, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        char *s = line, *e = line + n;             /* trimmed; blank lines skipped */
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
        if (e == s) continue;
        *e = '\0';
        HistEvent ev;
        history(r->hist, &ev, H_ENTER, s);
        char *copy = strdup(s);
        if (!copy) break;
        if (r->n_lines == HISTORY_MAX) {
            free(r->lines[0]);
            memmove(r->lines, r->lines + 1, (HISTORY_MAX - 1) * sizeof r->lines[0]);
            r->n_lines--;
        }
        r->lines[r->n_lines++] = copy;
    }
    free(line);
    fclose(f);
}

/* Rewrite the file through path.tmp + rename, so a crash never leaves half a history. */
static void history_write(repl *r) {
    if (!r->path || !r->save) return;
    size_t n = strlen(r->path);
    char *tmp = malloc(n + 5);
    if (!tmp) return;
    memcpy(tmp, r->path, n);
    memcpy(tmp + n, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0) close(fd);
        free(tmp);
        return;
    }
    for (size_t i = 0; i < r->n_lines; i++) fprintf(f, "%s\n", r->lines[i]);
    if (fclose(f) == 0) rename(tmp, r->path);
    else unlink(tmp);
    free(tmp);
}

repl *repl_open(const char *history_path) {
    /* libedit turns wide characters back into bytes with the locale's encoding; without a
     * UTF-8 locale (LANG unset) anything past ASCII would be lost. */
    const char *loc = setlocale(LC_CTYPE, "");
    if (!loc || !strcmp(loc, "C") || !strcmp(loc, "POSIX")) setlocale(LC_CTYPE, "C.UTF-8");
    repl *r = calloc(1, sizeof *r);
    if (!r) { cli_fail("out of memory"); return NULL; }
    r->save = true;
    r->el = el_init("locallama", stdin, stdout, stderr);
    r->hist = history_init();
    if (!r->el || !r->hist) {
        cli_fail("cannot start the line editor (libedit)");
        repl_close(r);
        return NULL;
    }
    HistEvent ev;
    history(r->hist, &ev, H_SETSIZE, HISTORY_MAX);
    el_set(r->el, EL_CLIENTDATA, r);
    el_set(r->el, EL_EDITOR, "emacs");
    el_set(r->el, EL_PROMPT, prompt_fn);
    el_set(r->el, EL_HIST, history, r->hist);
    el_set(r->el, EL_GETCFN, repl_getc);
    el_set(r->el, EL_SIGNAL, 0);          /* our handler, not libedit's (see repl.h) */
    /* Tab inserts eight spaces rather than completing file names (§6.7) */
    /* the wide form keeps our static strings; the narrow one copies them and never frees */
    el_wset(r->el, EL_ADDFN, L"ll-tab", L"insert eight spaces", tab_fn);
    el_set(r->el, EL_BIND, "^I", "ll-tab", NULL);
    if (history_path) {
        r->path = strdup(history_path);
        if (r->path) history_load(r);
    }
    return r;
}

void repl_close(repl *r) {
    if (!r) return;
    if (r->el) el_end(r->el);
    if (r->hist) history_end(r->hist);
    for (size_t i = 0; i < r->n_lines; i++) free(r->lines[i]);
    free(r->path);
    free(r);
}

int repl_read(repl *r, const char *prompt, char **line) {
    *line = NULL;
    r->prompt = prompt;
    memset(&r->mbs, 0, sizeof r->mbs);
    int count = 0;
    const char *s = el_gets(r->el, &count);
    if (repl_sigint) return REPL_INTERRUPTED;
    if (!s || count <= 0) return REPL_EOF;
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    char *out = malloc(n + 1);
    if (!out) { cli_fail("out of memory"); return REPL_ERROR; }
    memcpy(out, s, n);
    out[n] = '\0';
    *line = out;
    return REPL_LINE;
}

void repl_history_add(repl *r, const char *line) {
    if (!line[0] || !r->save) return;   /* /set nohistory: not kept at all, as in Ollama */
    HistEvent ev;
    history(r->hist, &ev, H_ENTER, line);
    if (!r->path) return;
    char *copy = strdup(line);
    if (!copy) return;
    if (r->n_lines == HISTORY_MAX) {
        free(r->lines[0]);
        memmove(r->lines, r->lines + 1, (HISTORY_MAX - 1) * sizeof r->lines[0]);
        r->n_lines--;
    }
    r->lines[r->n_lines++] = copy;
    history_write(r);
}

void repl_history_save(repl *r, bool on) {
    r->save = on;
}
