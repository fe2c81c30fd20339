/* cli/progress: the pure formatting behind Ollama's transfer progress (ollama-cli.md §13.1,
 * §13.2, §15.1): HumanBytes, the time left, the rate over the last ten one-second samples, a
 * bar line and a spinner line. No I/O and no clock here (callers pass the time), so every
 * function is checked against the spec's examples in tests/cli/test_progress.c; cmd_pull.c
 * draws them. */
#ifndef LL_CLI_PROGRESS_H
#define LL_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* §15.1: "561 B", "1.4 KB", "61 KB", "2.0 GB", "2 GB" (decimal units). */
void cli_human_bytes(char *out, size_t cap, int64_t b);

/* Time left as Ollama's bar prints it: Go's Duration.String() of whole seconds below an hour
 * ("44s", "1m30s", "0s"), "<h>h<m>m" below 100 h ("1h2m"), then "99h+". */
void cli_fmt_remaining(char *out, size_t cap, int64_t seconds);

/* Rate from samples taken at least a second apart, the last ten kept (Ollama's bar buckets). */
#define CLI_RATE_SAMPLES 10
typedef struct {
    int64_t t_ns[CLI_RATE_SAMPLES];
    int64_t value[CLI_RATE_SAMPLES];
    int     n;                  /* samples held, ≤ CLI_RATE_SAMPLES */
} cli_rate;

/* Record value at time t_ns when a second has passed since the last sample (or none yet). */
void   cli_rate_add(cli_rate *r, int64_t t_ns, int64_t value);
/* Bytes per second between the oldest and newest sample; 0 when unknown (< 2 samples). */
double cli_rate_get(const cli_rate *r);

/* One bar line (§13.1), UTF-8, without a newline:
 *   "<label> <pct>% ▕<bar>▏ <done>/<total>  <rate>/s  <left>" while running,
 *   "<label> <pct>% ▕<bar>▏ <total>" + 25 spaces when finished;
 * the bar fills term_width; rate <= 0 prints blanks for rate and time left. Returns out. */
char *cli_bar_line(char *out, size_t cap, const char *label, int64_t total, int64_t done,
                   double rate, bool finished, int term_width);

/* A spinner line (§13.2): "<message> <frame> " running (frame = tick % 10 of ⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏),
 * "<message> " stopped. Returns out. */
char *cli_spinner_line(char *out, size_t cap, const char *message, unsigned tick, bool stopped);

#endif
