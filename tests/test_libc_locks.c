/* test_libc_locks.c - the allocator and the C library's own locks.
 *
 * glibc calls malloc and free with some of its locks held, and takes some
 * of them around fork and pthread_create. Two patterns from glibc's malloc
 * tests, each under a watchdog (a hang is the failure):
 *   thread-exit  threads create and join short-lived threads in batches:
 *                glibc frees an exited thread's TLS with its thread-stack
 *                lock held, which pthread_create takes too, so a free must
 *                never start a thread (tst-malloc-thread-exit);
 *   fork-stdio   fork while other threads run getline (realloc with a
 *                stream locked) and fflush(NULL) (the stdio list lock held,
 *                waiting for a stream): fork's locks must nest in glibc's
 *                order (tst-malloc-fork-deadlock, glibc bug 19431).
 * Through the standard names: glibc's internal calls must reach Strata.
 *
 * usage: test_libc_locks [SECONDS] [-l | NAME... | --no-fork NAME]   (testlib.h)
 *   SECONDS: how long each check runs (2); a hang past SECONDS + 30 fails it.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "testlib.h"

static atomic_bool stop;
static unsigned seconds = 2;
static char path[64];             /* fork_stdio's file */

/* A hang: remove the file, then die by the alarm (the watchdog reports it). */
static void on_alarm(int sig) {
  if (path[0]) unlink(path);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* Run n threads of fn for `seconds`, then stop and join them. */
static void run(void *(*fn[])(void *), int n) {
  atomic_store(&stop, false);
  pthread_t t[16];
  for (int i = 0; i < n; i++)
    if (pthread_create(&t[i], NULL, fn[i], NULL)) abort();
  sleep(seconds);
  atomic_store(&stop, true);
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
}

/* ---- thread_exit ---------------------------------------------------------- */
static void *inner(void *arg) {
  void *volatile p = malloc(32);
  pthread_barrier_wait(arg);
  free(p);
  return NULL;
}

static void *outer(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    pthread_barrier_t b;
    pthread_t t[4];
    pthread_barrier_init(&b, NULL, 5);
    for (int i = 0; i < 4; i++)
      if (pthread_create(&t[i], NULL, inner, &b)) abort();
    pthread_barrier_wait(&b);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&b);
  }
  return NULL;
}

/* ---- fork_stdio ------------------------------------------------------------- */
static void *forker(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0 || waitpid(pid, NULL, 0) != pid) abort();
  }
  return NULL;
}

static void *reader(void *arg) {
  (void)arg;
  FILE *f = fopen(path, "r");
  if (!f) abort();
  while (!atomic_load(&stop)) {
    rewind(f);
    char *line = NULL;
    size_t n = 0;
    if (getline(&line, &n, f) < 0) abort();  /* grows the line with realloc */
    free(line);
  }
  fclose(f);
  return NULL;
}

static void *flusher(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) fflush(NULL);
  return NULL;
}

static int case_thread_exit(void) {
  void *(*exiting[])(void *) = {outer, outer};
  run(exiting, 2);
  return 0;
}

static int case_fork_stdio(void) {
  snprintf(path, sizeof path, "/tmp/strata_libc_locks.%d", (int)getpid());
  signal(SIGALRM, on_alarm);
  FILE *f = fopen(path, "w");
  if (!f) abort();
  for (int i = 0; i < 50000; i++) fputc('x', f);
  fputc('\n', f);
  fclose(f);
  void *(*forking[])(void *) = {forker, forker, forker, forker, reader, reader, reader,
                                reader, reader, reader, reader, reader, flusher};
  run(forking, 13);
  unlink(path);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && argv[1][0] >= '0' && argv[1][0] <= '9') {
    seconds = (unsigned)atoi(argv[1]);
    argv[1] = argv[0];
    argc--, argv++;
  }
  const case_t cases[] = {
    {"thread-exit", case_thread_exit, (int)seconds + 30},
    {"fork-stdio", case_fork_stdio, (int)seconds + 30},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
