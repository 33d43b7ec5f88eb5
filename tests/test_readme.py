#!/usr/bin/env python3
"""test_readme.py - what README.md says, checked against the code.

    test_readme.py extract README OUT           the buddy example, as a C file
    test_readme.py example README PROGRAM       its output is the one shown
    test_readme.py overhead README PROGRAM      the metadata table's figures
    test_readme.py options README OPTIONS_FILE  every meson option is listed
    test_readme.py exports README LIBRARY       every exported name is listed
    test_readme.py packages README CI_TEST      ci/test's apt packages, listed

`extract` writes the first ```c block of the section "The standalone buddy
allocator" (meson.build compiles it as it stands); `example` runs that
program and compares its standard output with the ```text block that
follows. `overhead` runs tests/readme_overhead.c, which prints "min_block
free_bytes" for a 1 MiB region, against the section's table. `exports`
reads the library's dynamic symbols with nm. Exit status 0 when the README
agrees, 1 when it does not (each difference is printed), 2 on a usage error.
"""

import re
import subprocess
import sys

BUDDY = "## The standalone buddy allocator"


def fail(msgs):
    for m in msgs:
        print("test_readme: FAIL: %s" % m, file=sys.stderr)
    sys.exit(1 if msgs else 0)


def section(text, heading):
    """The text from heading to the next heading of its level."""
    start = text.find(heading + "\n")
    if start < 0:
        fail(["README.md has no section %r" % heading])
    level = heading.split(" ")[0]
    end = text.find("\n" + level + " ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def fenced(text, lang):
    """The fenced blocks of a language, in order."""
    return re.findall(r"^```%s\n(.*?)^```$" % re.escape(lang), text, re.M | re.S)


def run(argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if r.returncode != 0:
        fail(["%s exited with status %d:\n%s%s" % (" ".join(argv), r.returncode,
                                                   r.stdout, r.stderr)])
    return r.stdout


def cmd_extract(readme, out):
    blocks = fenced(section(readme, BUDDY), "c")
    if not blocks:
        fail(["the buddy section has no ```c block"])
    with open(out, "w") as f:
        f.write(blocks[0])


def cmd_example(readme, program):
    shown = fenced(section(readme, BUDDY), "text")
    if not shown:
        fail(["the buddy section shows no output (a ```text block)"])
    got = run([program])
    print(got, end="")
    if got != shown[0]:
        fail(["the buddy example prints\n%sbut the README shows\n%s" % (got, shown[0])])


def cmd_overhead(readme, program):
    rows = re.findall(r"^\| (\d+) \| (\d+) \| ([\d.]+) % \|$", section(readme, BUDDY), re.M)
    if not rows:
        fail(["the buddy section has no min_block table"])
    lib = {}
    for line in run([program]).split("\n"):
        if line:
            block, free, size = (int(x) for x in line.split())
            lib[block] = (free, "%.1f" % (100.0 * free / size))
    msgs = []
    for block, free, pct in rows:
        want = lib.get(int(block))
        if want is None:
            msgs.append("README: min_block %s, which the program does not measure" % block)
        elif (int(free), pct) != want:
            msgs.append("README: min_block %s leaves %s bytes (%s %%), the library %d (%s %%)"
                        % (block, free, pct, want[0], want[1]))
    missing = sorted(set(lib) - {int(r[0]) for r in rows})
    if missing:
        msgs.append("README: no row for min_block %s" % ", ".join(map(str, missing)))
    print("overhead: %d rows checked" % len(rows))
    fail(msgs)


def cmd_options(readme, options_file):
    with open(options_file) as f:
        names = re.findall(r"^option\(\s*'([^']+)'", f.read(), re.M)
    if not names:
        fail(["%s declares no option" % options_file])
    table = section(readme, "## Build options")
    listed = re.findall(r"^\| `([a-z_]+)` \|", table, re.M)
    msgs = ["README: the build option %s is not in the table" % n for n in names if n not in listed]
    msgs += ["README: %s is no option of %s" % (n, options_file) for n in listed if n not in names]
    print("options: %s" % " ".join(names))
    fail(msgs)


def cmd_exports(readme, library):
    names = run(["nm", "-D", "--defined-only", library]).split()[2::3]
    if "malloc" not in names:
        fail(["%s does not export malloc" % library])
    text = section(readme, "## Using it")
    msgs = []
    for n in names:
        if n.startswith("_Znw") or n.startswith("_Zna"):
            ok = "`operator new`" in text and "`operator new[]`" in text
        elif n.startswith("_Zdl") or n.startswith("_Zda"):
            ok = "`operator delete`" in text and "`operator delete[]`" in text
        elif n.startswith("strata_"):
            ok = "`strata_` API" in text
        elif n.startswith("__libc_"):
            ok = "`__libc_*`" in text
        else:
            ok = re.search(r"(?<![\w`])`?%s`?(?![\w`])" % re.escape(n), text) is not None
        if not ok:
            msgs.append("README's \"Using it\" does not name the export %s" % n)
    print("exports: %d names checked" % len(names))
    fail(msgs)


def cmd_packages(readme, ci_test):
    with open(ci_test) as f:
        m = re.search(r"^PACKAGES=\((.*?)\)", f.read(), re.M | re.S)
    if not m:
        fail(["%s has no PACKAGES=(...) list" % ci_test])
    packages = m.group(1).split()
    text = " ".join(section(readme, "## The two commands").split())
    msgs = ["README does not say ci/test installs %s" % p for p in packages
            if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(p), text)]
    print("packages: %d checked" % len(packages))
    fail(msgs)


COMMANDS = {"extract": cmd_extract, "example": cmd_example, "overhead": cmd_overhead,
            "options": cmd_options, "exports": cmd_exports, "packages": cmd_packages}


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[2]) as f:
        readme = f.read()
    COMMANDS[sys.argv[1]](readme, sys.argv[3])


if __name__ == "__main__":
    main()
