/* Command-line verbs (verbs.h). */
#include "common/verbs.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int verb_usage_error(const char *path, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see '%s --help')\n", path);
    return VERB_EXIT_USAGE;
}

static bool is_help(const char *a) {
    return !strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help");
}

int verb_dispatch(const char *path, const struct verb *table, const char *help, const char *version,
                  int argc, char **argv, void *userdata) {
    if (argc < 1)
        return verb_usage_error(path, "a command is needed");
    if (is_help(argv[0])) {
        fputs(help, stdout);
        return VERB_EXIT_OK;
    }
    if (version && !strcmp(argv[0], "--version")) {
        printf("%s\n", version);
        return VERB_EXIT_OK;
    }
    for (const struct verb *v = table; v->name; v++) {
        char sub[128];
        if (strcmp(argv[0], v->name) != 0)
            continue;
        if (v->run)
            return v->run(argc, argv, userdata);
        snprintf(sub, sizeof(sub), "%s %s", path, v->name);
        return verb_dispatch(sub, v->group, v->group_help, NULL, argc - 1, argv + 1, userdata);
    }
    if (argv[0][0] == '-')
        return verb_usage_error(path, "unknown option '%s'", argv[0]);
    return verb_usage_error(path, "unknown command '%s'", argv[0]);
}

/* The word of argv that named the option getopt_long just returned: the
 * one before its value when the value came as the next word. */
static const char *option_word(char **argv, const struct option *o) {
    if (o->has_arg != no_argument && optarg && optarg == argv[optind - 1])
        return argv[optind - 2];
    return argv[optind - 1];
}

/* getopt_long takes any unambiguous abbreviation ("--pass" for
 * "--password-file"); we do not: an abbreviation that means one option
 * today means another once an option is added, and "--password SECRET"
 * must never be read as a file name. */
static bool spelled_out(char **argv, const struct option *o) {
    const char *w = option_word(argv, o);
    size_t n = strlen(o->name);
    return !strncmp(w, "--", 2) && !strncmp(w + 2, o->name, n) &&
           (w[2 + n] == '\0' || w[2 + n] == '=');
}

int verb_getopt(int argc, char **argv, const char *path, const struct option *opts,
                bool allow_positional, int *state, int *exit_code) {
    int c, index = -1;

    if (*state == 0) {
        optind = 0; /* GNU: start afresh on this argv */
        opterr = 0;
        *state = 1;
    }
    /* GNU getopt moves the positional arguments behind the options */
    c = getopt_long(argc, argv, ":", opts, &index);
    if (c != '?' && c != ':' && c != -1 && index >= 0 && !spelled_out(argv, &opts[index])) {
        *exit_code = verb_usage_error(path, "unknown option '%s'", option_word(argv, &opts[index]));
        return -1;
    }
    if (c == '?') {
        *exit_code = verb_usage_error(path, "unknown option '%s'", argv[optind - 1]);
        return -1;
    }
    if (c == ':') {
        *exit_code = verb_usage_error(path, "option '%s' needs a value", argv[optind - 1]);
        return -1;
    }
    if (c == -1 && !allow_positional && optind < argc)
        *exit_code = verb_usage_error(path, "unexpected argument '%s'", argv[optind]);
    return c;
}
