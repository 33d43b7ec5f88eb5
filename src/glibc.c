/* glibc.c - glibc's extended malloc API filled from Strata's own figures:
 * mallinfo2, mallinfo, malloc_stats, malloc_info and mallopt. */
#include "arena.h"
#include "init.h"
#include "options.h"
#include "os.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>

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
  line_t l = LINE_INIT(2);
  line_put(&l, "Total (incl. mmap):");
  os_write_line(&l);
  line_put(&l, "system bytes     = ");
  line_put_num(&l, st.mapped, 10, false);
  os_write_line(&l);
  line_put(&l, "in use bytes     = ");
  line_put_num(&l, st.allocated, 10, false);
  os_write_line(&l);
  line_put(&l, "max mmap regions = ");
  line_put_num(&l, st.huge.nmalloc - st.huge.nfree, 10, false);
  os_write_line(&l);
  line_put(&l, "max mmap bytes   = ");
  line_put_num(&l, st.huge.active, 10, false);
  os_write_line(&l);
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
