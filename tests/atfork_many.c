/* atfork_many.c - preloaded after Strata (test 'atfork_many'): its
 * constructor registers 48 fork handlers, so glibc's list of handlers is
 * past its first block when Strata initialises, and Strata's own
 * pthread_atfork allocates from inside its initialisation (with the init
 * lock held), which must be served. */
#include <pthread.h>

static void nothing(void) {}

__attribute__((constructor)) static void register_many(void) {
  for (int i = 0; i < 48; i++) pthread_atfork(nothing, nothing, nothing);
}
