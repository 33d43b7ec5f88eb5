/* span.c - blocks inside one span: carving, local and remote free lists. */
#include "span.h"
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

void span_init_small(span_t *s, unsigned cls, struct heap *owner) {
  s->local_free = NULL;
  s->used = 0;
  s->carved = 0;
  s->cls = (uint8_t)cls;
  s->block_size = class_info[cls].size;
  s->count = class_info[cls].count;
  /* floor(2^64 / d) + 1: one more where d divides 2^64 (a power of two) */
  s->div_magic = UINT64_MAX / s->block_size + 1 + (UINT64_MAX % s->block_size == s->block_size - 1);
  s->fast_limit = span_checked_mode ? 0 : span_block_limit(s);
  atomic_store_relaxed(&s->xfree, 0);
  s->abandoned = false;
  s->next = s->prev = s->qnext = NULL;
  atomic_store_release(&s->owner, owner);
}

/* Cut one OS page worth of never-used blocks, but at least 8 (writing a link
 * touches one page per big block), so a span of a rarely used class stays
 * mostly untouched, hence not resident, while a big class still refills its
 * bin only once per 8 allocations. */
static block_t *span_carve(span_t *s, uint32_t *n) {
  uint32_t left = s->count - s->carved;
  uint32_t batch = (uint32_t)(OS_PAGE / s->block_size);
  if (batch < 8) batch = 8;
  if (span_checked_mode) batch = 1;
  if (batch > left) batch = left;
  char *first = s->start + (size_t)s->carved * s->block_size;
  /* Pages the OS zeroed (MADV_FREE'd ones may keep bytes) give fresh blocks. */
  uintptr_t key = s->dirty || os_lazy_purge ? span_free_key : span_free_key ^ KEY_FRESH;
  for (uint32_t i = 0; i < batch; i++) {
    block_t *b = (block_t *)(first + (size_t)i * s->block_size);
    block_set_next(b, i + 1 < batch ? (block_t *)((char *)b + s->block_size) : NULL);
    b->key = key;
  }
  s->carved += (uint16_t)batch;
  *n = batch;
  return batch ? (block_t *)first : NULL;
}

void span_check_not_on(const block_t *list, uint32_t max, const block_t *b, const char *call) {
  uint32_t n = 0;
  for (const block_t *f = list; f; f = block_next(f), n++) {
    if (f == b) fatal(call, b, "double free");
    CHECK(n < max, call, b, "double free (cycle in a free list)");
  }
}


uint32_t span_drain_remote(span_t *s, const block_t *cached, uint32_t cached_max) {
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
    *n = s->carved - s->used;
    s->used = s->carved;          /* every carved block is now out */
    return list;
  }
  list = span_carve(s, n);
  s->used += *n;
  return list;
}

bool span_push_remote(span_t *s, block_t *b) {
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
