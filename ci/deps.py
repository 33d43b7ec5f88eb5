#!/usr/bin/env python3
"""ci/deps.py - check that module dependencies point one way.

    python3 ci/deps.py BUILDDIR [--dot FILE]
    python3 ci/deps.py --objects DIR --sources DIR [--dot FILE]

A module is a source file's base name (src/heap.c -> heap); a header in the
sources directory with no .c of its own (internal.h) is a module of its own.
Two dependency graphs are built and checked:

  symbols   A -> B when A's object file has an undefined symbol (function or
            variable, thread-local ones included) that B's object defines.
            Symbols defined by no object of ours (libc, pthread) are ignored.
  includes  A -> B when src/A.c or src/A.h includes B.h ("B.h" or <B.h>, when
            the file is in the sources directory). Headers' own includes
            count for their module, so chains are followed through headers.
            Catches what objects cannot show: static inline functions,
            macros, types.

Every strongly connected component of more than one module is reported
for each graph and for their union, with the edges inside it and what is
behind each edge (symbols, "X.c includes Y.h"). Exit status: 0 when there
is no cycle (the modules are then printed in layers, leaves first), 1 when
there is one, 2 on a usage or tool error.

BUILDDIR is a meson build directory: the library's sources come from
meson-info/intro-targets.json (the library target named like the project,
or --target NAME), their objects from compile_commands.json
(or, failing that, by globbing for *.p/<mangled source>.o). --objects and
--sources point at loose objects (X.o, X.c.o or meson's src_X.c.o) and
their sources instead (used by ci/deps_selftest.sh). --dot FILE writes the
union graph for Graphviz. Standard library only; needs nm (binutils; NM in
the environment or --nm picks another, e.g. gcc-nm for LTO objects).
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict

PROG = "deps"


def say(msg=""):
    print(msg)


def warn(msg):
    print("%s: warning: %s" % (PROG, msg), file=sys.stderr)


def die(msg):
    print("%s: error: %s" % (PROG, msg), file=sys.stderr)
    sys.exit(2)


# ---- finding sources and objects --------------------------------------------------

def meson_mangle(relpath):
    """meson's object name for a source: src/heap.c -> src_heap.c.o"""
    return relpath.replace("\\", "/").replace("/", "_") + ".o"


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        die("cannot read %s: %s" % (path, e))


def library_sources(builddir, target=None):
    """(source root, [absolute .c paths of the library target]): the library
    named like the project (or --target NAME), else every library target of
    the project proper (not of its subprojects)."""
    info_dir = os.path.join(builddir, "meson-info")
    if not os.path.isdir(info_dir):
        die("%s is not a meson build directory (no meson-info/); "
            "use --objects DIR --sources DIR for loose objects" % builddir)
    srcroot = read_json(os.path.join(info_dir, "meson-info.json"))["directories"]["source"]
    project = read_json(os.path.join(info_dir, "intro-projectinfo.json")).get("descriptive_name")
    targets = [t for t in read_json(os.path.join(info_dir, "intro-targets.json"))
               if t.get("type") in ("shared library", "static library", "both libraries")
               and not t.get("subproject")]
    named = [t for t in targets if t.get("name") == (target or project)]
    if target and not named:
        die("no library target %r in %s (there are: %s)"
            % (target, builddir, ", ".join(sorted({t["name"] for t in targets})) or "none"))
    sources = []
    for t in named or targets:
        for ts in t.get("target_sources", []):
            for s in ts.get("sources", []):
                s = os.path.realpath(os.path.join(srcroot, s))
                if s.endswith(".c") and s not in sources:
                    sources.append(s)
    if not sources:
        die("no C sources in the library targets of %s/meson-info/intro-targets.json"
            % builddir)
    return srcroot, sources


def objects_for(builddir, srcroot, sources):
    """{source path: object path} from compile_commands.json, else by glob."""
    found = {}
    cc_path = os.path.join(builddir, "compile_commands.json")
    if os.path.exists(cc_path):
        for e in read_json(cc_path):
            d = e.get("directory", builddir)
            src = os.path.realpath(os.path.join(d, e.get("file", "")))
            out = e.get("output")
            if out is None:             # older meson: find -o in the command
                m = re.search(r"\s-o\s+(\S+)", e.get("command", ""))
                out = m.group(1) if m else None
            if src in sources and out:
                out = os.path.normpath(os.path.join(d, out))
                # Prefer a library's private directory (lib*.p) over any other
                # target that compiles the same file (a test, say).
                prev = found.get(src)
                if prev is None or (not is_lib_dir(prev) and is_lib_dir(out)):
                    found[src] = out
    for src in sources:
        if src in found and os.path.exists(found[src]):
            continue
        name = meson_mangle(os.path.relpath(src, srcroot))
        hits = glob.glob(os.path.join(builddir, "**", "*.p", name), recursive=True)
        hits.sort(key=lambda p: (not is_lib_dir(p), p))
        if hits:
            found[src] = hits[0]
        else:
            found.pop(src, None)
    return found


def is_lib_dir(objpath):
    return os.path.basename(os.path.dirname(objpath)).startswith("lib")


def loose_objects(objdir, srcdir):
    """--objects mode: {source path: object path}, matching X.o, X.c.o,
    *_X.c.o (meson) to srcdir/X.c."""
    cfiles = {os.path.basename(p)[:-2]: p for p in glob.glob(os.path.join(srcdir, "*.c"))}
    found = {}
    objs = sorted(glob.glob(os.path.join(objdir, "**", "*.o"), recursive=True))
    for o in objs:
        base = os.path.basename(o)
        stem = base[:-2]
        if stem.endswith(".c"):
            stem = stem[:-2]
        mod = None
        if stem in cfiles:
            mod = stem
        else:                           # meson: src_heap.c.o -> heap
            cands = [m for m in cfiles if base.endswith("_" + m + ".c.o")]
            if cands:
                mod = max(cands, key=len)
        if mod is None:
            warn("%s: no matching source in %s, skipped" % (o, srcdir))
            continue
        if cfiles[mod] in found:
            warn("%s: %s already has object %s, skipped" % (o, mod, found[cfiles[mod]]))
            continue
        found[cfiles[mod]] = o
    return found


# ---- symbol graph -------------------------------------------------------------------

# nm -P prints "name type [value size]". Strong definitions beat weak and
# common ones when several objects define the same name.
WEAK_DEF = set("WVCv")              # v/V weak object, w/W weak, C common
UNDEF = set("Uwv")                  # v only with --undefined-only


def run_nm(nm, obj, *flags):
    try:
        p = subprocess.run([nm, "-P"] + list(flags) + [obj], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
    except OSError as e:
        die("cannot run %s: %s" % (nm, e))
    if p.returncode != 0:
        die("%s %s failed: %s" % (nm, obj, p.stderr.strip()))
    syms = []
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2 or line.endswith(":"):       # archive member headers
            continue
        name, typ = parts[0], parts[1]
        name = name.split("@")[0]       # symbol versions: foo@@V1 -> foo
        if name:
            syms.append((name, typ))
    return syms


def symbol_graph(nm, objects):
    """objects: {module: object path} -> edges {(a, b): set(symbols)}."""
    defs = defaultdict(list)            # symbol -> [(module, strong?)]
    undefs = {}
    for mod, obj in sorted(objects.items()):
        defined = run_nm(nm, obj, "--defined-only", "--extern-only")
        undefined = run_nm(nm, obj, "--undefined-only")
        names = {n for n, _ in defined}
        if not defined and any(n.startswith("__gnu_lto_") for n, _ in run_nm(nm, obj)):
            warn("%s is a slim LTO object and %s sees no symbols in it: "
                 "run with --nm gcc-nm (or build with -ffat-lto-objects)" % (obj, nm))
        for name, typ in defined:
            defs[name].append((mod, typ not in WEAK_DEF))
        # A name an object both defines and references is its own.
        undefs[mod] = {n for n, t in undefined if t in UNDEF and n not in names}
    owner = {}
    for name, where in defs.items():
        strong = sorted({m for m, s in where if s})
        mods = strong or sorted({m for m, _ in where})
        if len(mods) > 1:
            warn("symbol %s is defined by %s; counting all of them"
                 % (name, ", ".join(mods)))
        owner[name] = mods
    edges = defaultdict(set)
    for mod, names in undefs.items():
        for name in names:
            for dep in owner.get(name, ()):
                if dep != mod:
                    edges[(mod, dep)].add(name)
    return edges


# ---- include graph -------------------------------------------------------------------

INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^">\n]+)[">]', re.M)
MACRO_INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+[A-Za-z_]', re.M)
IF_RE = re.compile(r'^[ \t]*#[ \t]*(if|ifdef|ifndef|elif|else|endif)\b(.*)$')


def strip_code(text):
    """Drop comments, string literals, line continuations and '#if 0' blocks,
    keeping line breaks so line numbers still hold."""
    text = text.replace("\\\n", "")
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j) or " ")
            i = j
        elif c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c == '"' or c == "'":
            # Keep "..." after #include: it is the file name, not a string.
            line_start = text.rfind("\n", 0, i) + 1
            if c == '"' and re.match(r'[ \t]*#[ \t]*include[ \t]*$', text[line_start:i]):
                j = text.find('"', i + 1)
                j = n if j < 0 else j + 1
                out.append(text[i:j])
                i = j
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    # '#if 0' ... '#else/#elif/#endif' (nested conditionals counted)
    lines = "".join(out).split("\n")
    skipping, depth = False, 0
    for k, line in enumerate(lines):
        m = IF_RE.match(line)
        if skipping:
            if m:
                d = m.group(1)
                if d.startswith("if"):
                    depth += 1
                elif d == "endif":
                    if depth == 0:
                        skipping = False
                    else:
                        depth -= 1
                elif depth == 0:        # else / elif of the '#if 0'
                    skipping = False
            lines[k] = ""
        elif m and m.group(1) == "if" and m.group(2).strip() == "0":
            skipping, depth = True, 0
    return "\n".join(lines)


def include_graph(srcdir, modules_c):
    """-> (header-only modules {name: path}, edges {(a, b): set(evidence)})."""
    srcdir = os.path.abspath(srcdir)
    headers = {}
    for p in glob.glob(os.path.join(srcdir, "**", "*.h"), recursive=True):
        headers.setdefault(os.path.splitext(os.path.basename(p))[0], p)
    header_only = {m: p for m, p in headers.items() if m not in modules_c}

    def module_of(path):
        """The module a file in the sources belongs to, or None for a
        fragment (.inc, .def, ...) that belongs to whoever includes it."""
        stem, ext = os.path.splitext(os.path.basename(path))
        if ext == ".c" and stem in modules_c:
            return stem
        if ext == ".h":
            return stem
        return None

    def resolve(name, kind, from_dir):
        cands = [os.path.join(from_dir, name)] if kind == '"' else []
        cands.append(os.path.join(srcdir, name))
        for c in cands:
            if os.path.isfile(c):
                return os.path.normpath(c)
        return None

    edges = defaultdict(set)
    seen = set()
    cache = {}

    def scan(path, mod, via):
        """Record the includes of path (a file of module mod); fragments are
        followed, as their includes count for mod."""
        key = (path, mod)
        if key in seen:
            return
        seen.add(key)
        if path not in cache:
            try:
                with open(path, errors="replace") as f:
                    text = strip_code(f.read())
            except OSError as e:
                warn("cannot read %s: %s" % (path, e))
                text = ""
            if MACRO_INCLUDE_RE.search(text):
                warn("%s: '#include MACRO' is not followed" % path)
            cache[path] = INCLUDE_RE.findall(text)
        here = os.path.relpath(path, srcdir) if via is None else via
        for kind, name in cache[path]:
            target = resolve(name.strip(), kind, os.path.dirname(path))
            if target is None:
                continue                # system or public header: not a module
            dep = module_of(target)
            if dep is None:             # fragment: part of mod
                scan(target, mod, "%s (via %s)" % (here, os.path.relpath(target, srcdir)))
                continue
            if dep != mod:
                edges[(mod, dep)].add("%s includes %s" % (here, os.path.relpath(target, srcdir)))

    for mod, cpath in sorted(modules_c.items()):
        scan(cpath, mod, None)
    for mod, hpath in sorted(headers.items()):
        scan(hpath, mod, None)
    return header_only, edges


# ---- graph algorithms ------------------------------------------------------------------

def adjacency(nodes, edges):
    adj = {n: set() for n in nodes}
    for a, b in edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set())
    return adj


def tangles(adj):
    """Strongly connected components of more than one node (Tarjan,
    iterative), each sorted, in sorted order."""
    index, low, onstack, stack, comps = {}, {}, set(), [], []
    counter = 0
    for root in sorted(adj):
        if root in index:
            continue
        work = [(root, iter(sorted(adj[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        onstack.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    onstack.add(w)
                    work.append((w, iter(sorted(adj[w]))))
                    break
                if w in onstack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        onstack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))
    return sorted(comps)


def shortest_path(adj, src, dst, allowed):
    """Breadth-first path src ~> dst inside allowed (list of nodes)."""
    prev = {src: None}
    queue = [src]
    for v in queue:
        if v == dst:
            path = []
            while v is not None:
                path.append(v)
                v = prev[v]
            return path[::-1]
        for w in sorted(adj[v]):
            if w in allowed and w not in prev:
                prev[w] = v
                queue.append(w)
    return None


def covering_cycles(adj, comp):
    """Short cycles inside comp such that every edge of comp lies on one:
    for each edge u -> v, v's shortest way back to u."""
    members = set(comp)
    cycles, covered = [], set()
    inner = sorted((u, v) for u in comp for v in adj[u] if v in members)
    # Shortest cycles first, so that long ones are only added for the edges
    # no short one covers.
    cands = []
    for u, v in inner:
        back = shortest_path(adj, v, u, members)
        cands.append([u] + back[:-1])       # back ends at u
    cands.sort(key=lambda c: (len(c), c))
    for cyc in cands:
        cyc_edges = set(zip(cyc, cyc[1:] + cyc[:1]))
        if cyc_edges <= covered:
            continue
        k = cyc.index(min(cyc))        # rotate: start at the smallest name
        cyc = cyc[k:] + cyc[:k]
        if cyc not in cycles:
            cycles.append(cyc)
        covered |= cyc_edges
    return cycles, inner


def layers(adj):
    """Condensation layers, leaves first: [[name or (scc...), ...], ...]."""
    comps = tangles(adj)
    comp_of = {}
    for c in comps:
        for m in c:
            comp_of[m] = tuple(c)
    node = lambda m: comp_of.get(m, m)
    cadj = defaultdict(set)
    for a in adj:
        cadj[node(a)]
        for b in adj[a]:
            if node(a) != node(b):
                cadj[node(a)].add(node(b))
    level = {}

    def depth(n):                       # longest way down to a leaf
        if n not in level:
            level[n] = None
            level[n] = 1 + max((depth(d) for d in cadj[n]), default=-1)
        return level[n]
    sys.setrecursionlimit(max(1000, 10 * len(cadj) + 100))
    for n in cadj:
        depth(n)
    out = defaultdict(list)
    for n, lv in level.items():
        out[lv].append(n)
    key = lambda n: n[0] if isinstance(n, tuple) else n
    return [sorted(out[lv], key=key) for lv in sorted(out)]


# ---- report ------------------------------------------------------------------------------

def evidence(edge, sym_edges, inc_edges, which):
    parts = []
    if which in ("symbols", "union") and edge in sym_edges:
        parts.append("%s (symbols)" % ", ".join(sorted(sym_edges[edge])))
    if which in ("includes", "union") and edge in inc_edges:
        parts.extend(sorted(inc_edges[edge]))
    return ", ".join(parts)


def report_graph(which, adj, sym_edges, inc_edges, show_edges):
    """Print the cycles of one graph; -> number of cycles listed."""
    comps = tangles(adj)
    nedges = sum(len(v) for v in adj.values())
    if not comps:
        say("deps: %s graph: %d edges, no cycle" % (which, nedges))
        return 0
    ncyc = 0
    say("deps: %s graph: %d edges, %d group%s of modules in cycles"
        % (which, nedges, len(comps), "" if len(comps) == 1 else "s"))
    for comp in comps:
        cycles, inner = covering_cycles(adj, comp)
        ncyc += len(cycles)
        say("deps: %s: in cycles: %s" % (which, " ".join(comp)))
        for cyc in cycles:
            say("deps: %s: cycle: %s" % (which, " -> ".join(cyc + cyc[:1])))
        if show_edges:
            say("    the %d edges inside {%s}:" % (len(inner), " ".join(comp)))
            for u, v in inner:
                mark = "  [both ways]" if u in adj[v] else ""
                say("    %s -> %s: %s%s" % (u, v, evidence((u, v), sym_edges, inc_edges,
                                                          which), mark))
    return ncyc


def write_dot(path, modules, header_only, sym_edges, inc_edges, adj):
    bad = set()
    for comp in tangles(adj):
        members = set(comp)
        bad |= {(u, v) for u in comp for v in adj[u] if v in members}
    q = lambda s: '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')
    lines = ["digraph deps {",
             "  // union of the symbol and include graphs; A -> B: A uses B",
             "  rankdir=BT;",
             "  node [shape=box, fontname=\"Helvetica\"];"]
    for m in sorted(modules):
        attrs = ["label=%s" % q(m + (".h" if m in header_only else ""))]
        if m in header_only:
            attrs.append("style=dashed")
        lines.append("  %s [%s];" % (q(m), ", ".join(attrs)))
    for u in sorted(adj):
        for v in sorted(adj[u]):
            e = (u, v)
            kinds = [k for k, d in (("symbols", sym_edges), ("includes", inc_edges)) if e in d]
            attrs = ["tooltip=%s" % q(evidence(e, sym_edges, inc_edges, "union"))]
            if kinds == ["includes"]:
                attrs.append("style=dashed")
            elif kinds == ["symbols"]:
                attrs.append("style=dotted")
            if e in bad:
                attrs += ["color=red", "penwidth=2"]
            lines.append("  %s -> %s [%s];" % (q(u), q(v), ", ".join(attrs)))
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(
        prog="deps.py", description="Check that module dependencies point one way "
        "(no cycles in the symbol graph, the include graph or their union).",
        epilog="Exit status: 0 no cycle, 1 cycles, 2 error.")
    ap.add_argument("builddir", nargs="?", help="meson build directory")
    ap.add_argument("--objects", metavar="DIR", help="object files (X.o, X.c.o, src_X.c.o)")
    ap.add_argument("--sources", metavar="DIR",
                    help="sources directory (default: the library sources' directory)")
    ap.add_argument("--dot", metavar="FILE", help="write the union graph in Graphviz dot")
    ap.add_argument("--target", metavar="NAME",
                    help="meson library target (default: the one named like the project)")
    ap.add_argument("--nm", default=os.environ.get("NM", "nm"), help="nm to use (default $NM or nm)")
    args = ap.parse_args()
    if bool(args.builddir) == bool(args.objects):
        ap.error("give BUILDDIR, or --objects DIR with --sources DIR")
    if args.objects and not args.sources:
        ap.error("--objects needs --sources")
    if shutil.which(args.nm) is None:
        die("%s not found (binutils)" % args.nm)

    if args.builddir:
        srcroot, sources = library_sources(args.builddir, args.target)
        srcdir = args.sources or os.path.commonpath([os.path.dirname(s) for s in sources])
        obj_of = objects_for(args.builddir, srcroot, sources)
        where = args.builddir
    else:
        srcdir = args.sources
        if not os.path.isdir(srcdir) or not os.path.isdir(args.objects):
            die("no such directory: %s" % (srcdir if not os.path.isdir(srcdir) else args.objects))
        obj_of = loose_objects(args.objects, srcdir)
        sources = sorted(obj_of)
        where = args.objects
    srcdir = os.path.abspath(srcdir)

    # Modules with a .c: every .c in the sources directory (so that X.h is
    # X's header even when X.c is not built), objects where there are some.
    modules_c = {os.path.basename(p)[:-2]: p for p in glob.glob(os.path.join(srcdir, "*.c"))}
    for s in sources:
        modules_c.setdefault(os.path.basename(s)[:-2], s)
    objects = {}
    for s in sources:
        mod = os.path.basename(s)[:-2]
        o = obj_of.get(s)
        if o is None or not os.path.exists(o):
            warn("no object for %s in %s: its symbols are not checked (not built yet?)"
                 % (s, where))
            continue
        if os.path.exists(s) and os.path.getmtime(s) > os.path.getmtime(o):
            warn("%s is newer than its object %s: rebuild first" % (s, o))
        objects[mod] = o
    for mod in sorted(set(modules_c) - set(objects)):
        if all(os.path.basename(s)[:-2] != mod for s in sources):
            warn("%s is not one of the library's sources (no object)" % modules_c[mod])
    if not objects:
        die("no objects found in %s" % where)

    sym_edges = symbol_graph(args.nm, objects)
    header_only, inc_edges = include_graph(srcdir, modules_c)
    modules = set(modules_c) | set(header_only)
    for a, b in list(sym_edges) + list(inc_edges):
        modules |= {a, b}

    sym_adj = adjacency(modules, sym_edges)
    inc_adj = adjacency(modules, inc_edges)
    uni_adj = adjacency(modules, set(sym_edges) | set(inc_edges))
    nuni = sum(len(v) for v in uni_adj.values())

    say("deps: sources %s, objects %s (%d)" % (srcdir, where, len(objects)))
    say("deps: %d modules (%d with a .c, header-only: %s), %d edges (symbols %d, includes %d)"
        % (len(modules), len(modules_c), " ".join(sorted(header_only)) or "none", nuni,
           len(sym_edges), len(inc_edges)))
    counts = {}
    # The symbol and include graphs list their cycles; the union lists its
    # cycles and every edge inside them with both kinds of evidence.
    for which, adj in (("symbols", sym_adj), ("includes", inc_adj), ("union", uni_adj)):
        counts[which] = report_graph(which, adj, sym_edges, inc_edges, which == "union")

    if args.dot:
        write_dot(args.dot, modules, header_only, sym_edges, inc_edges, uni_adj)
        say("deps: wrote %s" % args.dot)

    lay = layers(uni_adj)
    cyclic = bool(tangles(uni_adj))
    say("deps: layers, leaves first%s:" % (" (a {group} is a set of modules in a cycle)"
                                           if cyclic else ""))
    for k, names in enumerate(lay):
        shown = ["{%s}" % " ".join(n) if isinstance(n, tuple) else n for n in names]
        say("    %d: %s" % (k, " ".join(shown)))
    if cyclic:
        groups = len(tangles(uni_adj))
        say("deps: FAILED: %d cycle%s (symbols %d, includes %d) in %d group%s of modules"
            % (counts["union"], "" if counts["union"] == 1 else "s", counts["symbols"],
               counts["includes"], groups, "" if groups == 1 else "s"))
        return 1
    say("deps: OK: no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
