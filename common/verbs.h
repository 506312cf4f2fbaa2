/* Command-line verbs (the idea of systemd's src/shared/verbs.c): a program's
 * commands, and groups of commands ("license create"), are one table each,
 * dispatched in one place with one wording for usage errors; each command
 * reads its options with getopt_long through verb_getopt. Exit statuses
 * every tpmlic program shares: 0 success, 1 refused or failed, 2 usage
 * error (tpmlicctl adds 3: the agent cannot be reached). */
#pragma once

#include <getopt.h>
#include <stdbool.h>

#include "common/macro.h"

#define VERB_EXIT_OK     0
#define VERB_EXIT_FAILED 1
#define VERB_EXIT_USAGE  2

struct verb {
    const char *name; /* NULL ends a table */
    /* A command: called with argv[0] == name; returns the exit status. */
    int (*run)(int argc, char **argv, void *userdata);
    /* Or a group of commands: its table, and the help "NAME --help" prints. */
    const struct verb *group;
    const char *group_help;
};

/* Runs the verb argv[0] of table. path names the level for messages
 * ("tpmlic-server" or "tpmlic-server license"); help is printed for
 * "--help", "-h" or "help" at this level (to stdout, exit 0); version,
 * when not NULL, for "--version". A group dispatches its argv[1] the same
 * way. Unknown or missing verbs are usage errors. */
int verb_dispatch(const char *path, const struct verb *table, const char *help, const char *version,
                  int argc, char **argv, void *userdata);

/* "PATH: message (see 'PATH --help')" on stderr; returns VERB_EXIT_USAGE. */
int verb_usage_error(const char *path, const char *fmt, ...) _printf_(2, 3);

/* getopt_long for one command (argv[0] is the command): call with
 * *state == 0 first. Returns the next option, or -1 at the end of the
 * options. Long options only, spelled out in full (no abbreviations). On
 * an unknown or abbreviated option, a missing value, or (unless
 * allow_positional) a stray argument, prints the usage error for path and
 * returns -1 with *exit_code = VERB_EXIT_USAGE; *exit_code is left alone
 * otherwise. Positional arguments are then argv[optind..argc). */
int verb_getopt(int argc, char **argv, const char *path, const struct option *opts,
                bool allow_positional, int *state, int *exit_code);
