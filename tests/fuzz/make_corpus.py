#!/usr/bin/env python3
"""Write the seed corpus of fuzz_api into tests/fuzz/corpus/.

Each seed is a short program in fuzz_api's input format: 6 bytes per
operation (see the comment at the top of fuzz_api.c):

    byte 0  thread << 6 | index into op_table (the first index of each op)
    byte 1  block slot
    byte 2-4  size bytes s0 s1 s2 (see decode_size)
    byte 5  aux: alignment (see decode_align) or variant

Run it again after changing the input format: python3 make_corpus.py
"""
import os

# First index of each operation in fuzz_api.c's op_table.
MALLOC, CALLOC, REALLOC, ALIGNED_ALLOC, POSIX_MEMALIGN, MEMALIGN = 0, 10, 16, 26, 30, 34
VALLOC, PVALLOC, FREE, FREE_SIZED, USABLE, ERRORS = 38, 39, 40, 50, 54, 57
CHECK_ALL, TRIM, THREAD_EXIT, STATS = 60, 61, 62, 9

# Size bytes for decode_size.
def tiny(n):        # 0 .. 64
    return (0, 0, n)
def small(n):       # any size up to 32 KiB: search the bytes decode_size maps to n
    for s1 in range(256):
        for s2 in range(256):
            v = s1 << 8 | s2
            got = [s2 % 65, v % 1025, None, v % 32769][s1 % 4]
            if got == n:
                return (0, s1, s2)
    raise ValueError(n)
def pow2(k, delta=1):  # 2^k - 1, 2^k, 2^k + 1 (delta 0, 1, 2), k <= 15
    return (0, 2 | (delta << 2), k)
def large(k):       # about 2^k, 15 <= k <= 23
    return (0x19, k - 15, 0x40)
def huge():         # 16 MiB + 1 + 128 * v
    return (0x1e, 0x10, 0x00)

def op(code, thread=0, slot=0, size=(0, 0, 0), aux=0):
    return bytes([thread << 6 | code, slot, *size, aux])

seeds = {}

# One thread, every tier, then realloc within and across tiers.
seeds["tiers"] = b"".join([
    op(MALLOC, 0, 0, tiny(0)), op(MALLOC, 0, 1, tiny(24)), op(MALLOC, 0, 2, pow2(10)),
    op(MALLOC, 0, 3, pow2(15, 1)), op(MALLOC, 0, 4, large(16)), op(MALLOC, 0, 5, large(22)),
    op(MALLOC, 0, 6, huge()), op(REALLOC, 0, 1, pow2(12)), op(REALLOC, 0, 4, large(20)),
    op(REALLOC, 0, 6, large(18)), op(USABLE, 0, 5), op(FREE, 0, 0), op(FREE_SIZED, 0, 1),
    op(FREE, 0, 2), op(FREE_SIZED, 0, 4, aux=1), op(CHECK_ALL), op(STATS),
])

# Blocks allocated by one thread, freed and realloc'd by the others.
seeds["remote"] = b"".join(
    [op(MALLOC, 0, s, tiny(16 + s)) for s in range(8)]
    + [op(MALLOC, 1, 8 + s, pow2(8 + s % 6)) for s in range(8)]
    + [op(FREE, 1 + s % 3, s) for s in range(8)]
    + [op(REALLOC, 2, 8 + s, pow2(9 + s % 5)) for s in range(8)]
    + [op(FREE, 3, 8 + s) for s in range(0, 8, 2)]
    + [op(MALLOC, 0, s, tiny(16 + s)) for s in range(8)]
)

# Every aligned call, alignments 1 .. 128 MiB.
seeds["aligned"] = b"".join(
    [op(ALIGNED_ALLOC, s % 4, s, tiny(40), s) for s in range(0, 28, 3)]
    + [op(POSIX_MEMALIGN, 1, 10 + s, large(16), s) for s in range(3, 26, 4)]
    + [op(MEMALIGN, 2, 20 + s, small(1000), s | 0x20) for s in range(2, 24, 5)]
    + [op(VALLOC, 0, 30, small(5000)), op(PVALLOC, 0, 31, tiny(0)),
       op(PVALLOC, 3, 32, large(17)), op(CHECK_ALL)]
    + [op(FREE, 3, s) for s in range(0, 33)]
)

# calloc of recycled memory, before and after malloc_trim.
seeds["calloc"] = b"".join(
    [op(MALLOC, 0, s, size) for s, size in enumerate([tiny(48), pow2(12), large(15), large(21)])]
    + [op(FREE, 0, s) for s in range(4)]
    + [op(CALLOC, 0, s, size, s) for s, size in enumerate([tiny(48), pow2(12), large(15), large(21)])]
    + [op(FREE, 1, s) for s in range(4)]
    + [op(TRIM), op(CALLOC, 2, 0, large(21), 3), op(CALLOC, 2, 1, pow2(14), 0x80), op(STATS, 1)]
)

# A thread exits with live blocks; others free them; the slot restarts.
seeds["thread_exit"] = b"".join(
    [op(MALLOC, 1, s, pow2(4 + s)) for s in range(10)]
    + [op(THREAD_EXIT, 1)]
    + [op(FREE, 2, s) for s in range(0, 10, 2)]
    + [op(MALLOC, 1, 20 + s, pow2(4 + s)) for s in range(10)]
    + [op(REALLOC, 3, s, pow2(12)) for s in range(1, 10, 2)]
    + [op(STATS, 2), op(THREAD_EXIT, 3), op(THREAD_EXIT, 1), op(STATS, 0), op(TRIM, aux=1)]
)

# The error cases, each variant once (variant = s1 % 12).
seeds["errors"] = b"".join(
    [op(MALLOC, 0, 0, small(3000))]
    + [op(ERRORS, v % 4, 0, (0, v, v * 7), v * 5) for v in range(12)]
)

# realloc up through every tier to huge and back down.
seeds["realloc_ladder"] = b"".join(
    [op(MALLOC, 0, 0, tiny(1))]
    + [op(REALLOC, k % 4, 0, pow2(k)) for k in range(1, 16)]
    + [op(REALLOC, 0, 0, large(k)) for k in range(15, 24)]
    + [op(REALLOC, 1, 0, huge()), op(REALLOC, 2, 0, large(19)), op(REALLOC, 3, 0, tiny(8)),
       op(REALLOC, 0, 0, tiny(0))]
)

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "corpus")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    print("%-16s %5d bytes, %3d ops" % (name, len(data), len(data) // 6))
