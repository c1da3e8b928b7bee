#!/usr/bin/env python3
"""Non-test .rs files under host/src over 500 lines, and functions over 80
lines (outside #[cfg(test)] modules). A function counts from its `fn` line to
its closing brace. A function may be longer where the comment just above it
carries `long-fn:` and says why."""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else "host/src"
bad = 0
for d, _, fs in os.walk(root):
    for f in sorted(fs):
        if not f.endswith(".rs"):
            continue
        p = os.path.join(d, f)
        lines = open(p).read().split("\n")
        test_start = next((i for i, l in enumerate(lines) if re.match(r"\s*#\[cfg\(test\)\]", l) and i + 1 < len(lines) and re.match(r"\s*(pub\s+)?mod\s+\w+\s*\{", lines[i+1])), len(lines))
        n = len(lines[:test_start])
        if n > 500 and not f == "conformance.rs":
            print(f"file {p}: {n} lines"); bad += 1
        i = 0
        while i < test_start:
            m = re.match(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)", lines[i])
            if m:
                depth, j, started = 0, i, False
                while j < len(lines):
                    s = re.sub(r'"([^"\\]|\\.)*"', '""', lines[j].split("//")[0])
                    s = re.sub(r"'([^'\\]|\\.)'", "''", s)
                    for ch in s:
                        if ch == "{": depth += 1; started = True
                        elif ch == "}": depth -= 1
                    if started and depth <= 0: break
                    if not started and s.rstrip().endswith(";"): break
                    j += 1
                length = j - i + 1
                excused = i > 0 and "long-fn:" in " ".join(lines[max(0, i - 4):i])
                if started and length > 80 and not excused:
                    print(f"fn {p}:{i+1} {m.group(6)}: {length} lines"); bad += 1
            i += 1
print(f"{bad} over the limits (files 500 lines, functions 80)")
sys.exit(1 if bad else 0)
