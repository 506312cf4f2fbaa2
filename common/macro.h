/* Small helpers every module uses: scoped cleanup of local resources
 * (GCC/Clang cleanup attribute), ownership transfer, wiping secrets. */
#pragma once

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdio.h>
#include <errno.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define _cleanup_(f)         __attribute__((cleanup(f)))
#define _unused_             __attribute__((unused))
#define _printf_(a, b)       __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

/* Hand a pointer out of a _cleanup_ scope: returns it and leaves NULL behind. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) *_pp = &(p);                                                                 \
        __typeof__(p) _p = *_pp;                                                                   \
        *_pp = NULL;                                                                               \
        _p;                                                                                        \
    })

#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int *_pfd = &(fd);                                                                         \
        int _fd = *_pfd;                                                                           \
        *_pfd = -1;                                                                                \
        _fd;                                                                                       \
    })

/* Define a cleanup function NAME##p for a pointer type whose free function
 * accepts NULL (or is guarded here). */
#define DEFINE_PTR_CLEANUP(type, func)                                                             \
    static inline void func##p(type **p) {                                                         \
        if (*p)                                                                                    \
            func(*p);                                                                              \
    }

static inline void freep(void *p) {
    free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
    if (*f)
        fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Overwrite memory that held a secret; not optimised away. */
static inline void secure_wipe(void *p, size_t n) {
    if (p && n)
        explicit_bzero(p, n);
}

/* Free a NUL-terminated secret after wiping it. */
static inline void free_secret_str(char *s) {
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}
static inline void free_secret_strp(char **s) {
    free_secret_str(*s);
}
#define _cleanup_secret_ _cleanup_(free_secret_strp)
