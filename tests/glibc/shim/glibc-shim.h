/* Force-included (gcc -include) when building glibc's malloc tests and the
   parts of glibc's support/ library they need OUTSIDE glibc's source tree,
   against the installed glibc.  It supplies the few internal macros that
   glibc's build normally provides via config.h / libc-symbols.h.
   This file is Strata's own code, not glibc's.  */
#ifndef STRATA_GLIBC_SHIM_H
#define STRATA_GLIBC_SHIM_H

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Scale factor for the test driver's timeouts (glibc's config.h).  */
#ifndef TIMEOUTFACTOR
# define TIMEOUTFACTOR 1
#endif

/* We are never "inside" a glibc module.  */
#define MODULE_NAME nonlib
#define IS_IN(lib) 0

/* Symbol-visibility and aliasing macros from libc-symbols.h: no-ops.  */
#define libc_hidden_proto(name, ...)
#define libc_hidden_def(name)
#define libc_hidden_weak(name)
#define libc_hidden_ver(local, name)
#define libc_hidden_data_def(name)
#define attribute_hidden
#define attribute_relro

/* Internal spellings of public functions.  */
#define __set_errno(val) (errno = (val))
#define __snprintf snprintf

/* glibc's __libc_fatal: print MSG and abort.  */
static inline __attribute__ ((noreturn, unused)) void
__libc_fatal (const char *msg)
{
  ssize_t r = write (STDERR_FILENO, msg, __builtin_strlen (msg));
  (void) r;
  abort ();
}

/* glibc's own sources are compiled with _LIBC; the installed headers
   refuse it (gnu/stubs.h), so a file that needs it asks for it with
   -DSTRATA_SHIM_LIBC and gets it here, after <features.h> has been read.  */
#ifdef STRATA_SHIM_LIBC
# define _LIBC 1
#endif

#endif
