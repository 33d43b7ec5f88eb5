/* test_dlopen_loop.c - load and unload a plug-in that allocates, 200 times.
 *
 * usage: test_dlopen_loop PATH/TO/dl_module.so [ITERATIONS]
 *
 * dl_module.so (dl_module.cc) allocates from 1 byte to 24 MiB in a C
 * constructor and in a C++ static object, and frees everything in the
 * matching destructors, which run at dlclose. Each iteration:
 *   dlopen -> module_check (contents intact, every block Strata's) ->
 *   dlclose -> both destructors ran, found no damage, and the module is
 *   really unloaded (dlopen with RTLD_NOLOAD returns NULL).
 * Afterwards the resident memory and the mapping count must not have grown
 * with the iterations: what the module freed must be reused or returned.
 *
 * Built linked with libstrata.so (STRATA_LINKED) and run plain and with
 * LD_PRELOAD (see meson.build).
 */
#include "link_common.h"

#include "dl_module.h"

int main(int argc, char **argv) {
  link_setup("test_dlopen_loop");
  if (argc < 2) link_die("usage: %s PATH/TO/dl_module.so [ITERATIONS]", argv[0]);
  const char *path = argv[1];
  int iterations = argc > 2 ? atoi(argv[2]) : 200;

  long rss_warm = 0, vm_warm = 0, maps_warm = 0;
  for (int it = 0; it < iterations; it++) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) link_die("dlopen(%s): %s", path, dlerror());

    /* dlsym returns void *; copy it into the function pointer. */
    int (*check)(link_owns_fn);
    void (*set_report)(struct module_report *);
    void *s1 = dlsym(h, "module_check"), *s2 = dlsym(h, "module_set_report");
    if (!s1 || !s2) link_die("module symbols missing: %s", dlerror());
    memcpy(&check, &s1, sizeof s1);
    memcpy(&set_report, &s2, sizeof s2);

    int errors = check(link_owns_ptr);
    CHECK(errors == 0, "iteration %d: module_check found %d problem(s)", it, errors);

    struct module_report report = {0, 0, 0};
    set_report(&report);
    CHECK(dlclose(h) == 0, "iteration %d: dlclose: %s", it, dlerror());
    CHECK(report.c_dtor_runs == 1 && report.cxx_dtor_runs == 1,
          "iteration %d: destructors ran %d (C) and %d (C++) times, expected 1 and 1", it,
          report.c_dtor_runs, report.cxx_dtor_runs);
    CHECK(report.errors == 0, "iteration %d: the destructors found %d damaged block(s)", it,
          report.errors);
    /* A module still mapped would not run its constructors again. */
    void *again = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    CHECK(again == NULL, "iteration %d: the module is still loaded after dlclose", it);
    if (again) dlclose(again);

    if (failures > 20) link_die("too many failures, stopping");
    if (it == 4) {   /* after a few rounds every tier has been warmed up */
      rss_warm = status_kib("VmRSS:");
      vm_warm = status_kib("VmSize:");
      maps_warm = map_count();
    }
  }

  long rss_end = status_kib("VmRSS:"), vm_end = status_kib("VmSize:");
  long maps_end = map_count();
  info("%d iterations; after iteration 5 -> at the end: RSS %ld -> %ld KiB, "
       "address space %ld -> %ld KiB, mappings %ld -> %ld",
       iterations, rss_warm, rss_end, vm_warm, vm_end, maps_warm, maps_end);
  if (iterations > 5) {
    /* One load holds about 70 MiB of address space (only sampled pages are
     * touched, so a leak shows in VmSize more than in VmRSS); keeping even
     * one load's worth per iteration would add gigabytes. Allow 64 MiB
     * resident, 256 MiB of address space and 50 mappings of slack. */
    CHECK(rss_end - rss_warm < 64 * 1024, "resident memory grew by %ld KiB", rss_end - rss_warm);
    CHECK(vm_end - vm_warm < 256 * 1024, "address space grew by %ld KiB", vm_end - vm_warm);
    CHECK(maps_end - maps_warm < 50, "mappings grew by %ld", maps_end - maps_warm);
  }
  return checks_result("test_dlopen_loop");
}
