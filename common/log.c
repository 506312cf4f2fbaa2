/* Program logging to stderr with journal priority prefixes (see log.h). */
#include "common/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

static enum log_level max_level = LOG_LVL_INFO;
static const char *program = "tpmlic";

void log_set_level(enum log_level level) {
    max_level = level;
}

enum log_level log_get_level(void) {
    return max_level;
}

void log_set_program(const char *name) {
    program = name;
}

int log_parse_level(const char *s, enum log_level *ret_level) {
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {
        {"error", LOG_LVL_ERROR},
        {"warn", LOG_LVL_WARN},
        {"info", LOG_LVL_INFO},
        {"debug", LOG_LVL_DEBUG},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (s && strcmp(s, names[i].name) == 0) {
            *ret_level = names[i].level;
            return 0;
        }
    return -EINVAL;
}

void log_msg(enum log_level level, const char *fmt, ...) {
    static const char *const tags[] = {
        [LOG_LVL_ERROR] = "error",
        [LOG_LVL_WARN] = "warning",
        [LOG_LVL_INFO] = "info",
        [LOG_LVL_DEBUG] = "debug",
    };
    char line[1024];
    va_list ap;

    if (level > max_level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (getenv("JOURNAL_STREAM"))
        fprintf(stderr, "<%d>%s\n", (int)level, line);
    else
        fprintf(stderr, "%s: %s: %s\n", program, tags[level], line);
}
