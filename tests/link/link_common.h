/* link_common.h - small helpers shared by the tests in tests/link/.
 *
 * Most tests here are built twice from one source:
 *   - "linked":  the program is linked with libstrata.so (strata_shared_dep)
 *                and compiled with -DSTRATA_LINKED; it calls strata_owns
 *                directly.
 *   - "preload": the program links no allocator and is run with
 *                LD_PRELOAD=libstrata.so (set by tests/link/meson.build); it
 *                finds strata_owns with dlsym(RTLD_DEFAULT, ...).
 * link_setup() resolves strata_owns either way and checks that `malloc`
 * really is Strata's, so a test that is run without the preload fails
 * loudly instead of silently testing glibc.
 *
 * Usable from C and C++. Every helper is static: each test is one program.
 * Include it before any system header (it defines _GNU_SOURCE), or define
 * _GNU_SOURCE first.
 */
#ifndef STRATA_LINK_COMMON_H
#define STRATA_LINK_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef STRATA_LINKED
#include "strata.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The program's name, for messages; set by link_setup(). */
static const char *link_test_name = "link";
/* Number of failed checks; main returns non-zero when it is not 0. */
static int link_failures;

/* CHECK(cond, fmt, ...): report a failed condition with a message, count it,
 * and carry on (so one run shows every problem). */
#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      link_failures++;                                                       \
      fflush(stdout); /* keep the order of stdout and stderr in logs */      \
      fprintf(stderr, "%s: %s:%d: check failed: %s: ", link_test_name,       \
              __FILE__, __LINE__, #cond);                                    \
      fprintf(stderr, __VA_ARGS__);                                          \
      fputc('\n', stderr);                                                   \
    }                                                                        \
  } while (0)

/* Print a fatal message and exit 1 at once (for setup errors). */
__attribute__((format(printf, 1, 2), noreturn, unused))
static void link_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: FATAL: ", link_test_name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

typedef int (*link_owns_fn)(const void *);
static link_owns_fn link_owns_ptr;

/* strata_owns(p), through whichever route this build uses. */
__attribute__((unused)) static int link_owns(const void *p) {
  return link_owns_ptr(p);
}

/* Which shared object provides the symbol `name` in the global scope (the
 * one an ordinary call would reach); "?" when unknown. */
__attribute__((unused)) static const char *link_provider(const char *name) {
  Dl_info info;
  void *sym = dlsym(RTLD_DEFAULT, name);
  if (sym && dladdr(sym, &info) && info.dli_fname) return info.dli_fname;
  return "?";
}

/* Resolve strata_owns and check that malloc and free are Strata's.
 * Call first thing in main. */
__attribute__((unused)) static void link_setup(const char *name) {
  link_test_name = name;
#ifdef STRATA_LINKED
  link_owns_ptr = strata_owns;
  const char *mode = "linked with libstrata.so";
#else
  /* Converting a data pointer to a function pointer is what dlsym needs. */
  void *sym = dlsym(RTLD_DEFAULT, "strata_owns");
  if (!sym)
    link_die("strata_owns not found: this build expects LD_PRELOAD=libstrata.so "
             "(LD_PRELOAD=%s)", getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "unset");
  memcpy(&link_owns_ptr, &sym, sizeof sym);
  const char *mode = "LD_PRELOAD=libstrata.so";
#endif
  const char *m = link_provider("malloc"), *f = link_provider("free");
  if (!strstr(m, "libstrata") || !strstr(f, "libstrata"))
    link_die("malloc comes from %s and free from %s, not from libstrata.so", m, f);
  /* A real allocation must be Strata's too (catches a stale binding). */
  void *p = malloc(24);
  if (!p || !link_owns(p)) link_die("malloc(24) = %p is not a Strata block", p);
  free(p);
  printf("%s: %s; malloc from %s\n", name, mode, m);
}

/* A field of /proc/self/status in KiB (VmRSS, VmSize, VmHWM, ...); -1 when
 * it cannot be read. */
__attribute__((unused)) static long link_status_kib(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, field, n) && line[n] == ':') {
      v = strtol(line + n + 1, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

/* Number of lines of /proc/self/maps (one per mapping); -1 on error.
 * Reads with read(2)-sized chunks through stdio; the count is of '\n'. */
__attribute__((unused)) static long link_count_maps(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return -1;
  long lines = 0;
  int c;
  while ((c = getc(f)) != EOF)
    if (c == '\n') lines++;
  fclose(f);
  return lines;
}

/* A small, seeded, reproducible PRNG (xorshift64*). */
typedef struct { unsigned long long s; } link_rng;
__attribute__((unused)) static unsigned long long link_rand(link_rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 2685821657736338717ULL;
}

/* Keep a pointer alive for the optimiser (forbids eliding new/delete or
 * malloc/free pairs) at no cost. */
#define LINK_ESCAPE(p) __asm__ volatile("" : : "g"(p) : "memory")

#ifdef __cplusplus
}
#endif
#endif /* STRATA_LINK_COMMON_H */
