/* test_stats.c - the statistics add up: strata_stats counts every block in
 * its tier and class, nmalloc counts every malloc, allocated <= active <=
 * mapped, and allocated returns to where it was after the frees. The
 * printers say the same without allocating: the table's byte columns follow
 * its rule of units, and the JSON parses (Python's json module) to the
 * numbers of strata_stats. Through the strata_ API, so it also runs in
 * sanitizer builds. */
#include "strata.h"
#include "testlib.h"

/* 3000 blocks of every tier: each counted at its usable size (the class
 * size for a small request) in its tier and its class. */
static int case_allocated_adds_up(void) {
  enum { N = 3000 };
  static void *p[N];
  static size_t want[N];
  /* Freeing 8 MiB starts the purge thread, whose creation allocates
   * (glibc's thread descriptor): have that happen first. */
  strata_free(strata_malloc(9 << 20));
  strata_stats_t before = stats_now();
  size_t small = 0, large = 0, huge = 0;
  srand(7);
  for (int i = 0; i < N; i++) {
    size_t size = i % 100 == 99 ? (size_t)(40 << 10) + (size_t)rand() % (2 << 20)  /* large */
                : (size_t)rand() % 2048 + 1;
    if (i == N - 1) size = (size_t)20 << 20;                                    /* huge */
    p[i] = strata_malloc(size);
    want[i] = strata_malloc_usable_size(p[i]);
    if (size <= 32768) small += want[i];
    else if (size < ((size_t)16 << 20)) large += want[i];
    else huge += want[i];
  }
  strata_stats_t mid = stats_now();
  CHECK(mid.small.allocated - before.small.allocated == small,
        "small allocated grew by %zu, expected %zu", mid.small.allocated - before.small.allocated, small);
  CHECK(mid.large.allocated - before.large.allocated == large,
        "large allocated grew by %zu, expected %zu", mid.large.allocated - before.large.allocated, large);
  CHECK(mid.huge.allocated - before.huge.allocated == huge,
        "huge allocated grew by %zu, expected %zu", mid.huge.allocated - before.huge.allocated, huge);
  CHECK(mid.allocated == mid.small.allocated + mid.large.allocated + mid.huge.allocated, "total != sum of tiers");
  CHECK(mid.small.nmalloc - before.small.nmalloc + mid.large.nmalloc - before.large.nmalloc +
        mid.huge.nmalloc - before.huge.nmalloc == N, "nmalloc did not count %d mallocs", N);
  size_t by_class = 0;
  for (int c = 0; c < STRATA_CLASSES; c++) by_class += mid.classes[c].live * mid.classes[c].size;
  CHECK(by_class == mid.small.allocated, "class table (%zu) != small allocated (%zu)", by_class, mid.small.allocated);
  CHECK(mid.active >= mid.allocated && mid.mapped >= mid.active, "allocated <= active <= mapped violated");
  for (int i = 0; i < N; i++) strata_free(p[i]);
  strata_stats_t after = stats_now();
  CHECK(after.allocated == before.allocated, "allocated %zu after the frees, %zu before", after.allocated, before.allocated);
  strata_stats_print(1);
  return 0;
}

/* Blocks that give the printers something to show on every row, held
 * while they print: classes of 4096 and 1024 bytes whose live bytes fall
 * just under and exactly on 1 MiB, a large and a huge block. */
enum { HELD = 255 + 1024 + 2 };
static void *held[HELD];
static void hold_blocks(void) {
  int n = 0;
  for (int i = 0; i < 255; i++) held[n++] = strata_malloc(4096);
  for (int i = 0; i < 1024; i++) held[n++] = strata_malloc(1024);
  held[n++] = strata_malloc(100 << 10);
  held[n++] = strata_malloc(20 << 20);
}

static bool same_counts(const strata_stats_t *a, const strata_stats_t *b) {
  const strata_tier_stats_t *ta[] = {&a->small, &a->large, &a->huge}, *tb[] = {&b->small, &b->large, &b->huge};
  for (int t = 0; t < 3; t++)
    if (ta[t]->nmalloc != tb[t]->nmalloc || ta[t]->nfree != tb[t]->nfree || ta[t]->allocated != tb[t]->allocated)
      return false;
  for (int c = 0; c < STRATA_CLASSES; c++)
    if (a->classes[c].nmalloc != b->classes[c].nmalloc || a->classes[c].nfree != b->classes[c].nfree) return false;
  return a->allocated == b->allocated && a->mapped == b->mapped && a->resident == b->resident;
}

/* What print(fd) writes (less than a pipe holds), in buf; *st the
 * statistics it printed: the case allocates nothing around the call, so
 * the snapshots before and after it agree, unless the printer allocated. */
static void print_to(void (*print)(int), char *buf, size_t cap, strata_stats_t *st) {
  int p[2];
  REQUIRE(pipe(p) == 0, "pipe: %s", strerror(errno));
  strata_stats_t before = stats_now();
  print(p[1]);
  *st = stats_now();
  close(p[1]);
  size_t n = 0;
  for (ssize_t r; n + 1 < cap && (r = read(p[0], buf + n, cap - 1 - n)) > 0;) n += (size_t)r;
  buf[n] = 0;
  close(p[0]);
  CHECK(same_counts(&before, st), "the statistics changed around the printer: it allocated");
}

/* A byte count as the table's rule writes it: below 1 MiB in KiB, else in
 * MiB, one decimal, cut. */
static const char *rule_bytes(unsigned long long v, char *to, size_t cap) {
  unsigned shift = v < MiB ? 10 : 20;
  snprintf(to, cap, "%llu.%llu %s", v >> shift, (v & ((1ull << shift) - 1)) * 10 >> shift,
           shift == 10 ? "KiB" : "MiB");
  return to;
}

/* The byte cell that follows `label` on the line at `at`: "123.4 KiB". */
static bool cell_after(const char *at, const char *label, char *cell, size_t cap) {
  const char *s = strstr(at, label);
  const char *eol = strchr(at, '\n');
  if (!s || (eol && s > eol)) return false;
  char num[32], unit[8];
  if (sscanf(s + strlen(label), " %31s %7[A-Za-z]", num, unit) != 2) return false;
  snprintf(cell, cap, "%s %s", num, unit);
  return true;
}

static void check_cell(const char *what, const char *cell, unsigned long long v) {
  char want[48];
  rule_bytes(v, want, sizeof want);
  CHECK(strcmp(cell, want) == 0, "%s: the table says '%s', the rule for %llu bytes '%s'", what, cell, v, want);
}

/* Every byte column of the table (tiers, total, mapped/returned/free,
 * live bytes per class) is the rule's text for the snapshot's number; the
 * header names this process. */
static int case_table_units(void) {
  hold_blocks();
  static char table[16384];
  strata_stats_t st;
  print_to(strata_stats_print, table, sizeof table, &st);
  char head[128];
  snprintf(head, sizeof head, "strata statistics: pid %d, program %s\n", (int)getpid(),
           program_invocation_short_name);
  CHECK(strncmp(table, head, strlen(head)) == 0, "the table's header should be '%s': %.200s", head, table);
  const strata_tier_stats_t total = {0, 0, st.allocated, st.active, st.resident};
  const struct { const char *row; const strata_tier_stats_t *t; } rows[] = {
    {"\n  small ", &st.small}, {"\n  large ", &st.large}, {"\n  huge  ", &st.huge}, {"\n  total ", &total}};
  for (int r = 0; r < 4; r++) {
    const char *at = strstr(table, rows[r].row);
    REQUIRE(at, "no row '%s' in the table:\n%s", rows[r].row + 1, table);
    char num[3][32], unit[3][8];
    at += strlen(rows[r].row);
    int n = sscanf(at, "%*u %*u %31[0-9.] %7s %31[0-9.] %7s %31[0-9.] %7s", num[0], unit[0], num[1], unit[1],
                   num[2], unit[2]);
    REQUIRE(n == 6, "row '%s': %d fields of 6:\n%s", rows[r].row + 1, n, table);
    const unsigned long long v[3] = {rows[r].t->allocated, rows[r].t->active, rows[r].t->resident};
    for (int k = 0; k < 3; k++) {
      char cell[48];
      snprintf(cell, sizeof cell, "%s %s", num[k], unit[k]);
      check_cell(rows[r].row + 1, cell, v[k]);
    }
  }
  const char *mapped = strstr(table, "\n  mapped");
  REQUIRE(mapped, "no mapped line:\n%s", table);
  char cell[64];
  const struct { const char *label; unsigned long long v; } line[] = {
    {"mapped", st.mapped}, {"returned to the OS", st.returned}, {"free not yet returned", st.dirty}};
  for (int k = 0; k < 3; k++) {
    REQUIRE(cell_after(mapped + 1, line[k].label, cell, sizeof cell), "no '%s' on the line: %.200s", line[k].label,
            mapped + 1);
    check_cell(line[k].label, cell, line[k].v);
  }
  int classes = 0;
  for (int c = 0; c < STRATA_CLASSES; c++) {
    if (!st.classes[c].nmalloc) continue;
    char row[32];
    snprintf(row, sizeof row, "\n%7d%10zu", c, st.classes[c].size);
    const char *at = strstr(table, row);
    REQUIRE(at, "no row for class %d (%zu bytes):\n%s", c, st.classes[c].size, table);
    char num[32], unit[8];
    REQUIRE(sscanf(at + strlen(row), "%*u %*u %*u %31s %7s", num, unit) == 2, "class %d: a short row", c);
    snprintf(cell, sizeof cell, "%s %s", num, unit);
    check_cell("live bytes", cell, (unsigned long long)st.classes[c].live * st.classes[c].size);
    classes += st.classes[c].size == 4096 || st.classes[c].size == 1024;
  }
  CHECK(classes == 2, "the classes of 1024 and 4096 bytes are not both in the table");
  return 0;
}

/* The JSON parses, and each of its numbers is strata_stats's: Python
 * flattens it to path=value lines, each of which must be there. */
static int case_json(void) {
  hold_blocks();
  static char json[65536], flat[32768];
  strata_stats_t st;
  print_to(strata_stats_print_json, json, sizeof json, &st);
  static const char flatten[] =
    "import json, sys\n"
    "def walk(path, v):\n"
    "    if isinstance(v, dict):\n"
    "        for k, x in v.items(): walk(path + [k], x)\n"
    "    elif isinstance(v, list):\n"
    "        for i, x in enumerate(v): walk(path + [str(i)], x)\n"
    "    else:\n"
    "        print('%s=%s' % ('.'.join(path), v))\n"
    "walk([], json.load(sys.stdin))\n";
  flat[0] = '\n';
  int status = run_python(flatten, "", json, flat + 1, sizeof flat - 1);
  REQUIRE(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "python3 could not read the JSON (status %d):\n%.2000s", status, json);
  char want[160];
#define WANT(...) do { snprintf(want, sizeof want, "\n" __VA_ARGS__); \
    CHECK(strstr(flat, want), "the JSON lacks %s", want + 1); } while (0)
  WANT("pid=%d\n", (int)getpid());
  WANT("program=%s\n", program_invocation_short_name);
  WANT("allocated=%zu\n", st.allocated);
  WANT("active=%zu\n", st.active);
  WANT("resident=%zu\n", st.resident);
  WANT("mapped=%zu\n", st.mapped);
  WANT("returned=%zu\n", st.returned);
  WANT("dirty=%zu\n", st.dirty);
  const struct { const char *name; const strata_tier_stats_t *t; } tiers[] = {
    {"small", &st.small}, {"large", &st.large}, {"huge", &st.huge}};
  for (int t = 0; t < 3; t++) {
    WANT("%s.nmalloc=%llu\n", tiers[t].name, tiers[t].t->nmalloc);
    WANT("%s.nfree=%llu\n", tiers[t].name, tiers[t].t->nfree);
    WANT("%s.allocated=%zu\n", tiers[t].name, tiers[t].t->allocated);
    WANT("%s.active=%zu\n", tiers[t].name, tiers[t].t->active);
    WANT("%s.resident=%zu\n", tiers[t].name, tiers[t].t->resident);
  }
  for (int c = 0; c < STRATA_CLASSES; c++) {
    WANT("classes.%d.size=%zu\n", c, st.classes[c].size);
    WANT("classes.%d.nmalloc=%llu\n", c, st.classes[c].nmalloc);
    WANT("classes.%d.nfree=%llu\n", c, st.classes[c].nfree);
    WANT("classes.%d.live=%zu\n", c, st.classes[c].live);
  }
  WANT("options.stats=0\n");
  WANT("options.decay=250\n");
  WANT("options.purge=dontneed\n");
#undef WANT
  CHECK(!strstr(flat, "\nclasses.40."), "the JSON has more than %d classes", STRATA_CLASSES);
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"allocated-adds-up", case_allocated_adds_up, 120},
    {"table-units", case_table_units, 120},
    {"json", case_json, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
