// cg_new_delete.cc - instructions per `new int`/`delete` pair against
// `malloc(4)`/`free`, for callgrind (a measurement, not a test; meson does
// not build it).
//
// Strata defines operator new/delete itself (src/api.c); with another
// allocator libstdc++'s operators call malloc and free. This loop shows what
// each costs (2026-11-23: strata 78.6 per new/delete pair against 75.6 per
// malloc/free pair; 93.6 when libstdc++'s operators were used):
//
//   g++ -O2 -fno-builtin -o cg_new_delete bench/cg_new_delete.cc
//   for loop in cg_malloc_loop cg_new_loop; do
//     LD_PRELOAD=build/libstrata.so valgrind --tool=callgrind
//       --callgrind-out-file=/dev/null --toggle-collect=$loop
//       ./cg_new_delete 200000 2>&1 | grep -E 'Collected|pairs'
//   (one command line)
//   done
//   (Ir per pair = Collected / 200000; the loop adds ~3-4 instructions.)
//
// Only the function named in --toggle-collect is counted, inclusive of what
// it calls, so start-up and the warm-up below are excluded.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <new>

#define MEASURED __attribute__((noipa, used))
// Keep p alive for the optimiser (no elision of the pair) at no cost.
#define ESCAPE(p) __asm__ volatile("" : : "g"(p) : "memory")

extern "C" {
MEASURED void cg_malloc_loop(size_t n) {
  for (size_t i = 0; i < n; i++) {
    void *p = malloc(4);
    ESCAPE(p);
    free(p);
  }
}

MEASURED void cg_new_loop(size_t n) {
  for (size_t i = 0; i < n; i++) {
    int *p = new int;   // operator new(4)
    ESCAPE(p);
    delete p;           // sized: operator delete(p, 4)
  }
}

MEASURED void cg_warmup(size_t n) {
  for (size_t i = 0; i < n; i++) {
    void *p = malloc(4);
    ESCAPE(p);
    free(p);
    int *q = new int;
    ESCAPE(q);
    delete q;
  }
}
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoull(argv[1], nullptr, 10) : 200000;
  cg_warmup(1000);
  cg_malloc_loop(n);
  cg_new_loop(n);
  Dl_info a, b;
  void *m = dlsym(RTLD_DEFAULT, "malloc"), *nw = dlsym(RTLD_DEFAULT, "_Znwm");
  printf("pairs=%zu malloc from %s, operator new from %s\n", n,
         m && dladdr(m, &a) ? a.dli_fname : "?", nw && dladdr(nw, &b) ? b.dli_fname : "?");
  return 0;
}
