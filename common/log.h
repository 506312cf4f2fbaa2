/* Program logging: one line per event to stderr, prefixed with the syslog
 * priority "<N>" when running under systemd (JOURNAL_STREAM set), so the
 * journal assigns the right level. Libraries do not log; programs do, once,
 * where an error is handled. Never pass secrets (keys, passwords, full
 * license codes, certificates) to these functions. */
#pragma once

#include "common/macro.h"

enum log_level {
    LOG_LVL_ERROR = 3,
    LOG_LVL_WARN = 4,
    LOG_LVL_INFO = 6,
    LOG_LVL_DEBUG = 7,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -EINVAL otherwise. */
int log_parse_level(const char *s, enum log_level *ret_level);
void log_set_program(const char *name);

void log_msg(enum log_level level, const char *fmt, ...) _printf_(2, 3);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
