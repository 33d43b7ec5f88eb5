/* os.c - mmap/munmap/madvise/mremap/mprotect/mincore, the program break,
 * randomness, time, the process's id and name, writes and the fatal-error
 * path: every system call of
 * the allocator but the purge thread's own set-up (decay.c). */
#include "os.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

_Atomic long os_fail_after = -1;

static bool os_injected_failure(void) {
  long n = atomic_load_relaxed(&os_fail_after);
  if (likely(n < 0)) return false;
  while (n > 0 && !atomic_compare_exchange_weak(&os_fail_after, &n, n - 1)) {}
  return n == 0;
}

/* A mapping of size bytes at (a + shift) % align == 0 by over-allocating
 * align more and trimming both ends: one mmap, whatever the kernel's
 * layout, but align bytes of address space for a moment. */
static void *os_map_trimmed(size_t size, size_t align, size_t shift) {
  size_t total = size + align - OS_PAGE;
  if (total < size) return NULL;
  char *raw = mmap(NULL, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  uintptr_t want = align_up((uintptr_t)raw + shift, align) - shift;
  size_t head = want - (uintptr_t)raw;
  size_t tail = total - head - size;
  if (head) munmap(raw, head);
  if (tail) munmap((char *)want + size, tail);
  return (void *)want;
}

/* A mapping of exactly size bytes at p, or NULL when that range is not
 * free (MAP_FIXED_NOREPLACE; a kernel that ignores the flag may place it
 * elsewhere, which is undone), *taken telling that from a lack of memory. */
static void *os_map_at(void *p, size_t size, bool *taken) {
  void *r = mmap(p, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  *taken = r != MAP_FAILED || errno == EEXIST;
  if (r == MAP_FAILED) return NULL;
  if (r != p) { munmap(r, size); return NULL; }
  return r;
}

/* The same without the slack, for a tight address-space limit: a mapping
 * of size bytes where the kernel puts it, if aligned, else at an aligned
 * address above it or below it (the kernel fills the address space from
 * the top down, so the range below the lowest mapping is free: the probe
 * may have found a hole between mappings instead). */
#define OS_EXACT_TRIES 64
static void *os_map_exact(size_t size, size_t align, size_t shift) {
  char *probe = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (probe == MAP_FAILED) return NULL;
  uintptr_t down = (((uintptr_t)probe + shift) & ~(uintptr_t)(align - 1)) - shift;
  if (down == (uintptr_t)probe) return probe;
  munmap(probe, size);
  bool taken = true;
  void *r = down + align < ((uintptr_t)1 << ADDR_BITS) ? os_map_at((void *)(down + align), size, &taken) : NULL;
  for (unsigned k = 0; !r && taken && k < OS_EXACT_TRIES && down > (uintptr_t)k * align; k++)
    r = os_map_at((void *)(down - (uintptr_t)k * align), size, &taken);
  return r;
}

/* errno is kept intact across every call here: free must preserve it. */
void *os_map_aligned(size_t size, size_t align, size_t shift) {
  ASSERT(is_pow2(align) && align >= OS_PAGE && size % OS_PAGE == 0 && shift < align + SEG_SIZE);
  if (os_injected_failure()) return NULL;
  int saved = errno;
  char *p = os_map_trimmed(size, align, shift);
  if (!p) p = os_map_exact(size, align, shift);
  if (p && (uintptr_t)p + size > ((uintptr_t)1 << ADDR_BITS)) {   /* beyond the segment map */
    munmap(p, size);
    p = NULL;
  }
  if (p) atomic_add_relaxed(&os_mapped, size);
  errno = saved;
  return p;
}

bool os_map_fixed(void *p, size_t size, bool *taken) {
  ASSERT((uintptr_t)p % OS_PAGE == 0 && size % OS_PAGE == 0 && size > 0);
  *taken = (uintptr_t)p + size > ((uintptr_t)1 << ADDR_BITS);
  if (*taken || os_injected_failure()) return false;
  int saved = errno;
  bool ok = os_map_at(p, size, taken) != NULL;
  if (ok) atomic_add_relaxed(&os_mapped, size);
  errno = saved;
  return ok;
}

_Atomic size_t os_returned;
_Atomic size_t os_mapped;

bool os_unmap(void *p, size_t size) {
  ASSERT((uintptr_t)p % OS_PAGE == 0 && size > 0);
  int saved = errno;
  bool ok = munmap(p, size) == 0;
  errno = saved;
  if (ok) {
    atomic_add_relaxed(&os_returned, size);
    atomic_sub_relaxed(&os_mapped, size);
  }
  return ok;
}

bool os_purge(void *p, size_t size) {
  ASSERT((uintptr_t)p % OS_PAGE == 0 && size % OS_PAGE == 0);
  int saved = errno;
  bool ok = madvise(p, size, MADV_DONTNEED) == 0;
  errno = saved;
  if (ok) atomic_add_relaxed(&os_returned, size);
  return ok;
}

bool os_purge_decayed(void *p, size_t size, bool lazy) {
  ASSERT((uintptr_t)p % OS_PAGE == 0 && size % OS_PAGE == 0);
  if (!lazy) return os_purge(p, size);
  int saved = errno;
  bool ok = madvise(p, size, MADV_FREE) == 0;
  errno = saved;
  if (ok) atomic_add_relaxed(&os_returned, size);
  return false;                         /* the pages may keep their bytes */
}

static bool os_protect(void *p, size_t size, int prot) {
  ASSERT((uintptr_t)p % OS_PAGE == 0 && size % OS_PAGE == 0);
  int saved = errno;
  bool ok = mprotect(p, size, prot) == 0;
  errno = saved;
  return ok;
}
bool os_protect_none(void *p, size_t size) { return os_protect(p, size, PROT_NONE); }
bool os_protect_rw(void *p, size_t size) { return os_protect(p, size, PROT_READ | PROT_WRITE); }

size_t os_resident(const void *p, size_t size) {
  ASSERT((uintptr_t)p % OS_PAGE == 0);
  unsigned char vec[1024];
  size_t pages = 0;
  int saved = errno;
  for (size_t off = 0; off < size; off += sizeof vec * OS_PAGE) {
    size_t len = size - off < sizeof vec * OS_PAGE ? size - off : sizeof vec * OS_PAGE;
    if (mincore((char *)p + off, len, vec) != 0) continue;
    for (size_t i = 0; i < (len + OS_PAGE - 1) / OS_PAGE; i++) pages += vec[i] & 1;
  }
  errno = saved;
  return pages * OS_PAGE;
}

uint32_t os_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

void os_sleep_ms(uint32_t ms) {
  struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int os_cancel_off(void) {
  int old = PTHREAD_CANCEL_ENABLE;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
  return old;
}

void os_cancel_restore(int state) { pthread_setcancelstate(state, NULL); }

void os_write_all(int fd, const char *buf, size_t len) {
  int saved = errno, cancel = os_cancel_off();
  while (len) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    buf += w;
    len -= (size_t)w;
  }
  os_cancel_restore(cancel);
  errno = saved;
}

void os_write_line(line_t *l) {
  l->buf[l->n++] = '\n';               /* line_put keeps room for it */
  os_write_all(l->fd, l->buf, l->n);
  l->n = 0;
}

bool os_remap(void *p, size_t old, size_t size, void *to) {
  ASSERT((uintptr_t)p % OS_PAGE == 0 && (uintptr_t)to % OS_PAGE == 0 && old % OS_PAGE == 0 && size % OS_PAGE == 0);
  int saved = errno;
  void *r = to == p ? mremap(p, old, size, 0)
                    : mremap(p, old, size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  errno = saved;
  if (r != MAP_FAILED) atomic_add_relaxed(&os_mapped, size - old);   /* wraps down when it shrank */
  return r != MAP_FAILED;
}

void *os_sbrk_current(void) {
  int saved = errno;
  void *cur = sbrk(0);
  errno = saved;
  return cur == (void *)-1 ? NULL : cur;
}

bool os_sbrk_grow(void *expect, size_t size) {
  if (os_injected_failure()) return false;
  int saved = errno;
  bool ok = false;
  if (sbrk(0) == expect && (intptr_t)size > 0) {
    void *old = sbrk((intptr_t)size);
    if (old == expect) ok = true, atomic_add_relaxed(&os_mapped, size);
    else if (old != (void *)-1) sbrk(-(intptr_t)size);  /* raced: undo */
  }
  errno = saved;
  return ok;
}

bool os_sbrk_shrink(void *top, void *to) {
  ASSERT((char *)to <= (char *)top);
  int saved = errno;
  bool ok = sbrk(0) == top && brk(to) == 0;
  if (ok) atomic_sub_relaxed(&os_mapped, (size_t)((char *)top - (char *)to));
  errno = saved;
  return ok;
}

int os_pid(void) { return (int)getpid(); }

const char *os_program_name(void) {
  return program_invocation_short_name ? program_invocation_short_name : "";
}

uint64_t os_random_secret(void) {
  uint64_t s = 0;
  const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
  if (r) memcpy(&s, r + 8, sizeof s);   /* glibc uses the first 8 for its canary */
  s ^= (uint64_t)(uintptr_t)&s * 0x9E3779B97F4A7C15ull;
  return s | 1;
}

/* "strata: CALL(0xADDR): WHAT", built on the stack: no allocation. */
void fatal(const char *call, const void *addr, const char *what) {
  line_t l = LINE_INIT(STDERR_FILENO);
  line_put(&l, "strata: ");
  line_put(&l, call);
  line_put(&l, "(");
  line_put_hex(&l, (uintptr_t)addr);
  line_put(&l, "): ");
  line_put(&l, what);
  os_write_line(&l);
  abort();
}

unsigned os_cpus(void) {
  static _Atomic unsigned cpus;
  unsigned n = atomic_load_relaxed(&cpus);
  if (!n) {
    cpu_set_t set;
    n = sched_getaffinity(0, sizeof set, &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
    if (n < 1) n = 1;
    atomic_store_relaxed(&cpus, n);
  }
  return n;
}
