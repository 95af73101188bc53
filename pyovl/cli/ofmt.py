"""Output like illumos libofmt, which dladm prints with.

Columns are left-justified in their field width (the width includes the
separating space). A value longer than its field pushes the rest of the line
right, and later short values give the overflow back, as ofmt does. Parsable
output (-p) is the values alone, joined by ':' with ':' and '\\' escaped by
'\\' when there is more than one field.
"""

from __future__ import annotations

from pyovl.errors import UsageError


def select(fields: list[tuple[str, int]], wanted: str | None) -> list[tuple[str, int]]:
    """-o FIELD,... (case-insensitive, 'all' for every field)."""
    if not wanted or wanted.lower() == "all":
        return fields
    byname = {f[0].lower(): f for f in fields}
    out = []
    for w in wanted.split(","):
        f = byname.get(w.strip().lower())
        if f is None:
            raise UsageError("unknown field %s (fields: %s)" % (w, ",".join(n for n, _ in fields)))
        out.append(f)
    return out


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace(":", "\\:")


def render(fields: list[tuple[str, int]], rows: list[dict], parsable: bool = False) -> str:
    lines = []
    if parsable:
        for row in rows:
            vals = [str(row.get(n, "")) for n, _ in fields]
            lines.append(vals[0] if len(vals) == 1 else ":".join(_escape(v) for v in vals))
        return "\n".join(lines)
    for row in [{n: n for n, _ in fields}] + rows:
        out, overflow = [], 0
        for n, width in fields:
            v = str(row.get(n, ""))
            if len(v) + overflow >= width:
                overflow += len(v) - width + 1
                out.append(v + " ")
                continue
            if overflow:
                give = min(overflow, width - 1 - len(v))
                overflow -= give
                width -= give
            out.append(v.ljust(width))
        lines.append("".join(out).rstrip())
    return "\n".join(lines)
