/* Component reports (report.h). */
#include "hwid/report.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *printable_dup(const char *s, size_t max) {
    size_t n = strnlen(s, max), o = 0;
    char *out = malloc(4 * n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)sprintf(out + o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

int report_set(char **field, const char *fmt, ...) {
    va_list ap;
    char *s = NULL;
    int r;

    va_start(ap, fmt);
    r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -ENOMEM;
    free(*field);
    *field = s;
    return 0;
}

int report_add_entry(struct hwid_report *r, const char *name, const char *value,
                     const char *detail) {
    struct hwid_entry *e = reallocarray(r->entries, r->n_entries + 1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    r->entries = e;
    e = &r->entries[r->n_entries];
    *e = (struct hwid_entry){
        .name = strdup(name),
        .value = strdup(value),
        .detail = strdup(detail ? detail : ""),
    };
    if (!e->name || !e->value || !e->detail) {
        free(e->name);
        free(e->value);
        free(e->detail);
        return -ENOMEM;
    }
    r->n_entries++;
    return 0;
}

int report_add_exclusion(struct hwid_report *r, const char *name, const char *fmt, ...) {
    struct hwid_exclusion *x = reallocarray(r->excluded, r->n_excluded + 1, sizeof(*x));
    char *reason = NULL;
    va_list ap;
    int n;

    if (!x)
        return -ENOMEM;
    r->excluded = x;
    va_start(ap, fmt);
    n = vasprintf(&reason, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    x = &r->excluded[r->n_excluded];
    *x = (struct hwid_exclusion){.name = strdup(name), .reason = reason};
    if (!x->name) {
        free(reason);
        return -ENOMEM;
    }
    r->n_excluded++;
    return 0;
}

void report_clear(struct hwid_report *r) {
    for (size_t i = 0; i < r->n_entries; i++) {
        free(r->entries[i].name);
        free(r->entries[i].value);
        free(r->entries[i].detail);
    }
    for (size_t i = 0; i < r->n_excluded; i++) {
        free(r->excluded[i].name);
        free(r->excluded[i].reason);
    }
    free(r->entries);
    free(r->excluded);
    free(r->source);
    free(r->absent_reason);
    *r = (struct hwid_report){0};
}
