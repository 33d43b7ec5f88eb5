/* stats.c - statistics: strata_stats, its printers, a table and JSON
 * (neither allocates), and the print at exit (option stats).
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

/* Which process the statistics are of: the tables at the exit of a
 * pipeline's programs go to one terminal. */
static void put_process(line_t *l) {
  line_put(l, "pid ");
  line_put_num(l, (unsigned long long)os_pid(), 0, false);
  line_put(l, ", program ");
  line_put(l, os_program_name());
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
  line_put(&l, "strata statistics: ");
  put_process(&l);
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

/* ---- JSON ----------------------------------------------------------------
 * The text goes out through a line_t's buffer, written without a newline
 * whenever it fills (a string of any length stays whole), and with one
 * after each object that ends a line, for a reader. */
static void json_raw(line_t *l, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (l->n == sizeof l->buf - 1) {     /* the last byte: os_write_line's newline */
      os_write_all(l->fd, l->buf, l->n);
      l->n = 0;
    }
    l->buf[l->n++] = s[i];
  }
}

/* s as a JSON string. Bytes from 0x80 pass as they are: names on Linux are
 * UTF-8. */
static void json_string(line_t *l, const char *s) {
  json_raw(l, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[6] = { '\\', (char)c, '0', '0', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15] };
    if (c == '"' || c == '\\') {
      json_raw(l, esc, 2);
    } else if (c < 0x20) {
      esc[1] = 'u';
      json_raw(l, esc, 6);
    } else {
      json_raw(l, s, 1);
    }
  }
  json_raw(l, "\"", 1);
}

static void json_number(line_t *l, unsigned long long v) {
  line_t digits = LINE_INIT(l->fd);
  line_put_num(&digits, v, 0, false);
  json_raw(l, digits.buf, digits.n);
}

/* `sep` (the comma before all but the first member, or the brace), then
 * the key; json_member adds a number after it. */
static void json_key(line_t *l, const char *sep, const char *key) {
  json_raw(l, sep, strlen(sep));
  json_string(l, key);
  json_raw(l, ": ", 2);
}
static void json_member(line_t *l, const char *sep, const char *key, unsigned long long v) {
  json_key(l, sep, key);
  json_number(l, v);
}

static void json_tier(line_t *l, const char *name, const strata_tier_stats_t *t) {
  json_key(l, ",\n ", name);
  json_member(l, "{", "nmalloc", t->nmalloc);
  json_member(l, ", ", "nfree", t->nfree);
  json_member(l, ", ", "allocated", t->allocated);
  json_member(l, ", ", "active", t->active);
  json_member(l, ", ", "resident", t->resident);
  json_raw(l, "}", 1);
}

API void strata_stats_print_json(int fd) {
  int cancel = os_cancel_off();
  strata_stats_t st;
  strata_stats(&st);
  line_t l = LINE_INIT(fd);
  json_member(&l, "{", "pid", (unsigned long long)os_pid());
  json_key(&l, ", ", "program");
  json_string(&l, os_program_name());
  json_member(&l, ",\n ", "allocated", st.allocated);
  json_member(&l, ", ", "active", st.active);
  json_member(&l, ", ", "resident", st.resident);
  json_member(&l, ", ", "mapped", st.mapped);
  json_member(&l, ", ", "returned", st.returned);
  json_member(&l, ", ", "dirty", st.dirty);
  json_tier(&l, "small", &st.small);
  json_tier(&l, "large", &st.large);
  json_tier(&l, "huge", &st.huge);
  json_key(&l, ",\n ", "classes");
  for (unsigned c = 0; c < STRATA_CLASSES; c++) {
    const strata_class_stats_t *cs = &st.classes[c];
    json_member(&l, c ? ",\n  {" : "[\n  {", "size", cs->size);
    json_member(&l, ", ", "nmalloc", cs->nmalloc);
    json_member(&l, ", ", "nfree", cs->nfree);
    json_member(&l, ", ", "live", cs->live);
    json_raw(&l, "}", 1);
  }
  json_key(&l, "],\n ", "options");
  option_value_t v;
  for (unsigned i = 0; options_value(i, &v); i++) {
    json_key(&l, i ? ", " : "{", v.key);
    if (v.text) json_string(&l, v.text);
    else json_number(&l, v.number);
  }
  json_raw(&l, "}}", 2);
  os_write_line(&l);
  os_cancel_restore(cancel);
}

__attribute__((destructor)) static void stats_at_exit(void) {
  if (!init_ready()) return;
  if (options.stats == STATS_JSON) strata_stats_print_json(2);
  else if (options.stats == STATS_TEXT) strata_stats_print(2);
}
