/* link_common.h - what the tests in tests/link/ share, on top of testlib.h
 * (CHECK, failf, info, status_kib, map_count, rnd, ...).
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
 * _GNU_SOURCE first. A program ends with `return checks_result(NAME);`.
 */
#ifndef STRATA_LINK_COMMON_H
#define STRATA_LINK_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>

#ifdef STRATA_LINKED
#include "strata.h"
#endif
#include "../testlib.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Print a failure and end the program at once, failed (for setup errors). */
__attribute__((format(printf, 1, 2), noreturn, unused))
static void link_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tl_vsay("    FATAL: ", fmt, ap);
  va_end(ap);
  give_up();
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
  info("%s: %s; malloc from %s", name, mode, m);
}

/* Keep a pointer alive for the optimiser (forbids eliding new/delete or
 * malloc/free pairs) at no cost. */
#define LINK_ESCAPE(p) __asm__ volatile("" : : "g"(p) : "memory")

#ifdef __cplusplus
}
#endif
#endif /* STRATA_LINK_COMMON_H */
