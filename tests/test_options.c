/* test_options.c - STRATA_OPTIONS and glibc's extended API: each option
 * case re-runs this program with the variable set, in a child, and checks
 * its stderr (warnings, the listing, the statistics at exit) and what the
 * child reports; mallinfo2, malloc_info, mallopt and malloc_stats are
 * checked in-process. Uses the standard names. */
#define _GNU_SOURCE
#include <dirent.h>
#include <malloc.h>

#include "strata.h"
#include "testlib.h"

/* Was a block of `size` mapped on its own (huge), after one of that size
 * was freed? 1 or 0 (counts around the call: a sanitizer runtime may
 * allocate too). */
static unsigned long long huge_after_free(size_t size) {
  free(malloc(size));
  strata_stats_t st0, st;
  strata_stats(&st0);
  void *p = malloc(size);
  strata_stats(&st);
  free(p);
  return st.huge.nmalloc - st0.huge.nmalloc;
}

/* Child mode: allocate a little, a 2 MiB block and report which tier took
 * it (counts around the call: a sanitizer runtime may allocate too), and
 * which tier takes blocks of 20 and 40 MiB after one of that size was
 * freed (the huge threshold follows freed huge blocks up to 32 MiB, unless
 * an option fixed it). */
static int child(void) {
  strata_stats_t st0;
  strata_stats(&st0);
  void *mid = malloc((size_t)2 << 20);
  strata_stats_t st;
  strata_stats(&st);
  void *small = malloc(100);
  char *brk_before = sbrk(0);
  void *v[2000];
  for (int i = 0; i < 2000; i++) v[i] = malloc(1000);
  bool brk_moved = (char *)sbrk(0) != brk_before;
  for (int i = 0; i < 2000; i++) free(v[i]);
  free(small);
  free(mid);
  /* A few MiB freed: still one thread (the purge thread waits for 8 MiB). */
  int threads = 0;
  DIR *d = opendir("/proc/self/task");
  for (struct dirent *e; d && (e = readdir(d));) threads += e->d_name[0] != '.';
  if (d) closedir(d);
  printf("pid=%d\n", (int)getpid());
  printf("huge=%llu large=%llu brk_moved=%d threads=%d\n", st.huge.nmalloc - st0.huge.nmalloc,
         st.large.nmalloc - st0.large.nmalloc, brk_moved, threads);
  unsigned long long h20 = huge_after_free((size_t)20 << 20), h40 = huge_after_free((size_t)40 << 20);
  printf("huge_after_free 20m=%llu 40m=%llu\n", h20, h40);
  return 0;
}

/* Run this program in child mode with STRATA_OPTIONS=opts; its stdout in
 * out, its stderr in err. */
static void exec_child(void *opts) {
  setenv("STRATA_OPTIONS", opts, 1);
  execl("/proc/self/exe", "test_options", "child", (char *)NULL);
  _exit(127);
}
static char out[4096], err[8192];
static void run(const char *opts) {
  int status = run_child(exec_child, (void *)opts, out, sizeof out, err, sizeof err, 60);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "STRATA_OPTIONS=%s: child status %d",
        opts, status);
}

static int case_defaults(void) {
  run("");
  CHECK(strstr(out, "huge=0 large=1"), "defaults: a 2 MiB block should be large: %s", out);
  CHECK(strstr(out, "threads=1"), "defaults: a small program got a purge thread: %s", out);
  CHECK(!strstr(err, "strata"), "defaults: unexpected stderr: %s", err);
  CHECK(strstr(out, "huge_after_free 20m=0 40m=1"),
        "defaults: after a free, 20 MiB should come from the arenas and 40 MiB stay huge: %s", out);
  return 0;
}

static int case_huge_fixed(void) {
  run("huge=16m");
  CHECK(strstr(out, "huge_after_free 20m=1 40m=1"), "huge=16m: the threshold moved after a free: %s", out);
  run("huge=1m");
  CHECK(strstr(out, "huge=1 large=0"), "huge=1m: a 2 MiB block should be huge: %s", out);
  return 0;
}

static int case_sbrk_off(void) {
  run("sbrk=0");
  CHECK(strstr(out, "brk_moved=0"), "sbrk=0: the break moved: %s", out);
  return 0;
}

static int case_unknown_key(void) {
  run("bogus=1,huge=1m");
  CHECK(strstr(err, "strata: STRATA_OPTIONS: unknown option 'bogus=1'; keys are huge, sbrk, decay, ") &&
        strstr(err, ", prof_leak; ignored\n"), "unknown key: no warning with the keys: %s", err);
  CHECK(strstr(out, "huge=1 large=0"), "unknown key: the next option was not applied: %s", out);
  return 0;
}

static int case_bad_values(void) {
  run("huge=12q,decay=-1,bg=2,stats=maybe");
  static const char *const want[] = {
    "strata: STRATA_OPTIONS: bad value 'huge=12q': bytes 32769 and up; keeping 16777216\n",
    "strata: STRATA_OPTIONS: bad value 'decay=-1': milliseconds 0-3600000; keeping 250\n",
    "strata: STRATA_OPTIONS: bad value 'bg=2': 1/0, yes/no, true/false or on/off; keeping 1\n",
    "strata: STRATA_OPTIONS: bad value 'stats=maybe': 1/0, yes/no, true/false, on/off or json; keeping 0\n",
  };
  for (unsigned i = 0; i < sizeof want / sizeof want[0]; i++)
    CHECK(strstr(err, want[i]), "bad values: no line '%.*s': %s", (int)strlen(want[i]) - 1, want[i], err);
  CHECK(strstr(out, "huge=0 large=1"), "bad value: the default huge threshold changed: %s", out);
  return 0;
}

/* Spaces around keys and values do not count; flags take 1/0, yes/no,
 * true/false and on/off in any case; an empty entry is nothing to warn of. */
static int case_spaces_and_words(void) {
  run(" huge = 1m , sbrk = Off ,bg=false,junk=TRUE, verbose= yes,canary=on , guard=no,,");
  CHECK(strstr(out, "huge=1 large=0") && strstr(out, "brk_moved=0"), "spaces: huge= or sbrk= not applied: %s", out);
  CHECK(strstr(err, " sbrk=0 ") && strstr(err, " bg=0 ") && strstr(err, " junk=1 ") &&
        strstr(err, " verbose=1 ") && strstr(err, " canary=1 ") && strstr(err, " guard=0 "),
        "flag words: the listing disagrees: %s", err);
  CHECK(!strstr(err, "unknown option") && !strstr(err, "bad value"), "spaces: a warning: %s", err);
  return 0;
}

/* The listing of every option goes on as many lines as it takes (a long
 * value), each starting with its prefix, none cut. */
static int case_listing_lines(void) {
  char opts[300] = "verbose=1,prof_out=";
  size_t n = strlen(opts);
  memset(opts + n, 'x', 200);
  opts[n + 200] = 0;
  run(opts);
  char want[260] = " prof_out=";
  memset(want + 10, 'x', 200);
  want[210] = 0;
  const char *value = strstr(err, want);
  CHECK(value && (value[210] == ' ' || value[210] == '\n'), "the listing cut prof_out's value: %s", err);
  CHECK(strstr(err, " prof_leak=0\n"),
        "the listing lost the option after a long value: %s", err);
  for (const char *l = err; *l; l = strchr(l, '\n') + 1) {
    CHECK(strncmp(l, "strata: options: ", 17) == 0, "a line of the listing without its prefix: %.80s", l);
    if (!strchr(l, '\n')) break;
  }
  return 0;
}

/* The pid and program name of the process whose statistics these are. */
static void want_process(const char *what, const char *fmt) {
  int pid = 0;
  const char *p = strstr(out, "pid=");
  REQUIRE(p && sscanf(p, "pid=%d", &pid) == 1, "%s: the child did not say its pid: %s", what, out);
  char want[128];
  snprintf(want, sizeof want, fmt, pid);
  CHECK(strstr(err, want), "%s: no '%s' in: %.300s", what, want, err);
}

static int case_stats_at_exit(void) {
  run("stats=1,verbose=1,decay=0,bg=0,purge=free");
  CHECK(strstr(err, "strata statistics") && strstr(err, "  small "), "stats=1: no table at exit: %s", err);
  want_process("stats=1", "strata statistics: pid %d, program test_options\n");
  return 0;
}

/* stats=json: the statistics at exit are JSON (Python reads them) that
 * name the child, with the options it ran with. */
static int case_stats_json_at_exit(void) {
  run("stats=json,decay=7");
  want_process("stats=json", "{\"pid\": %d, \"program\": \"test_options\",");
  const char *json = strstr(err, "{\"pid\"");
  REQUIRE(json, "stats=json: no JSON at exit: %s", err);
  static const char check[] =
    "import json, sys\n"
    "d = json.load(sys.stdin)\n"
    "assert d['program'] == 'test_options', d['program']\n"
    "assert d['options']['stats'] == 'json' and d['options']['decay'] == 7, d['options']\n"
    "assert d['allocated'] == sum(d[t]['allocated'] for t in ('small', 'large', 'huge'))\n"
    "assert d['large']['nmalloc'] >= 1 and len(d['classes']) == int(sys.argv[1])\n"
    "print('ok')\n";
  char n[16], said[64];
  snprintf(n, sizeof n, "%d", STRATA_CLASSES);
  int status = run_python(check, n, json, said, sizeof said);
  CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && strcmp(said, "ok\n") == 0,
        "stats=json: Python rejects the JSON at exit (status %d):\n%s", status, json);
  return 0;
}

/* A README default as the listing prints it: sizes with a k/m/g suffix in
 * bytes, anything else as written. */
static void readme_value(const char *v, char *to, size_t cap) {
  char *end;
  unsigned long long n = strtoull(v, &end, 10);
  int shift = *end == 'k' ? 10 : *end == 'm' ? 20 : *end == 'g' ? 30 : -1;
  if (end != v && shift >= 0 && end[1] == 0) snprintf(to, cap, "%llu", n << shift);
  else snprintf(to, cap, "%s", v);
}

/* What the library accepts for a key, as its warning for a bad value
 * (the empty value, which no option takes) says it. */
static bool limits_of(const char *key, char *to, size_t cap) {
  char head[96];
  snprintf(head, sizeof head, "bad value '%s=': ", key);
  const char *s = strstr(err, head);
  if (!s) return false;
  s += strlen(head);
  const char *end = strstr(s, "; keeping ");
  if (!end || memchr(s, '\n', (size_t)(end - s))) return false;
  snprintf(to, cap, "%.*s", (int)(end - s), s);
  return true;
}

/* The README's options table (STRATA_README names it) has a row for each
 * key the library knows, with the default the library prints under
 * verbose=1 (the only key set) and the values it accepts, and no other
 * row. */
static int case_readme_table(void) {
  const char *path = getenv("STRATA_README");
  if (!path) return skip("STRATA_README is not set (meson sets it)");
  FILE *f = fopen(path, "r");
  REQUIRE(f, "cannot open %s", path);
  run("verbose=1");
  static char printed[2048];
  size_t plen = 0;
  for (const char *l = err; (l = strstr(l, "strata: options:")); l += 16)   /* all its lines */
    plen += (size_t)snprintf(printed + plen, sizeof printed - plen, "%.*s", (int)strcspn(l + 16, "\n"), l + 16);
  REQUIRE(plen, "verbose=1 printed no options: %s", err);
  snprintf(printed + plen, sizeof printed - plen, " ");
  char line[4096];
  static char keys[64][64];
  static char limits[64][256];
  bool in_section = false;
  int rows = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "## ", 3) == 0) in_section = strncmp(line, "## Options", 10) == 0;
    char key[64], def[64], want[96], value[80], cell[256];
    if (!in_section || sscanf(line, "| `%63[^`]` | `%63[^`]` | %255[^|]|", key, def, cell) != 3) continue;
    REQUIRE(rows < 64, "more than 64 rows in the README's table");
    readme_value(def, value, sizeof value);
    if (strcmp(key, "verbose") == 0) snprintf(value, sizeof value, "1");   /* set to list */
    snprintf(want, sizeof want, " %s=%s ", key, value);
    CHECK(strstr(printed, want), "README: `%s` defaults to `%s`, the library prints:%s", key, def, printed);
    snprintf(keys[rows], sizeof keys[rows], "%s", key);
    snprintf(limits[rows], sizeof limits[rows], "%.*s", (int)strcspn(cell, "|") - 1, cell);  /* less the space */
    rows++;
  }
  fclose(f);
  int keys_printed = 0;
  for (const char *q = printed; (q = strchr(q, '=')); q++) keys_printed++;
  CHECK(rows == keys_printed, "the README's table has %d rows, the library %d options:%s", rows, keys_printed, printed);

  char bad[2048] = "";
  for (int r = 0; r < rows; r++) snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "%s%s=", r ? "," : "", keys[r]);
  run(bad);
  for (int r = 0; r < rows; r++) {
    char said[256];
    CHECK(limits_of(keys[r], said, sizeof said), "`%s=` (empty) got no warning with its limits: %s", keys[r], err);
    CHECK(strcmp(said, limits[r]) == 0, "README: `%s` takes '%s', the library says '%s'", keys[r], limits[r], said);
  }
  return 0;
}

static int case_glibc_api(void) {
  enum { N = 1000 };
  static void *v[N];
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < N; i++) v[i] = malloc(1000);
  void *huge = malloc((size_t)40 << 20);
  struct mallinfo2 mi = mallinfo2();
  CHECK(mi.uordblks - before.uordblks == (size_t)N * 1024, "mallinfo2 uordblks grew by %zu, want %d",
        mi.uordblks - before.uordblks, N * 1024);
  CHECK(mi.hblks == before.hblks + 1 && mi.hblkhd >= ((size_t)40 << 20), "mallinfo2 huge: %zu blocks, %zu bytes",
        mi.hblks, mi.hblkhd);
  CHECK(mi.arena >= mi.uordblks && mi.fordblks == mi.arena - mi.uordblks, "mallinfo2 arena/fordblks inconsistent");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"   /* glibc deprecates it; programs call it */
  struct mallinfo old = mallinfo();
#pragma GCC diagnostic pop
  CHECK(old.uordblks == (int)mi.uordblks, "mallinfo differs from mallinfo2");

  char *xml = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&xml, &len);
  CHECK(malloc_info(0, f) == 0, "malloc_info failed");
  fclose(f);
  CHECK(xml && strstr(xml, "<malloc version=") && strstr(xml, "from=\"897\" to=\"1024\""),
        "malloc_info: no size line for 1000-byte blocks: %.300s", xml ? xml : "(null)");
  free(xml);
  errno = 0;
  CHECK(malloc_info(1, stdout) == -1 && errno == EINVAL, "malloc_info(1) should fail with EINVAL");

  CHECK(mallopt(M_ARENA_MAX, 4) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 20) == 1, "mallopt refused a glibc parameter");
  CHECK(mallopt(12345, 1) == 0, "mallopt accepted an unknown parameter");
  CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1, "mallopt(M_MMAP_THRESHOLD) refused");
  strata_stats_t st;
  strata_stats(&st);
  unsigned long long huge_before = st.huge.nmalloc;
  void *two = malloc((size_t)2 << 20);              /* now above the threshold: huge */
  strata_stats(&st);
  CHECK(st.huge.nmalloc == huge_before + 1, "M_MMAP_THRESHOLD=1 MiB did not make 2 MiB huge");
  free(two);
  CHECK(huge_after_free((size_t)2 << 20) == 1, "M_MMAP_THRESHOLD=1 MiB moved after a free of 2 MiB");
  CHECK(mallopt(M_MMAP_THRESHOLD, 64 << 20) == 0, "M_MMAP_THRESHOLD above 32 MiB accepted");

  /* v[0] keeps its segment mapped, so the other spans become free runs that
   * only a purge gives back (an empty segment would be unmapped at once). */
  for (int i = 1; i < N; i++) free(v[i]);
  free(huge);
  CHECK(malloc_trim(0) == 1, "malloc_trim(0) returned nothing after 999 blocks were freed");
  free(v[0]);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) return child();
  static const case_t cases[] = {
    {"defaults", case_defaults, 120},
    {"huge-fixed", case_huge_fixed, 120},
    {"sbrk-off", case_sbrk_off, 120},
    {"unknown-key", case_unknown_key, 120},
    {"bad-values", case_bad_values, 120},
    {"spaces-and-words", case_spaces_and_words, 120},
    {"listing-lines", case_listing_lines, 120},
    {"stats-at-exit", case_stats_at_exit, 120},
    {"stats-json-at-exit", case_stats_json_at_exit, 120},
    {"readme-table", case_readme_table, 120},
    {"glibc-api", case_glibc_api, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
