/* unit_buddy.c - the buddy core and the standalone strata_buddy_* API.
 *
 * Each check ends its case at the first failure (REQUIRE). Regions are
 * carved from a static buffer. The random tests keep a model of the region
 * (which minimum block belongs to which live block) and check every answer
 * of the allocator against it.
 */
#include "buddy.h"
#include "strata.h"
#include "testlib.h"

#define ARENA_BYTES ((size_t)1 << 20)
#define POISON      0xA5
#define PREFIX_FILL 0x3C

static _Alignas(4096) unsigned char arena[ARENA_BYTES];
static unsigned char other[256];

/* A fixed-seed random stream (each case starts from the seed). */
static uint64_t rng = 0x243F6A8885A308D3ull;

static size_t rup(size_t x, size_t a) { return (x + a - 1) / a * a; }
static unsigned floor_log2(uint64_t x) { return 63 - (unsigned)__builtin_clzll(x); }

/* Minimum blocks the contract reserves: round_up(prefix + metadata, min_block). */
static size_t exp_reserved(size_t size, size_t prefix, size_t mb) {
  return rup(prefix + buddy_meta_size(size, mb), mb) / mb;
}

/* ---- patterns: a live block holds words derived from an address -------- */
static uint64_t pat(uintptr_t addr, size_t j) {
  return ((uint64_t)addr * 0x9E3779B97F4A7C15ull) ^ (j * 0xD6E8FEB86659FD93ull);
}
static void fill(unsigned char *p, size_t len, uintptr_t addr) {
  for (size_t j = 0; j < len / 8; j++) {
    uint64_t w = pat(addr, j);
    memcpy(p + 8 * j, &w, 8);
  }
}
static int holds(const unsigned char *p, size_t len, uintptr_t addr) {
  for (size_t j = 0; j < len / 8; j++) {
    uint64_t w;
    memcpy(&w, p + 8 * j, 8);
    if (w != pat(addr, j)) return 0;
  }
  return 1;
}
static int all_bytes(const unsigned char *p, size_t len, int v) {
  for (size_t j = 0; j < len; j++)
    if (p[j] != v) return 0;
  return 1;
}

/* ---- the layout of free blocks ------------------------------------------
 * Allocating the largest available order until nothing is left takes every
 * free block whole: the result must be the maximal aligned decomposition of
 * [reserved, nblocks). Everything is freed again afterwards. */
#define MAX_PIECES 128
static void check_layout(strata_buddy *b, unsigned char *base, size_t size,
                         size_t prefix, size_t mb) {
  size_t n = size / mb, r = exp_reserved(size, prefix, mb);
  unsigned maxk = floor_log2(n);
  uint64_t ei[MAX_PIECES], gi[MAX_PIECES];
  unsigned ek[MAX_PIECES], gk[MAX_PIECES];
  void *gp[MAX_PIECES];
  size_t ne = 0, ng = 0;
  for (uint64_t i = r; i < n;) {
    unsigned k = (unsigned)__builtin_ctzll(i);
    if (k > maxk) k = maxk;
    while (i + (1ull << k) > n) k--;
    REQUIRE(ne < MAX_PIECES, "too many pieces");
    ei[ne] = i, ek[ne++] = k;
    i += 1ull << k;
  }
  size_t before = strata_buddy_free_bytes(b);
  REQUIRE(before == (n - r) * mb, "free %zu, want %zu", before, (n - r) * mb);
  for (unsigned k = buddy_max_order(b) + 1; k-- > 0;) {
    void *p;
    while ((p = buddy_alloc_order(b, k)) != NULL) {
      REQUIRE(ng < MAX_PIECES, "too many blocks");
      size_t off = (size_t)((unsigned char *)p - base);
      REQUIRE(off % (mb << k) == 0, "block of order %u at offset %zu", k, off);
      REQUIRE(strata_buddy_size(b, p) == mb << k, "size of order %u", k);
      size_t j = ng++; /* insertion sort by index */
      while (j > 0 && gi[j - 1] > off / mb) {
        gi[j] = gi[j - 1], gk[j] = gk[j - 1], gp[j] = gp[j - 1];
        j--;
      }
      gi[j] = off / mb, gk[j] = k, gp[j] = p;
    }
  }
  REQUIRE(strata_buddy_free_bytes(b) == 0, "free bytes left");
  REQUIRE(strata_buddy_alloc(b, 0) == NULL, "alloc from a full region");
  REQUIRE(buddy_check(b), "check when full");
  REQUIRE(ng == ne, "%zu free blocks, want %zu", ng, ne);
  for (size_t j = 0; j < ne; j++)
    REQUIRE(gi[j] == ei[j] && gk[j] == ek[j], "piece %zu: (%llu,%u) want (%llu,%u)",
            j, (unsigned long long)gi[j], gk[j], (unsigned long long)ei[j], ek[j]);
  for (size_t j = 0; j < ng; j++) REQUIRE(strata_buddy_free(b, gp[ng - 1 - j]) == 0, "free");
  REQUIRE(strata_buddy_free_bytes(b) == before, "free bytes after refill");
  REQUIRE(buddy_check(b), "check after refill");
}

/* ---- init ---------------------------------------------------------------- */
static int case_init(void) {
  static const size_t sizes[] = {4096, 65536, 65536 + 48, 100000, 300007,
                                 ARENA_BYTES - 16, ARENA_BYTES};
  static const size_t prefixes[] = {0, 1, 15, 16, 100, 4096, 5000, 70000};
  static const size_t mbs[] = {16, 32, 64, 256, 4096, 65536};
  static const size_t offs[] = {0, 16, 4096};
  unsigned ok = 0, refused = 0;
  for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
    for (size_t c = 0; c < sizeof prefixes / sizeof *prefixes; c++)
      for (size_t d = 0; d < sizeof mbs / sizeof *mbs; d++)
        for (size_t e = 0; e < sizeof offs / sizeof *offs; e++) {
          size_t size = sizes[a], prefix = prefixes[c], mb = mbs[d];
          if (offs[e] + size > ARENA_BYTES) continue;
          unsigned char *base = arena + offs[e];
          size_t n = size / mb, r = exp_reserved(size, prefix, mb);
          int want = prefix <= size && r < n;
          memset(base, POISON, size);
          memset(base, PREFIX_FILL, prefix < size ? prefix : size);
          strata_buddy *b = strata_buddy_init(base, size, prefix, mb);
          REQUIRE((b != NULL) == want, "init(size %zu, prefix %zu, min %zu)", size, prefix, mb);
          if (!b) {
            refused++;
            continue;
          }
          ok++;
          REQUIRE((unsigned char *)b >= base + prefix && (unsigned char *)b < base + r * mb,
                  "handle outside the reserved prefix");
          REQUIRE(all_bytes(base, prefix, PREFIX_FILL), "init wrote into the prefix");
          REQUIRE(all_bytes(base + r * mb, size - r * mb, POISON), "init wrote free memory");
          REQUIRE(buddy_check_canaries(b) && buddy_check(b), "fresh region check");
          REQUIRE(buddy_min_block(b) == mb, "min block");
          REQUIRE(buddy_max_order(b) == floor_log2(n), "max order");
          REQUIRE(strata_buddy_free_bytes(b) == (n - r) * mb, "free bytes %zu want %zu",
                  strata_buddy_free_bytes(b), (n - r) * mb);
          check_layout(b, base, size, prefix, mb);
          REQUIRE(all_bytes(base, prefix, PREFIX_FILL), "prefix changed");
          REQUIRE(all_bytes(base + r * mb, size - r * mb, POISON), "free memory written");
        }
  REQUIRE(ok > 100 && refused > 10, "ok %u refused %u", ok, refused);

  /* Invalid arguments. */
  REQUIRE(!strata_buddy_init(NULL, 65536, 0, 64), "NULL region");
  REQUIRE(!strata_buddy_init(arena + 8, 65536, 0, 64), "misaligned region");
  REQUIRE(!strata_buddy_init(arena + 1, 65536, 0, 64), "misaligned region");
  static const size_t bad_mb[] = {0, 1, 8, 15, 24, 48, 100, 4095};
  for (size_t j = 0; j < sizeof bad_mb / sizeof *bad_mb; j++)
    REQUIRE(!strata_buddy_init(arena, 65536, 0, bad_mb[j]), "min_block %zu", bad_mb[j]);
  REQUIRE(!strata_buddy_init(arena, 0, 0, 16), "size 0");
  REQUIRE(!strata_buddy_init(arena, 64, 0, 16), "tiny region");
  REQUIRE(!strata_buddy_init(arena, 65536, 65537, 64), "prefix > size");
  REQUIRE(!strata_buddy_init(arena, 65536, 65536, 64), "prefix == size");
  REQUIRE(!strata_buddy_init(arena, 65536, SIZE_MAX, 64), "prefix SIZE_MAX");
  REQUIRE(!strata_buddy_init(arena, 65536, SIZE_MAX - 7, 64), "prefix near SIZE_MAX");
  REQUIRE(!strata_buddy_init(arena, SIZE_MAX, 0, 64), "size SIZE_MAX");
  REQUIRE(!strata_buddy_init(arena, 65536, 0, 131072), "min_block > size");
  REQUIRE(!strata_buddy_init(arena, 65536, 0, (size_t)1 << (sizeof(size_t) * 8 - 1)),
          "huge min_block");

  /* The boundary between too small and just large enough. */
  int seen_no = 0, seen_yes = 0;
  for (size_t size = 16; size <= 8192; size += 16) {
    size_t n = size / 16, r = exp_reserved(size, 0, 16);
    strata_buddy *b = strata_buddy_init(arena, size, 0, 16);
    REQUIRE((b != NULL) == (r < n), "size %zu", size);
    if (b) REQUIRE(buddy_check(b) && strata_buddy_free_bytes(b) == (n - r) * 16, "size %zu", size);
    seen_no |= !b, seen_yes |= !!b;
  }
  REQUIRE(seen_no && seen_yes, "boundary not crossed");
  return 0;
}

/* ---- the random test ----------------------------------------------------- */
struct live {
  unsigned char *p;
  size_t size; /* block size */
};

#define MAX_LIVE 400
static struct live live[MAX_LIVE];
static int owner[ARENA_BYTES / 16]; /* minimum block -> live slot, or -1 */

struct model {
  strata_buddy *b;
  unsigned char *base;
  size_t mb, n, r, free_bytes;
  int nlive;
};

static size_t idx(const struct model *m, const void *p) {
  return (size_t)((const unsigned char *)p - m->base) / m->mb;
}

/* Alloc of order k must succeed iff an aligned run of 2^k unowned minimum
 * blocks exists in [r, n): free blocks are always fully merged. */
static int model_can_alloc(const struct model *m, unsigned k) {
  size_t len = (size_t)1 << k;
  for (size_t i = rup(m->r, len); i + len <= m->n; i += len) {
    size_t j = i;
    while (j < i + len && owner[j] < 0) j++;
    if (j == i + len) return 1;
  }
  return 0;
}

static int model_range_free(const struct model *m, size_t i, size_t len) {
  if (i + len > m->n) return 0;
  for (size_t j = i; j < i + len; j++)
    if (owner[j] >= 0) return 0;
  return 1;
}

/* Record a new live block at p (size bytes): it must be aligned, inside the
 * region, disjoint from every live block, and still poisoned from `clean` on. */
static void model_take(struct model *m, int slot, unsigned char *p, size_t size, size_t clean) {
  size_t off = (size_t)(p - m->base);
  REQUIRE(p >= m->base + m->r * m->mb && off + size <= m->n * m->mb, "block outside the region");
  REQUIRE(off % size == 0, "block of %zu bytes at offset %zu", size, off);
  REQUIRE(strata_buddy_size(m->b, p) == size, "size %zu want %zu", strata_buddy_size(m->b, p), size);
  for (size_t j = off / m->mb; j < (off + size) / m->mb; j++) {
    REQUIRE(owner[j] < 0 || owner[j] == slot, "blocks overlap at index %zu", j);
    owner[j] = slot;
  }
  REQUIRE(all_bytes(p + clean, size - clean, POISON), "allocator wrote into free memory");
  live[slot].p = p;
  live[slot].size = size;
}

static void model_drop_range(struct model *m, unsigned char *p, size_t len) {
  for (size_t j = idx(m, p); j < idx(m, p) + len / m->mb; j++) owner[j] = -1;
  memset(p, POISON, len);
}

static size_t block_for(size_t mb, size_t n) {
  size_t s = mb;
  while (s < n) s *= 2;
  return s;
}

static size_t random_size(int maxbits) {
  unsigned bits = (unsigned)(rnd(&rng) % (unsigned)(maxbits + 1));
  if (rnd(&rng) % 64 == 0) return 0;
  return (size_t)(rnd(&rng) % ((uint64_t)1 << bits)) + 1;
}

static void random_test(size_t off, size_t size, size_t prefix, size_t mb, long steps,
                        long dense, long every, int maxbits) {
  struct model m = {0};
  m.base = arena + off;
  m.mb = mb, m.n = size / mb, m.r = exp_reserved(size, prefix, mb);
  memset(m.base, POISON, size);
  memset(m.base, PREFIX_FILL, prefix);
  m.b = strata_buddy_init(m.base, size, prefix, mb);
  REQUIRE(m.b, "init for the random test");
  strata_buddy *b = m.b;
  const size_t initial = strata_buddy_free_bytes(b);
  m.free_bytes = initial;
  for (size_t j = 0; j < m.n; j++) owner[j] = j < m.r ? -2 : -1;
  long counts[8] = {0}, fails = 0;

  for (long step = 0; step < steps; step++) {
    unsigned op = (unsigned)(rnd(&rng) % 100);
    int slot = m.nlive ? (int)(rnd(&rng) % (unsigned)m.nlive) : -1;
    if (m.nlive == MAX_LIVE) op = 40; /* full: free */
    if (op < 35 || slot < 0) { /* alloc */
      size_t n = random_size(maxbits);
      unsigned char *p = strata_buddy_alloc(b, n);
      size_t bs = block_for(mb, n);
      unsigned k = floor_log2(bs / mb);
      if (!p) {
        REQUIRE(!model_can_alloc(&m, k), "alloc(%zu) failed with room", n);
        fails++;
      } else {
        model_take(&m, m.nlive, p, bs, 0);
        fill(p, bs, (uintptr_t)p);
        m.nlive++;
        m.free_bytes -= bs;
      }
      counts[0]++;
    } else if (op < 60) { /* free */
      struct live L = live[slot];
      REQUIRE(holds(L.p, L.size, (uintptr_t)L.p), "pattern broken before free");
      REQUIRE(strata_buddy_free(b, L.p) == 0, "free");
      model_drop_range(&m, L.p, L.size);
      m.free_bytes += L.size;
      live[slot] = live[--m.nlive];
      if (slot < m.nlive) /* renumber the moved block */
        for (size_t j = idx(&m, live[slot].p); j < idx(&m, live[slot].p) + live[slot].size / mb; j++)
          owner[j] = slot;
      /* Freeing again, or inside the block, is refused. */
      if (owner[idx(&m, L.p)] < 0 || live[owner[idx(&m, L.p)]].p != L.p) {
        size_t fb = strata_buddy_free_bytes(b);
        REQUIRE(strata_buddy_free(b, L.p) == EINVAL, "double free accepted");
        REQUIRE(strata_buddy_free_bytes(b) == fb, "double free changed the region");
      }
      counts[1]++;
    } else if (op < 80) { /* realloc */
      struct live L = live[slot];
      size_t n = random_size(maxbits + 1);
      size_t bs = block_for(mb, n ? n : 1);
      REQUIRE(holds(L.p, L.size, (uintptr_t)L.p), "pattern broken before realloc");
      unsigned char *q = strata_buddy_realloc(b, L.p, n);
      if (n == 0) {
        REQUIRE(q == NULL, "realloc(p, 0) returned a block");
        model_drop_range(&m, L.p, L.size);
        m.free_bytes += L.size;
        live[slot] = live[--m.nlive];
        if (slot < m.nlive)
          for (size_t j = idx(&m, live[slot].p); j < idx(&m, live[slot].p) + live[slot].size / mb; j++)
            owner[j] = slot;
      } else if (!q) {
        REQUIRE(!model_can_alloc(&m, floor_log2(bs / mb)), "realloc failed with room");
        REQUIRE(bs > L.size, "realloc failed to shrink");
        REQUIRE(strata_buddy_size(b, L.p) == L.size && holds(L.p, L.size, (uintptr_t)L.p),
                "failed realloc changed the block");
        fails++;
      } else {
        size_t keep = L.size < bs ? L.size : bs;
        if (bs <= L.size) {
          REQUIRE(q == L.p, "shrinking realloc moved");
          model_drop_range(&m, L.p + bs, L.size - bs);
          model_take(&m, slot, q, bs, bs);
        } else if (q == L.p) {
          model_take(&m, slot, q, bs, L.size);
        } else {
          REQUIRE(!model_range_free(&m, idx(&m, L.p) + L.size / mb, bs / mb - L.size / mb) ||
                      idx(&m, L.p) % (bs / mb) != 0,
                  "realloc moved although it could grow in place");
          for (size_t j = idx(&m, L.p); j < idx(&m, L.p) + L.size / mb; j++) owner[j] = -1;
          model_take(&m, slot, q, bs, L.size);
          REQUIRE(holds(q, keep, (uintptr_t)L.p), "realloc lost the contents");
          memset(L.p, POISON, L.size);
        }
        REQUIRE(holds(q, keep, (uintptr_t)L.p), "realloc lost the contents");
        fill(q, bs, (uintptr_t)q);
        m.free_bytes = m.free_bytes + L.size - bs;
      }
      counts[2]++;
    } else if (op < 90) { /* grow in place by one or two orders */
      struct live L = live[slot];
      unsigned cur = floor_log2(L.size / mb), want = cur + 1 + (unsigned)(rnd(&rng) % 2);
      size_t i = idx(&m, L.p);
      int can = want <= buddy_max_order(b);
      for (unsigned k = cur; can && k < want; k++)
        can = !(i & ((size_t)1 << k)) && model_range_free(&m, i + ((size_t)1 << k), (size_t)1 << k);
      size_t fb = strata_buddy_free_bytes(b);
      bool grew = buddy_grow_in_place(b, L.p, want);
      REQUIRE(grew == can, "grow in place: %d, model says %d", grew, can);
      if (grew) {
        model_take(&m, slot, L.p, mb << want, L.size);
        fill(L.p, mb << want, (uintptr_t)L.p);
        m.free_bytes -= (mb << want) - L.size;
      } else {
        REQUIRE(strata_buddy_free_bytes(b) == fb && strata_buddy_size(b, L.p) == L.size,
                "failed grow changed something");
      }
      counts[3]++;
    } else if (op < 99) { /* shrink */
      struct live L = live[slot];
      unsigned cur = floor_log2(L.size / mb), want = (unsigned)(rnd(&rng) % (cur + 1));
      buddy_shrink(b, L.p, want);
      REQUIRE(holds(L.p, mb << want, (uintptr_t)L.p), "shrink lost the contents");
      model_drop_range(&m, L.p + (mb << want), L.size - (mb << want));
      model_take(&m, slot, L.p, mb << want, mb << want);
      m.free_bytes += L.size - (mb << want);
      counts[4]++;
    } else { /* pointers that are not block starts */
      struct live L = live[slot];
      size_t fb = strata_buddy_free_bytes(b);
      if (L.size > 16) REQUIRE(strata_buddy_free(b, L.p + 16) == EINVAL, "free of p + 16");
      if (L.size > mb) REQUIRE(strata_buddy_free(b, L.p + mb) == EINVAL, "free of interior");
      REQUIRE(strata_buddy_free(b, m.base) == EINVAL, "free of the prefix");
      REQUIRE(strata_buddy_free(b, b) == EINVAL, "free of the metadata");
      REQUIRE(buddy_order_of(b, L.p + 1) < 0, "order_of misaligned");
      REQUIRE(strata_buddy_free_bytes(b) == fb, "refused free changed something");
      counts[5]++;
    }
    REQUIRE(strata_buddy_free_bytes(b) == m.free_bytes, "step %ld: free bytes %zu, model %zu",
            step, strata_buddy_free_bytes(b), m.free_bytes);
    if (step < dense || step % every == 0) REQUIRE(buddy_check(b), "step %ld: buddy_check", step);
  }

  for (int s = 0; s < m.nlive; s++) {
    REQUIRE(holds(live[s].p, live[s].size, (uintptr_t)live[s].p), "pattern at the end");
    REQUIRE(strata_buddy_free(b, live[s].p) == 0, "final free");
    memset(live[s].p, POISON, live[s].size);
  }
  REQUIRE(buddy_check(b), "check after freeing all");
  REQUIRE(strata_buddy_free_bytes(b) == initial, "free bytes after freeing all");
  REQUIRE(all_bytes(m.base, prefix, PREFIX_FILL), "prefix changed");
  check_layout(b, m.base, size, prefix, mb);
  info("random(size %zu, prefix %zu, min %zu): %ld steps: alloc %ld free %ld realloc %ld "
       "grow %ld shrink %ld bad-ptr %ld, %ld NULL answers, all checked against the model",
       size, prefix, mb, steps, counts[0], counts[1], counts[2], counts[3], counts[4], counts[5],
       fails);
}

/* ---- targeted tests ------------------------------------------------------ */
static strata_buddy *fresh(size_t size, size_t prefix, size_t mb) {
  memset(arena, POISON, size);
  strata_buddy *b = strata_buddy_init(arena, size, prefix, mb);
  REQUIRE(b && buddy_check(b), "fresh region");
  return b;
}

static int case_sizes_and_alignment(void) {
  strata_buddy *b = fresh(ARENA_BYTES, 100, 32);
  REQUIRE(strata_buddy_size(b, strata_buddy_alloc(b, 0)) == 32, "alloc(0) gets min_block");
  REQUIRE(strata_buddy_size(b, strata_buddy_alloc(b, 1)) == 32, "alloc(1)");
  REQUIRE(strata_buddy_size(b, strata_buddy_alloc(b, 32)) == 32, "alloc(32)");
  REQUIRE(strata_buddy_size(b, strata_buddy_alloc(b, 33)) == 64, "alloc(33)");
  REQUIRE(strata_buddy_size(b, strata_buddy_alloc(b, 1000)) == 1024, "alloc(1000)");
  REQUIRE(strata_buddy_size(b, strata_buddy_alloc(b, 1024)) == 1024, "alloc(1024)");
  REQUIRE(strata_buddy_size(b, strata_buddy_alloc(b, 1025)) == 2048, "alloc(1025)");
  for (unsigned k = 5; k <= 18; k++) {
    unsigned char *p = strata_buddy_alloc(b, (size_t)1 << k);
    REQUIRE(p, "alloc 2^%u", k);
    REQUIRE((size_t)(p - arena) % ((size_t)1 << k) == 0, "2^%u at offset %zu", k,
            (size_t)(p - arena));
    REQUIRE(strata_buddy_size(b, p) == (size_t)1 << k, "size 2^%u", k);
  }
  REQUIRE(buddy_check(b), "check");
  /* Too big: no overflow, nothing changed. */
  size_t fb = strata_buddy_free_bytes(b);
  static const size_t big[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2 + 2, SIZE_MAX / 2 + 1,
                               SIZE_MAX / 2, ARENA_BYTES, ARENA_BYTES / 2 + 1};
  for (size_t j = 0; j < sizeof big / sizeof *big; j++)
    REQUIRE(strata_buddy_alloc(b, big[j]) == NULL, "alloc(%zu)", big[j]);
  void *p = strata_buddy_alloc(b, 64);
  fill(p, 64, 1);
  REQUIRE(strata_buddy_realloc(b, p, SIZE_MAX) == NULL, "realloc SIZE_MAX");
  REQUIRE(strata_buddy_size(b, p) == 64 && holds(p, 64, 1), "failed realloc kept p");
  REQUIRE(strata_buddy_free(b, p) == 0, "free");
  REQUIRE(strata_buddy_free_bytes(b) == fb && buddy_check(b), "nothing changed");
  REQUIRE(strata_buddy_alloc(NULL, 16) == NULL && strata_buddy_free_bytes(NULL) == 0 &&
              strata_buddy_size(NULL, p) == 0,
          "NULL handle");
  return 0;
}

static int case_bad_pointers(void) {
  const size_t size = 65536, mb = 64;
  strata_buddy *b = fresh(size, 100, mb);
  size_t fb = strata_buddy_free_bytes(b);
  unsigned char *p = strata_buddy_alloc(b, 256), *q = strata_buddy_alloc(b, 64);
  REQUIRE(p && q, "alloc");
  size_t fb2 = strata_buddy_free_bytes(b);
  int local;
  unsigned char *bad[] = {
      p + 1, p + 16, p + 64, p + 128, p + 255,   /* inside p */
      arena, arena + 64, (unsigned char *)b,     /* prefix and metadata */
      arena + size, arena + size + 64,           /* past the end */
      other, other + 16, (unsigned char *)&local /* foreign */
  };
  for (size_t j = 0; j < sizeof bad / sizeof *bad; j++) {
    REQUIRE(strata_buddy_free(b, bad[j]) == EINVAL, "free(bad[%zu])", j);
    REQUIRE(strata_buddy_size(b, bad[j]) == 0, "size(bad[%zu])", j);
    REQUIRE(buddy_order_of(b, bad[j]) == -1, "order_of(bad[%zu])", j);
    REQUIRE(strata_buddy_realloc(b, bad[j], 100) == NULL, "realloc(bad[%zu])", j);
  }
  /* The start of a free block. */
  unsigned char *f = strata_buddy_alloc(b, 64);
  REQUIRE(strata_buddy_free(b, f) == 0, "free");
  REQUIRE(strata_buddy_free(b, f) == EINVAL && strata_buddy_size(b, f) == 0, "free block");
  REQUIRE(strata_buddy_free_bytes(b) == fb2 && buddy_check(b), "refusals changed nothing");
  /* Double free. */
  REQUIRE(strata_buddy_free(b, q) == 0, "free q");
  REQUIRE(strata_buddy_free(b, q) == EINVAL, "double free of q");
  REQUIRE(strata_buddy_free(b, p) == 0, "free p");
  REQUIRE(strata_buddy_free(b, p) == EINVAL, "double free of p");
  REQUIRE(strata_buddy_free(b, NULL) == 0, "free(NULL)");
  REQUIRE(strata_buddy_free(NULL, p) == EINVAL, "free with a NULL handle");
  REQUIRE(strata_buddy_free_bytes(b) == fb && buddy_check(b), "all back");
  return 0;
}

static int case_grow_shrink_realloc(void) {
  const size_t mb = 64;
  strata_buddy *b = fresh(ARENA_BYTES, 0, mb);
  /* Take a 64 KiB block, shrink it to one minimum block: its right buddies at
   * every order are free, so it can grow back in place. */
  unsigned char *p = strata_buddy_alloc(b, 65536);
  REQUIRE(p, "alloc 64 KiB");
  fill(p, 65536, 7);
  buddy_shrink(b, p, 0);
  REQUIRE(strata_buddy_size(b, p) == mb && holds(p, mb, 7) && buddy_check(b), "shrink");
  buddy_shrink(b, p, 3); /* not smaller: no-op */
  REQUIRE(strata_buddy_size(b, p) == mb, "shrink to a larger order is a no-op");
  REQUIRE(buddy_grow_in_place(b, p, 0), "grow to the same order");
  REQUIRE(buddy_grow_in_place(b, p, 4) && strata_buddy_size(b, p) == 16 * mb, "grow to 4");
  REQUIRE(buddy_check(b), "check");
  REQUIRE(!buddy_grow_in_place(b, p, 3), "grow to a smaller order");
  REQUIRE(!buddy_grow_in_place(b, p, buddy_max_order(b) + 1), "grow past max order");
  REQUIRE(!buddy_grow_in_place(b, p + mb, 5), "grow of an interior pointer");
  /* realloc grows in place and keeps the pointer and the contents. */
  fill(p, 16 * mb, 9);
  REQUIRE(strata_buddy_realloc(b, p, 65536) == p, "realloc grows in place");
  REQUIRE(holds(p, 16 * mb, 9) && strata_buddy_size(b, p) == 65536, "contents kept");
  REQUIRE(strata_buddy_realloc(b, p, 65000) == p && strata_buddy_size(b, p) == 65536, "same order");
  REQUIRE(strata_buddy_realloc(b, p, 100) == p && strata_buddy_size(b, p) == 128, "realloc shrinks");
  REQUIRE(holds(p, 128, 9), "contents kept");
  /* Block the right buddy: growth fails and changes nothing; realloc moves. */
  buddy_shrink(b, p, 0);
  static void *taken[ARENA_BYTES / 64];
  size_t ntaken = 0;
  unsigned char *blocker;
  while ((blocker = strata_buddy_alloc(b, 1)) != NULL && blocker != p + 4 * mb)
    taken[ntaken++] = blocker;
  REQUIRE(blocker == p + 4 * mb, "blocker placed");
  while (ntaken > 0) REQUIRE(strata_buddy_free(b, taken[--ntaken]) == 0, "free");
  size_t fb = strata_buddy_free_bytes(b);
  REQUIRE(!buddy_grow_in_place(b, p, 3), "grow past an allocated block");
  REQUIRE(strata_buddy_free_bytes(b) == fb && strata_buddy_size(b, p) == mb && buddy_check(b),
          "failed grow changed nothing");
  REQUIRE(buddy_grow_in_place(b, p, 2) && strata_buddy_size(b, p) == 4 * mb, "grow up to it");
  fill(p, 4 * mb, 11);
  unsigned char *q = strata_buddy_realloc(b, p, 8 * mb);
  REQUIRE(q && q != p && holds(q, 4 * mb, 11) && strata_buddy_size(b, q) == 8 * mb, "moved");
  REQUIRE(strata_buddy_size(b, p) == 0, "old block freed");
  /* realloc(NULL, n) allocates, realloc(p, 0) frees. */
  unsigned char *r = strata_buddy_realloc(b, NULL, 300);
  REQUIRE(r && strata_buddy_size(b, r) == 512, "realloc(NULL, n)");
  REQUIRE(strata_buddy_realloc(b, r, 0) == NULL && strata_buddy_size(b, r) == 0, "realloc(p, 0)");
  REQUIRE(buddy_check(b), "check");
  return 0;
}

/* buddy_alloc_in takes any aligned block out of a chosen free block, and
 * the free-list walk sees every free block of an order, newest first. */
static int case_alloc_in(void) {
  const size_t mb = 64;
  strata_buddy *b = fresh(ARENA_BYTES, 0, mb);
  size_t initial = strata_buddy_free_bytes(b);
  unsigned char *big = strata_buddy_alloc(b, 64 * mb);     /* order 6 */
  REQUIRE(big && strata_buddy_free(b, big) == 0, "an order-6 block");
  /* After the merge, the first free block of order 6 or more holds big. */
  unsigned char *in = NULL;
  for (unsigned k = 6; k <= buddy_max_order(b) && !in; k++)
    for (unsigned char *f = buddy_first_free(b, k); f && !in; f = buddy_next_free(b, f))
      if (f <= big && big < f + (mb << k)) in = f;
  REQUIRE(in, "the free block holding big is listed");
  unsigned char *p = big + 40 * mb;                        /* order 3, 5th of 8 */
  REQUIRE(buddy_alloc_in(b, in, p, 3) == p && strata_buddy_size(b, p) == 8 * mb, "taken at p");
  REQUIRE(buddy_check(b) && strata_buddy_free_bytes(b) == initial - 8 * mb, "the rest is free");
  /* The rest of big is free in blocks of orders 5, 4 and 3 around p:
   * [0, 32), [48, 64) and [32, 40) minimum blocks of big. */
  REQUIRE(buddy_free_at(b, big) && buddy_free_at(b, big + 48 * mb) && buddy_free_at(b, big + 32 * mb),
          "the halves without p are free blocks");
  int seen = 0;
  for (unsigned char *f = buddy_first_free(b, 3); f; f = buddy_next_free(b, f)) seen += f == big + 32 * mb;
  for (unsigned char *f = buddy_first_free(b, 4); f; f = buddy_next_free(b, f)) seen += f == big + 48 * mb;
  for (unsigned char *f = buddy_first_free(b, 5); f; f = buddy_next_free(b, f)) seen += f == big;
  REQUIRE(seen == 3, "each on the list of its order (%d of 3)", seen);
  REQUIRE(buddy_first_free(b, 3) == big + 32 * mb, "newest first");
  /* A block of its own order, taken whole. */
  unsigned char *q = big + 32 * mb;
  REQUIRE(buddy_alloc_in(b, q, q, 3) == q && buddy_check(b), "a whole free block");
  REQUIRE(strata_buddy_free(b, p) == 0 && strata_buddy_free(b, q) == 0, "free");
  REQUIRE(buddy_check(b) && strata_buddy_free_bytes(b) == initial, "all back, merged");
  REQUIRE(buddy_first_free(b, buddy_max_order(b) + 1) == NULL, "no list past max order");
  return 0;
}

static int case_exhaustion(void) {
  const size_t size = 300007, prefix = 4000, mb = 32;
  strata_buddy *b = fresh(size, prefix, mb);
  size_t initial = strata_buddy_free_bytes(b), count = initial / mb, got = 0;
  static void *ptrs[ARENA_BYTES / 32];
  void *p;
  while ((p = strata_buddy_alloc(b, mb)) != NULL) ptrs[got++] = p;
  REQUIRE(got == count, "%zu blocks, want %zu", got, count);
  REQUIRE(strata_buddy_free_bytes(b) == 0 && buddy_check(b), "full");
  REQUIRE(!strata_buddy_alloc(b, 0) && !strata_buddy_alloc(b, 1) && !strata_buddy_alloc(b, 4096),
          "full region answers NULL");
  REQUIRE(!strata_buddy_realloc(b, ptrs[0], 2 * mb) && strata_buddy_size(b, ptrs[0]) == mb,
          "realloc in a full region");
  for (size_t j = got; j > 1; j--) { /* free in a random order */
    size_t k = (size_t)(rnd(&rng) % j);
    void *t = ptrs[k];
    ptrs[k] = ptrs[j - 1], ptrs[j - 1] = t;
  }
  for (size_t j = 0; j < got; j++) {
    REQUIRE(strata_buddy_free(b, ptrs[j]) == 0, "free");
    if (j % 512 == 0) REQUIRE(buddy_check(b), "check while freeing");
  }
  REQUIRE(strata_buddy_free_bytes(b) == initial && buddy_check(b), "all back");
  check_layout(b, arena, size, prefix, mb);
  return 0;
}

static int case_canaries(void) {
  const size_t size = 65536, prefix = 96, mb = 64;
  strata_buddy *b = fresh(size, prefix, mb);
  unsigned char *lo = (unsigned char *)b;
  unsigned char *hi = lo + buddy_meta_size(size, mb) - 8;
  REQUIRE(lo == arena + prefix, "header right after a 16-aligned prefix");
  REQUIRE(buddy_check_canaries(b), "intact");
  for (int j = 0; j < 8; j++) { /* every byte of both canaries counts */
    lo[j] ^= 0x40;
    REQUIRE(!buddy_check_canaries(b) && !buddy_check(b), "canary_lo byte %d", j);
    lo[j] ^= 0x40;
    hi[j] ^= 0x01;
    REQUIRE(!buddy_check_canaries(b) && !buddy_check(b), "canary_hi byte %d", j);
    hi[j] ^= 0x01;
    REQUIRE(buddy_check_canaries(b), "restored");
  }
  /* An overrun of the caller's prefix. */
  memset(arena, 0, prefix + 1);
  REQUIRE(!buddy_check_canaries(b), "prefix overrun");
  /* Initialising again repairs everything. */
  strata_buddy *b2 = fresh(size, prefix, mb);
  REQUIRE(b2 == b && buddy_check(b2), "re-init");
  REQUIRE(buddy_check(b), "fresh again");
  return 0;
}

static int case_random_min32(void) {
  random_test(0, 300007, 100, 32, 200000, 4000, 64, 13);
  return 0;
}
static int case_random_min4096(void) {
  random_test(4096, ARENA_BYTES - 4096 * 3 + 100, 4104, 4096, 30000, 30000, 1, 18);
  return 0;
}
static int case_random_min16(void) {
  random_test(16, ARENA_BYTES - 16, 0, 16, 20000, 2000, 256, 12);
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    /* sizes, prefixes, min blocks, invalid arguments */
    {"init", case_init, 120},
    /* sizes, alignment, SIZE_MAX */
    {"sizes-and-alignment", case_sizes_and_alignment, 60},
    /* double free, interior, foreign, prefix pointers */
    {"bad-pointers", case_bad_pointers, 60},
    /* grow in place, shrink, realloc */
    {"grow-shrink-realloc", case_grow_shrink_realloc, 60},
    /* allocation inside a chosen free block, free-list walk */
    {"alloc-in", case_alloc_in, 60},
    /* exhaustion and full recovery */
    {"exhaustion", case_exhaustion, 60},
    {"canaries", case_canaries, 60},
    /* random operations checked against a model of the region */
    {"random-min32", case_random_min32, 240},
    {"random-min4096", case_random_min4096, 240},
    {"random-min16", case_random_min16, 240},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
