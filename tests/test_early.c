/* test_early.c - the standard names, from the first call of the process.
 *
 * Linked with the shared library when it exports the standard names. A
 * constructor of priority 101 (the earliest a program can have) allocates
 * before main; the C library allocates for us inside stdio, printf, strdup,
 * asprintf, open_memstream, getline, fopen and pthread_create; a destructor
 * allocates after main. Every block the C library hands us must be Strata's
 * (strata_owns) and free() must take it back.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>

#include "strata.h"
#include "testlib.h"

/* Results of the constructor, checked in main. */
static void *ctor_block;
static size_t ctor_usable;
static int ctor_ran, ctor_owned, ctor_calloc_zero, ctor_realloc_ok, ctor_memalign_ok;
static char *ctor_str;

__attribute__((constructor(101))) static void early(void) {
  ctor_ran = 1;
  void *p = malloc(hide(100));
  ctor_owned = p && strata_owns(p);
  free(p);
  unsigned char *c = calloc(hide(300), 1);
  ctor_calloc_zero = c != NULL;
  for (int i = 0; c && i < 300; i++)
    if (c[i]) ctor_calloc_zero = 0;
  void *r = realloc(c, hide(100000));
  ctor_realloc_ok = r && strata_owns(r);
  free(r);
  void *a = NULL;
  ctor_memalign_ok = posix_memalign(&a, 4096, 5000) == 0 && ((uintptr_t)a & 4095) == 0 &&
                     strata_owns(a);
  free(a);
  /* Kept until main. */
  ctor_block = malloc(hide(40000));
  if (ctor_block) {
    memset(ctor_block, 0x42, 40000);
    ctor_usable = malloc_usable_size(ctor_block);
  }
  char buf[64];
  snprintf(buf, sizeof buf, "constructor %d", 101);
  ctor_str = strdup(buf);
}

__attribute__((destructor)) static void late(void) {
  /* After main returned: still usable. */
  void *p = malloc(hide(1000));
  if (!p || !strata_owns(p)) {
    fprintf(stderr, "test_early: malloc in a destructor failed\n");
    _exit(3);
  }
  free(p);
}

static void *thread_fn(void *arg) {
  (void)arg;
  char *s = NULL;
  if (asprintf(&s, "thread %ld", (long)getpid()) < 0) return (void *)1;
  if (!strata_owns(s)) return (void *)2;
  free(s);
  /* Returned to main, which frees it (a remote free). */
  void *p = malloc(hide(5000));
  if (!p || !strata_owns(p)) return (void *)3;
  memset(p, 7, 5000);
  return p;
}

int main(void) {
  CHECK(ctor_ran, "the constructor did not run");
  CHECK(ctor_owned, "malloc in a constructor did not return a Strata block");
  CHECK(ctor_calloc_zero, "calloc in a constructor: not zeroed or NULL");
  CHECK(ctor_realloc_ok, "realloc in a constructor");
  CHECK(ctor_memalign_ok, "posix_memalign in a constructor");
  CHECK(ctor_block && strata_owns(ctor_block), "block from the constructor %p", ctor_block);
  if (ctor_block) {
    const unsigned char *b = ctor_block;
    int intact = 1;
    for (int i = 0; i < 40000; i++)
      if (b[i] != 0x42) intact = 0;
    CHECK(intact, "block from the constructor was overwritten");
    CHECK(ctor_usable >= 40000 && malloc_usable_size(ctor_block) == ctor_usable,
          "usable size %zu", ctor_usable);
    free(ctor_block);
  }
  CHECK(ctor_str && strata_owns(ctor_str) && strcmp(ctor_str, "constructor 101") == 0,
        "strdup in a constructor");
  free(ctor_str);

  /* stdio: the stdout buffer, printf with a wide field, FILE objects. */
  printf("test_early: printing through stdio\n");
  fflush(stdout);
  FILE *dn = fopen("/dev/null", "w");
  CHECK(dn != NULL, "fopen(/dev/null): %s", strerror(errno));
  if (dn) {
    CHECK(strata_owns(dn), "the FILE from fopen %p is not Strata's", (void *)dn);
    fprintf(dn, "%s %0*d %.*f %ls\n", "a wide field:", 100000, 1, 500, 1.0 / 3, L"wide");
    fclose(dn);
  }
  FILE *f = fopen("/proc/self/status", "r");
  CHECK(f != NULL, "fopen: %s", strerror(errno));
  if (f) {
    CHECK(strata_owns(f), "the FILE from fopen %p is not Strata's", (void *)f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    CHECK(n > 0 && line && strata_owns(line), "getline buffer %p", (void *)line);
    free(line);
    fclose(f);
  }
  char *ms = NULL;
  size_t mslen = 0;
  FILE *m = open_memstream(&ms, &mslen);
  CHECK(m != NULL, "open_memstream");
  if (m) {
    for (int i = 0; i < 10000; i++) fprintf(m, "%d,", i);
    fclose(m);
    CHECK(ms && strata_owns(ms) && mslen > 10000, "open_memstream buffer %p (%zu bytes)",
          (void *)ms, mslen);
    free(ms);
  }
  char *as = NULL;
  CHECK(asprintf(&as, "%s-%d", "asprintf", 42) > 0 && as && strata_owns(as), "asprintf");
  free(as);
  char *sd = strdup("strdup");
  CHECK(sd && strata_owns(sd), "strdup");
  free(sd);

  /* Threads: pthread_create allocates inside the C library; the threads
   * allocate through the standard names. */
  enum { T = 8 };
  pthread_t t[T];
  for (int i = 0; i < T; i++) CHECK(pthread_create(&t[i], NULL, thread_fn, NULL) == 0, "create");
  for (int i = 0; i < T; i++) {
    void *ret = NULL;
    pthread_join(t[i], &ret);
    CHECK((uintptr_t)ret > 16, "thread %d returned %p", i, ret);
    if ((uintptr_t)ret > 16) free(ret);
  }

  /* The strata_ names and the standard names are one allocator. */
  void *p = strata_malloc(100);
  free(p);
  p = malloc(hide(100));
  strata_free(p);

  return checks_result("test_early");
}
