/* The report of one component (struct hwid_report in hwid/hwid.h): what was
 * read, what was left out and why. dmi.c, nic.c and hwid.c fill reports
 * through these helpers; explain.c renders them. Internal to hwid/. */
#pragma once

#include "common/macro.h"
#include "hwid/hwid.h"

/* Append to a report; strings are copied. -ENOMEM. */
int report_add_entry(struct hwid_report *r, const char *name, const char *value,
                     const char *detail);
int report_add_exclusion(struct hwid_report *r, const char *name, const char *fmt, ...)
    _printf_(3, 4);
/* Replace *field with a formatted string. -ENOMEM. */
int report_set(char **field, const char *fmt, ...) _printf_(2, 3);
void report_clear(struct hwid_report *r);

/* Copies at most max bytes of s into a new string, printable ASCII kept and
 * every other byte written as \xNN (so it is safe for a terminal and JSON).
 * NULL on ENOMEM. */
char *printable_dup(const char *s, size_t max);
