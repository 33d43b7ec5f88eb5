#!/usr/bin/env python3
"""The allocators the benchmark scripts compare, and where their libraries are.

bench/compare.py imports ALLOCATORS and allocators(); the shell scripts
(bench/memory.sh, bench/servers.sh, bench/redis_frag.sh, through
bench/lib.sh) read this program's output, one NAME=PATH line per allocator:

    bench/allocators.py [--build DIR]

An empty PATH (glibc) means the C library's own malloc, with nothing
preloaded.  A system library is looked for in the Debian multiarch directory
of this machine (/usr/lib/<triplet>/), so the paths hold on any Debian
architecture; a library that is not installed keeps the path where its
package would put it, for the scripts' messages.
"""

import argparse
import glob
import os
import sysconfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name, library file name (None: the C library's malloc), how to get it.
ALLOCATORS = [
    ("glibc", None, "part of the C library"),
    ("jemalloc", "libjemalloc.so.2", "apt-get install libjemalloc-dev"),
    ("tcmalloc", "libtcmalloc_minimal.so.4", "apt-get install libgoogle-perftools-dev"),
    ("mimalloc", "libmimalloc.so.2", "apt-get install libmimalloc-dev"),
    ("strata", "libstrata.so", "build it: meson setup build && ninja -C build"),
]


def system_library(filename):
    """The path of a system library: in this interpreter's multiarch
    directory when it has one (Debian's own python3 does), else in whichever
    /usr/lib/<triplet>/ holds it (an interpreter built elsewhere, e.g. by
    pyenv, may not know the triplet)."""
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        return os.path.join("/usr/lib", multiarch, filename)
    found = sorted(glob.glob(os.path.join("/usr/lib/*", filename)))
    return found[0] if found else os.path.join("/usr/lib", filename)


def allocators(build):
    """[(name, path or None, hint)]: Strata's library from the meson build
    directory `build`, the others from the system."""
    out = []
    for name, filename, hint in ALLOCATORS:
        if filename is None:
            path = None
        elif name == "strata":
            path = os.path.join(os.path.abspath(build), filename)
        else:
            path = system_library(filename)
        out.append((name, path, hint))
    return out


def main():
    ap = argparse.ArgumentParser(
        description="Print the benchmarked allocators as NAME=PATH lines "
                    "(empty PATH: the C library's malloc, nothing preloaded).")
    ap.add_argument("--build", default=os.path.join(REPO, "build"),
                    help="meson build directory holding libstrata.so (default: %(default)s)")
    args = ap.parse_args()
    for name, path, _ in allocators(args.build):
        print("%s=%s" % (name, path or ""))


if __name__ == "__main__":
    main()
