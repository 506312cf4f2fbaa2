/* tpmlicd --tpm-info (see tpminfo.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Prints the report to f. On failure returns a negative errno and a
 * one-line reason in errbuf. */
int agent_print_tpm_info(FILE *f, const char *tcti, uint32_t nv_base, char *errbuf, size_t errlen);
