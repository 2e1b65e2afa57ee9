"""Write the benchmark table (Markdown) and plot (PNG) into docs/benchmarks/."""

from __future__ import annotations

import os
import platform
import sys
from collections import defaultdict
from pathlib import Path

from .harness import Result


def machine() -> str:
    import django

    try:
        import debug_toolbar

        ddt = debug_toolbar.VERSION
    except Exception:  # pragma: no cover
        ddt = "?"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; {platform.system()} {platform.release()}; "
        f"CPython {sys.version.split()[0]}; Django {django.__version__}; "
        f"django-debug-toolbar {ddt}"
    )


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def markdown(results: list[Result], quick: bool) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.",
        "",
        "Each comparison ran in one process, its variants interleaved round by round after "
        "warm-up; times are per request (or per workload), median and spread (min–max); the "
        "ratio is the median over the baseline's median in the same run."
        + (" **Quick mode: few rounds, figures are indicative only.**" if quick else ""),
        "",
    ]
    by_comparison: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_comparison[r.comparison].append(r)
    for comparison, rows in by_comparison.items():
        lines += [f"## {comparison}", ""]
        lines += [
            "| workload | variant | median ms | min–max ms | ratio | goal | met |",
            "|---|---|---:|---:|---:|---|---|",
        ]
        for r in rows:
            met = ""
            if r.goal and not r.baseline:
                met = "yes" if r.extra.get("met") else "no"
            lines.append(
                f"| {r.workload} | {r.variant}{' (baseline)' if r.baseline else ''} "
                f"| {fmt_ms(r.median)} | {fmt_ms(r.low)}–{fmt_ms(r.high)} "
                f"| {r.ratio_text} | {r.goal} | {met} |"
            )
        notes = [r.extra["note"] for r in rows if r.extra.get("note")]
        lines += ["", *[f"- {n}" for n in dict.fromkeys(notes)], ""]
    return "\n".join(lines) + "\n"


def plot(results: list[Result], path: Path) -> None:
    """One horizontal bar per non-baseline row, grouped by comparison under a bold heading."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.transforms import blended_transform_factory

    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        if not r.baseline and r.ratio == r.ratio and r.ratio > 0:  # skip NaN and zero
            groups[r.comparison].append(r)
    if not groups:
        return
    y = 0.0
    ys: list[float] = []
    rows: list[Result] = []
    headings: list[tuple[float, str]] = []
    for comparison, members in groups.items():
        headings.append((y, comparison))
        y += 1.0
        for r in members:
            ys.append(y)
            rows.append(r)
            y += 1.0
        y += 0.4
    fig, ax = plt.subplots(figsize=(11, max(3.0, 0.3 * y + 1.2)))
    colors = ["#2f7ed8" if r.extra.get("ours") is True else "#9aa5b1" for r in rows]
    ratios = [r.ratio for r in rows]
    ax.barh(ys, ratios, color=colors, height=0.8)
    labels = [f"{r.workload} · {r.variant}" for r in rows]
    labels = [label if len(label) <= 90 else label[:89] + "…" for label in labels]
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_ylim(y, -1.0)
    ax.axvline(1.0, color="black", linewidth=0.8)
    for yy, r in zip(ys, rows, strict=True):
        met = r.extra.get("met")
        mark = "" if not r.goal or met is None else ("  ✓ goal" if met else "  ✗ goal")
        ax.text(r.ratio, yy, f" x{r.ratio:.2f}{mark}", va="center", fontsize=6.5)
    heading = blended_transform_factory(ax.transAxes, ax.transData)
    for yy, text in headings:
        ax.text(0.0, yy, text, transform=heading, fontsize=8, fontweight="bold", va="center")
    ax.set_xlim(min(0.1, min(ratios) / 2), max(ratios) * 8)
    ax.set_xlabel("time relative to the baseline of its comparison (log scale; 1 = no added cost)")
    ax.set_title(
        "django-debug-toolbar-perf: cost of each panel and of the alternatives"
        " (blue = ours, grey = others)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: list[Result], out: Path, quick: bool) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md = out / ("results-quick.md" if quick else "results.md")
    png = out / ("results-quick.png" if quick else "results.png")
    md.write_text(markdown(results, quick))
    plot(results, png)
    return md, png
