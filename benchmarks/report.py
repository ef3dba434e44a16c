"""Print pytest-benchmark results as Markdown tables with ratios, group by group.

    pytest benchmarks --benchmark-only --benchmark-json=results.json
    python benchmarks/report.py results.json

In each group the ratio column is each entry's best time over the group's fastest entry
(1.00 = fastest). Hand-off groups also show chunks per second from extra_info.
"""

import json
import sys
from collections import defaultdict
from typing import Any


def _format_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def report(results: dict[str, Any]) -> str:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bench in results["benchmarks"]:
        groups[bench["group"] or bench["name"]].append(bench)
    lines: list[str] = []
    for group, benches in groups.items():
        fastest = min(b["stats"]["min"] for b in benches)
        lines += [f"\n**{group}**\n", "| test | best | median | vs fastest | extra |",
                  "|---|---|---|---|---|"]
        for b in sorted(benches, key=lambda b: b["stats"]["min"]):
            extra = ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in b.get("extra_info", {}).items()
            )
            best, median = b["stats"]["min"], b["stats"]["median"]
            lines.append(
                f"| {b['name']} | {_format_time(best)} | {_format_time(median)} | "
                f"{best / fastest:.2f}x | {extra} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(report(json.load(f)))
