/* Model of a small program's fixed cost: the peak RSS of a process that
 * mallocs once, writes the block and exits (issue 18: the small-program
 * rows of mimalloc-bench, espresso, cfrac and glibc-simple, are dominated
 * by what an allocator costs before it serves anything: its own code and
 * data pages, its first spans and metadata).
 *
 * Its time is a process's start, not an allocator's work: the row is for
 * the peak-RSS table. THREADS must be 1; SCALE is ignored.
 */
#include "model.h"

int main(int argc, char **argv)
{
  model_args a = model_parse(argc, argv, "start", 1);
  double t0 = model_now();
  char *p = model_check(malloc(100), 100);
  model_touch(p, 100, 1);
  double t1 = model_now();
  model_report(&a, t1 - t0, 1);
  free(p);
  return 0;
}
