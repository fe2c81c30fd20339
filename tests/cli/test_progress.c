/* Tests for src/cli/progress.c against the examples of ollama-cli.md §13, §13.1, §13.2 and
 * §15.1. The CLI is not part of liblocallama, so the module is compiled in here. */
#include "../test.h"
#include "cli/progress.c"

static void test_human_bytes_spec_examples(void) {
    static const struct { int64_t b; const char *s; } v[] = {
        { 2019393189, "2.0 GB" }, { 2000000000, "2 GB" }, { 3462399488, "3.5 GB" },
        { 7820224, "7.8 MB" }, { 61000, "61 KB" }, { 1429, "1.4 KB" }, { 561, "561 B" },
        { 96, "96 B" }, { 20000000000, "20 GB" }, { 0, "0 B" }, { 999, "999 B" }, { 1000, "1 KB" },
        { 4661224676, "4.7 GB" }, { 1500000000000, "1.5 TB" },
    };
    char buf[32];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        cli_human_bytes(buf, sizeof buf, v[i].b);
        CHECK_MSG(!strcmp(buf, v[i].s), "%lld: got '%s', want '%s'", (long long)v[i].b, buf, v[i].s);
    }
}

static void test_remaining_go_durations(void) {
    static const struct { int64_t s; const char *t; } v[] = {
        { 0, "0s" }, { 44, "44s" }, { 59, "59s" }, { 60, "1m0s" }, { 90, "1m30s" }, { 3599, "59m59s" },
        { 3600, "1h0m" }, { 3720, "1h2m" }, { 359999, "99h59m" }, { 360000, "99h+" }, { 9000000, "99h+" },
    };
    char buf[16];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        cli_fmt_remaining(buf, sizeof buf, v[i].s);
        CHECK_MSG(!strcmp(buf, v[i].t), "%lld s: got '%s', want '%s'", (long long)v[i].s, buf, v[i].t);
    }
}

/* The spec's finished lines (§13): 80 columns, an 18-cell bar, 25 spaces after the size. */
static void test_bar_finished_matches_spec(void) {
    char line[512];
    cli_bar_line(line, sizeof line, "pulling dde5aa3fc5ff:", 2019393189, 2019393189, 0, true, 80);
    CHECK_MSG(!strcmp(line, "pulling dde5aa3fc5ff: 100% ▕██████████████████▏ 2.0 GB                         "),
              "got '%s'", line);
    cli_bar_line(line, sizeof line, "pulling 56bb8bd477a5:", 96, 96, 0, true, 80);
    CHECK_MSG(!strcmp(line, "pulling 56bb8bd477a5: 100% ▕██████████████████▏   96 B                         "),
              "got '%s'", line);
    cli_bar_line(line, sizeof line, "pulling 34bb5ab01051:", 561, 561, 0, true, 80);
    CHECK_MSG(!strcmp(line, "pulling 34bb5ab01051: 100% ▕██████████████████▏  561 B                         "),
              "got '%s'", line);
}

/* The running example of §13.1: 49%, 1.0 GB/2.0 GB, 23 MB/s, 44s left. */
static void test_bar_running_matches_spec(void) {
    char line[512];
    int64_t total = 2019393189, done = 989502662;             /* 49 % */
    double rate = 23e6;                                       /* (total-done)/rate = 44.8 s */
    cli_bar_line(line, sizeof line, "pulling dde5aa3fc5ff:", total, done, rate, false, 80);
    /* 18 cells at 49 %: 8 filled */
    CHECK_MSG(!strcmp(line, "pulling dde5aa3fc5ff:  49% ▕████████          ▏ 989 MB/2.0 GB   23 MB/s     44s"),
              "got '%s'", line);
    /* rate unknown: 10 + 8 blanks */
    cli_bar_line(line, sizeof line, "pulling dde5aa3fc5ff:", total, 0, 0, false, 80);
    CHECK_MSG(!strcmp(line, "pulling dde5aa3fc5ff:   0% ▕                  ▏    0 B/2.0 GB                  "),
              "got '%s'", line);
    /* width follows the terminal; too narrow: no bar at all */
    cli_bar_line(line, sizeof line, "pulling dde5aa3fc5ff:", total, total, 0, true, 100);
    CHECK_EQ_INT(strlen(line) - 2 * (38 + 2), 99);            /* 38 cells + 2 frames of 3 bytes; the last column free */
    cli_bar_line(line, sizeof line, "pulling dde5aa3fc5ff:", total, done, rate, false, 40);
    CHECK(!strstr(line, "▕"));
    CHECK_MSG(!strcmp(line, "pulling dde5aa3fc5ff:  49% 989 MB/2.0 GB   23 MB/s     44s"), "got '%s'", line);
}

static void test_rate_last_ten_one_second_samples(void) {
    cli_rate r = { 0 };
    CHECK(cli_rate_get(&r) == 0);
    cli_rate_add(&r, 0, 0);
    CHECK(cli_rate_get(&r) == 0);                             /* one sample: unknown */
    cli_rate_add(&r, 500000000LL, 999);                       /* under a second: ignored */
    CHECK_EQ_INT(r.n, 1);
    for (int s = 1; s <= 20; s++) cli_rate_add(&r, s * 1000000000LL, (int64_t)s * (s <= 10 ? 1000 : 5000));
    CHECK_EQ_INT(r.n, 10);
    /* samples 11..20 s: values 55000..100000 → 45000 bytes over 9 s */
    CHECK_NEAR(cli_rate_get(&r), 5000.0, 1e-9);
}

static void test_spinner_frames(void) {
    char line[128];
    CHECK(!strcmp(cli_spinner_line(line, sizeof line, "pulling manifest", 0, false), "pulling manifest ⠋ "));
    CHECK(!strcmp(cli_spinner_line(line, sizeof line, "pulling manifest", 13, false), "pulling manifest ⠸ "));
    CHECK(!strcmp(cli_spinner_line(line, sizeof line, "pulling manifest", 13, true), "pulling manifest "));
}

int main(void) {
    RUN(test_human_bytes_spec_examples);
    RUN(test_remaining_go_durations);
    RUN(test_bar_finished_matches_spec);
    RUN(test_bar_running_matches_spec);
    RUN(test_rate_last_ten_one_second_samples);
    RUN(test_spinner_frames);
    return test_summary();
}
