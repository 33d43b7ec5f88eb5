/* decay.c - the purge driver (decay.h): the purge thread and the inline
 * passes of the slow paths, over the tiers' decay operations. */
#include "decay.h"
#include "options.h"
#include "os.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>

__thread uint8_t decay_polls __attribute__((tls_model("initial-exec")));
static const tier_t *const *decay_tiers;
static unsigned decay_ntiers;

void decay_init(const tier_t *const *tiers, unsigned n) {
  decay_tiers = tiers;
  decay_ntiers = n;
}

bool decay_run(uint32_t now) {
  ASSERT(decay_tiers != NULL && lock_none_but_init());
  bool younger = false;
  for (unsigned i = 0; i < decay_ntiers; i++)
    if (decay_tiers[i]->decay) decay_tiers[i]->decay(now, options.decay_ms, &younger);
  tiers_check(decay_tiers, decay_ntiers);
  return younger;
}

/* Wake up every half decay period while something is pending; sleep when
 * everything free has been returned; end once the program is down to one
 * thread (backlog_sleep). */
static void *decay_main(void *arg) {
  (void)arg;
  prctl(PR_SET_NAME, "strata-purge", 0, 0, 0);
  uint32_t tick = options.decay_ms / 2 < 10 ? 10 : options.decay_ms / 2;
  for (;;) {
    os_sleep_ms(tick);
    backlog_pass_begin();
    if (decay_run(os_now_ms())) continue;
    if (!backlog_sleep()) return NULL;
  }
}

/* The thread blocks every signal: they are the program's, not ours. */
static void decay_start(void) {
  if (!backlog_start_claim()) return;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * KiB);
  pthread_t t;
  bool ok = pthread_create(&t, &attr, decay_main, NULL) == 0;
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  backlog_start_done(ok);
}

void decay_poll_slow(bool may_start) {
  if (may_start) {
    atomic_store_relaxed(&backlog_start_due, false);   /* sampled polls still look */
    if (backlog_start_wanted()) {
      int saved = errno;                /* pthread_create may fail with ENOMEM */
      decay_start();
      errno = saved;
    }
  }
  uint32_t now = os_now_ms();
  if (backlog_inline_due(now)) backlog_pass_end(decay_run(now));
}
