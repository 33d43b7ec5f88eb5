/* testlib.h - what the test programs share.
 *
 *   CHECK(cond, fmt, ...)   count and print a failure (the first 20), go on
 *   info(fmt, ...)          a line of information
 * Both write(2) from a stack buffer: cases print from signal handlers, forked
 * children and threads, and while malloc fails.
 *
 * Helpers: a clock, sleeps, a random stream, /proc readers (status fields,
 * mappings, the thread count, resident bytes), a waitpid with a deadline.
 *
 * cases_main() runs a table of cases, each in a forked child of its own
 * process group with an alarm() and a watchdog in the parent, so a case that
 * crashes, aborts or hangs fails on its own and the next one still runs:
 *
 *   PROG              run every case
 *   PROG NAME...      run the named cases only
 *   PROG -l           list the cases
 *   PROG --no-fork NAME   run one case in this process (for a debugger)
 *
 * and prints one line per case ("PASS  name   1.23 s" or "FAIL ... why"),
 * then "N of M cases passed"; its exit status is 0 when all passed, 77 when
 * every case that ran was skipped (skip()), 1 otherwise.
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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TL_UNUSED __attribute__((unused))

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
static atomic_int failures;
__attribute__((format(printf, 1, 2))) static TL_UNUSED void failf(const char *fmt, ...) {
  if (atomic_fetch_add(&failures, 1) >= 20) return;
  va_list ap;
  va_start(ap, fmt);
  tl_vsay("    FAIL: ", fmt, ap);
  va_end(ap);
}
#define CHECK(cond, ...) do { if (!(cond)) failf(__VA_ARGS__); } while (0)

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

/* xorshift64*: a deterministic random stream per case or thread. */
static TL_UNUSED uint64_t rnd(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1Dull;
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

/* ---- cases, each in a child with a watchdog ----------------------------------- */
typedef struct {
  const char *name;
  int (*fn)(void);      /* 0: passed (unless a CHECK failed), CASE_SKIPPED, else failed */
  int timeout;          /* seconds */
} case_t;

/* Optional: says more about a case that timed out (what it was stuck in). */
static void (*case_timeout_note)(char *buf, size_t len);

/* 1 passed, 0 failed, -1 skipped. */
static TL_UNUSED int run_case(const case_t *c) {
  fflush(stdout);
  atomic_store(&failures, 0);
  double t0 = now_s();
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
    int rc = c->fn();
    fflush(stdout);
    _exit(rc == CASE_SKIPPED && !atomic_load(&failures) ? CASE_SKIPPED
          : rc || atomic_load(&failures) ? 1 : 0);
  }
  setpgid(pid, pid);
  int st = wait_or_kill(pid, c->timeout + 5.0);
  kill(-pid, SIGKILL);  /* leftovers: helpers, hung grandchildren */
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
  if (argc > 1 && strcmp(argv[1], "-l") == 0) {
    for (int i = 0; i < ncases; i++) printf("%s\n", cases[i].name);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "--no-fork") == 0) {
    for (int i = 0; i < ncases; i++)
      if (strcmp(argv[2], cases[i].name) == 0) {
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
