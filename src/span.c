/* span.c - blocks inside one span: carving, local and remote free lists. */
#include "span.h"
#include "options.h"
#include "os.h"
#include "sizeclass.h"

uintptr_t span_secret;
uintptr_t span_free_key;
bool span_checked_mode;

void span_init_secrets(uint64_t seed) {
  span_secret = (uintptr_t)seed;
  uint64_t k = seed * 0xBF58476D1CE4E5B9ull;
  span_free_key = (uintptr_t)((k >> 31 | k << 33) | 4);   /* never 0 in any form */
}

/* fast_limit with no block purged: 0 in checked mode, which fails the fast
 * path's test. */
static uint64_t span_fast_limit(const span_t *s) { return span_checked_mode ? 0 : span_block_limit(s); }

void span_init_small(span_t *s, unsigned cls, struct heap *owner) {
  ASSERT(s->kind == SPAN_SMALL && cls < CLASS_COUNT && s->npages == class_info[cls].pages);
  s->local_free = NULL;
  s->used = 0;
  s->carved = 0;
  s->cls = (uint8_t)cls;
  s->block_size = class_info[cls].size;
  s->count = class_info[cls].count;
  /* floor(2^64 / d) + 1: one more where d divides 2^64 (a power of two) */
  s->div_magic = UINT64_MAX / s->block_size + 1 + (UINT64_MAX % s->block_size == s->block_size - 1);
  s->fast_limit = span_fast_limit(s);
  s->purged = 0;
  s->sparse_ms = 0;
  atomic_store_relaxed(&s->xfree, 0);
  s->abandoned = false;
  s->link.next = s->link.prev = s->qnext = NULL;
  atomic_store_release(&s->owner, owner);
}

/* Cut one OS page worth of never-used blocks, or as many as the span has
 * carved so far, up to 8: writing a block's link makes its page resident,
 * so a span of a rarely used class stays mostly untouched, a program that
 * takes one block of a big class (stdio's buffer) gets one page, not
 * eight, and a big class that is used in earnest doubles its carving to 8
 * blocks a refill within four refills, keeping at most about twice what
 * it took resident. */
static block_t *span_carve(span_t *s, uint32_t *n) {
  ASSERT(s->carved <= s->count && s->local_free == NULL);
  uint32_t left = s->count - s->carved;
  uint32_t batch = (uint32_t)(OS_PAGE / s->block_size), grown = s->carved < 8 ? s->carved : 8;
  if (batch < grown) batch = grown;
  if (batch < 1 || span_checked_mode) batch = 1;
  if (batch > left) batch = left;
  char *first = s->start + (size_t)s->carved * s->block_size;
  /* Pages the OS zeroed (MADV_FREE'd ones may keep bytes) give fresh blocks. */
  uintptr_t key = s->dirty || options.purge_free ? span_free_key : span_free_key ^ KEY_FRESH;
  for (uint32_t i = 0; i < batch; i++) {
    block_t *b = (block_t *)(first + (size_t)i * s->block_size);
    block_set_next(b, i + 1 < batch ? (block_t *)((char *)b + s->block_size) : NULL);
    b->key = key;
  }
  s->carved += (uint16_t)batch;
  *n = batch;
  return batch ? (block_t *)first : NULL;
}

/* The purged blocks, linked in address order; none is purged after. Not
 * fresh: a block may also lie on a page that was not purged. */
static block_t *span_unpurge(span_t *s, uint32_t *n) {
  ASSERT(s->purged && s->local_free == NULL);
  block_t *first = NULL;
  *n = 0;
  for (uint64_t m = s->purged; m; (*n)++) {
    unsigned i = 63 - (unsigned)__builtin_clzll(m);
    m &= ~((uint64_t)1 << i);
    block_t *b = (block_t *)(s->start + (size_t)i * s->block_size);
    block_set_next(b, first);
    first = b;
  }
  s->purged = 0;
  s->fast_limit = span_fast_limit(s);
  return first;
}

/* The blocks of s that overlap the OS page at byte offset off. */
static uint64_t span_page_blocks(const span_t *s, size_t off) {
  size_t last = off + OS_PAGE - 1, end = (size_t)s->count * s->block_size;
  unsigned i0 = (unsigned)(off / s->block_size);
  unsigned i1 = (unsigned)((last < end ? last : end - 1) / s->block_size);
  uint64_t upto = i1 == 63 ? ~(uint64_t)0 : ((uint64_t)1 << (i1 + 1)) - 1;
  return upto & ~(((uint64_t)1 << i0) - 1);
}

/* May the page at off go? Every block on it is free, and one was on
 * local_free (a page of purged or never-written blocks only is not
 * resident, or was purged already). */
static bool span_page_purgeable(const span_t *s, size_t off, uint64_t free, uint64_t listed) {
  uint64_t m = span_page_blocks(s, off);
  return (free & m) == m && (listed & m);
}

uint32_t span_purge_free_pages(span_t *s) {
  ASSERT(s->count <= SPAN_PURGE_MAX_BLOCKS && !span_checked_mode);
  /* Each block is checked before its link is followed (the walk is the
   * first look at local_free since the blocks were freed), as malloc checks
   * the blocks it pops. */
  uint64_t listed = 0;
  uint32_t n = 0;
  for (block_t *b = s->local_free; b; b = block_next(b)) {
    CHECK(n++ < s->count && (uintptr_t)b - (uintptr_t)s->start < (size_t)s->npages * PAGE_SIZE &&
          span_is_block_start(s, b) && block_looks_free(b, span_free_key) && !(listed & span_block_bit(s, b)),
          "purge", b, "free block overwritten (use after free, or corrupted free list)");
    listed |= span_block_bit(s, b);
  }
  uint64_t all = s->count == 64 ? ~(uint64_t)0 : ((uint64_t)1 << s->count) - 1;
  uint64_t uncarved = s->carved == 64 ? 0 : all & ~(((uint64_t)1 << s->carved) - 1);
  uint64_t free = listed | s->purged | uncarved, gone = 0;
  size_t end = (size_t)s->count * s->block_size;
  for (size_t off = 0; off < end; off += OS_PAGE)
    if (span_page_purgeable(s, off, free, listed)) gone |= span_page_blocks(s, off) & listed;
  if (!gone) return 0;
  /* local_free without the blocks that go, relinked before their pages go */
  block_t *kept = NULL, *tail = NULL;
  for (block_t *b = s->local_free, *next; b; b = next) {
    next = block_next(b);
    if (gone & span_block_bit(s, b)) continue;
    if (tail) block_set_next(tail, b);
    else kept = b;
    tail = b;
  }
  if (tail) block_set_next(tail, NULL);
  s->local_free = kept;
  uint32_t pages = 0;
  for (size_t off = 0, to; off < end; off = to + OS_PAGE) {   /* runs of pages */
    for (to = off; to < end && span_page_purgeable(s, to, free, listed); to += OS_PAGE) {}
    if (to == off) continue;
    os_purge_decayed(s->start + off, to - off, options.purge_free);
    pages += (uint32_t)((to - off) / OS_PAGE);
  }
  s->purged |= gone;
  s->fast_limit = 0;                /* frees take the slow path's check */
  return pages;
}

void span_check_not_on(const block_t *list, uint32_t max, const block_t *b, const char *call) {
  uint32_t n = 0;
  for (const block_t *f = list; f; f = block_next(f), n++) {
    if (f == b) fatal(call, b, "double free");
    CHECK(n < max, call, b, "double free (cycle in a free list)");
  }
}


uint32_t span_drain_remote(span_t *s, const block_t *cached, uint32_t cached_max) {
  ASSERT(s->kind == SPAN_SMALL);
  uintptr_t x = atomic_load_relaxed(&s->xfree);
  if (!xf_list(x)) return 0;                         /* no locked CAS */
  /* Take the list, keep QUEUED (the span may be on its way to the ready
   * list), clear FULL (a span the owner drains is not parked). */
  while (!atomic_compare_exchange_weak_explicit(&s->xfree, &x, x & XF_QUEUED,
                                                memory_order_acquire, memory_order_relaxed)) {}
  block_t *list = xf_list(x);
  uint32_t n = 0;
  while (list) {
    block_t *next = block_next(list);
    CHECK(n < s->count && (next == NULL || (uintptr_t)next - (uintptr_t)s->start <
          (size_t)s->npages * PAGE_SIZE), "free", list, "double free or corrupted remote free list");
    CHECK(!(s->purged && span_block_purged(s, list)), "free", list, "double free");
    CHECK(block_looks_free(list, span_free_key), "free", list,
          "block freed by another thread was overwritten (use after free)");
    if (unlikely(list->key == (span_free_key ^ KEY_SUSPECT))) {
      span_check_not_on(s->local_free, s->count, list, "free");
      span_check_not_on(cached, cached_max, list, "free");
    }
    block_set_next(list, s->local_free);
    s->local_free = list;
    list = next;
    n++;
  }
  ASSERT(n <= s->used);
  s->used -= n;
  return n;
}

block_t *span_take_free(span_t *s, uint32_t *n) {
  ASSERT(s->kind == SPAN_SMALL && s->used <= s->carved);
  span_drain_remote(s, NULL, 0);
  block_t *list = s->local_free;
  *n = 1;
  if (list && span_checked_mode) {
    s->local_free = block_next(list);
    block_set_next(list, NULL);
    s->used++;
    return list;
  }
  if (list) {
    s->local_free = NULL;
    *n = s->carved - s->used - (uint32_t)__builtin_popcountll(s->purged);
  } else {
    list = s->purged ? span_unpurge(s, n) : span_carve(s, n);
  }
  ASSERT(s->used <= s->carved && s->carved <= s->count);
  s->used += *n;
  return list;
}

bool span_push_remote(span_t *s, block_t *b) {
  ASSERT(s->kind == SPAN_SMALL && span_is_block_start(s, b));
  /* A block that already carries the free key may be a double free (or a
   * copy of a free block's bytes); only the owner can walk its lists, so the
   * block is marked for a check when the owner drains it. */
  bool suspect = block_looks_free(b, span_free_key);
  /* The CAS is acq_rel: a free that sets QUEUED then writes s->qnext,
   * which the owner read before it cleared QUEUED. */
  uintptr_t x = atomic_load_relaxed(&s->xfree), nx;
  do {
    CHECK(xf_list(x) != b, "free", b, "double free");
    block_set_next(b, xf_list(x));
    if (unlikely(suspect)) b->key = span_free_key ^ KEY_SUSPECT;
    nx = (uintptr_t)b | (x & XF_TAGS);
    if (!(x & ~(uintptr_t)XF_FULL)) nx |= XF_QUEUED;   /* first since drained */
  } while (!atomic_compare_exchange_weak_explicit(&s->xfree, &x, nx,
                                                  memory_order_acq_rel, memory_order_relaxed));
  return ((x ^ nx) & XF_QUEUED) != 0;
}

bool span_valid(const span_t *s) {
  if (s->kind != SPAN_SMALL || s->cls >= CLASS_COUNT || s->block_size != class_info[s->cls].size ||
      s->count != class_info[s->cls].count || s->carved > s->count || s->used > s->carved)
    return false;
  uint32_t listed = 0;
  for (const block_t *b = s->local_free; b; b = block_next(b)) {
    if (++listed > s->count || (uintptr_t)b - (uintptr_t)s->start >= (size_t)s->npages * PAGE_SIZE ||
        !span_is_block_start(s, b) || !block_looks_free(b, span_free_key) ||
        (s->purged && span_block_purged(s, b)))
      return false;
  }
  uint32_t purged = (uint32_t)__builtin_popcountll(s->purged);
  if (s->carved != s->used + listed + purged) return false;
  return s->fast_limit == (s->purged ? 0 : span_fast_limit(s));
}
