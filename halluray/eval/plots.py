"""PNG plots (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_TASK_LABELS = {"long_form": "long form: mean false facts / sample", "short_qa": "short QA: incorrect of k samples",
                "mcq": "MCQ: NLL of correct choice"}


def unfamiliarity_histogram(records: list[dict], path: str | Path) -> None:
    """One panel per task: score histograms stacked by the entity's corpus frequency."""
    tasks = sorted({r["task"] for r in records})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows = [r for r in records if r["task"] == task]
        freqs = sorted({r["frequency"] for r in rows})
        ax.hist([[r["score"] for r in rows if r["frequency"] == f] for f in freqs], bins=20, stacked=True,
                label=[f"facts in {f} docs" for f in freqs])
        ax.set_xlabel(_TASK_LABELS.get(task, task))
        ax.set_ylabel("queries")
        ax.legend(fontsize=7)
    fig.suptitle("Unfamiliarity scores of the base model, by corpus frequency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def lines_by_bin(series: dict[str, list[float | None]], path: str | Path, title: str, ylabel: str,
                 xlabels: list[str]) -> None:
    """One line per series over unfamiliarity bins (paper Figs. 5 and 7).

    Series named "<group> false" are dashed in the colour of "<group> true", so one method is one colour.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    x = list(range(len(xlabels)))
    colours: dict[str, str] = {}
    for name, values in series.items():
        group = name.removesuffix(" true").removesuffix(" false")
        colours.setdefault(group, f"C{len(colours)}")
        ax.plot(x, [v if v is not None else float("nan") for v in values], marker="o", label=name,
                color=colours[group], linestyle="--" if name.endswith(" false") else "-")
    ax.set_xticks(x, xlabels)
    ax.set_xlabel("unfamiliarity (base model, few-shot)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bin_labels(edges: list[float]) -> list[str]:
    bounds = ["min", *[f"{e:.2g}" for e in edges], "max"]
    return [f"{bounds[i]}–{bounds[i + 1]}" for i in range(len(bounds) - 1)]
