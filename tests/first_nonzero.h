/* first_nonzero.h - find the first non-zero byte of a range, reading only
 * resident pages (test_parity and the fuzzer check with it that calloc'd and
 * recycled memory reads as zero). Define FIRST_NONZERO_ATTR before
 * including to give the function attributes (the fuzzer: no ASan). */
#ifndef FIRST_NONZERO_H
#define FIRST_NONZERO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#ifndef FIRST_NONZERO_ATTR
#define FIRST_NONZERO_ATTR
#endif
#define FNZ_PAGE ((size_t)4096)

/* The first byte of p[0, n) that is not zero, or SIZE_MAX. Pages that are
 * not resident are not read: untouched or purged anonymous memory reads as
 * zero, and reading it would only fault in the zero page, which costs tens
 * of microseconds a page on a virtual machine. Every resident byte is read. */
FIRST_NONZERO_ATTR static size_t first_nonzero(const unsigned char *p, size_t n) {
  static __thread unsigned char vec[1024];
  size_t i = 0;
  while (i < n) {
    uintptr_t base = ((uintptr_t)p + i) & ~(uintptr_t)(FNZ_PAGE - 1);
    size_t pages = ((uintptr_t)p + n - base + FNZ_PAGE - 1) / FNZ_PAGE;
    if (pages > sizeof vec) pages = sizeof vec;
    if (mincore((void *)base, pages * FNZ_PAGE, vec) != 0) memset(vec, 1, pages);
    for (size_t k = 0; k < pages && i < n; k++) {
      size_t end = base + (k + 1) * FNZ_PAGE - (uintptr_t)p;
      if (end > n) end = n;
      if (vec[k] & 1) {
        for (; i < end && i % 8; i++)
          if (p[i]) return i;
        for (; i + 8 <= end; i += 8) {
          uint64_t w;
          memcpy(&w, p + i, 8);
          if (w)
            for (size_t j = i;; j++)
              if (p[j]) return j;
        }
        for (; i < end; i++)
          if (p[i]) return i;
      }
      i = end;
    }
  }
  return SIZE_MAX;
}

#endif
