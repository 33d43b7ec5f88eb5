/* init.c - initialisation on the first call, options, fork handlers.
 *
 * Initialisation allocates nothing and needs no dlsym, so it is safe from
 * another library's constructor and when glibc allocates inside pthread or
 * stdio calls.
 *
 * Global lock order (the fork handlers take them all in this order):
 *   (the C library's stdio list lock) -> init_lock -> heap orphan -> heap pool
 *   -> heap abandoned -> heap caches -> large grow -> arenas by index
 *   -> huge list -> page heap -> segment map -> decay
 */
#include "init.h"
#include "decay.h"
#include "heap.h"
#include "huge.h"
#include "large.h"
#include "os.h"
#include "segmap.h"
#include "sizeclass.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Atomic int init_state;
options_t options = { .huge_threshold = HUGE_MIN, .use_sbrk = true, .decay_ms = DECAY_MS,
                       .bg_thread = true };
static lock_t init_lock = LOCK_INIT;

static void warn(const char *what, const char *text, size_t len) {
  char buf[160];
  size_t n = 0;
  const char *parts[] = { "strata: STRATA_OPTIONS: ", what, " '" };
  for (int i = 0; i < 3; i++)
    for (const char *q = parts[i]; *q && n < 100; q++) buf[n++] = *q;
  for (size_t i = 0; i < len && n < 150; i++) buf[n++] = text[i];
  buf[n++] = '\'';
  buf[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, buf, n);
  (void)w;
}

/* Parse a decimal size with an optional k/m/g suffix; false when malformed. */
static bool parse_size(const char *s, size_t len, size_t *out) {
  size_t v = 0, i = 0;
  if (!len) return false;
  for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
    if (v > (SIZE_MAX - 9) / 10) return false;
    v = v * 10 + (size_t)(s[i] - '0');
  }
  if (i == 0) return false;
  if (i < len) {
    unsigned shift = s[i] == 'k' || s[i] == 'K' ? 10 : s[i] == 'm' || s[i] == 'M' ? 20
                   : s[i] == 'g' || s[i] == 'G' ? 30 : 64;
    if (shift == 64 || i + 1 != len || v > (SIZE_MAX >> shift)) return false;
    v <<= shift;
  }
  *out = v;
  return true;
}

/* STRATA_OPTIONS=key=value,... without allocating; a bad entry is reported
 * and ignored. */
static void options_parse(void) {
  const char *env = getenv("STRATA_OPTIONS");
  if (!env) return;
  while (*env) {
    const char *end = strchr(env, ',');
    size_t len = end ? (size_t)(end - env) : strlen(env);
    const char *eq = memchr(env, '=', len);
    size_t klen = eq ? (size_t)(eq - env) : len;
    const char *val = eq ? eq + 1 : env + len;
    size_t vlen = eq ? len - klen - 1 : 0;
    size_t v = 0;
    bool ok = parse_size(val, vlen, &v);
    bool flag = ok && v <= 1;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(env, k, klen) == 0)
#define VAL(k) (vlen == sizeof(k) - 1 && memcmp(val, k, vlen) == 0)
    if (KEY("huge") && ok && v > SMALL_MAX) options_huge_threshold_fix(v);
    else if (KEY("sbrk") && flag) options.use_sbrk = v;
    else if (KEY("decay") && ok && v <= 3600000) options.decay_ms = (uint32_t)v;
    else if (KEY("bg") && flag) options.bg_thread = v;
    else if (KEY("stats") && flag) options.stats_at_exit = v;
    else if (KEY("verbose") && flag) options.verbose = v;
    else if (KEY("guard") && flag) options.guard = v;
    else if (KEY("junk") && flag) options.junk = v;
    else if (KEY("canary") && flag) options.canary = v;
    else if (KEY("purge") && (VAL("free") || VAL("dontneed"))) os_lazy_purge = VAL("free");
    else if (KEY("huge") || KEY("sbrk") || KEY("decay") || KEY("bg") || KEY("stats") ||
             KEY("verbose") || KEY("purge") || KEY("guard") || KEY("junk") || KEY("canary"))
      warn("bad value in", env, len);
    else warn("unknown option", env, len);
#undef KEY
#undef VAL
    env += len + (end ? 1 : 0);
  }
}

__thread unsigned lock_depth __attribute__((tls_model("initial-exec")));

/* A fork from a signal handler that interrupted this thread inside the
 * allocator cannot take the locks (it holds some, and waiting for the others
 * could wait on a thread that waits on ours): like glibc's single-threaded
 * fork, it takes none, and the child, whose locks are re-initialised, must
 * not allocate before the interrupted call has finished (it usually calls
 * only async-signal-safe functions and _exit). Such forks nest inside the
 * interrupted one (a fork whose handlers hold the locks, too): the count
 * of those in progress on this thread, not a flag, tells each parent and
 * child handler whether its own prepare took the locks (a shared flag, set
 * by the nested fork, kept the outer one from releasing them: glibc's
 * tst-mallocfork hung one run in ten). */
static __thread unsigned fork_unlocked __attribute__((tls_model("initial-exec")));

/* glibc's stdio list lock: fork takes it after the prepare handlers, and
 * fflush(NULL) holds it while it waits for a stream's lock, whose owner may
 * be in realloc (getline) waiting for ours. So prepare takes it before the
 * allocator's locks, the order glibc's own malloc keeps (glibc bug 19431;
 * its tst-malloc-fork-deadlock hung). It is recursive, so fork's own take
 * nests; the child resets it (glibc does too when the parent had threads).
 * Weak: other C libraries lack it. */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

static void fork_prepare(void) {
  if (atomic_load_acquire(&init_state) != 2) return;
  if (lock_depth > 0) {
    fork_unlocked++;
    return;
  }
  if (_IO_list_lock) _IO_list_lock();
  lock_acquire(&init_lock);
  heap_fork_prepare();
  large_fork_prepare();
  huge_fork_prepare();
  pageheap_lock();
  segmap_fork_prepare();
  decay_fork_prepare();
}
static void fork_parent(void) {
  if (atomic_load_acquire(&init_state) != 2) return;
  if (fork_unlocked) {
    fork_unlocked--;
    return;
  }
  decay_fork_parent();
  segmap_fork_parent();
  pageheap_unlock();
  huge_fork_parent();
  large_fork_parent();
  heap_fork_parent();
  lock_release(&init_lock);
  if (_IO_list_unlock) _IO_list_unlock();
}
static void fork_child(void) {
  if (atomic_load_acquire(&init_state) != 2) return;
  if (fork_unlocked) {
    fork_unlocked--;
  } else {                              /* prepare's locks are re-initialised */
    lock_depth = 0;
    if (_IO_list_resetlock) _IO_list_resetlock();
  }
  decay_fork_child();
  segmap_fork_child();
  pageheap_reinit_lock();
  huge_fork_child();
  large_fork_child();
  lock_reinit(&init_lock);
  heap_fork_child();
}

/* The fork handlers are registered before the allocator is published, so no
 * thread can be inside it without them; pthread_atfork may allocate, which
 * re-enters here and is served (everything it needs is set up by then).
 * init_at_load registers them when the library is loaded, before the
 * program's own handlers: fork runs prepare handlers last-registered first,
 * so the program's prepare (and its parent and child handlers, run after
 * ours) may allocate. */
void init_slow(void) {
  static __thread bool inside __attribute__((tls_model("initial-exec")));
  if (inside) return;                  /* re-entered from pthread_atfork */
  inside = true;
  lock_acquire(&init_lock);
  if (atomic_load_acquire(&init_state) != 2) {
    class_init();
    span_init_secrets(os_random_secret());
    segmap_prepare(os_sbrk_current());        /* the break heap */
    segmap_prepare((const void *)&getenv);    /* mmap places ours below the C library */
    options_parse();
    pageheap_set_sbrk(options.use_sbrk);
    pageheap_set_guard(options.guard);
    span_checked_mode = options.junk || options.canary;
    if (!heap_init()) fatal("init", NULL, "pthread_key_create failed");
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    atomic_store_release(&init_state, 2);
  }
  lock_release(&init_lock);
  inside = false;
}

__attribute__((constructor)) static void init_at_load(void) { init_ensure(); }
