/* test_program_options.c - the program's own options: this program defines
 * strata_options (strata.h), with spaces, a flag word and an unknown key,
 * and re-runs itself without STRATA_OPTIONS and with it, checking the
 * listing that verbose=1 prints and the warnings, which name their source.
 * Built linked with the shared library, statically, and linking no
 * allocator for LD_PRELOAD with -rdynamic: in those the library reads the
 * string ("seen"); and for LD_PRELOAD without -rdynamic, where the
 * executable keeps the symbol to itself and only STRATA_OPTIONS counts
 * ("unseen"). The README's "Options" says the same. */
/* testlib.h first: its strata_ helpers would need the library, which the
 * LD_PRELOAD builds do not link; strata.h for the declaration only. */
#include "testlib.h"
#include "strata.h"

const char *strata_options = " decay = 1000 , junk=On,verbose=yes,bogus=1";

static char out[4096], err[8192];

static void exec_child(void *opts) {
  if (opts) setenv("STRATA_OPTIONS", opts, 1);
  else unsetenv("STRATA_OPTIONS");
  execl("/proc/self/exe", "test_program_options", "child", (char *)NULL);
  _exit(127);
}

static void run(const char *opts) {
  int status = run_child(exec_child, (void *)opts, out, sizeof out, err, sizeof err, 60);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "STRATA_OPTIONS=%s: child status %d",
        opts ? opts : "(unset)", status);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) {
    free(hide_ptr(malloc(100)));
    return 0;
  }
  REQUIRE(argc > 1 && (strcmp(argv[1], "seen") == 0 || strcmp(argv[1], "unseen") == 0),
          "usage: %s seen|unseen", argv[0]);
  bool seen = strcmp(argv[1], "seen") == 0;

  run(NULL);
  if (seen) {
    CHECK(strstr(err, "strata: strata_options: unknown option 'bogus=1'; keys are huge, "),
          "the program's bad entry: no warning naming strata_options: %s", err);
    CHECK(strstr(err, "strata: options:") && strstr(err, " decay=1000 ") && strstr(err, " junk=1 ") &&
          strstr(err, " verbose=1 "), "the program's options are not in the listing: %s", err);
  } else {
    CHECK(!strstr(err, "strata"), "under LD_PRELOAD without -rdynamic the string was read: %s", err);
  }

  /* The environment comes second: its decay wins, its bad junk keeps the
   * value before it, the program's (or the default). */
  run("decay = 20,junk=2,verbose=1");
  CHECK(strstr(err, " decay=20 "), "STRATA_OPTIONS did not override decay: %s", err);
  const char *kept = seen ? "strata: STRATA_OPTIONS: bad value 'junk=2': 1/0, yes/no, true/false or on/off; keeping 1\n"
                          : "strata: STRATA_OPTIONS: bad value 'junk=2': 1/0, yes/no, true/false or on/off; keeping 0\n";
  CHECK(strstr(err, kept), "no '%.*s': %s", (int)strlen(kept) - 1, kept, err);
  CHECK(strstr(err, seen ? " junk=1 " : " junk=0 "), "junk: the listing disagrees: %s", err);
  return checks_result(seen ? "program_options (seen)" : "program_options (unseen)");
}
