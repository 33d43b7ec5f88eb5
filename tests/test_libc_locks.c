/* test_libc_locks.c - the allocator and the C library's own locks.
 *
 * glibc calls malloc and free with some of its locks held, and takes some
 * of them around fork and pthread_create. Two patterns from glibc's malloc
 * tests, each under a watchdog (a hang is the failure):
 *   thread_exit  threads create and join short-lived threads in batches:
 *                glibc frees an exited thread's TLS with its thread-stack
 *                lock held, which pthread_create takes too, so a free must
 *                never start a thread (tst-malloc-thread-exit);
 *   fork_stdio   fork while other threads run getline (realloc with a
 *                stream locked) and fflush(NULL) (the stdio list lock held,
 *                waiting for a stream): fork's locks must nest in glibc's
 *                order (tst-malloc-fork-deadlock, glibc bug 19431).
 * Through the standard names: glibc's internal calls must reach Strata.
 *
 * usage: test_libc_locks [seconds per check]   (2)
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_bool stop;
static const char *check = "";
static char path[64];             /* fork_stdio's file */

static void on_alarm(int sig) {
  (void)sig;
  if (path[0]) unlink(path);
  const char *parts[] = {"test_libc_locks: FAIL: ", check, " hung (deadlock)\n"};
  for (int i = 0; i < 3; i++)
    if (write(2, parts[i], strlen(parts[i])) < 0) break;
  _exit(1);
}

/* Run n threads of fn for `seconds`, then stop and join them. */
static void run(const char *name, void *(*fn[])(void *), int n, unsigned seconds) {
  check = name;
  atomic_store(&stop, false);
  alarm(seconds + 30);
  pthread_t t[16];
  for (int i = 0; i < n; i++)
    if (pthread_create(&t[i], NULL, fn[i], NULL)) abort();
  sleep(seconds);
  atomic_store(&stop, true);
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
  alarm(0);
  printf("test_libc_locks: %s OK\n", name);
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

int main(int argc, char **argv) {
  unsigned seconds = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
  signal(SIGALRM, on_alarm);
  setvbuf(stdout, NULL, _IONBF, 0);

  void *(*exiting[])(void *) = {outer, outer};
  run("thread_exit", exiting, 2, seconds);

  snprintf(path, sizeof path, "/tmp/strata_libc_locks.%d", (int)getpid());
  FILE *f = fopen(path, "w");
  if (!f) abort();
  for (int i = 0; i < 50000; i++) fputc('x', f);
  fputc('\n', f);
  fclose(f);
  void *(*forking[])(void *) = {forker, forker, forker, forker, reader, reader, reader,
                                reader, reader, reader, reader, reader, flusher};
  run("fork_stdio", forking, 13, seconds);
  unlink(path);
  return 0;
}
