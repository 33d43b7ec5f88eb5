/* record.c - the recorder of strata-trace, a library preloaded into the
 * program (LD_PRELOAD). It records every call of the malloc family into the
 * file STRATA_TRACE_FILE names (format.h) and forwards the call to the next
 * allocator (dlsym(RTLD_NEXT)).
 *
 * It never allocates through malloc: the address -> block id table, the
 * thread buffers and their registry are mmap'd. Each thread encodes its
 * records into its own buffer and writes it as one chunk, under the file
 * lock, when it fills, when the thread exits (a pthread key's destructor)
 * and at process exit (a library destructor, which flushes every thread's
 * buffer). A thread whose buffer is gone (after its destructor, or after
 * the exit flush) writes each further record as a chunk of its own.
 *
 * Processes:
 *  - The first process that loads the recorder writes the file itself (it
 *    is created with O_EXCL); a program it executes (fork + exec, or exec
 *    alone) inherits the environment and writes FILE.<pid> (FILE.<pid>.<n>
 *    when that exists too). The exec family is wrapped, so a program that
 *    calls exec without fork writes its buffers first; the records since
 *    the last flush of a process that ends through _exit or a signal are
 *    lost.
 *  - A child of fork stops recording at once: it inherits the parent's
 *    buffers and locks in whatever state the fork left them, and its calls
 *    go straight to the next allocator.
 *
 * Lock order: a table shard's lock, then the file lock; the registry lock,
 * then the file lock.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "format.h"

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))
#define unlikely(x) __builtin_expect(!!(x), 0)

/* ---- the next allocator ---------------------------------------------------- */

static struct {
  void *(*malloc)(size_t);
  void *(*calloc)(size_t, size_t);
  void *(*realloc)(void *, size_t);
  void (*free)(void *);
  int (*posix_memalign)(void **, size_t, size_t);
  void *(*aligned_alloc)(size_t, size_t);
  void *(*memalign)(size_t, size_t);
  void *(*valloc)(size_t);
  void *(*pvalloc)(size_t);
  void *(*reallocarray)(void *, size_t, size_t);
  size_t (*malloc_usable_size)(void *);
} next;

/* dlsym allocates (calloc for its error state) before it can return the
 * next malloc: those calls are served from this buffer and never freed. */
static unsigned char bootstrap[64 * 1024] __attribute__((aligned(64)));
static atomic_size_t bootstrap_used;

static void *bootstrap_alloc(size_t size)
{
  size = (size + 63) & ~(size_t)63;
  size_t at = atomic_fetch_add(&bootstrap_used, size);
  if (at + size > sizeof bootstrap)
    return NULL;
  return bootstrap + at;
}

static bool from_bootstrap(const void *p)
{
  return (const unsigned char *)p >= bootstrap &&
         (const unsigned char *)p < bootstrap + sizeof bootstrap;
}

/* ---- state ------------------------------------------------------------------ */

struct thread_buf;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static atomic_bool ready;            /* next is filled in */
static atomic_bool recording;        /* off in a fork child, without a file */
static int trace_fd = -1;
static uint64_t start_ns;
static atomic_uint_fast64_t next_block_id = 1;
static atomic_int next_thread_index;
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct thread_buf *registry;  /* every live thread buffer */
static bool exiting;                 /* the exit flush ran (registry_lock) */

static TLS bool in_recorder;         /* a call made by the recorder itself */
static TLS bool in_init;
static TLS int thread_index = -1;
static TLS struct thread_buf *tbuf;
static TLS bool tbuf_gone;           /* write record by record from now on */

/* ---- the thread buffers ------------------------------------------------------ */

#define BUF_BYTES (64 * 1024)

enum { BUF_IDLE, BUF_APPENDING, BUF_TAKEN };

struct thread_buf {
  struct thread_buf *next, *prev;    /* the registry */
  atomic_int state;                  /* BUF_*: the exit flush takes it */
  int thread;
  size_t len;                        /* bytes of records after the header room */
  uint64_t last_ns, last_id;         /* the chunk's delta state */
  unsigned char data[];              /* TRACE_CHUNK_HEADER_MAX room, then records */
};

static void write_all(const unsigned char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(trace_fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;  /* a full disk loses records; the program goes on unchanged */
    p += w;
    n -= (size_t)w;
  }
}

/* Writes the records at body (len bytes, with TRACE_CHUNK_HEADER_MAX bytes of
 * room before them) as one chunk of thread `thread`. */
static void write_chunk(int thread, unsigned char *body, size_t len)
{
  unsigned char hdr[TRACE_CHUNK_HEADER_MAX];
  unsigned char *e = trace_put_varint(trace_put_varint(hdr, (uint64_t)thread), len);
  size_t hlen = (size_t)(e - hdr);
  memcpy(body - hlen, hdr, hlen);
  pthread_mutex_lock(&file_lock);
  write_all(body - hlen, hlen + len);
  pthread_mutex_unlock(&file_lock);
}

static void buf_flush(struct thread_buf *b)
{
  if (b->len > 0)
    write_chunk(b->thread, b->data + TRACE_CHUNK_HEADER_MAX, b->len);
  b->len = 0;
  b->last_ns = 0;
  b->last_id = 0;
}

static void buf_unregister(struct thread_buf *b)
{
  if (b->prev)
    b->prev->next = b->next;
  else
    registry = b->next;
  if (b->next)
    b->next->prev = b->prev;
}

/* The key's destructor: the thread is exiting. Later calls of the thread
 * (other destructors) write record by record. */
static void thread_exit(void *arg)
{
  struct thread_buf *b = arg;
  if (!atomic_load(&recording))
    return;  /* a fork child: the buffer holds the parent's records */
  tbuf = NULL;
  tbuf_gone = true;
  pthread_mutex_lock(&registry_lock);
  int expected = BUF_IDLE;
  bool mine = atomic_compare_exchange_strong(&b->state, &expected, BUF_TAKEN);
  if (mine) {
    buf_flush(b);
    buf_unregister(b);
  }
  pthread_mutex_unlock(&registry_lock);
  if (mine)
    munmap(b, BUF_BYTES);
}

static struct thread_buf *buf_create(void)
{
  struct thread_buf *b = mmap(NULL, BUF_BYTES, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (b == MAP_FAILED)
    return NULL;
  b->thread = thread_index;
  pthread_mutex_lock(&registry_lock);
  if (exiting) {
    pthread_mutex_unlock(&registry_lock);
    munmap(b, BUF_BYTES);
    return NULL;
  }
  b->next = registry;
  if (registry)
    registry->prev = b;
  registry = b;
  pthread_mutex_unlock(&registry_lock);
  /* pthread_setspecific may allocate (in_recorder is set: not recorded). */
  pthread_setspecific(exit_key, b);
  return b;
}

/* Write every thread's buffer, the calling thread's and those of threads
 * still running; a thread that is appending finishes its record first.
 * At exit (`last`), every thread writes record by record afterwards;
 * before an exec, the buffers go on (the exec may fail). */
static void flush_all(bool last)
{
  if (!atomic_load(&recording))
    return;
  pthread_mutex_lock(&registry_lock);
  exiting |= last;
  for (struct thread_buf *b = registry; b; b = b->next) {
    int expected = BUF_IDLE;
    while (!atomic_compare_exchange_weak(&b->state, &expected, BUF_TAKEN)) {
      expected = BUF_IDLE;
      sched_yield();
    }
    buf_flush(b);
    if (!last)
      atomic_store(&b->state, BUF_IDLE);
  }
  pthread_mutex_unlock(&registry_lock);
}

__attribute__((destructor)) static void process_exit(void)
{
  flush_all(true);
}

/* ---- records ------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned char *encode(unsigned char *p, uint64_t *last_ns, uint64_t *last_id,
                             enum trace_op op, uint64_t in, uint64_t size, uint64_t align,
                             uint64_t out)
{
  uint64_t t = now_ns() - start_ns;
  unsigned fields = trace_op_fields[op];
  *p++ = (unsigned char)op;
  p = trace_put_varint(p, t - *last_ns);
  *last_ns = t;
  if (fields & F_IN) {
    p = trace_put_varint(p, trace_zigzag((int64_t)(in - *last_id)));
    *last_id = in;
  }
  if (fields & F_SIZE)
    p = trace_put_varint(p, size);
  if (fields & F_ALIGN)
    p = trace_put_varint(p, align);
  if (fields & F_OUT) {
    p = trace_put_varint(p, trace_zigzag((int64_t)(out - *last_id)));
    *last_id = out;
  }
  return p;
}

static void record(enum trace_op op, uint64_t in, uint64_t size, uint64_t align, uint64_t out)
{
  if (thread_index < 0)
    thread_index = atomic_fetch_add(&next_thread_index, 1);
  if (!tbuf && !tbuf_gone) {
    tbuf = buf_create();
    tbuf_gone = tbuf == NULL;
  }
  struct thread_buf *b = tbuf;
  if (b) {
    int expected = BUF_IDLE;
    if (atomic_compare_exchange_strong(&b->state, &expected, BUF_APPENDING)) {
      unsigned char *body = b->data + TRACE_CHUNK_HEADER_MAX;
      if (offsetof(struct thread_buf, data) + TRACE_CHUNK_HEADER_MAX + b->len +
              TRACE_RECORD_MAX > BUF_BYTES)
        buf_flush(b);
      b->len = (size_t)(encode(body + b->len, &b->last_ns, &b->last_id, op, in, size,
                               align, out) - body);
      atomic_store(&b->state, BUF_IDLE);
      return;
    }
    /* The exit flush took the buffer; it stays mapped for whoever reads it. */
    tbuf = NULL;
    tbuf_gone = true;
  }
  unsigned char one[TRACE_CHUNK_HEADER_MAX + TRACE_RECORD_MAX];
  uint64_t last_ns = 0, last_id = 0;
  unsigned char *body = one + TRACE_CHUNK_HEADER_MAX;
  unsigned char *e = encode(body, &last_ns, &last_id, op, in, size, align, out);
  write_chunk(thread_index, body, (size_t)(e - body));
}

/* ---- address -> block id ----------------------------------------------------- */

/* Shards of open-addressing tables (linear probing, backward-shift delete),
 * each behind a spin lock and grown by doubling into a new mapping. */
#define SHARD_BITS 4
#define SHARD_MIN_SLOTS 4096

struct slot {
  uintptr_t addr;  /* 0: empty */
  uint64_t id;
};

static struct shard {
  atomic_flag lock;
  size_t mask, count;  /* mask: slots - 1, or 0 before the first insert */
  struct slot *slots;
} __attribute__((aligned(64))) shards[1 << SHARD_BITS];

/* A slot is the address itself (16-byte units), not a scrambled hash:
 * blocks that are neighbours in memory are neighbours in the table, and a
 * program's calls mostly touch blocks near each other, while the table of
 * a large heap is too large for the cache. Addresses a multiple of the
 * table's span apart share a probe run, which the load of at most half
 * keeps short. */
static size_t slot_of(uintptr_t a, size_t mask)
{
  return (size_t)(a >> 4) & mask;
}

static struct shard *shard_lock(uintptr_t a)
{
  /* 64 KiB regions spread over the shards, so that threads working in
   * different regions take different locks. */
  struct shard *s = &shards[((uint64_t)(a >> 16) * 0x9E3779B97F4A7C15ull) >> (64 - SHARD_BITS)];
  while (atomic_flag_test_and_set_explicit(&s->lock, memory_order_acquire))
    sched_yield();
  return s;
}

static void shard_unlock(struct shard *s)
{
  atomic_flag_clear_explicit(&s->lock, memory_order_release);
}

static void slots_put(struct slot *slots, size_t mask, uintptr_t addr, uint64_t id)
{
  size_t i = slot_of(addr, mask);
  while (slots[i].addr != 0 && slots[i].addr != addr)
    i = (i + 1) & mask;
  slots[i].addr = addr;
  slots[i].id = id;
}

static bool shard_grow(struct shard *s)
{
  size_t slots_n = s->mask ? (s->mask + 1) * 2 : SHARD_MIN_SLOTS;
  struct slot *n = mmap(NULL, slots_n * sizeof *n, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (n == MAP_FAILED)
    return false;
  if (s->mask) {
    for (size_t i = 0; i <= s->mask; i++)
      if (s->slots[i].addr)
        slots_put(n, slots_n - 1, s->slots[i].addr, s->slots[i].id);
    munmap(s->slots, (s->mask + 1) * sizeof *s->slots);
  }
  s->slots = n;
  s->mask = slots_n - 1;
  return true;
}

/* Files p under id; returns id, or 0 when the table cannot grow. */
static uint64_t id_put(void *p, uint64_t id)
{
  uintptr_t a = (uintptr_t)p;
  struct shard *s = shard_lock(a);
  if ((s->count + 1) * 2 <= s->mask + 1 || shard_grow(s)) {
    slots_put(s->slots, s->mask, a, id);
    s->count++;
  } else {
    id = 0;
  }
  shard_unlock(s);
  return id;
}

/* Gives p a new block id (0 for NULL). */
static uint64_t id_new(void *p)
{
  return p ? id_put(p, atomic_fetch_add(&next_block_id, 1)) : 0;
}

/* p's block id (0: not known), dropped from the table when `take`. */
static uint64_t id_find(void *p, bool take)
{
  if (!p)
    return 0;
  uintptr_t a = (uintptr_t)p;
  struct shard *s = shard_lock(a);
  uint64_t id = 0;
  if (s->mask) {
    size_t i = slot_of(a, s->mask);
    while (s->slots[i].addr != 0 && s->slots[i].addr != a)
      i = (i + 1) & s->mask;
    id = s->slots[i].id;
    if (s->slots[i].addr && take) {
      /* Backward shift: move later entries of the probe run into the hole. */
      size_t hole = i;
      for (size_t j = (i + 1) & s->mask; s->slots[j].addr; j = (j + 1) & s->mask) {
        size_t home = slot_of(s->slots[j].addr, s->mask);
        if (((j - home) & s->mask) >= ((j - hole) & s->mask)) {
          s->slots[hole] = s->slots[j];
          hole = j;
        }
      }
      s->slots[hole].addr = 0;
      s->count--;
    }
  }
  shard_unlock(s);
  return id;
}

/* ---- initialisation ------------------------------------------------------------ */

static void fork_child(void)
{
  atomic_store(&recording, false);
}

/* path, or path.<pid>, or path.<pid>.<n>: the first that does not exist. */
static int open_trace(const char *path)
{
  char name[4096];
  size_t len = strlen(path);
  if (len + 48 > sizeof name)
    return -1;
  for (unsigned n = 0; n < 1000; n++) {
    char *p = memcpy(name, path, len) + len;
    char digits[24];
    uint64_t parts[2] = {(uint64_t)getpid(), n - 1};
    for (unsigned k = 0; k < (n > 1 ? 2u : n); k++) {
      int d = 0;
      uint64_t v = parts[k];
      do digits[d++] = (char)('0' + v % 10); while ((v /= 10) != 0);
      *p++ = '.';
      while (d > 0)
        *p++ = digits[--d];
    }
    *p = '\0';
    int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != EEXIST)
      return fd;
  }
  return -1;
}

static void init(void)
{
  in_init = true;
  next.malloc = dlsym(RTLD_NEXT, "malloc");
  next.calloc = dlsym(RTLD_NEXT, "calloc");
  next.realloc = dlsym(RTLD_NEXT, "realloc");
  next.free = dlsym(RTLD_NEXT, "free");
  next.posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
  next.aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
  next.memalign = dlsym(RTLD_NEXT, "memalign");
  next.valloc = dlsym(RTLD_NEXT, "valloc");
  next.pvalloc = dlsym(RTLD_NEXT, "pvalloc");
  next.reallocarray = dlsym(RTLD_NEXT, "reallocarray");
  next.malloc_usable_size = dlsym(RTLD_NEXT, "malloc_usable_size");
  start_ns = now_ns();
  const char *path = getenv("STRATA_TRACE_FILE");
  if (path && *path && pthread_key_create(&exit_key, thread_exit) == 0 &&
      pthread_atfork(NULL, NULL, fork_child) == 0) {
    trace_fd = open_trace(path);
    if (trace_fd >= 0) {
      unsigned char hdr[TRACE_MAGIC_LEN + 1];
      memcpy(hdr, TRACE_MAGIC, TRACE_MAGIC_LEN);
      hdr[TRACE_MAGIC_LEN] = TRACE_VERSION;
      write_all(hdr, sizeof hdr);
      atomic_store(&recording, true);
    } else {
      static const char msg[] = "strata-trace: cannot create the trace file\n";
      if (write(2, msg, sizeof msg - 1) < 0) {
        /* nothing more to say */
      }
    }
  }
  atomic_store(&ready, true);
  in_init = false;
}

/* At load, before the program runs: the first process that loads the
 * recorder owns FILE even when a fork child allocates first. */
__attribute__((constructor)) static void at_load(void)
{
  pthread_once(&init_once, init);
}

/* Before each call: false when the call must bypass the recorder (while
 * it initialises, or inside the recorder itself). */
static inline bool enter(void)
{
  if (unlikely(!atomic_load_explicit(&ready, memory_order_acquire))) {
    if (in_init)
      return false;
    int saved = errno;
    pthread_once(&init_once, init);
    errno = saved;
  }
  if (in_recorder || !atomic_load_explicit(&recording, memory_order_relaxed))
    return false;
  in_recorder = true;
  return true;
}

static inline void leave(int saved_errno)
{
  in_recorder = false;
  errno = saved_errno;
}

/* ---- the interposed calls ------------------------------------------------------- */

#define BYPASS(call, bootstrap_value) \
  (!atomic_load_explicit(&ready, memory_order_acquire) ? (bootstrap_value) : (call))

EXPORT void *malloc(size_t size)
{
  if (!enter())
    return BYPASS(next.malloc(size), bootstrap_alloc(size));
  void *p = next.malloc(size);
  int e = errno;
  record(OP_MALLOC, 0, size, 0, id_new(p));
  leave(e);
  return p;
}

EXPORT void *calloc(size_t n, size_t size)
{
  size_t total;
  bool overflow = __builtin_mul_overflow(n, size, &total);
  if (!enter())
    /* The bootstrap buffer is static: already zero. */
    return BYPASS(next.calloc(n, size), overflow ? NULL : bootstrap_alloc(total));
  void *p = next.calloc(n, size);
  int e = errno;
  record(OP_CALLOC, 0, overflow ? SIZE_MAX : total, 0, id_new(p));
  leave(e);
  return p;
}

EXPORT void free(void *p)
{
  if (from_bootstrap(p))
    return;
  if (!enter()) {
    if (p)
      next.free(p);
    return;
  }
  int e = errno;
  /* The id goes before the block: once freed, another thread may get the
   * same address and a new id for it. */
  uint64_t id = id_find(p, true);
  record(OP_FREE, id, 0, 0, 0);
  next.free(p);
  leave(e);
}

/* realloc and reallocarray: the old id is dropped before the call (the
 * block may move and its address be reused at once) and given back when the
 * call fails. */
static void *resize(enum trace_op op, void *p, size_t n, size_t size)
{
  size_t total;
  bool overflow = __builtin_mul_overflow(n, size, &total);
  if (from_bootstrap(p)) {
    /* Never freed; its size is not kept, so the copy may take what follows
     * it in the buffer. */
    void *q = op == OP_REALLOC ? malloc(total) : reallocarray(NULL, n, size);
    size_t room = sizeof bootstrap - (size_t)((unsigned char *)p - bootstrap);
    if (q)
      memcpy(q, p, total < room ? total : room);
    return q;
  }
  if (!enter())
    return BYPASS(op == OP_REALLOC ? next.realloc(p, size) : next.reallocarray(p, n, size),
                  p || overflow ? NULL : bootstrap_alloc(total));
  uint64_t old = id_find(p, true);
  void *q = op == OP_REALLOC ? next.realloc(p, size) : next.reallocarray(p, n, size);
  int e = errno;
  uint64_t id = 0;
  if (q)
    id = id_new(q);
  else if (p && (overflow || total != 0) && old != 0)
    /* Failed: p is still allocated, under its id. */
    id_put(p, old);
  record(op, old, overflow ? SIZE_MAX : total, 0, id);
  leave(e);
  return q;
}

EXPORT void *realloc(void *p, size_t size)
{
  return resize(OP_REALLOC, p, 1, size);
}

EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
  return resize(OP_REALLOCARRAY, p, n, size);
}

EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
  if (!enter()) {
    if (atomic_load(&ready))
      return next.posix_memalign(out, align, size);
    /* Bootstrap blocks are 64-byte aligned. */
    *out = align <= 64 ? bootstrap_alloc(size) : NULL;
    return *out ? 0 : ENOMEM;
  }
  int r = next.posix_memalign(out, align, size);
  int e = errno;
  record(OP_POSIX_MEMALIGN, 0, size, align, id_new(r == 0 ? *out : NULL));
  leave(e);
  return r;
}

/* The aligned calls that return the block (next is filled in by enter()). */
static void *aligned(enum trace_op op, size_t align, size_t size)
{
#define ALIGNED_CALL (op == OP_MEMALIGN ? next.memalign : next.aligned_alloc)(align, size)
  if (!enter())
    return BYPASS(ALIGNED_CALL, align <= 64 ? bootstrap_alloc(size) : NULL);
  void *p = ALIGNED_CALL;
  int e = errno;
  record(op, 0, size, align, id_new(p));
  leave(e);
  return p;
}

EXPORT void *aligned_alloc(size_t align, size_t size)
{
  return aligned(OP_ALIGNED_ALLOC, align, size);
}

EXPORT void *memalign(size_t align, size_t size)
{
  return aligned(OP_MEMALIGN, align, size);
}

/* valloc and pvalloc: page-aligned. */
static void *page_aligned(enum trace_op op, size_t size)
{
#define PAGE_CALL (op == OP_VALLOC ? next.valloc : next.pvalloc)(size)
  if (!enter())
    return BYPASS(PAGE_CALL, NULL);
  void *p = PAGE_CALL;
  int e = errno;
  record(op, 0, size, 0, id_new(p));
  leave(e);
  return p;
}

EXPORT void *valloc(size_t size)
{
  return page_aligned(OP_VALLOC, size);
}

EXPORT void *pvalloc(size_t size)
{
  return page_aligned(OP_PVALLOC, size);
}

EXPORT size_t malloc_usable_size(void *p)
{
  if (from_bootstrap(p))
    return 0;
  if (!enter())
    return BYPASS(next.malloc_usable_size(p), 0);
  size_t n = next.malloc_usable_size(p);
  int e = errno;
  record(OP_USABLE_SIZE, id_find(p, false), 0, 0, 0);
  leave(e);
  return n;
}

/* ---- exec ------------------------------------------------------------------------ */
/* Every exec writes the buffers first: the new image does not run the
 * destructors. glibc's exec functions call execve inside the library,
 * where no interposition reaches, so each one is wrapped. The variadic
 * forms collect their arguments and go on as execv, execvp and execve. */
#define NEXT(name, type) ((type)dlsym(RTLD_NEXT, name))
typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execv_fn)(const char *, char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
  flush_all(false);
  return NEXT("execve", execve_fn)(path, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
  flush_all(false);
  return NEXT("execv", execv_fn)(path, argv);
}

EXPORT int execvp(const char *file, char *const argv[])
{
  flush_all(false);
  return NEXT("execvp", execv_fn)(file, argv);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
  flush_all(false);
  return NEXT("execvpe", execve_fn)(file, argv, envp);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
  flush_all(false);
  return NEXT("fexecve", fexecve_fn)(fd, argv, envp);
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
  flush_all(false);
  return NEXT("execveat", execveat_fn)(dirfd, path, argv, envp, flags);
}

/* The arguments of execl, execlp and execle up to their NULL into argv,
 * and (with_env: execle) the environment after it into envp. */
#define COLLECT_ARGS(first, argv, envp, with_env)                    \
  va_list ap;                                                        \
  size_t n = 1;                                                      \
  va_start(ap, first);                                               \
  while (va_arg(ap, char *))                                         \
    n++;                                                             \
  va_end(ap);                                                        \
  char *argv[n + 1];                                                 \
  char *const *envp = NULL;                                          \
  argv[0] = (char *)(first);                                         \
  va_start(ap, first);                                               \
  for (size_t i = 1; i <= n; i++)                                    \
    argv[i] = va_arg(ap, char *);                                    \
  if (with_env)                                                      \
    envp = va_arg(ap, char *const *);                                \
  va_end(ap)

EXPORT int execl(const char *path, const char *arg, ...)
{
  COLLECT_ARGS(arg, argv, envp, false);
  (void)envp;
  return execv(path, argv);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
  COLLECT_ARGS(arg, argv, envp, false);
  (void)envp;
  return execvp(file, argv);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
  COLLECT_ARGS(arg, argv, envp, true);
  return execve(path, argv, envp);
}
