/* install_prog.c - a client of the *installed* Strata, built by
 * test_install.sh twice: dynamically with `pkg-config --cflags --libs strata`
 * and statically (-static) with `pkg-config --static ...` (libstrata.a).
 *
 * Checks that malloc, free, calloc, realloc and the C library's own
 * allocations (strdup, stdio buffers) are Strata's (strata_owns), and in the
 * dynamic build that `malloc` resolves into the installed libstrata.so (its
 * path must start with argv[1], the install root).
 *
 * usage: install_prog dynamic|static [INSTALL_ROOT]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata.h>

#include "../testlib.h"   /* next to this file: test_install.sh compiles it in place */

int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "dynamic") && strcmp(argv[1], "static"))) {
    fprintf(stderr, "usage: %s dynamic|static [INSTALL_ROOT]\n", argv[0]);
    return 2;
  }
  int dynamic = !strcmp(argv[1], "dynamic");

  /* The malloc family, through the standard names. */
  void *p = malloc(hide(10));
  CHECK(p && strata_owns(p) == 1, "malloc(10) = %p is not Strata's", p);
  char *c = calloc(hide(100), 3);
  CHECK(c && strata_owns(c) == 1, "calloc = %p is not Strata's", (void *)c);
  for (int i = 0; c && i < 300; i++) CHECK(c[i] == 0, "calloc byte %d not zero", i);
  char *r = realloc(c, hide(200000));
  CHECK(r && strata_owns(r) == 1, "realloc = %p is not Strata's", (void *)r);
  free(r);
  free(p);

  /* Allocations made inside the C library must be Strata's as well (in the
   * static build this proves libc.a's malloc was not linked instead). */
  char *s = strdup("installed strata");
  CHECK(s && strata_owns(s) == 1, "strdup = %p is not Strata's", (void *)s);
  free(s);

  if (dynamic) {
    /* Which file provides malloc? dladdr on the symbol the program uses. */
    Dl_info dl;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    CHECK(sym && dladdr(sym, &dl) && dl.dli_fname, "dladdr(malloc) failed");
    if (sym && dladdr(sym, &dl) && dl.dli_fname) {
      char real[PATH_MAX], root[PATH_MAX];
      const char *file = realpath(dl.dli_fname, real) ? real : dl.dli_fname;
      info("dynamic: malloc is in %s", file);
      CHECK(strstr(file, "libstrata") != NULL, "malloc is in %s, not libstrata", file);
      if (argc > 2 && realpath(argv[2], root))
        CHECK(!strncmp(file, root, strlen(root)),
              "malloc comes from %s, not from the installed copy under %s", file, root);
    }
  } else {
    info("static: malloc(10) is Strata's (strata_owns = 1)");
  }
  return checks_result(dynamic ? "install_prog: dynamic" : "install_prog: static");
}
