#!/usr/bin/env python3
"""make check-layers: fail on any call cycle between source files.

Reads the symbol tables of the built objects (nm), draws an edge from file A
to file B when A uses a global symbol that B defines, and reports every
strongly connected component of more than one file: a cycle, which the
layered layout of docs/architecture.md forbids.  The two declared upward
hooks (the publish hook and the RPC-answer hook) are function pointers set
at run time, so they make no edge here.

Usage: check_layers.py OBJECT...
"""
import subprocess
import sys
from collections import defaultdict


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", "-g", obj], capture_output=True, text=True, check=True).stdout
    defined = {line.split()[-1] for line in out.splitlines() if len(line.split()) == 3}
    out = subprocess.run(["nm", "--undefined-only", "-g", obj], capture_output=True, text=True, check=True).stdout
    used = {line.split()[-1] for line in out.splitlines() if line.split()}
    return defined, used


def main(objs):
    name = {o: o.rsplit("/", 1)[-1].removesuffix(".o") for o in objs}
    defined_by, uses = {}, {}
    for o in objs:
        d, u = symbols(o)
        uses[name[o]] = u
        for s in d:
            defined_by[s] = name[o]
    edges = defaultdict(set)
    why = {}
    for a, used in uses.items():
        for s in used:
            b = defined_by.get(s)
            if b is not None and b != a:
                edges[a].add(b)
                why.setdefault((a, b), s)

    # Tarjan's strongly connected components
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(uses):
        if v not in index:
            visit(v)
    cycles = [c for c in sccs if len(c) > 1]
    for c in cycles:
        print(f"check-layers: call cycle between {len(c)} files: {', '.join(c)}")
        for a in c:
            for b in sorted(edges[a]):
                if b in c:
                    print(f"    {a} -> {b}  ({why[(a, b)]})")
    if cycles:
        return 1
    print(f"check-layers: {len(uses)} files, no call cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
