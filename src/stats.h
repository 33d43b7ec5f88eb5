/* stats.h - the statistics' table printer, shared by strata_stats_print
 * and malloc_stats (glibc.c): a line buffer written without allocating. */
#ifndef STRATA_STATS_H
#define STRATA_STATS_H

#include "internal.h"

typedef struct { char buf[160]; size_t n; int fd; } stats_line_t;
void stats_put(stats_line_t *l, const char *s);
/* v right-aligned in width columns; with `unit`, as bytes scaled to K/M/G. */
void stats_put_num(stats_line_t *l, unsigned long long v, int width, bool unit);
/* End the line and write it. */
void stats_flush(stats_line_t *l);

#endif
