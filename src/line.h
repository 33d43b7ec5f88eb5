/* line.h - one line of text built in a buffer on the caller's stack: the
 * fatal-error message, the options' warnings and listing, and the
 * statistics tables are written from inside malloc, in fork children and
 * in signal handlers, so they never allocate. os_write_line writes it. */
#ifndef STRATA_LINE_H
#define STRATA_LINE_H

#include "internal.h"

/* buf[0, n) is the text so far; a put past the buffer is cut, keeping room
 * for the newline. */
typedef struct { char buf[256]; size_t n; int fd; } line_t;

#define LINE_INIT(fd_) ((line_t){ .n = 0, .fd = (fd_) })

void line_put(line_t *l, const char *s);
/* At most len bytes of s (a piece of a longer string). */
void line_put_n(line_t *l, const char *s, size_t len);
/* v in decimal, right-aligned in `width` columns (0: as wide as it is);
 * with `unit`, v is bytes, written below 1 MiB in KiB and from 1 MiB in
 * MiB, with one decimal (cut, so a value never reads more than it is). */
void line_put_num(line_t *l, unsigned long long v, int width, bool unit);
/* v as 0x and lowercase hex digits. */
void line_put_hex(line_t *l, uintptr_t v);

#endif
