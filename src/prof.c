/* prof.c - the sampling heap profiler (prof.h): the draws of the sampling
 * process, the tables of call stacks and live samples, and the profile
 * writer (strata_prof_dump, and at exit <prof_out>.<pid>.heap and the leak
 * report of prof_leak); the call stacks' walk.
 *
 * The site table (call site -> frame size) and the stack table (hashed by
 * the frames) are open-addressed and never shrink: a call stack keeps its
 * allocated totals. The live table maps a
 * sampled block's address to its stack and size, open-addressed with
 * linear probing and backward-shift deletion, so it needs no tombstones.
 */
#include "prof.h"
#include "options.h"
#include "os.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PROF_DEPTH      32              /* frames kept per stack */
#define PROF_STACKS     ((size_t)1 << 15)
#define PROF_LIVE       ((size_t)1 << 19)
#define PROF_NEVER      ((intptr_t)1 << 60)
#define PROF_RAW        (PROF_DEPTH + 16)       /* frames taken, ours among them */
#define PROF_SITES      ((size_t)1 << 16)       /* call sites whose frame size is known */

typedef struct {
  uint64_t hash;                  /* 0: an empty slot */
  uint32_t depth;
  uint64_t alloc_n, alloc_bytes;  /* samples taken here, and their bytes */
  uint64_t live_n, live_bytes;    /* of which still allocated */
  void *frames[PROF_DEPTH];
} prof_stack_t;

typedef struct {
  uintptr_t addr;                 /* 0: an empty slot */
  uint32_t stack;                 /* index in prof_stacks */
  size_t size;
} prof_live_t;

bool prof_on;
static lock_t prof_lock = LOCK_INIT(RANK_PROF);
static prof_stack_t *prof_stacks;       /* PROF_STACKS slots */
static prof_live_t *prof_live;          /* PROF_LIVE slots */
static size_t prof_stack_count, prof_live_count;
static uint64_t prof_dropped;           /* samples not recorded: a table full */
/* The executable segment of the shared object Strata is in: frames there are
 * the allocator's own and start no stack. Empty in a static link. */
static uintptr_t prof_self_lo, prof_self_hi;
/* The one-time set-up of the first sample: 0 not begun, 1 under way (other
 * threads take no sample meanwhile: waiting could wait on the loader lock
 * they hold), 2 done. */
static _Atomic int prof_setup_state;

/* libgcc's unwinder, found once glibc's backtrace has loaded it. */
typedef int (*prof_trace_fn_t)(void *ctx, void *arg);
static int (*prof_unwind)(prof_trace_fn_t fn, void *arg);
static uintptr_t (*prof_unwind_ip)(void *ctx, int *before);
static uintptr_t (*prof_unwind_cfa)(void *ctx);
/* Call sites: ip << 16 | code, code the size of the caller's frame at ip in
 * 8-byte words, SITE_VARIES when it was not the same each time, SITE_LAST
 * for the outermost frame. Written under prof_lock, read without it. */
#define SITE_VARIES 0x7fffu
#define SITE_LAST   0x8000u
static _Atomic uint64_t *prof_sites;
static size_t prof_site_count;

static __thread bool prof_busy __attribute__((tls_model("initial-exec")));
static __thread uint64_t prof_rng __attribute__((tls_model("initial-exec")));
static __thread intptr_t prof_bytes_left __attribute__((tls_model("initial-exec")));
/* The CFA of the thread's outermost frame, from its last full unwind: the
 * cached walk reads nothing at or above it. */
static __thread uintptr_t prof_stack_top __attribute__((tls_model("initial-exec")));

/* ---- the sampling process --------------------------------------------------- */
static uint64_t prof_random(void) {
  if (!prof_rng) prof_rng = os_random_secret() | 1;
  prof_rng ^= prof_rng >> 12;         /* xorshift64* */
  prof_rng ^= prof_rng << 25;
  prof_rng ^= prof_rng >> 27;
  return prof_rng * 0x2545F4914F6CDD1DULL;
}

/* ln(u) for 0 < u <= 1, from u = m 2^e and ln m = 2 atanh((m-1)/(m+1))
 * (|z| <= 1/3: five terms are within 1e-6); the library needs no libm. */
static double prof_log(double u) {
  int e = 0;
  while (u < 0.5) { u *= 2; e--; }
  double z = (u - 1) / (u + 1), z2 = z * z;
  double s = z * (1 + z2 * (1.0 / 3 + z2 * (1.0 / 5 + z2 * (1.0 / 7 + z2 / 9))));
  return 2 * s + e * 0.69314718055994530942;
}

/* e^-x for x >= 0: halve until small, a Taylor series, square back. */
static double prof_exp_neg(double x) {
  unsigned k = 0;
  while (x > 0.0625 && k < 64) { x /= 2; k++; }
  double y = 1 - x * (1 - x / 2 * (1 - x / 3 * (1 - x / 4 * (1 - x / 5))));
  while (k--) y *= y;
  return y;
}

/* A uniform draw in (0, 1]. */
static double prof_uniform(void) {
  return (double)((prof_random() >> 11) + 1) / 9007199254740992.0;
}

/* Bytes to the next sample: exponential with mean prof_rate. */
static double prof_draw_bytes(void) {
  return -prof_log(prof_uniform()) * (double)options.prof_rate;
}

/* The allocations before the sampled one: floor(bytes / size), so that
 * the sample is the next one after them (a pop that finds the count at 0
 * leaves its block: heap.h). */
intptr_t prof_interval(size_t size) {
  if (!prof_on) return PROF_NEVER;
  double n = prof_draw_bytes() / (double)size;
  return n >= (double)PROF_NEVER ? PROF_NEVER : (intptr_t)n;
}

bool prof_keep(size_t size, size_t drawn) {
  if (prof_busy) return false;
  double rate = (double)options.prof_rate;
  double want = 1 - prof_exp_neg((double)size / rate), had = 1 - prof_exp_neg((double)drawn / rate);
  return prof_uniform() * had <= want;
}

bool prof_due_bytes(size_t size) {
  if (prof_bytes_left <= 0) prof_bytes_left = (intptr_t)prof_draw_bytes() + 1;
  if ((size_t)prof_bytes_left > size) {
    prof_bytes_left -= (intptr_t)size;
    return false;
  }
  prof_bytes_left = 0;                  /* drawn afresh next time */
  return true;
}

/* ---- the tables ----------------------------------------------------------- */
void prof_init(void) {
  if (!options.prof) return;
  size_t sb = align_up(PROF_STACKS * sizeof(prof_stack_t), OS_PAGE);
  size_t lb = align_up(PROF_LIVE * sizeof(prof_live_t), OS_PAGE);
  size_t cb = PROF_SITES * sizeof(uint64_t);
  prof_stacks = os_map_aligned(sb, OS_PAGE, 0);
  prof_live = prof_stacks ? os_map_aligned(lb, OS_PAGE, 0) : NULL;
  prof_sites = prof_live ? os_map_aligned(cb, OS_PAGE, 0) : NULL;
  if (!prof_sites) {
    if (prof_live) os_unmap(prof_live, lb);
    if (prof_stacks) os_unmap(prof_stacks, sb);
    line_t l = LINE_INIT(2);
    line_put(&l, "strata: prof: no memory for the profile's tables; profiling is off");
    os_write_line(&l);
    return;
  }
  prof_on = true;
}

static int prof_find_self(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size; (void)arg;
  uintptr_t me = (uintptr_t)&prof_find_self;
  for (unsigned i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (ph->p_type != PT_LOAD || me < lo || me >= hi) continue;
    if (info->dlpi_name && info->dlpi_name[0]) {       /* not the program itself */
      prof_self_lo = lo;
      prof_self_hi = hi;
    }
    return 1;
  }
  return 0;
}

static uint64_t prof_hash_frames(void *const *f, unsigned n) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
  for (unsigned i = 0; i < n; i++) h = (h ^ (uintptr_t)f[i]) * 0xFF51AFD7ED558CCDULL;
  return h | 1;
}

static size_t prof_live_slot(uintptr_t addr) {
  return (size_t)((addr >> 4) * 0x9E3779B97F4A7C15ULL >> 40) & (PROF_LIVE - 1);
}

/* The stack's slot, added when new; PROF_STACKS when the table is full.
 * Under prof_lock. */
static size_t prof_stack_intern(void *const *f, unsigned n) {
  uint64_t h = prof_hash_frames(f, n);
  for (size_t i = h & (PROF_STACKS - 1), probes = 0; probes < PROF_STACKS;
       i = (i + 1) & (PROF_STACKS - 1), probes++) {
    prof_stack_t *s = &prof_stacks[i];
    if (s->hash == h && s->depth == n && memcmp(s->frames, f, n * sizeof *f) == 0) return i;
    if (s->hash) continue;
    if (prof_stack_count >= PROF_STACKS * 3 / 4) return PROF_STACKS;
    prof_stack_count++;
    s->hash = h;
    s->depth = n;
    memcpy(s->frames, f, n * sizeof *f);
    return i;
  }
  return PROF_STACKS;
}

/* ---- call stacks ------------------------------------------------------------
 * libgcc's unwinder reads the DWARF rules of every frame: thousands of
 * instructions a sample. But the size of a frame at a call site is the
 * same each time (for a function with a fixed frame), so the profiler
 * learns it from each full unwind (the CFAs of two frames in a row) and
 * walks a stack whose every call site it knows with one load a frame: the
 * return address at CFA - 8. A site whose size varied (alloca), frames from
 * a signal handler's trampoline on, an unknown site or a walk that would
 * leave the thread's stack take the full unwind instead. */
static int prof_setup_begin(void) {
  int state = atomic_load_acquire(&prof_setup_state), idle = 0;
  if (state != 0 || !atomic_compare_exchange_strong(&prof_setup_state, &idle, 1)) return state;
  dl_iterate_phdr(prof_find_self, NULL);
  void *warm[2];
  backtrace(warm, 2);                           /* glibc loads libgcc_s (it allocates) */
  void *gcc = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (gcc) {
    *(void **)&prof_unwind_ip = dlsym(gcc, "_Unwind_GetIPInfo");
    *(void **)&prof_unwind_cfa = dlsym(gcc, "_Unwind_GetCFA");
    if (prof_unwind_ip && prof_unwind_cfa) *(void **)&prof_unwind = dlsym(gcc, "_Unwind_Backtrace");
  }
  atomic_store_release(&prof_setup_state, 2);
  return 2;
}

static size_t prof_site_slot(uintptr_t ip) {
  return (size_t)(ip * 0x9E3779B97F4A7C15ULL >> 40) & (PROF_SITES - 1);
}

/* The site's code, 0 when it is unknown. */
static unsigned prof_site(uintptr_t ip) {
  for (size_t i = prof_site_slot(ip), n = 0; n < PROF_SITES; i = (i + 1) & (PROF_SITES - 1), n++) {
    uint64_t e = atomic_load_relaxed(&prof_sites[i]);
    if (!e) return 0;
    if (e >> 16 == ip) return (unsigned)(e & 0xffff);
  }
  return 0;
}

/* Learn code for ip: a second, different code makes it SITE_VARIES. Under
 * prof_lock. */
static void prof_site_learn(uintptr_t ip, unsigned code) {
  if (ip >> 48) return;
  for (size_t i = prof_site_slot(ip), n = 0; n < PROF_SITES; i = (i + 1) & (PROF_SITES - 1), n++) {
    uint64_t e = atomic_load_relaxed(&prof_sites[i]);
    if (e >> 16 == ip && e) {
      if ((e & 0xffff) != code) atomic_store_relaxed(&prof_sites[i], (uint64_t)ip << 16 | SITE_VARIES);
      return;
    }
    if (e) continue;
    if (prof_site_count >= PROF_SITES * 3 / 4) return;
    prof_site_count++;
    atomic_store_relaxed(&prof_sites[i], (uint64_t)ip << 16 | code);
    return;
  }
}

typedef struct {
  uintptr_t ip[PROF_RAW + 8], cfa[PROF_RAW + 8];
  int n;
  int signal;                     /* the first frame of a signal, or PROF_RAW + 8 */
} prof_trace_t;

static int prof_trace_frame(void *ctx, void *arg) {
  prof_trace_t *t = arg;
  if (t->n == PROF_RAW + 8) return 4;           /* _URC_NORMAL_STOP */
  int before = 0;
  t->ip[t->n] = prof_unwind_ip(ctx, &before);
  t->cfa[t->n] = prof_unwind_cfa(ctx);
  if (before && t->signal > t->n) t->signal = t->n;
  t->n++;
  return 0;
}

/* The size of prof_stack's own frame above the unwinder's anchor, learned
 * at its first full unwind (0: not yet). */
static _Atomic uintptr_t prof_stack_frame;

/* The return addresses of the calling thread's stack from the caller of
 * prof_stack out, at most PROF_RAW; the number taken. Not inlined: its own
 * frame is where the walk and the full unwind both start.
 *
 * In the unwinder's terms each frame has an ip and a cfa, the return
 * address ip being stored at cfa - 8, and the next frame's cfa is this
 * one's plus the size of the frame at the call site ip. */
static NOINLINE int prof_stack(void **out) {
  uintptr_t anchor = (uintptr_t)__builtin_dwarf_cfa(), top = prof_stack_top;
  uintptr_t first = atomic_load_relaxed(&prof_stack_frame);
  int n = 0;
  for (uintptr_t at = anchor + first; first && top > anchor && n < PROF_RAW;) {
    if (at > top) { n = -1; break; }
    uintptr_t ip = *(const uintptr_t *)(at - 8);
    unsigned code = prof_site(ip);
    if (!code || (code & ~SITE_LAST) == SITE_VARIES) { n = -1; break; }
    out[n++] = (void *)ip;
    if (code & SITE_LAST) break;
    at += (uintptr_t)code * 8;
  }
  if (n > 0) return n;
  if (!prof_unwind) return backtrace(out, PROF_RAW);
  prof_trace_t t;
  t.n = 0;
  t.signal = PROF_RAW + 8;
  bool whole = prof_unwind(prof_trace_frame, &t) == 5;      /* _URC_END_OF_STACK */
  /* The unwinder's own frames come first; prof_stack's has the anchor. The
   * outermost frame may be a null ip, which ends the stack. */
  int base = 0, m = t.n;
  while (base < m && t.cfa[base] != anchor) base++;
  if (m > 0 && t.ip[m - 1] == 0) m--;
  if (base >= m - 1) return 0;
  /* Nothing is learned from a signal's trampoline on. */
  int learn = t.signal - 2 < m - 1 ? t.signal - 2 : m - 1;
  lock_acquire(&prof_lock);
  uintptr_t own = t.cfa[base + 1] - t.cfa[base];
  if (!first) atomic_store_relaxed(&prof_stack_frame, first = own);
  for (int i = base + 1; i < learn; i++) {
    uintptr_t size = t.cfa[i + 1] - t.cfa[i];
    prof_site_learn(t.ip[i], t.cfa[i + 1] > t.cfa[i] && size % 8 == 0 && size / 8 < SITE_VARIES
                                 ? (unsigned)(size / 8) : SITE_VARIES);
  }
  if (whole && learn == m - 1 && own == first) {
    prof_site_learn(t.ip[m - 1], SITE_LAST);
    prof_stack_top = t.cfa[m - 1];
  }
  lock_release(&prof_lock);
  n = m - 1 - base > PROF_RAW ? PROF_RAW : m - 1 - base;
  for (int i = 0; i < n; i++) out[i] = (void *)t.ip[base + 1 + i];
  return n;
}

/* Add e to the live table (which has room: prof_record keeps it at most
 * three quarters full). Under prof_lock. */
static void prof_live_insert(prof_live_t e) {
  size_t i = prof_live_slot(e.addr);
  while (prof_live[i].addr) i = (i + 1) & (PROF_LIVE - 1);
  prof_live[i] = e;
  prof_live_count++;
}

bool prof_record(void *p, size_t size) {
  if (!prof_on || prof_busy) return false;
  prof_busy = true;
  if (prof_setup_begin() != 2) {
    prof_busy = false;
    return false;
  }
  void *raw[PROF_RAW];
  int got = prof_stack(raw);
  int skip = 0;
  while (skip < got && (uintptr_t)raw[skip] >= prof_self_lo && (uintptr_t)raw[skip] < prof_self_hi) skip++;
  unsigned n = got - skip > PROF_DEPTH ? PROF_DEPTH : (unsigned)(got > skip ? got - skip : 0);
  bool recorded = false;
  lock_acquire(&prof_lock);
  size_t si = prof_stack_intern(raw + skip, n);
  if (si < PROF_STACKS && prof_live_count < PROF_LIVE * 3 / 4) {
    prof_live_insert((prof_live_t){ (uintptr_t)p, (uint32_t)si, size });
    prof_stack_t *s = &prof_stacks[si];
    s->alloc_n++;
    s->alloc_bytes += size;
    s->live_n++;
    s->live_bytes += size;
    recorded = true;
  } else {
    prof_dropped++;
  }
  lock_release(&prof_lock);
  prof_busy = false;
  return recorded;
}

/* Remove slot i of the live table, shifting back the entries after it
 * that probed past it. Under prof_lock. */
static void prof_live_remove(size_t i) {
  for (size_t j = i;;) {
    j = (j + 1) & (PROF_LIVE - 1);
    if (!prof_live[j].addr) break;
    size_t home = prof_live_slot(prof_live[j].addr);
    /* j's entry may fill the hole at i unless its home lies in (i, j]. */
    if (((j - home) & (PROF_LIVE - 1)) >= ((j - i) & (PROF_LIVE - 1))) {
      prof_live[i] = prof_live[j];
      i = j;
    }
  }
  prof_live[i].addr = 0;
  prof_live_count--;
}

size_t prof_forget(void *p, void *q) {
  size_t size = 0;
  lock_acquire(&prof_lock);
  for (size_t i = prof_live_slot((uintptr_t)p); prof_live[i].addr; i = (i + 1) & (PROF_LIVE - 1)) {
    if (prof_live[i].addr != (uintptr_t)p) continue;
    prof_live_t e = prof_live[i];
    size = e.size;
    prof_live_remove(i);
    if (q) {                                    /* moved: the sample follows it */
      e.addr = (uintptr_t)q;
      prof_live_insert(e);
    } else {
      prof_stacks[e.stack].live_n--;
      prof_stacks[e.stack].live_bytes -= e.size;
    }
    break;
  }
  lock_release(&prof_lock);
  return size;
}

static __thread void *prof_stash __attribute__((tls_model("initial-exec")));
static __thread size_t prof_stash_usable __attribute__((tls_model("initial-exec")));

void *prof_stash_take(size_t size, size_t align) {
  void *p = prof_stash;
  if (!p || prof_stash_usable < size || (uintptr_t)p % align) return NULL;
  prof_stash = NULL;
  return p;
}

bool prof_stash_put(void *p, size_t usable) {
  if (prof_stash) return false;
  prof_stash = p;
  prof_stash_usable = usable;
  return true;
}

void *prof_stash_drop(void) {
  void *p = prof_stash;
  prof_stash = NULL;
  return p;
}

/* ---- the profile ---------------------------------------------------------- */
/* A buffered writer for the profile's long lines; the line_t pieces format
 * numbers. */
typedef struct { int fd; size_t n; char buf[4096]; } prof_out_t;

static void prof_out_flush(prof_out_t *o) {
  os_write_all(o->fd, o->buf, o->n);
  o->n = 0;
}

static void prof_out_put(prof_out_t *o, const line_t *l) {
  if (o->n + l->n > sizeof o->buf) prof_out_flush(o);
  memcpy(o->buf + o->n, l->buf, l->n);
  o->n += l->n;
}

/* "live_n: live_bytes [alloc_n: alloc_bytes] @" */
static void prof_put_counts(prof_out_t *o, const char *lead, uint64_t ln, uint64_t lb,
                            uint64_t an, uint64_t ab) {
  line_t l = LINE_INIT(o->fd);
  line_put(&l, lead);
  line_put_num(&l, ln, 6, false);
  line_put(&l, ": ");
  line_put_num(&l, lb, 8, false);
  line_put(&l, " [");
  line_put_num(&l, an, 6, false);
  line_put(&l, ": ");
  line_put_num(&l, ab, 8, false);
  line_put(&l, "] @");
  prof_out_put(o, &l);
}

/* The profile, then the process's mappings (which pprof needs to find the
 * objects the addresses are in). Takes prof_lock. */
static void prof_write(int fd) {
  prof_out_t o = { .fd = fd };
  uint64_t tn = 0, tb = 0, an = 0, ab = 0;
  line_t l = LINE_INIT(fd);
  lock_acquire(&prof_lock);
  for (size_t i = 0; i < PROF_STACKS; i++) {
    const prof_stack_t *s = &prof_stacks[i];
    tn += s->live_n; tb += s->live_bytes; an += s->alloc_n; ab += s->alloc_bytes;
  }
  prof_put_counts(&o, "heap profile: ", tn, tb, an, ab);
  line_put(&l, " heap_v2/");
  line_put_num(&l, options.prof_rate, 0, false);
  line_put(&l, "\n");
  prof_out_put(&o, &l);
  for (size_t i = 0; i < PROF_STACKS; i++) {
    const prof_stack_t *s = &prof_stacks[i];
    if (!s->hash || !s->alloc_n) continue;
    prof_put_counts(&o, "", s->live_n, s->live_bytes, s->alloc_n, s->alloc_bytes);
    for (unsigned f = 0; f < s->depth; f++) {
      l.n = 0;
      line_put(&l, " ");
      line_put_hex(&l, (uintptr_t)s->frames[f]);
      prof_out_put(&o, &l);
    }
    l.n = 0;
    line_put(&l, "\n");
    prof_out_put(&o, &l);
  }
  lock_release(&prof_lock);
  l.n = 0;
  line_put(&l, "\nMAPPED_LIBRARIES:\n");
  prof_out_put(&o, &l);
  prof_out_flush(&o);
  int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (maps < 0) return;
  for (ssize_t got; (got = read(maps, o.buf, sizeof o.buf)) > 0;) os_write_all(fd, o.buf, (size_t)got);
  close(maps);
}

API int strata_prof_dump(const char *path) {
  if (!prof_on) return ENOENT;
  if (!path) return EINVAL;
  int cancel = os_cancel_off();
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) {
    prof_write(fd);
    close(fd);
  }
  os_cancel_restore(cancel);
  return err;
}

/* Scale a site's sampled counts back to the program's (pprof's rule). */
static uint64_t prof_unsample(uint64_t n, uint64_t bytes, uint64_t value) {
  if (!n) return 0;
  double p = 1 - prof_exp_neg((double)bytes / (double)n / (double)options.prof_rate);
  return p > 0 ? (uint64_t)((double)value / p + 0.5) : value;
}

#define PROF_LEAK_SITES 20

/* A site's estimated live bytes. */
static uint64_t prof_live_estimate(const prof_stack_t *s) {
  return prof_unsample(s->live_n, s->live_bytes, s->live_bytes);
}

/* The sites with live samples, most estimated bytes first (the first
 * PROF_LEAK_SITES), with their symbolised frames. They are copied under
 * the lock and printed outside it: backtrace_symbols_fd takes the dynamic
 * loader's lock, whose holder may be waiting to record a sample. */
static void prof_leak_report(void) {
  prof_stack_t top[PROF_LEAK_SITES];
  unsigned shown = 0;
  uint64_t sites = 0;
  lock_acquire(&prof_lock);
  for (size_t i = 0; i < PROF_STACKS; i++) {
    const prof_stack_t *s = &prof_stacks[i];
    if (!s->live_n) continue;
    sites++;
    uint64_t est = prof_live_estimate(s);
    if (shown == PROF_LEAK_SITES && prof_live_estimate(&top[shown - 1]) >= est) continue;
    unsigned at = shown < PROF_LEAK_SITES ? shown++ : PROF_LEAK_SITES - 1;
    for (; at > 0 && prof_live_estimate(&top[at - 1]) < est; at--) top[at] = top[at - 1];
    top[at] = *s;
  }
  lock_release(&prof_lock);
  line_t l = LINE_INIT(2);
  line_put(&l, "strata: prof_leak: ");
  line_put_num(&l, sites, 0, false);
  line_put(&l, " sites hold sampled blocks at exit");
  os_write_line(&l);
  for (unsigned k = 0; k < shown; k++) {
    const prof_stack_t *s = &top[k];
    l.n = 0;
    line_put(&l, "strata: leak: about ");
    line_put_num(&l, prof_live_estimate(s), 0, true);
    line_put(&l, " in ");
    line_put_num(&l, prof_unsample(s->live_n, s->live_bytes, s->live_n), 0, false);
    line_put(&l, " blocks, allocated at:");
    os_write_line(&l);
    backtrace_symbols_fd((void *const *)s->frames, (int)s->depth, 2);
  }
}

__attribute__((destructor)) static void prof_at_exit(void) {
  if (!prof_on) return;
  char path[OPTIONS_PATH_MAX + 32];
  line_t l = LINE_INIT(2);
  line_put(&l, options.prof_out);
  line_put(&l, ".");
  line_put_num(&l, (unsigned long long)os_pid(), 0, false);
  line_put(&l, ".heap");
  memcpy(path, l.buf, l.n);
  path[l.n] = 0;
  int err = strata_prof_dump(path);
  if (err) {
    l.n = 0;
    line_put(&l, "strata: prof: cannot write ");
    line_put(&l, path);
    os_write_line(&l);
  }
  if (prof_dropped) {
    l.n = 0;
    line_put(&l, "strata: prof: ");
    line_put_num(&l, prof_dropped, 0, false);
    line_put(&l, " samples were not recorded: a profile table was full");
    os_write_line(&l);
  }
  if (options.prof_leak) prof_leak_report();
}

static void prof_fork_child(void) { prof_busy = false; }

const tier_t prof_tier = {
  .name = "prof",
  .locks = { &prof_lock },
  .fork_child = prof_fork_child,
};
