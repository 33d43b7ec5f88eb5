/* Prints the path of the shared object that provides malloc and free in
   this process.  run.sh uses it to check that LD_PRELOAD really put
   Strata in place (a preload that fails only warns, and the tests would
   then silently run on glibc's malloc).  Strata's own file.  */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int
main (void)
{
  Dl_info m, f;
  void *pm = dlsym (RTLD_DEFAULT, "malloc");
  void *pf = dlsym (RTLD_DEFAULT, "free");
  if (pm == NULL || pf == NULL || !dladdr (pm, &m) || !dladdr (pf, &f))
    return 1;
  printf ("%s\n%s\n", m.dli_fname, f.dli_fname);
  return 0;
}
