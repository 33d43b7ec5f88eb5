/* unit_segmap.c - the segment map: wild pointers and NULL are no one's,
 * every kind is set and cleared segment by segment (the p-1 rule at the
 * ends), over a fake address range. */
#include "segmap.h"
#include "testlib.h"

static int case_segmap(void) {
  static char data[64];
  int local;
  const void *wild[] = { NULL, (void *)1, (void *)0xbadbeef, data, &local,
                         (void *)UINTPTR_MAX, (void *)((uintptr_t)1 << 47), (void *)((uintptr_t)1 << 62) };
  for (size_t i = 0; i < sizeof wild / sizeof *wild; i++)
    CHECK(segmap_kind(wild[i]) == SEG_NONE, "wild pointer %p is ours", wild[i]);
  /* A fake segment-aligned address range: only the map is touched. */
  char *base = (char *)((uintptr_t)0x7e0000000000);
  for (seg_kind_t k = SEG_SMALL; k <= SEG_HUGE; k++) {
    segmap_set(base, 3 * SEG_SIZE, k);
    CHECK(segmap_kind(base) == SEG_NONE, "segment start belongs to the segment before");
    CHECK(segmap_kind(base + 1) == k, "first byte after start not kind %d", k);
    CHECK(segmap_kind(base + 3 * SEG_SIZE) == k, "last byte (p-1 rule) not kind %d", k);
    CHECK(segmap_kind(base + 3 * SEG_SIZE + 1) == SEG_NONE, "past the end is ours");
    segmap_clear(base + SEG_SIZE, SEG_SIZE, k);
    CHECK(segmap_kind(base + SEG_SIZE + 17) == SEG_NONE, "cleared segment still ours");
    CHECK(segmap_kind(base + 17) == k, "clear went too far");
    segmap_clear(base, SEG_SIZE, k);
    segmap_clear(base + 2 * SEG_SIZE, SEG_SIZE, k);
    CHECK(segmap_kind(base + 17) == SEG_NONE, "clear failed");
  }
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"kinds-set-clear", case_segmap, 60},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
