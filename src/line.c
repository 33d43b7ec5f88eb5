/* line.c - text for a line_t (line.h); no system call and no allocation. */
#include "line.h"

#include <string.h>

void line_put_n(line_t *l, const char *s, size_t len) {
  for (size_t i = 0; i < len && s[i] && l->n < sizeof l->buf - 1; i++) l->buf[l->n++] = s[i];
}

void line_put(line_t *l, const char *s) { line_put_n(l, s, SIZE_MAX); }

void line_put_num(line_t *l, unsigned long long v, int width, bool unit) {
  char d[32];                          /* digits, last first */
  int n = 0;
  const char *suffix = "";
  if (unit) {
    unsigned shift = v < MiB ? 10 : 20;
    unsigned long long tenths = (v & ((1ull << shift) - 1)) * 10 >> shift;
    suffix = shift == 10 ? " KiB" : " MiB";
    d[n++] = (char)('0' + tenths);
    d[n++] = '.';
    v >>= shift;
  }
  do { d[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  for (int i = n + (int)strlen(suffix); i < width; i++) line_put(l, " ");
  char out[33];
  for (int i = 0; i < n; i++) out[i] = d[n - 1 - i];
  out[n] = 0;
  line_put(l, out);
  line_put(l, suffix);
}

void line_put_hex(line_t *l, uintptr_t v) {
  char out[2 + 2 * sizeof v + 1] = "0x";
  int digits = 1;
  for (uintptr_t t = v >> 4; t; t >>= 4) digits++;
  for (int i = 0; i < digits; i++) out[2 + i] = "0123456789abcdef"[(v >> (4 * (digits - 1 - i))) & 15];
  out[2 + digits] = 0;
  line_put(l, out);
}
