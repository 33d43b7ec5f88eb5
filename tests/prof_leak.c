/* prof_leak.c - a program with one leaking function, for prof_pprof.sh:
 * leak_here keeps 16 MiB in blocks of 200 bytes, churn allocates and frees
 * 64 MiB in blocks of 100, and main frees what leak_here kept in its first
 * half only. */
#include <stdlib.h>
#include <string.h>

void *volatile sink;

__attribute__((noinline)) void *leak_here(size_t n) {
  void *p = malloc(n);
  memset(p, 1, n);
  return p;
}

__attribute__((noinline)) void churn(size_t n) {
  void *p = malloc(n);
  memset(p, 2, n);
  sink = p;
  free(p);
}

int main(void) {
  enum { N = (16 << 20) / 200 };
  for (int i = 0; i < N; i++) {
    sink = leak_here(200);
    for (int k = 0; k < 4; k++) churn(100);
  }
  return 0;
}
