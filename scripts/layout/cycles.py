#!/usr/bin/env python3
"""Import circles between files under host/src: file A refers to file B when
it names an item of B through `crate::…`, `super::…` or `self::…` (use
statements and inline paths; `mod x;` declarations do not count). Prints each
strongly connected group of files (size > 1) and the edges inside it."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else "host/src"
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith(".rs"):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)
            files[rel] = open(p).read()

def mod_path(rel):
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts

def file_for(parts):
    # longest prefix that is a module file
    for n in range(len(parts), -1, -1):
        pre = parts[:n]
        cands = [os.path.join(*pre) + ".rs"] if pre else []
        cands.append(os.path.join(*(pre + ["mod.rs"])) if pre else "lib.rs")
        for c in cands:
            if c in files:
                return c
    return None

def strip_comments(src):
    src = re.sub(r"//[^\n]*", "", src)
    return re.sub(r"/\*.*?\*/", "", src, flags=re.S)

def strip_tests(src):
    # drop #[cfg(test)] mod tests { ... } blocks (balanced braces)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{", src):
        if m.start() < i:
            continue
        out.append(src[i:m.start()])
        j, depth = m.end(), 1
        while j < len(src) and depth:
            depth += {"{": 1, "}": -1}.get(src[j], 0)
            j += 1
        i = j
    out.append(src[i:])
    return "".join(out)

edges = {f: set() for f in files}
for rel, src in files.items():
    if rel.endswith("conformance.rs"):
        continue
    src = strip_tests(strip_comments(src))
    me = mod_path(rel)
    # expand `use x::{a, b::{c}}` into paths
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", src):
        stack = [m.group(1).replace("\n", " ")]
        def expand(prefix, s):
            s = s.strip()
            if "{" in s:
                i = s.index("{")
                head = s[:i].rstrip(":").strip()
                body = s[i + 1:s.rindex("}")]
                depth, cur, parts = 0, "", []
                for ch in body:
                    if ch == "," and depth == 0:
                        parts.append(cur); cur = ""
                        continue
                    depth += ch == "{"; depth -= ch == "}"
                    cur += ch
                parts.append(cur)
                for p in parts:
                    if p.strip():
                        expand(prefix + ([head] if head else []), p)
            else:
                paths.append("::".join(prefix + [s.split(" as ")[0].strip()]))
        expand([], stack[0])
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", src):
        paths.append(m.group(1))
    for p in paths:
        segs = [s for s in p.split("::") if s]
        if not segs:
            continue
        if segs[0] == "crate":
            target = segs[1:]
        elif segs[0] in ("super", "self"):
            base = list(me)
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    base = base[:-1]
                segs = segs[1:]
            target = base + segs
        else:
            continue
        f = file_for(target)
        if f and f != rel:
            edges[rel].add(f)

# Tarjan SCC
idx, low, on, st, res, n = {}, {}, set(), [], [], [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in edges[v]:
        if w not in idx:
            sc(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1:
            res.append(sorted(comp))
for v in files:
    if v not in idx:
        sc(v)
for comp in res:
    print("circle:", " ".join(comp))
    for a in comp:
        for b in sorted(edges[a]):
            if b in comp:
                print(f"    {a} -> {b}")
print(f"{len(res)} import circle(s)")
sys.exit(1 if res else 0)
