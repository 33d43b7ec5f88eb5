/* lock.c - the per-thread lock counts (lock.h). */
#include "lock.h"

__thread unsigned lock_depth __attribute__((tls_model("initial-exec")));
__thread uint32_t lock_ranks __attribute__((tls_model("initial-exec")));

void lock_fork_child(void) {
  lock_depth = 0;
  lock_ranks = 0;
}
