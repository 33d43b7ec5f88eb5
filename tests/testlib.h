/* testlib.h - what the test programs share. Every test program includes it
 * (C and C++; the programs in tests/link/ through link_common.h). A helper
 * that two or more of them need lives here, not in a copy per file.
 *
 *   CHECK(cond, fmt, ...)   count and print a failure (the first 20), go on
 *   REQUIRE(cond, fmt, ...) the same, then end the case (or program) at once:
 *                           for a check whose failure leaves nothing to test
 *   failf(fmt, ...)         a failure, counted and printed
 *   info(fmt, ...)          a line of information
 * All write(2) from a stack buffer: cases print from signal handlers, forked
 * children and threads, and while malloc fails.
 *
 * Helpers: a clock, sleeps, a random stream and a mixer, hiding values from
 * the optimiser, a byte pattern to fill and check blocks with, /proc readers
 * (status fields, mappings, the thread count, resident bytes), a waitpid with
 * a deadline, run_child() (a function in a child process, its stdout and
 * stderr captured: for what must crash, or for this program re-run with
 * other options), run_python() (a check written in Python over text the
 * case made, such as the statistics' JSON), and where strata.h was
 * included first, stats_now().
 *
 * Two ways to structure a program:
 *  - a list of independent cases: cases_main() runs a table of them, each in
 *    a forked child of its own process group with an alarm() and a watchdog
 *    in the parent, so a case that crashes, aborts or hangs fails on its own
 *    and the next one still runs:
 *
 *      PROG              run every case
 *      PROG NAME...      run the named cases only
 *      PROG -l           list the cases
 *      PROG --no-fork NAME   run one case in this process (for a debugger)
 *
 *    It prints one line per case ("PASS  name   1.23 s" or "FAIL ... why"),
 *    then "N of M cases passed"; its exit status is 0 when all passed, 77
 *    when every case that ran was skipped (skip()), 1 otherwise.
 *  - one sequential scenario: a plain main() that ends with
 *    `return checks_result("name");` (exit status 1 when a check failed).
 *
 * Under ThreadSanitizer cases_main runs the cases in its own process, one
 * after the other (see run_case). A unit test includes the library's
 * headers before this one (src/internal.h has a CHECK of its own).
 *
 * (Added with the conversion of every test to this header: C++ use, REQUIRE,
 * hide_ptr, mix64, the byte pattern, run_child, case_current, case_index,
 * checks_result, stats_now and UNDER_TSAN.)
 */
#ifndef STRATA_TESTLIB_H
#define STRATA_TESTLIB_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef __cplusplus
/* C++17 has no <stdatomic.h>: the same names from <atomic>. */
#include <atomic>
using std::atomic_fetch_add;
using std::atomic_int;
using std::atomic_load;
using std::atomic_store;
#else
#include <stdatomic.h>
#endif

#define TL_UNUSED __attribute__((unused))

/* 1 in a ThreadSanitizer build (GCC's macro, or clang's feature test). */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define PAGE ((size_t)4096)

/* ---- output and checks, without malloc ---------------------------------------- */
static TL_UNUSED void tl_vsay(const char *prefix, const char *fmt, va_list ap) {
  char buf[640];
  int n = snprintf(buf, sizeof buf, "%s", prefix);
  n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t w = write(STDOUT_FILENO, buf, (size_t)n);
  (void)w;
}

__attribute__((format(printf, 1, 2))) static TL_UNUSED void info(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tl_vsay("    info: ", fmt, ap);
  va_end(ap);
}

/* Failed checks of the running case (or program): counted, the first 20 printed. */
static TL_UNUSED atomic_int failures;
__attribute__((format(printf, 1, 2))) static TL_UNUSED void failf(const char *fmt, ...) {
  if (atomic_fetch_add(&failures, 1) >= 20) return;
  va_list ap;
  va_start(ap, fmt);
  tl_vsay("    FAIL: ", fmt, ap);
  va_end(ap);
}
/* The unit tests include the library's headers first: src/internal.h has a
 * CHECK of its own (a misuse check that aborts), which no header uses. */
#ifdef CHECK
#undef CHECK
#endif
#define CHECK(cond, ...) do { if (!(cond)) failf(__VA_ARGS__); } while (0)

/* End the case (in cases_main's child) or the program at once, failed. */
__attribute__((noreturn)) static TL_UNUSED void give_up(void) {
  fflush(stdout);
  _exit(1);
}
#define REQUIRE(cond, ...) do { if (!(cond)) { failf(__VA_ARGS__); give_up(); } } while (0)

/* The end of a plain main(): one line on how the checks went; the exit status. */
static TL_UNUSED int checks_result(const char *name) {
  int n = atomic_load(&failures);
  char buf[160];
  int len = n ? snprintf(buf, sizeof buf, "%s: %d check(s) failed\n", name, n)
              : snprintf(buf, sizeof buf, "%s: all checks passed\n", name);
  fflush(stdout);
  ssize_t w = write(STDOUT_FILENO, buf, (size_t)len < sizeof buf ? (size_t)len : sizeof buf - 1);
  (void)w;
  return n != 0;
}

/* A case that cannot run here says why and returns this. */
enum { CASE_SKIPPED = 77 };
__attribute__((format(printf, 1, 2))) static TL_UNUSED int skip(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tl_vsay("    skip: ", fmt, ap);
  va_end(ap);
  return CASE_SKIPPED;
}

/* ---- small helpers -------------------------------------------------------------- */
static TL_UNUSED double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static TL_UNUSED void sleep_us(long us) {
  struct timespec t = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

/* Keep the compiler from reasoning about (and warning on) impossible sizes. */
static TL_UNUSED size_t hide(size_t x) {
  __asm__ volatile("" : "+r"(x));
  return x;
}
/* The same for a pointer: one misused on purpose, or one passed to a realloc
 * that is meant to fail and used afterwards (-Wuse-after-free). */
static TL_UNUSED void *hide_ptr(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

/* xorshift64*: a deterministic random stream per case or thread. */
static TL_UNUSED uint64_t rnd(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1Dull;
}

/* splitmix64's finaliser: a well-mixed 64-bit value from any input. */
static TL_UNUSED uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/* A byte pattern for blocks: byte i of a block tagged `tag`. fill_pattern
 * writes it; pattern_mismatch returns the first offset that does not hold
 * it, n when all do. */
static TL_UNUSED unsigned char pattern_byte(size_t i, unsigned tag) {
  return (unsigned char)(i ^ (i >> 8) ^ (i >> 16) ^ (tag * 0x5bu));
}
static TL_UNUSED void fill_pattern(void *p, size_t n, unsigned tag) {
  unsigned char *c = (unsigned char *)p;
  for (size_t i = 0; i < n; i++) c[i] = pattern_byte(i, tag);
}
static TL_UNUSED size_t pattern_mismatch(const void *p, size_t n, unsigned tag) {
  const unsigned char *c = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != pattern_byte(i, tag)) return i;
  return n;
}

/* Read a whole small /proc file into buf (no stdio, no malloc). */
static TL_UNUSED ssize_t read_file(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
    if (n == cap - 1) break;
  }
  close(fd);
  buf[n] = 0;
  return (ssize_t)n;
}

/* A "Key:   123 kB" field of /proc/self/status, in KiB (-1 if missing). */
static TL_UNUSED long status_kib(const char *key) {
  char buf[4096];
  if (read_file("/proc/self/status", buf, sizeof buf) < 0) return -1;
  char *s = strstr(buf, key);
  return s ? strtol(s + strlen(key), NULL, 10) : -1;
}

/* The process's resident bytes (/proc/self/statm). */
static TL_UNUSED size_t resident_bytes(void) {
  char buf[256];
  if (read_file("/proc/self/statm", buf, sizeof buf) < 0) return 0;
  char *s = strchr(buf, ' ');
  return s ? (size_t)strtoul(s + 1, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* Threads of this process: the "Threads:" field of /proc/self/status. */
static TL_UNUSED long thread_count(void) { return status_kib("Threads:"); }

/* The number of mappings: lines of /proc/self/maps. */
static TL_UNUSED long map_count(void) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[16384];
  long lines = 0;
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
    for (ssize_t i = 0; i < r; i++) lines += buf[i] == '\n';
  close(fd);
  return lines;
}

/* Is the page holding p mapped? (mincore fails with ENOMEM on a hole.) */
static TL_UNUSED bool is_mapped(const void *p) {
  unsigned char v;
  int saved = errno;
  bool mapped = mincore((void *)((uintptr_t)p & ~(uintptr_t)(PAGE - 1)), PAGE, &v) == 0;
  errno = saved;
  return mapped;
}

/* Wait for pid for at most `seconds`; SIGKILL it after that. Returns the
 * wait status, -1 when it had to be killed, -2 when waitpid failed. */
static TL_UNUSED int wait_or_kill(pid_t pid, double seconds) {
  double end = now_s() + seconds;
  int st;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (r < 0 && errno != EINTR) return -2;
    if (now_s() > end) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
      return -1;
    }
    sleep_us(200);
  }
}

/* Run fn(arg) in a forked child and wait for it. The child's stdout and
 * stderr go to out and err (NUL-terminated; what does not fit is read and
 * dropped; NULL leaves that stream as it is); it dumps no core and dies by
 * SIGALRM after `timeout` seconds; it exits 0 when fn returns. Returns the
 * wait status, -1 when it had to be killed (5 s after its alarm), -2 when it
 * could not be started. */
static TL_UNUSED int run_child(void (*fn)(void *), void *arg, char *out, size_t outcap, char *err,
                               size_t errcap, int timeout) {
  int pipes[2][2] = {{-1, -1}, {-1, -1}};
  char *buf[2] = {out, err};
  size_t cap[2] = {outcap, errcap}, len[2] = {0, 0};
  for (int k = 0; k < 2; k++)
    if (buf[k] && pipe(pipes[k]) != 0) return -2;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -2;
  if (pid == 0) {
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);
    prctl(PR_SET_DUMPABLE, 0);        /* not even to a core_pattern pipe */
    alarm((unsigned)timeout);
    for (int k = 0; k < 2; k++)
      if (buf[k]) {
        dup2(pipes[k][1], k + 1);
        close(pipes[k][0]);
        close(pipes[k][1]);
      }
    fn(arg);
    fflush(stdout);
    _exit(0);
  }
  struct pollfd pfd[2];
  int open_fds = 0;
  for (int k = 0; k < 2; k++) {
    pfd[k].fd = buf[k] ? pipes[k][0] : -1;
    pfd[k].events = POLLIN;
    if (buf[k]) {
      close(pipes[k][1]);
      open_fds++;
    }
  }
  double end = now_s() + timeout + 5.0;
  while (open_fds > 0 && now_s() < end) {
    if (poll(pfd, 2, 100) < 0 && errno != EINTR) break;
    for (int k = 0; k < 2; k++) {
      if (pfd[k].fd < 0 || !(pfd[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char scratch[4096];
      bool room = len[k] + 1 < cap[k];
      ssize_t r = room ? read(pfd[k].fd, buf[k] + len[k], cap[k] - 1 - len[k])
                       : read(pfd[k].fd, scratch, sizeof scratch);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        close(pfd[k].fd);
        pfd[k].fd = -1;
        open_fds--;
      } else if (room) {
        len[k] += (size_t)r;
      }
    }
  }
  for (int k = 0; k < 2; k++) {
    if (pfd[k].fd >= 0) close(pfd[k].fd);
    if (buf[k]) buf[k][len[k]] = 0;
  }
  double left = end - now_s();
  return wait_or_kill(pid, left > 0 ? left : 0);
}

/* Run python3 -c `script` with one argument, `input` on its stdin (at
 * most a pipe's 64 KiB) and its stdout in out (its stderr stays this
 * program's, to say why it failed). The interpreter is STRATA_PYTHON
 * (meson sets it to the one it found), else python3 on the PATH. Returns
 * the wait status (run_child), -2 when it could not start. */
typedef struct { const char *script, *arg; int in; } tl_python_t;
static TL_UNUSED void tl_exec_python(void *arg) {
  const tl_python_t *p = (const tl_python_t *)arg;
  const char *python = getenv("STRATA_PYTHON");
  dup2(p->in, STDIN_FILENO);
  execlp(python ? python : "python3", "python3", "-c", p->script, p->arg, (char *)NULL);
  _exit(127);
}
static TL_UNUSED int run_python(const char *script, const char *arg, const char *input, char *out,
                                size_t outcap) {
  int in[2];
  if (pipe(in) != 0) return -2;
  size_t len = strlen(input);
  bool written = len < 65536 && write(in[1], input, len) == (ssize_t)len;
  close(in[1]);
  tl_python_t p = {script, arg, in[0]};
  int status = written ? run_child(tl_exec_python, &p, out, outcap, NULL, 0, 60) : -2;
  close(in[0]);
  return status;
}

/* ---- over the strata_ API (for a program that includes strata.h first) ------ */
#ifdef STRATA_H
/* Strata's statistics now (a failure of strata_stats ends the case). */
static TL_UNUSED strata_stats_t stats_now(void) {
  strata_stats_t st;
  REQUIRE(strata_stats(&st) == 0, "strata_stats failed");
  return st;
}
#endif

/* ---- cases, each in a child with a watchdog ----------------------------------- */
typedef struct {
  const char *name;
  int (*fn)(void);      /* 0: passed (unless a CHECK failed), CASE_SKIPPED, else failed */
  int timeout;          /* seconds */
} case_t;

/* Optional: says more about a case that timed out (what it was stuck in). */
static TL_UNUSED void (*case_timeout_note)(char *buf, size_t len);

/* The case being run (in its child), and the table given to cases_main. */
static TL_UNUSED const case_t *case_current;
static TL_UNUSED const case_t *case_table;
/* The running case's position in that table: a function that serves several
 * entries of the table tells them apart by it. */
static TL_UNUSED int case_index(void) { return (int)(case_current - case_table); }

/* A case's exit status from what it returned and its failed checks. */
static TL_UNUSED int tl_case_status(int rc) {
  return rc == CASE_SKIPPED && !atomic_load(&failures) ? CASE_SKIPPED
         : rc || atomic_load(&failures) ? 1 : 0;
}

/* 1 passed, 0 failed, -1 skipped. */
static TL_UNUSED int run_case(const case_t *c) {
  fflush(stdout);
  atomic_store(&failures, 0);
  double t0 = now_s();
  int st;
  if (UNDER_TSAN) {
    /* ThreadSanitizer does not follow the allocator's fork handlers (the
     * child re-initialises the locks they took: a "double lock" at its
     * first allocation), so under it the cases run one after the other in
     * this process, each under its alarm. */
    alarm((unsigned)c->timeout);
    case_current = c;
    st = W_EXITCODE(tl_case_status(c->fn()), 0);
    alarm(0);
  } else {
    pid_t pid = fork();
    if (pid < 0) {
      printf("FAIL  %-40s fork: %s\n", c->name, strerror(errno));
      return 0;
    }
    if (pid == 0) {
      setpgid(0, 0);  /* the parent kills the whole group after a timeout */
      struct rlimit core = {0, 0};
      setrlimit(RLIMIT_CORE, &core);
      alarm((unsigned)c->timeout);
      case_current = c;
      int rc = c->fn();
      fflush(stdout);
      _exit(tl_case_status(rc));
    }
    setpgid(pid, pid);
    st = wait_or_kill(pid, c->timeout + 5.0);
    kill(-pid, SIGKILL);  /* leftovers: helpers, hung grandchildren */
  }
  double dt = now_s() - t0;
  char why[320] = "";
  int result = 0;
  if (st == -1 || (st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)) {
    int n = snprintf(why, sizeof why, "timed out after %d s (deadlock?)", c->timeout);
    if (case_timeout_note) case_timeout_note(why + n, sizeof why - (size_t)n);
  } else if (st >= 0 && WIFSIGNALED(st)) {
    snprintf(why, sizeof why, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
  } else if (st >= 0 && WEXITSTATUS(st) == CASE_SKIPPED) {
    result = -1;
  } else if (st >= 0 && WEXITSTATUS(st) != 0) {
    snprintf(why, sizeof why, "exit status %d", WEXITSTATUS(st));
  } else if (st >= 0) {
    result = 1;
  }
  printf("%s  %-40s %6.2f s%s%s\n", result > 0 ? "PASS" : result < 0 ? "SKIP" : "FAIL",
         c->name, dt, why[0] ? "  " : "", why);
  fflush(stdout);
  return result;
}

static TL_UNUSED int cases_main(int argc, char **argv, const case_t *cases, int ncases) {
  const char *prog = argv[0];
  case_table = cases;
  if (argc > 1 && strcmp(argv[1], "-l") == 0) {
    for (int i = 0; i < ncases; i++) printf("%s\n", cases[i].name);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "--no-fork") == 0) {
    for (int i = 0; i < ncases; i++)
      if (strcmp(argv[2], cases[i].name) == 0) {
        case_current = &cases[i];
        int rc = cases[i].fn();
        bool ok = (rc == 0 || rc == CASE_SKIPPED) && !atomic_load(&failures);
        printf("%s  %s\n", ok ? (rc ? "SKIP" : "PASS") : "FAIL", cases[i].name);
        return ok ? 0 : 1;
      }
    fprintf(stderr, "no such case (%s -l lists them)\n", prog);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  int run = 0, passed = 0, skipped = 0;
  double t0 = now_s();
  for (int i = 0; i < ncases; i++) {
    bool wanted = argc == 1;
    for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], cases[i].name) == 0;
    if (!wanted) continue;
    run++;
    int r = run_case(&cases[i]);
    passed += r > 0;
    skipped += r < 0;
  }
  if (!run) {
    fprintf(stderr, "no such case (%s -l lists them)\n", prog);
    return 2;
  }
  printf("%d of %d cases passed, %d skipped (%.1f s)\n", passed, run, skipped, now_s() - t0);
  if (passed + skipped < run) return 1;
  return passed ? 0 : CASE_SKIPPED;
}

#endif
