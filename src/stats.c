/* stats.c - statistics: strata_stats, the table printer (no allocation)
 * and the print at exit (option stats).
 *
 * Small-block counts come from the per-thread counters (heap_types.h,
 * STAT_INC), merged here; the large and huge tiers count under their locks;
 * resident bytes are asked of the kernel (mincore) over Strata's mappings.
 * The small tier's row is the heaps' counts and the page heap's pages.
 */
#include "heap.h"
#include "huge.h"
#include "init.h"
#include "large.h"
#include "options.h"
#include "os.h"

#include <errno.h>
#include <string.h>

API int strata_stats(strata_stats_t *out) {
  if (!out) return EINVAL;
  memset(out, 0, sizeof *out);
  init_ensure();
  uint64_t nmalloc[CLASS_COUNT], nfree[CLASS_COUNT];
  heap_class_stats(nmalloc, nfree);
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    strata_class_stats_t *cs = &out->classes[c];
    cs->size = class_info[c].size;
    cs->nmalloc = nmalloc[c];
    cs->nfree = nfree[c];
    cs->live = nmalloc[c] > nfree[c] ? nmalloc[c] - nfree[c] : 0;
  }
  tier_stats_t small = { 0 }, large = { 0 }, huge = { 0 };
  heap_tier.stats(&small);
  pageheap_tier.stats(&small);
  large_tier.stats(&large);
  huge_tier.stats(&huge);
  out->small = (strata_tier_stats_t){ small.nmalloc, small.nfree, small.allocated, small.active, small.resident };
  out->large = (strata_tier_stats_t){ large.nmalloc, large.nfree, large.allocated, large.active, large.resident };
  out->huge = (strata_tier_stats_t){ huge.nmalloc, huge.nfree, huge.allocated, huge.active, huge.resident };
  out->allocated = out->small.allocated + out->large.allocated + out->huge.allocated;
  out->active = out->small.active + out->large.active + out->huge.active;
  out->resident = out->small.resident + out->large.resident + out->huge.resident;
  out->mapped = small.mapped + large.mapped + huge.mapped;
  out->returned = atomic_load_relaxed(&os_returned);
  out->dirty = small.dirty + large.dirty + huge.dirty;
  return 0;
}

static void print_tier(line_t *l, const char *name, const strata_tier_stats_t *t) {
  line_put(l, name);
  line_put_num(l, t->nmalloc, 14, false);
  line_put_num(l, t->nfree, 14, false);
  line_put_num(l, t->allocated, 12, true);
  line_put_num(l, t->active, 12, true);
  line_put_num(l, t->resident, 12, true);
  os_write_line(l);
}

API void strata_stats_print(int fd) {
  int cancel = os_cancel_off();      /* the whole table, as glibc's printers */
  strata_stats_t st;
  strata_stats(&st);
  line_t l = LINE_INIT(fd);
  line_put(&l, "strata statistics");
  os_write_line(&l);
  line_put(&l, "  tier        nmalloc         nfree   allocated      active    resident");
  os_write_line(&l);
  print_tier(&l, "  small ", &st.small);
  print_tier(&l, "  large ", &st.large);
  print_tier(&l, "  huge  ", &st.huge);
  strata_tier_stats_t total = { st.small.nmalloc + st.large.nmalloc + st.huge.nmalloc,
                                 st.small.nfree + st.large.nfree + st.huge.nfree,
                                 st.allocated, st.active, st.resident };
  print_tier(&l, "  total ", &total);
  line_put(&l, "  mapped");
  line_put_num(&l, st.mapped, 12, true);
  line_put(&l, ", returned to the OS");
  line_put_num(&l, st.returned, 12, true);
  line_put(&l, ", free not yet returned");
  line_put_num(&l, st.dirty, 12, true);
  os_write_line(&l);
  line_put(&l, "  class      size       nmalloc         nfree          live  live bytes");
  os_write_line(&l);
  for (unsigned c = 0; c < STRATA_CLASSES; c++) {
    const strata_class_stats_t *cs = &st.classes[c];
    if (!cs->nmalloc) continue;
    line_put_num(&l, c, 7, false);
    line_put_num(&l, cs->size, 10, false);
    line_put_num(&l, cs->nmalloc, 14, false);
    line_put_num(&l, cs->nfree, 14, false);
    line_put_num(&l, cs->live, 14, false);
    line_put_num(&l, (unsigned long long)cs->live * cs->size, 12, true);
    os_write_line(&l);
  }
  os_cancel_restore(cancel);
}

__attribute__((destructor)) static void stats_at_exit(void) {
  if (options.stats && init_ready()) strata_stats_print(2);
}

