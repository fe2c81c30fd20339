/* cli/repl: the line editor of `locallama run MODEL` on a terminal (ollama-cli.md §6.2, §6.7,
 * §6.8), on libedit, and the Ctrl-C plumbing the client half of run shares.
 *
 * Ctrl-C raises a flag and writes a byte to a pipe (the self-pipe trick). The editor reads the
 * terminal through its own getc, which polls the terminal and that pipe together, so Ctrl-C at
 * the prompt ends the read at once (libedit's own read would retry an interrupted read()), and
 * a streaming request looks at the flag between polls (cli_stream's cancel). */
#ifndef LL_CLI_REPL_H
#define LL_CLI_REPL_H

#include <signal.h>
#include <stdbool.h>

/* Set by SIGINT once repl_sigint_install ran; cleared by repl_sigint_clear. */
extern volatile sig_atomic_t repl_sigint;

void repl_sigint_install(void);   /* handler without SA_RESTART, plus the pipe */
void repl_sigint_clear(void);     /* forget Ctrl-Cs so far (the one that stopped an answer) */

typedef struct repl repl;

/* The editor on stdin/stdout. history_path: the file of earlier lines (read now, rewritten
 * after each line; NULL = none). NULL when libedit cannot start (the error is printed). */
repl *repl_open(const char *history_path);
void  repl_close(repl *r);

enum { REPL_LINE, REPL_EOF, REPL_INTERRUPTED, REPL_ERROR };

/* One line (without its newline) into *line, malloc'd. REPL_EOF: Ctrl-D on an empty line;
 * REPL_INTERRUPTED: Ctrl-C, the input is dropped. */
int repl_read(repl *r, const char *prompt, char **line);

/* While history is on: remember a submitted line (up and down arrows) and rewrite the file:
 * the last 100 lines, one per line, mode 0600, through a .tmp file and a rename (§6.8). */
void repl_history_add(repl *r, const char *line);
void repl_history_save(repl *r, bool on);   /* /set history, /set nohistory */

#endif
