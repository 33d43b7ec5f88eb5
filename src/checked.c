/* checked.c - checked mode (options junk and canary): small blocks then all
 * take the slow paths (span_checked_mode). A canary block keeps the
 * request's size in its last word and a canary word right after the
 * requested bytes, so a one-byte overrun is caught on free; junk fills new
 * blocks with 0xAA and freed ones with 0xDF. */
#include "checked.h"
#include "options.h"

#include <string.h>

#define JUNK_NEW  0xaa
#define JUNK_FREE 0xdf

static uint64_t checked_canary_of(const void *p) { return (uintptr_t)p * 0x9E3779B97F4A7C15ull ^ span_secret; }

void checked_canary_set(char *p, size_t req, size_t block) {
  uint64_t c = checked_canary_of(p);
  memcpy(p + req, &c, sizeof c);
  memcpy(p + block - sizeof(size_t), &req, sizeof req);
}

size_t checked_canary_check(const char *p, size_t block, const char *call) {
  size_t req;
  uint64_t c;
  memcpy(&req, p + block - sizeof req, sizeof req);
  if (req > block - CHECKED_CANARY_ROOM) fatal(call, p, "heap overflow: the end of the block was overwritten");
  memcpy(&c, p + req, sizeof c);
  if (c != checked_canary_of(p)) fatal(call, p, "heap overflow: the canary after the block was overwritten");
  return req;
}

void checked_junk_new(void *p, size_t size) { memset(p, JUNK_NEW, size); }
void checked_junk_freed(void *p, size_t size) { memset(p, JUNK_FREE, size); }

void checked_free_small(span_t *s, void *p, const char *call) {
  if (block_looks_free(p, span_free_key)) return;
  if (options.canary) checked_canary_check(p, s->block_size, call);
  if (options.junk) checked_junk_freed((char *)p + sizeof(block_t), s->block_size - sizeof(block_t));
}
