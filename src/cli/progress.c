/* cli/progress: Ollama's progress formatting (see progress.h). */
#include "cli/progress.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void cli_human_bytes(char *out, size_t cap, int64_t b) {
    static const struct { double div; const char *unit; } u[] = {
        { 1e12, "TB" }, { 1e9, "GB" }, { 1e6, "MB" }, { 1e3, "KB" },
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        if ((double)b < u[i].div) continue;
        double v = (double)b / u[i].div;
        if (v >= 10 || v == trunc(v)) snprintf(out, cap, "%lld %s", (long long)v, u[i].unit);
        else snprintf(out, cap, "%.1f %s", v, u[i].unit);
        return;
    }
    snprintf(out, cap, "%lld B", (long long)b);
}

void cli_fmt_remaining(char *out, size_t cap, int64_t s) {
    if (s < 0) s = 0;
    if (s >= 100 * 3600) snprintf(out, cap, "99h+");
    else if (s >= 3600) snprintf(out, cap, "%lldh%lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
    else if (s >= 60) snprintf(out, cap, "%lldm%llds", (long long)(s / 60), (long long)(s % 60));
    else snprintf(out, cap, "%llds", (long long)s);
}

void cli_rate_add(cli_rate *r, int64_t t_ns, int64_t value) {
    if (r->n && t_ns - r->t_ns[r->n - 1] < 1000000000LL) return;
    if (r->n == CLI_RATE_SAMPLES) {
        memmove(r->t_ns, r->t_ns + 1, (CLI_RATE_SAMPLES - 1) * sizeof r->t_ns[0]);
        memmove(r->value, r->value + 1, (CLI_RATE_SAMPLES - 1) * sizeof r->value[0]);
        r->n--;
    }
    r->t_ns[r->n] = t_ns;
    r->value[r->n] = value;
    r->n++;
}

double cli_rate_get(const cli_rate *r) {
    if (r->n < 2) return 0;
    double dt = (double)(r->t_ns[r->n - 1] - r->t_ns[0]) / 1e9;
    double dv = (double)(r->value[r->n - 1] - r->value[0]);
    return dt > 0 && dv > 0 ? dv / dt : 0;
}

/* s right-aligned in w columns (s is ASCII) */
static size_t put_right(char *o, size_t at, size_t cap, const char *s, int w) {
    int k = snprintf(at < cap ? o + at : NULL, at < cap ? cap - at : 0, "%*s", w, s);
    return at + (k > 0 ? (size_t)k : 0);
}

static size_t put(char *o, size_t at, size_t cap, const char *s) {
    int k = snprintf(at < cap ? o + at : NULL, at < cap ? cap - at : 0, "%s", s);
    return at + (k > 0 ? (size_t)k : 0);
}

char *cli_bar_line(char *out, size_t cap, const char *label, int64_t total, int64_t done,
                   double rate, bool finished, int term_width) {
    if (!cap) return out;
    out[0] = 0;
    double pct = total > 0 ? (double)done * 100 / (double)total : 0;
    if (pct > 100) pct = 100;
    if (pct < 0) pct = 0;
    char pre[160], suf[64], a[16], b[16];
    snprintf(pre, sizeof pre, "%s %3.0f%%", label, pct);
    size_t k = 0;
    cli_human_bytes(b, sizeof b, total);
    if (!finished) {
        cli_human_bytes(a, sizeof a, done);
        k = put_right(suf, k, sizeof suf, a, 6);
        k = put(suf, k, sizeof suf, "/");
        k = put_right(suf, k, sizeof suf, b, 6);
    } else {
        k = put_right(suf, k, sizeof suf, b, 6);
        k = put(suf, k, sizeof suf, "       ");
    }
    if (!finished && rate > 0) {
        char r[24], left[16];
        cli_human_bytes(r, sizeof r, (int64_t)rate);
        k = put(suf, k, sizeof suf, "  ");
        k = put_right(suf, k, sizeof suf, r, 6);
        k = put(suf, k, sizeof suf, "/s  ");
        int64_t rem = total > done ? (int64_t)((double)(total - done) / rate) : 0;
        cli_fmt_remaining(left, sizeof left, rem);
        k = put_right(suf, k, sizeof suf, left, 6);
    } else {
        k = put(suf, k, sizeof suf, "                  ");   /* 10 + 8 */
    }
    size_t at = put(out, 0, cap, pre);
    /* the 5: the two frame characters and a space on each side of the bar */
    int f = term_width - (int)strlen(pre) - (int)strlen(suf) - 5;
    if (f > 0) {
        int full = (int)((double)f * pct / 100);
        at = put(out, at, cap, " \xe2\x96\x95");                  /* " ▕" */
        for (int i = 0; i < full; i++) at = put(out, at, cap, "\xe2\x96\x88");   /* █ */
        for (int i = full; i < f; i++) at = put(out, at, cap, " ");
        at = put(out, at, cap, "\xe2\x96\x8f ");                  /* "▏ " */
    } else {
        at = put(out, at, cap, " ");     /* Ollama glues "49%" to the size here; a space reads better */
    }
    put(out, at, cap, suf);
    return out;
}

char *cli_spinner_line(char *out, size_t cap, const char *message, unsigned tick, bool stopped) {
    static const char *const frames[] = { "⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏" };
    _Static_assert(sizeof frames / sizeof frames[0] == 10, "ten spinner frames (§13.2)");
    if (stopped) snprintf(out, cap, "%s ", message);
    else snprintf(out, cap, "%s %s ", message, frames[tick % 10]);
    return out;
}
