/* format.h - the file format of strata-trace, shared by the recorder
 * (record.c) and the reader (replay.c).
 *
 * A trace file is a header, then chunks, back to back until the end of the
 * file:
 *
 *   header  8 bytes "STRTRACE", then the version as one byte (TRACE_VERSION)
 *   chunk   varint thread, varint length, then `length` bytes of records
 *
 * A chunk holds records of one thread, in the order that thread made the
 * calls; a thread's chunks follow each other in the file in the same order.
 * Threads are numbered 0, 1, 2 ... in the order of their first recorded
 * call. Each record is
 *
 *   op      one byte, an enum trace_op
 *   dtime   varint: nanoseconds since the previous record of the chunk (the
 *           first record of a chunk: since the recording process started)
 *   in      zigzag varint, the block id the call takes minus the previous
 *           block id of the chunk (realloc, reallocarray, free,
 *           malloc_usable_size)
 *   size    varint, the size asked for (calloc and reallocarray: the product)
 *   align   varint, the alignment asked for (memalign, aligned_alloc,
 *           posix_memalign)
 *   out     zigzag varint, the block id the call returns minus the previous
 *           block id of the chunk (every call that allocates)
 *
 * with only the fields the operation has, in that order (trace_op_fields).
 * "The previous block id" is the last `in` or `out` of the chunk (0 at its
 * start). A varint is LEB128: 7 bits a byte, low bits first, the top bit set
 * on every byte but the last; zigzag maps 0, -1, 1, -2 ... to 0, 1, 2, 3 ...
 *
 * Block ids replace addresses: the recorder gives each block a new id when
 * a call returns it (1, 2, 3 ... across the process) and drops the id when
 * the block is freed, so replay needs no address. Id 0 is "no block": NULL,
 * a failed allocation, or a block allocated before recording started
 * (replay ignores a free of it). realloc returns a new id even when the
 * block stays in place; realloc(p, 0) that frees has out 0.
 */
#ifndef STRATA_TRACE_FORMAT_H
#define STRATA_TRACE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_MAGIC "STRTRACE"
#define TRACE_MAGIC_LEN 8
#define TRACE_VERSION 1

enum trace_op {
  OP_MALLOC,
  OP_CALLOC,
  OP_REALLOC,
  OP_FREE,
  OP_POSIX_MEMALIGN,
  OP_ALIGNED_ALLOC,
  OP_MEMALIGN,
  OP_VALLOC,
  OP_PVALLOC,
  OP_REALLOCARRAY,
  OP_USABLE_SIZE,
  OP_COUNT
};

enum trace_field { F_IN = 1, F_SIZE = 2, F_ALIGN = 4, F_OUT = 8 };

static const unsigned char trace_op_fields[OP_COUNT] = {
  [OP_MALLOC] = F_SIZE | F_OUT,
  [OP_CALLOC] = F_SIZE | F_OUT,
  [OP_REALLOC] = F_IN | F_SIZE | F_OUT,
  [OP_FREE] = F_IN,
  [OP_POSIX_MEMALIGN] = F_SIZE | F_ALIGN | F_OUT,
  [OP_ALIGNED_ALLOC] = F_SIZE | F_ALIGN | F_OUT,
  [OP_MEMALIGN] = F_SIZE | F_ALIGN | F_OUT,
  [OP_VALLOC] = F_SIZE | F_OUT,
  [OP_PVALLOC] = F_SIZE | F_OUT,
  [OP_REALLOCARRAY] = F_IN | F_SIZE | F_OUT,
  [OP_USABLE_SIZE] = F_IN,
};

static const char *const trace_op_names[OP_COUNT] = {
  [OP_MALLOC] = "malloc",
  [OP_CALLOC] = "calloc",
  [OP_REALLOC] = "realloc",
  [OP_FREE] = "free",
  [OP_POSIX_MEMALIGN] = "posix_memalign",
  [OP_ALIGNED_ALLOC] = "aligned_alloc",
  [OP_MEMALIGN] = "memalign",
  [OP_VALLOC] = "valloc",
  [OP_PVALLOC] = "pvalloc",
  [OP_REALLOCARRAY] = "reallocarray",
  [OP_USABLE_SIZE] = "malloc_usable_size",
};

/* The longest record: the op byte and five 64-bit varints. */
#define TRACE_RECORD_MAX (1 + 5 * 10)
/* The longest chunk header: two 64-bit varints. */
#define TRACE_CHUNK_HEADER_MAX (2 * 10)

static inline unsigned char *trace_put_varint(unsigned char *p, uint64_t v)
{
  while (v >= 0x80) {
    *p++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char)v;
  return p;
}

static inline uint64_t trace_zigzag(int64_t v)
{
  return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t trace_unzigzag(uint64_t v)
{
  return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Reads a varint at *p, before end; returns 0 when it runs past end. */
static inline int trace_get_varint(const unsigned char **p, const unsigned char *end,
                                   uint64_t *out)
{
  uint64_t v = 0;
  for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
    unsigned char b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 1;
    }
  }
  return 0;
}

#endif
