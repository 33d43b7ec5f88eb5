/* stats.c - statistics: strata_stats, the printer (no allocation), the
 * print at exit, and glibc's mallinfo2, mallinfo, malloc_stats, malloc_info
 * and mallopt filled from Strata's own counters.
 *
 * Small-block counts come from the per-thread counters (heap.h, STAT_INC),
 * merged here; the large and huge tiers count under their locks; resident
 * bytes are asked of the kernel (mincore) over Strata's mappings.
 */
#include "heap.h"
#include "huge.h"
#include "init.h"
#include "large.h"
#include "os.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

API int strata_stats(strata_stats_t *out) {
  if (!out) return EINVAL;
  memset(out, 0, sizeof *out);
  init_ensure();
  uint64_t nmalloc[CLASS_COUNT], nfree[CLASS_COUNT];
  heap_stats(nmalloc, nfree);
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    strata_class_stats_t *cs = &out->classes[c];
    cs->size = class_info[c].size;
    cs->nmalloc = nmalloc[c];
    cs->nfree = nfree[c];
    cs->live = nmalloc[c] > nfree[c] ? nmalloc[c] - nfree[c] : 0;
    out->small.nmalloc += cs->nmalloc;
    out->small.nfree += cs->nfree;
    out->small.allocated += cs->live * cs->size;
  }
  pageheap_stats_t ph;
  pageheap_stats(&ph);
  out->small.active = ph.span_bytes;
  out->small.resident = ph.resident;

  large_stats_t ls;
  large_stats(&ls);
  out->large = (strata_tier_stats_t){ ls.nmalloc, ls.nfree, ls.allocated, ls.active, ls.resident };

  huge_stats_t hs;
  huge_stats(&hs);
  out->huge = (strata_tier_stats_t){ hs.nmalloc, hs.nfree, hs.allocated, hs.mapped, hs.resident + hs.cached_resident };

  out->allocated = out->small.allocated + out->large.allocated + out->huge.allocated;
  out->active = out->small.active + out->large.active + out->huge.active;
  out->resident = out->small.resident + out->large.resident + out->huge.resident;
  out->mapped = ph.mapped + hs.mapped + hs.cached;
  out->returned = atomic_load_relaxed(&os_returned);
  out->dirty = ph.dirty_free + (ls.resident > ls.allocated ? ls.resident - ls.allocated : 0) + hs.cached_resident;
  return 0;
}

/* ---- the printer: a line buffer and number formatting, no allocation ---- */
typedef struct { char buf[160]; size_t n; int fd; } line_t;

static void put(line_t *l, const char *s) {
  while (*s && l->n < sizeof l->buf - 1) l->buf[l->n++] = *s++;
}
/* v right-aligned in width columns; with `unit`, as bytes scaled to K/M/G. */
static void put_num(line_t *l, unsigned long long v, int width, bool unit) {
  char d[32];
  int n = 0;
  const char *suffix = "";
  unsigned long long frac = 0;
  if (unit) {
    const char *units[] = { " B", " K", " M", " G", " T" };
    int u = 0;
    while (v >= 10240 && u < 4) { frac = (v % 1024) * 10 / 1024; v /= 1024; u++; }
    suffix = units[u];
    if (u == 0) frac = 0;
    else { d[n++] = (char)('0' + frac); d[n++] = '.'; }
  }
  do { d[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  int len = n + (int)strlen(suffix);
  for (int i = len; i < width; i++) put(l, " ");
  char out[34];
  for (int i = 0; i < n; i++) out[i] = d[n - 1 - i];
  out[n] = 0;
  put(l, out);
  put(l, suffix);
}
static void flush(line_t *l) {
  put(l, "\n");
  os_write_all(l->fd, l->buf, l->n);
  l->n = 0;
}

static void print_tier(line_t *l, const char *name, const strata_tier_stats_t *t) {
  put(l, name);
  put_num(l, t->nmalloc, 14, false);
  put_num(l, t->nfree, 14, false);
  put_num(l, t->allocated, 12, true);
  put_num(l, t->active, 12, true);
  put_num(l, t->resident, 12, true);
  flush(l);
}

API void strata_stats_print(int fd) {
  int cancel = os_cancel_off();      /* the whole table, as glibc's printers */
  strata_stats_t st;
  strata_stats(&st);
  line_t l = { .n = 0, .fd = fd };
  put(&l, "strata statistics");
  flush(&l);
  put(&l, "  tier        nmalloc         nfree   allocated      active    resident");
  flush(&l);
  print_tier(&l, "  small ", &st.small);
  print_tier(&l, "  large ", &st.large);
  print_tier(&l, "  huge  ", &st.huge);
  strata_tier_stats_t total = { st.small.nmalloc + st.large.nmalloc + st.huge.nmalloc,
                                 st.small.nfree + st.large.nfree + st.huge.nfree,
                                 st.allocated, st.active, st.resident };
  print_tier(&l, "  total ", &total);
  put(&l, "  mapped");
  put_num(&l, st.mapped, 12, true);
  put(&l, ", returned to the OS");
  put_num(&l, st.returned, 12, true);
  put(&l, ", free not yet returned");
  put_num(&l, st.dirty, 12, true);
  flush(&l);
  put(&l, "  class      size       nmalloc         nfree          live  live bytes");
  flush(&l);
  for (unsigned c = 0; c < STRATA_CLASSES; c++) {
    const strata_class_stats_t *cs = &st.classes[c];
    if (!cs->nmalloc) continue;
    put_num(&l, c, 7, false);
    put_num(&l, cs->size, 10, false);
    put_num(&l, cs->nmalloc, 14, false);
    put_num(&l, cs->nfree, 14, false);
    put_num(&l, cs->live, 14, false);
    put_num(&l, (unsigned long long)cs->live * cs->size, 12, true);
    flush(&l);
  }
  os_cancel_restore(cancel);
}

__attribute__((destructor)) static void stats_at_exit(void) {
  if (options.stats_at_exit && atomic_load_acquire(&init_state) == 2) strata_stats_print(2);
}

/* ---- glibc's extended API ------------------------------------------------ */
#ifndef STRATA_NO_OVERRIDE
/* glibc's meaning: arena = bytes mapped outside huge blocks, uordblks =
 * allocated there, fordblks = the rest of it, hblks/hblkhd = huge blocks
 * (glibc's mmapped chunks), keepcost = free bytes a trim would return.
 * Free-chunk counts (ordblks, smblks) and fastbin figures have no meaning
 * here and stay 0; usmblks is 0 as in glibc. */
API struct mallinfo2 mallinfo2(void) {
  strata_stats_t st;
  strata_stats(&st);
  struct mallinfo2 mi = { 0 };
  mi.arena = st.mapped - st.huge.active;
  mi.uordblks = st.small.allocated + st.large.allocated;
  mi.fordblks = mi.arena > mi.uordblks ? mi.arena - mi.uordblks : 0;
  mi.hblks = st.huge.nmalloc - st.huge.nfree;
  mi.hblkhd = st.huge.active;
  mi.keepcost = st.dirty;
  return mi;
}

static int clamp_int(size_t v) { return v > INT_MAX ? INT_MAX : (int)v; }

API struct mallinfo mallinfo(void) {
  struct mallinfo2 m = mallinfo2();
  return (struct mallinfo){ .arena = clamp_int(m.arena), .ordblks = clamp_int(m.ordblks),
                            .hblks = clamp_int(m.hblks), .hblkhd = clamp_int(m.hblkhd),
                            .uordblks = clamp_int(m.uordblks), .fordblks = clamp_int(m.fordblks),
                            .keepcost = clamp_int(m.keepcost) };
}

/* glibc's summary lines on stderr, then Strata's own table. */
API void malloc_stats(void) {
  int cancel = os_cancel_off();
  strata_stats_t st;
  strata_stats(&st);
  line_t l = { .n = 0, .fd = 2 };
  put(&l, "Total (incl. mmap):");
  flush(&l);
  put(&l, "system bytes     = ");
  put_num(&l, st.mapped, 10, false);
  flush(&l);
  put(&l, "in use bytes     = ");
  put_num(&l, st.allocated, 10, false);
  flush(&l);
  put(&l, "max mmap regions = ");
  put_num(&l, st.huge.nmalloc - st.huge.nfree, 10, false);
  flush(&l);
  put(&l, "max mmap bytes   = ");
  put_num(&l, st.huge.active, 10, false);
  flush(&l);
  strata_stats_print(2);
  os_cancel_restore(cancel);
}

/* The layout of glibc's malloc_info: one heap, sizes by class. */
API int malloc_info(int opts, FILE *fp) {
  if (opts != 0) { errno = EINVAL; return -1; }
  int cancel = os_cancel_off();
  strata_stats_t st;
  strata_stats(&st);
  fprintf(fp, "<malloc version=\"strata-1\">\n<heap nr=\"0\">\n<sizes>\n");
  size_t from = 1;
  for (unsigned c = 0; c < STRATA_CLASSES; c++) {
    const strata_class_stats_t *cs = &st.classes[c];
    if (cs->live)
      fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
              from, cs->size, cs->live * cs->size, cs->live);
    from = cs->size + 1;
  }
  size_t arena = st.mapped - st.huge.active;
  fprintf(fp, "</sizes>\n"
              "<total type=\"small\" count=\"%llu\" size=\"%zu\"/>\n"
              "<total type=\"large\" count=\"%llu\" size=\"%zu\"/>\n"
              "<system type=\"current\" size=\"%zu\"/>\n"
              "<system type=\"resident\" size=\"%zu\"/>\n"
              "<aspace type=\"total\" size=\"%zu\"/>\n</heap>\n",
          st.small.nmalloc - st.small.nfree, st.small.allocated,
          st.large.nmalloc - st.large.nfree, st.large.allocated,
          arena, st.small.resident + st.large.resident, arena);
  fprintf(fp, "<total type=\"mmap\" count=\"%llu\" size=\"%zu\"/>\n"
              "<system type=\"current\" size=\"%zu\"/>\n"
              "<system type=\"returned\" size=\"%zu\"/>\n"
              "<aspace type=\"total\" size=\"%zu\"/>\n</malloc>\n",
          st.huge.nmalloc - st.huge.nfree, st.huge.active, st.mapped, st.returned, st.mapped);
  os_cancel_restore(cancel);
  return 0;
}

/* glibc's parameters are accepted (1) with a valid value; only
 * M_MMAP_THRESHOLD changes anything (the huge threshold: blocks above it are
 * mapped directly). Arenas, trimming, padding, fastbins, check actions
 * and perturbation are Strata's own business (see README). Unknown: 0. */
API int mallopt(int param, int value) {
  init_ensure();
  switch (param) {
  case M_MMAP_THRESHOLD:             /* glibc's limit: 32 MiB */
    if (value < 0 || (size_t)value > LARGE_MAX) return 0;
    options_huge_threshold_fix((size_t)value);
    return 1;
  case M_MXFAST:
    return value >= 0 && value <= 160;
  case M_TRIM_THRESHOLD: case M_TOP_PAD: case M_MMAP_MAX: case M_CHECK_ACTION:
  case M_PERTURB: case M_ARENA_TEST: case M_ARENA_MAX:
    return 1;
  default:
    return 0;
  }
}
#endif
