"""The widget's size budget: its JavaScript must stay within 10 KB gzipped (DESIGN.md, Budgets).

Prints the raw and gzipped sizes and the ratio to the budget (below 1.00 is within it).
Run: .venv/bin/python bench/widget.py
"""

from __future__ import annotations

import gzip
from pathlib import Path

WIDGETS = Path(__file__).resolve().parent.parent / "widgets"
BUDGET_BYTES = 10 * 1024


def gzipped_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def main() -> None:
    total = 0
    for path in sorted(WIDGETS.glob("*.js")):
        size = gzipped_size(path)
        total += size
        print(f"{path.name}: {path.stat().st_size} bytes, {size} bytes gzipped")
    ratio = total / BUDGET_BYTES
    print(f"widget JavaScript, gzipped: {total} bytes; budget {BUDGET_BYTES} bytes; ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
