/* test_addrspace.c - Strata under a tight address-space limit (RLIMIT_AS).
 *
 * This program is not linked with Strata: it runs itself as a probe, once
 * under glibc's malloc and once with Strata preloaded, and compares:
 *   - the address space a program takes for its first malloc;
 *   - how many blocks of a size each serves with a few MiB of headroom
 *     (Strata must serve at least as many: each tier falls back to what
 *     fits: a short segment, a run of pages instead of an arena, a mapping
 *     of the block's own size);
 *   - that each tier works again once the limit is raised.
 *
 *   test_addrspace LIBSTRATA.so [-l | NAME... | --no-fork NAME]   (testlib.h)
 *   test_addrspace --probe ...     (what the cases run)
 */
#define _GNU_SOURCE
#include <sys/resource.h>

#include "testlib.h"

static char self_exe[4096];
static const char *libstrata;

/* ---- the probe: runs under the allocator being measured --------------------------- */
static long vm_kib(void) { return status_kib("VmSize:"); }

static void limit_headroom(long kib) {
  struct rlimit rl;
  getrlimit(RLIMIT_AS, &rl);
  rl.rlim_cur = (rlim_t)(vm_kib() + kib) * 1024;
  if (setrlimit(RLIMIT_AS, &rl) != 0) { printf("setrlimit: %s\n", strerror(errno)); exit(3); }
}

static void limit_lift(void) {
  struct rlimit rl;
  getrlimit(RLIMIT_AS, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_AS, &rl);
}

enum { MAXBLOCKS = 200000 };
static void *blocks[MAXBLOCKS];

/* Blocks of `size` served with `kib` KiB of headroom, each written at both
 * ends (calloc'd ones checked for zero); frees them; prints "served N". */
static int probe_serve(size_t size, long kib, bool zero) {
  free(malloc(100));                  /* the allocator's start is not counted */
  limit_headroom(kib);
  int n = 0;
  while (n < MAXBLOCKS) {
    unsigned char *p = zero ? calloc(1, size) : malloc(size);
    if (!p) {
      if (errno != ENOMEM) { printf("a failed malloc left errno %d\n", errno); return 1; }
      break;
    }
    if (zero && (p[0] || p[size / 2] || p[size - 1])) { printf("calloc'd block not zero\n"); return 1; }
    p[0] = p[size - 1] = 0x5a;
    blocks[n++] = p;
  }
  for (int i = 0; i < n; i++) free(blocks[i]);
  printf("served %d\n", n);
  return 0;
}

/* Exhausts each tier under a limit, the biggest blocks first, then lifts
 * the limit: every tier serves again. */
static int probe_recover(void) {
  static const size_t sizes[] = {40 * MiB, 3 * MiB, 64 * KiB, 20000, 100};
  free(malloc(100));
  limit_headroom(8 * 1024);
  int n = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    int before = n;
    while (n < MAXBLOCKS && (blocks[n] = malloc(sizes[i]))) ((char *)blocks[n++])[0] = 1;
    printf("under the limit: %d blocks of %zu\n", n - before, sizes[i]);
  }
  limit_lift();
  int bad = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    void *p = malloc(sizes[i]);
    if (!p) { printf("malloc(%zu) still fails once the limit is lifted\n", sizes[i]); bad++; continue; }
    memset(p, 1, sizes[i]);
    free(p);
  }
  for (int i = 0; i < n; i++) free(blocks[i]);
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {     /* after the frees too */
    void *p = malloc(sizes[i]);
    if (!p) { printf("malloc(%zu) fails after everything was freed\n", sizes[i]); bad++; }
    free(p);
  }
  printf("recovered %d\n", bad == 0);
  return 0;
}

static int probe(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[2], "start") == 0) {
    free(malloc(100));
    printf("vm %ld\n", vm_kib());
    return 0;
  }
  if (argc >= 6 && strcmp(argv[2], "serve") == 0)
    return probe_serve(strtoul(argv[3], NULL, 0), atol(argv[4]), atoi(argv[5]));
  if (argc >= 3 && strcmp(argv[2], "recover") == 0) return probe_recover();
  return 2;
}

/* ---- the cases: run the probe under each allocator --------------------------------- */
typedef struct {
  bool strata;
  const char *const *args;
} probe_run_t;
static void exec_probe(void *arg) {
  const probe_run_t *r = arg;
  if (r->strata) setenv("LD_PRELOAD", libstrata, 1);
  else unsetenv("LD_PRELOAD");
  const char *argv[8] = {self_exe, "--probe"};
  for (int i = 0; r->args[i] && i < 5; i++) argv[2 + i] = r->args[i];
  execv(self_exe, (char *const *)argv);
  _exit(127);
}

/* Runs the probe (with Strata preloaded when `strata`); its output in out,
 * false when it did not exit 0. */
static bool run_probe(bool strata, char *out, size_t cap, const char *const *args) {
  probe_run_t r = {strata, args};
  int st = run_child(exec_probe, &r, out, cap, NULL, 0, 60);
  if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
    info("%s probe %s %s: status %d; it said: %s", strata ? "strata" : "glibc", args[0], args[1] ? args[1] : "",
         st, out);
    return false;
  }
  return true;
}

static long field(const char *out, const char *key) {
  const char *s = strstr(out, key);
  return s ? atol(s + strlen(key)) : -1;
}

/* The address space of a program's first malloc: at most 2 MiB more than
 * under glibc (the segment map takes a few leaves of 64 KiB, the first
 * segment of the break heap starts short). */
static int case_start_cost(void) {
  if (getenv("STRATA_TEST_SANITIZED"))
    return skip("the library is built with a sanitizer, whose runtime maps its own memory");
  char g[256], s[256];
  const char *args[] = {"start", NULL};
  if (!run_probe(false, g, sizeof g, args) || !run_probe(true, s, sizeof s, args)) return 1;
  long vg = field(g, "vm "), vs = field(s, "vm ");
  info("VmSize after the first malloc: glibc %ld KiB, strata %ld KiB", vg, vs);
  CHECK(vs - vg <= 2048, "Strata takes %ld KiB more address space at start than glibc", vs - vg);
  return 0;
}

/* Strata serves at least what glibc serves under the same limit, each tier. */
static int case_serves_as_glibc(void) {
  static const struct { size_t size; long kib; int zero; } runs[] = {
    {16, 2048, 0}, {1000, 2048, 0}, {20000, 2048, 1},        /* small */
    {64 * KiB, 2048, 0}, {200000, 2048, 1}, {1 * MiB, 4096, 0},   /* large */
    {20 * MiB, 65536, 0}, {20 * MiB, 65536, 1},              /* huge */
  };
  for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
    char size[32], kib[32], zero[4], g[256], s[256];
    snprintf(size, sizeof size, "%zu", runs[i].size);
    snprintf(kib, sizeof kib, "%ld", runs[i].kib);
    snprintf(zero, sizeof zero, "%d", runs[i].zero);
    const char *args[] = {"serve", size, kib, zero, NULL};
    if (!run_probe(false, g, sizeof g, args)) continue;
    if (!run_probe(true, s, sizeof s, args)) { failf("the strata probe failed (%s B)", size); continue; }
    long ng = field(g, "served "), ns = field(s, "served ");
    info("%s of %zu B with %ld KiB of headroom: glibc %ld, strata %ld",
         runs[i].zero ? "calloc" : "malloc", runs[i].size, runs[i].kib, ng, ns);
    CHECK(ns >= ng, "%s(%zu) with %ld KiB of headroom: strata served %ld blocks, glibc %ld",
          runs[i].zero ? "calloc" : "malloc", runs[i].size, runs[i].kib, ns, ng);
  }
  return 0;
}

static int case_tiers_recover(void) {
  char s[1024];
  const char *args[] = {"recover", NULL};
  if (!run_probe(true, s, sizeof s, args)) return 1;
  long recovered = field(s, "recovered ");
  for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) info("%s", line);
  CHECK(recovered == 1, "a tier did not work again once the limit was lifted");
  return 0;
}

int main(int argc, char **argv) {
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n > 0) self_exe[n] = 0;
  if (argc > 1 && strcmp(argv[1], "--probe") == 0) return probe(argc, argv);
  if (argc < 2) {
    fprintf(stderr, "usage: %s LIBSTRATA.so [cases]\n", argv[0]);
    return 2;
  }
  libstrata = argv[1];
  static const case_t cases[] = {
    {"start-cost", case_start_cost, 30},
    {"serves-as-glibc", case_serves_as_glibc, 120},
    {"tiers-recover", case_tiers_recover, 60},
  };
  argv[1] = argv[0];
  return cases_main(argc - 1, argv + 1, cases, sizeof cases / sizeof cases[0]);
}
