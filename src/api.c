/* api.c - the malloc family: strata_* and, unless STRATA_NO_OVERRIDE, the
 * standard names as aliases (for LD_PRELOAD and -lstrata).
 *
 * Tiers by size: small (<= SMALL_MAX, thread heaps), large (buddy arenas, up
 * to the huge threshold), huge (direct mmap). A pointer's tier comes from the
 * segment map, so foreign pointers are detected before any header is read.
 */
#include "checked.h"
#include "decay.h"
#include "heap.h"
#include "huge.h"
#include "init.h"
#include "large.h"
#include "options.h"
#include "os.h"
#include "prof.h"
#include "segmap.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

/* ---- allocation, any size and alignment ---------------------------------- */
static bool collect(void);

/* A small block whose sample is due: a block of the large tier, which its
 * free looks up (prof.h); NULL sends it back to its class. */
static void *alloc_sampled(size_t size, size_t align, bool zero) {
  if (!prof_on) return NULL;
  void *p = prof_stash_take(size, align);
  if (p && zero) memset(p, 0, size);
  if (!p) p = large_alloc(size, align, zero);
  if (!p) return NULL;
  if (!zero && options.junk) checked_junk_new(p, size);
  prof_record(p, size);
  return p;
}

/* One try at the tier of the size (a large block falls back to a huge
 * mapping); NULL when out of memory. `fit`, once the caches have gone back
 * (see alloc_tiers), lets a small block take what needs no new memory, a
 * free block of a bigger class, then a mapping of its own: a small class
 * needs a span, and a new segment 72 KiB at least. */
static void *alloc_tier(size_t size, size_t align, bool zero, bool fit) {
  ASSERT(is_pow2(align) && align >= ALIGNMENT && lock_none_but_init());
  size_t room = options.canary ? CHECKED_CANARY_ROOM : 0;
  if (size + room <= SMALL_MAX && align <= PAGE_SIZE) {
    unsigned cls = align <= ALIGNMENT ? class_of(size + room) : class_of_aligned(size + room, align);
    if (cls < CLASS_COUNT) {
      bool fresh = false;
      void *p = heap_sample_pending(cls) ? NULL : heap_alloc_class(cls, zero ? &fresh : NULL);
      if (!p && heap_sample_pending(cls)) {
        heap_sample_take(cls);
        if (prof_keep(size, class_info[cls].size) && (p = alloc_sampled(size, align, zero))) return p;
        p = heap_alloc_class(cls, zero ? &fresh : NULL);
      }
      if (!p && fit) p = heap_alloc_at_hand(cls + 1, align, &cls, zero ? &fresh : NULL);
      if (!p) return fit ? huge_alloc(size, align, zero) : NULL;
      if (zero) {
        if (!fresh) memset(p, 0, size);
      } else if (options.junk) {
        checked_junk_new(p, class_info[cls].size);
      }
      if (room) checked_canary_set(p, size, class_info[cls].size);
      return p;
    }
  }
  bool sample = unlikely(prof_on) && prof_due_bytes(size);
  void *p = NULL;
  if (size <= options_huge_threshold() && align <= LARGE_MAX) {
    p = large_alloc(size, align, zero);
    if (p && !zero && options.junk) checked_junk_new(p, size);
  }
  if (!p) p = huge_alloc(size, align, zero);     /* with zero, fresh from the OS */
  if (p && sample) prof_record(p, size);
  return p;
}

/* Any size and alignment. Out of memory, what the caches keep (this
 * thread's blocks and spans, every heap's empty spans, free pages, spare
 * segments) goes back first, and the allocation is tried once more, with
 * the fallbacks: under an address-space limit that memory may be all there
 * is, and a block of its own class serves a later realloc as glibc's would.
 * Not for a request bigger than all Strata has mapped, which the caches
 * cannot help (a program probing for the largest block it may get). */
static void *alloc_tiers(size_t size, size_t align, bool zero) {
  init_ensure();
  void *p = NULL;
  if (likely(size <= PTRDIFF_MAX) && !(p = alloc_tier(size, align, zero, false)) &&
      size <= atomic_load_relaxed(&os_mapped)) {
    collect();
    p = alloc_tier(size, align, zero, true);
  }
  if (!p) errno = ENOMEM;
  return p;
}

static NOINLINE void *malloc_slow(size_t size) {
  void *p = alloc_tiers(size, ALIGNMENT, false);
  decay_poll(true);
  return p;
}

/* The thread's block cache of cls is empty: refill it (heap_alloc_class)
 * without the general path's checks of size and options. NULL before init,
 * in checked mode and when out of memory: the caller takes the general
 * path. */
static void *cache_refill(unsigned cls) {
  if (likely(init_ready() && !span_checked_mode)) {
    void *p = heap_alloc_class(cls, NULL);
    if (likely(p != NULL)) {
      decay_poll(true);
      return p;
    }
  }
  return NULL;
}

/* The class is looked up again, so the fast path keeps nothing live across
 * its pop. */
static NOINLINE void *malloc_refill(size_t size) {
  void *p = cache_refill(class_of(size));
  return p ? p : malloc_slow(size);
}

/* Fast path: one table lookup (a clz above 1 KiB), one pop from the
 * thread's block cache. */
API void *strata_malloc(size_t size) {
  unsigned cls;
  if (likely(size <= CLASS_FAST_MAX)) cls = class_of_small[size];
  else if (size <= SMALL_MAX) cls = class_of(size);
  else return malloc_slow(size);
  void *p = heap_malloc_small(heap_tls, cls, NULL);
  if (likely(p != NULL)) return p;
  return malloc_refill(size);
}

/* ---- free ------------------------------------------------------------------ */
/* A large block in a run of a small segment (see large.h). */
static COLD void free_large_run(void *p, const char *call) {
  if (prof_on) prof_forget(p, NULL);
  if (options.junk) checked_junk_freed(p, large_run_usable(p, call));
  large_run_free(p, call);
}

/* A small block that is not the owner's fast path: mostly another thread's
 * (a remote free), straight from free without a second segment lookup. */
static NOINLINE void free_small(void *p, const char *call) {
  if (span_checked_mode && span_of(p)->kind == SPAN_SMALL) checked_free_small(heap_span_checked(p, call), p, call);
  if (unlikely(!heap_free_small_slow(p, call))) free_large_run(p, call);
  decay_poll(false);
}

/* Large and huge blocks, and pointers that are not ours (strata_free takes
 * the small ones itself, with the kind it looked up). */
static NOINLINE void free_slow(void *p, seg_kind_t kind, const char *call) {
  ASSERT(kind != SEG_SMALL);
  size_t sampled = prof_on && kind != SEG_NONE ? prof_forget(p, NULL) : 0;
  if (kind == SEG_ARENA) {
    /* A sampled small block stays for the thread's next sample (prof.h),
     * but in checked mode and in a thread whose heap is gone. */
    if (sampled && sampled <= SMALL_MAX && !options.junk && !options.guard &&
        heap_tls != &heap_empty && prof_stash_put(p, large_usable(p, call))) {
      decay_poll(false);
      return;
    }
    if (options.junk) checked_junk_freed(p, large_usable(p, call));
    large_free(p, call);
  } else if (kind == SEG_HUGE) {
    /* glibc's dynamic mmap threshold: a freed huge block that the large
     * tier can hold raises the threshold to its size (unless huge= or
     * mallopt fixed it), so a program that cycles blocks of that size
     * reuses the arenas' pages, decayed like any free memory, instead of
     * mapping, faulting in and unmapping each one. */
    size_t usable = huge_free(p, call);
    if (usable <= LARGE_MAX) options_huge_threshold_raise(usable);
  } else {
    if (p == NULL) return;
    fatal(call, p, "pointer not allocated by strata");
  }
  decay_poll(false);
}

/* Fast path: the block is small and this thread owns its span. */
API void strata_free(void *p) {
  seg_kind_t kind = segmap_kind(p);
  if (likely(kind == SEG_SMALL)) {
    if (likely(heap_free_small(p))) return;
    free_small(p, CALL_FREE);
    return;
  }
  free_slow(p, kind, CALL_FREE);
}

API void strata_free_sized(void *p, size_t size) { (void)size; strata_free(p); }
#ifndef STRATA_NO_OVERRIDE                      /* targets of the C++ deletes */
static void strata_free_nothrow(void *p, const void *nt) { (void)nt; strata_free(p); }
static void strata_free_aligned_nothrow(void *p, size_t align, const void *nt) {
  (void)align; (void)nt;
  strata_free(p);
}
#endif
API void strata_free_aligned_sized(void *p, size_t align, size_t size) {
  (void)align; (void)size;
  strata_free(p);
}

/* ---- sizes ------------------------------------------------------------------ */
static size_t usable_size(const void *p, const char *call) {
  switch (segmap_kind(p)) {
  case SEG_SMALL: {
    if (span_of(p)->kind == SPAN_LARGE) return large_run_usable(p, call);
    size_t block = heap_span_checked(p, call)->block_size;
    return options.canary && !block_looks_free(p, span_free_key) ? checked_canary_check(p, block, call) : block;
  }
  case SEG_ARENA: return large_usable(p, call);
  case SEG_HUGE:  return huge_usable(p, call);
  case SEG_NONE:  break;
  }
  if (p == NULL) return 0;
  fatal(call, p, "pointer not allocated by strata");
}

API size_t strata_malloc_usable_size(const void *p) { return usable_size(p, CALL_USABLE); }

/* A segment map entry covers a whole 4 MiB segment; a short small segment
 * or the last segment of a huge mapping maps only part of it. */
API int strata_owns(const void *p) {
  switch (segmap_kind(p)) {
  case SEG_SMALL: return pageheap_mapped(p);
  case SEG_ARENA: return 1;
  case SEG_HUGE:  return huge_owns(p);
  case SEG_NONE:  break;
  }
  return 0;
}

/* ---- calloc, realloc ---------------------------------------------------------- */
/* Fast path: malloc's pop (empty caches before init and in checked mode
 * send it to the general path), then clear the block, unless it comes fresh
 * from zeroed pages (the pop cleared its two words). */
API void *strata_calloc(size_t n, size_t size) {
  size_t total;
  if (unlikely(__builtin_mul_overflow(n, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  if (likely(total <= CLASS_FAST_MAX)) {
    bool fresh;
    void *p = heap_malloc_small(heap_tls, class_of(total), &fresh);
    /* Hide the bound on total: GCC would otherwise inline the memset as
     * `rep stos`, which is slower than the C library's for small blocks. */
    __asm__("" : "+r"(total));
    if (likely(p != NULL)) return fresh ? p : memset(p, 0, total);
  }
  return alloc_tiers(total, ALIGNMENT, true);
}

/* Move to a new block: contents up to the smaller size survive; on failure
 * the old block is untouched. */
static void *realloc_move(void *p, size_t old, size_t size) {
  void *q = strata_malloc(size);
  if (!q) return NULL;
  memcpy(q, p, old < size ? old : size);
  strata_free(p);
  return q;
}

API void *strata_realloc(void *p, size_t size) {
  if (p == NULL) return strata_malloc(size);
  if (size == 0) { strata_free(p); return NULL; }
  if (unlikely(size > PTRDIFF_MAX)) { errno = ENOMEM; return NULL; }
  size_t old = usable_size(p, CALL_REALLOC);
  switch (segmap_kind(p)) {
  case SEG_SMALL: {     /* same class, or shrinking by less than half: stay */
    span_t *s = span_of(p);
    if (atomic_load_relaxed(&s->owner) == heap_tls) heap_check_owned_not_free(heap_tls, s, p, CALL_REALLOC);
    if (options.canary) break;      /* the canary moves with the size: move */
    if (size <= old && (size > old / 2 || size <= ALIGNMENT)) return p;
    break;
  }
  case SEG_ARENA:
    if (size > SMALL_MAX && size <= options_huge_threshold() && large_resize(p, size)) return p;
    break;
  case SEG_HUGE:
    if (size > options_huge_threshold()) {
      void *q = huge_realloc(p, size);
      if (q && prof_on && q != p) prof_forget(p, q);
      if (q) return q;
    }
    break;
  default: break;
  }
  return realloc_move(p, old, size);
}

API void *strata_reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (unlikely(__builtin_mul_overflow(n, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  return strata_realloc(p, total);
}

/* ---- aligned ------------------------------------------------------------------ */
/* A small block aligned to align (a power of two): a pop from the thread's
 * block cache of the first class whose block size is a multiple of align
 * (blocks of such a class are aligned: spans start on a page), or a refill
 * of that cache. NULL sends the request to the general path (always in
 * checked mode, where the caches stay empty). */
static void *aligned_small(size_t align, size_t size) {
  if (size > SMALL_MAX || align > PAGE_SIZE) return NULL;
  unsigned cls = class_of(size);
  /* Most requests (64 bytes at 64, a page at a page) fit their own class. */
  if (class_info[cls].size & (align - 1)) cls = class_of_aligned(size, align);
  if (cls >= CLASS_COUNT) return NULL;
  void *p = heap_malloc_small(heap_tls, cls, NULL);
  return p ? p : cache_refill(cls);
}

/* Any size and power-of-two alignment, through the general path. */
static void *aligned_tiers(size_t align, size_t size) {
  if (align < ALIGNMENT) align = ALIGNMENT;
  if (unlikely(size > PTRDIFF_MAX - align)) { errno = ENOMEM; return NULL; }
  return alloc_tiers(size, align, false);
}

static void *aligned(size_t align, size_t size) {
  void *p = aligned_small(align, size);
  return p ? p : aligned_tiers(align, size);
}

API int strata_posix_memalign(void **out, size_t align, size_t size) {
  if (!is_pow2(align) || align % sizeof(void *)) return EINVAL;
  void *p = aligned_small(align, size);
  if (!p) {         /* as glibc: errno is ENOMEM on failure, else left alone */
    int saved = errno;
    p = aligned_tiers(align, size);
    if (!p) return ENOMEM;
    errno = saved;
  }
  *out = p;
  return 0;
}

/* Like glibc 2.38+: an alignment that is not a power of two is EINVAL. */
API void *strata_aligned_alloc(size_t align, size_t size) {
  if (!is_pow2(align)) { errno = EINVAL; return NULL; }
  return aligned(align, size);
}

/* glibc memalign rounds a non-power-of-two alignment up. */
API void *strata_memalign(size_t align, size_t size) {
  if (align > (SIZE_MAX >> 1) + 1) { errno = EINVAL; return NULL; }
  if (!is_pow2(align)) align = (size_t)1 << log2_ceil(align);
  return aligned(align, size);
}

API void *strata_valloc(size_t size) { return aligned(OS_PAGE, size); }

API void *strata_pvalloc(size_t size) {
  if (size > PTRDIFF_MAX - OS_PAGE) { errno = ENOMEM; return NULL; }
  return aligned(OS_PAGE, align_up(size ? size : 1, OS_PAGE));
}

/* ---- returning memory -------------------------------------------------------- */
/* Everything free goes back at once, tier after tier; true when something
 * went back to the OS. */
static bool collect(void) {
  if (!init_ready()) return false;
  bool returned = false;
  for (unsigned i = 0; i < init_tier_count; i++)
    if (init_tiers[i]->trim) returned |= init_tiers[i]->trim();
  tiers_check(init_tiers, init_tier_count);
  return returned;
}

API void strata_collect(void) { collect(); }

API int strata_malloc_trim(size_t pad) {
  (void)pad;
  return collect();
}

API const char *strata_version(void) { return STRATA_VERSION; }

/* ---- the standard names --------------------------------------------------------- */
#ifndef STRATA_NO_OVERRIDE
#pragma GCC diagnostic ignored "-Wmissing-attributes"   /* aliases need not repeat malloc attributes */
#define ALIAS(name) __attribute__((alias(#name), visibility("default")))
void *malloc(size_t) ALIAS(strata_malloc);
void free(void *) ALIAS(strata_free);
void *calloc(size_t, size_t) ALIAS(strata_calloc);
void *realloc(void *, size_t) ALIAS(strata_realloc);
void *reallocarray(void *, size_t, size_t) ALIAS(strata_reallocarray);
int posix_memalign(void **, size_t, size_t) ALIAS(strata_posix_memalign);
void *aligned_alloc(size_t, size_t) ALIAS(strata_aligned_alloc);
void *memalign(size_t, size_t) ALIAS(strata_memalign);
void *valloc(size_t) ALIAS(strata_valloc);
void *pvalloc(size_t) ALIAS(strata_pvalloc);
size_t malloc_usable_size(void *) ALIAS(strata_malloc_usable_size);
void free_sized(void *, size_t) ALIAS(strata_free_sized);
void free_aligned_sized(void *, size_t, size_t) ALIAS(strata_free_aligned_sized);
int malloc_trim(size_t) ALIAS(strata_malloc_trim);
/* glibc's internal names, so no pointer crosses between two allocators. */
void *__libc_malloc(size_t) ALIAS(strata_malloc);
void __libc_free(void *) ALIAS(strata_free);
void *__libc_calloc(size_t, size_t) ALIAS(strata_calloc);
void *__libc_realloc(void *, size_t) ALIAS(strata_realloc);
void *__libc_memalign(size_t, size_t) ALIAS(strata_memalign);
void *__libc_valloc(size_t) ALIAS(strata_valloc);
void *__libc_pvalloc(size_t) ALIAS(strata_pvalloc);
void cfree(void *) ALIAS(strata_free);

/* ---- C++ operators new and delete ----------------------------------------------
 * Defined here under their mangled names, so that new and delete skip
 * libstdc++'s extra call into malloc and free. Only success is served here. When Strata has no memory the
 * call goes on to the next definition of the same operator (libstdc++'s,
 * found with dlsym(RTLD_NEXT)), which calls malloc again, runs the
 * new-handler and throws std::bad_alloc, or returns NULL for the nothrow
 * forms, as C++ requires (this C frame unwinds by its unwind tables). Without
 * a C++ runtime after us (a static link), the throwing forms end in fatal().
 * align_val_t is passed as a size_t, nothrow_t by reference. */
static void *cxx_next(const char *mangled) { return dlsym(RTLD_NEXT, mangled); }

static void *cxx_new(size_t size, size_t align) {
  return align <= ALIGNMENT ? strata_malloc(size) : strata_aligned_alloc(align, size);
}
static NOINLINE void *cxx_new_failed(const char *mangled, size_t size, size_t align, bool nothrow) {
  void *f = cxx_next(mangled);
  if (f) {
    if (align == 0) return nothrow ? ((void *(*)(size_t, const void *))f)(size, NULL)
                                   : ((void *(*)(size_t))f)(size);
    return nothrow ? ((void *(*)(size_t, size_t, const void *))f)(size, align, NULL)
                   : ((void *(*)(size_t, size_t))f)(size, align);
  }
  if (nothrow) return NULL;
  fatal("operator new", NULL, "out of memory (no C++ runtime to throw std::bad_alloc)");
}

#define CXX_NEW(mangled, params, align, nothrow)                        \
  API void *mangled params {                                             \
    void *p = cxx_new(size, align);                                      \
    return likely(p != NULL) ? p : cxx_new_failed(#mangled, size, align, nothrow); \
  }
CXX_NEW(_Znwm, (size_t size), 0, false)
CXX_NEW(_Znam, (size_t size), 0, false)
#define NT const void *nt __attribute__((unused))
CXX_NEW(_ZnwmRKSt9nothrow_t, (size_t size, NT), 0, true)
CXX_NEW(_ZnamRKSt9nothrow_t, (size_t size, NT), 0, true)
CXX_NEW(_ZnwmSt11align_val_t, (size_t size, size_t align), align, false)
CXX_NEW(_ZnamSt11align_val_t, (size_t size, size_t align), align, false)
CXX_NEW(_ZnwmSt11align_val_tRKSt9nothrow_t, (size_t size, size_t align, NT), align, true)
CXX_NEW(_ZnamSt11align_val_tRKSt9nothrow_t, (size_t size, size_t align, NT), align, true)
#undef NT
#undef CXX_NEW

/* Every delete is free: the size and alignment are not needed to find a block. */
void _ZdlPv(void *) ALIAS(strata_free);
void _ZdaPv(void *) ALIAS(strata_free);
void _ZdlPvm(void *, size_t) ALIAS(strata_free_sized);
void _ZdaPvm(void *, size_t) ALIAS(strata_free_sized);
void _ZdlPvRKSt9nothrow_t(void *, const void *) ALIAS(strata_free_nothrow);
void _ZdaPvRKSt9nothrow_t(void *, const void *) ALIAS(strata_free_nothrow);
void _ZdlPvSt11align_val_t(void *, size_t) ALIAS(strata_free_sized);
void _ZdaPvSt11align_val_t(void *, size_t) ALIAS(strata_free_sized);
void _ZdlPvmSt11align_val_t(void *, size_t, size_t) ALIAS(strata_free_aligned_sized);
void _ZdaPvmSt11align_val_t(void *, size_t, size_t) ALIAS(strata_free_aligned_sized);
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *, size_t, const void *) ALIAS(strata_free_aligned_nothrow);
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *, size_t, const void *) ALIAS(strata_free_aligned_nothrow);
#endif
