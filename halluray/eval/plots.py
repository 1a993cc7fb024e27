"""PNG plots (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from halluray.eval.pyplot import plt
from halluray.eval.qa import LABELS

_TASK_LABELS = {"long_form": "long form: false facts (unfamiliarity.long_form_score)",
                "short_qa": "short QA: incorrect of k samples", "mcq": "MCQ: NLL of correct choice"}


def unfamiliarity_histogram(records: list[dict], path: str | Path) -> None:
    """One panel per task: score histograms stacked by the entity's corpus frequency (the world) or by fame
    quartile (real data with a `fame` column); unstacked otherwise."""
    tasks = sorted({r["task"] for r in records})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows = [r for r in records if r["task"] == task]
        groups = _histogram_groups(rows)
        ax.hist([[r["score"] for r in g] for g in groups.values()], bins=20, stacked=True, label=list(groups))
        ax.set_xlabel(_TASK_LABELS.get(task, task))
        ax.set_ylabel("queries")
        ax.legend(fontsize=7)
    fig.suptitle("Unfamiliarity scores of the base model")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _histogram_groups(rows: list[dict]) -> dict[str, list[dict]]:
    if all("frequency" in r for r in rows):
        return {f"facts in {f} docs": [r for r in rows if r["frequency"] == f]
                for f in sorted({r["frequency"] for r in rows})}
    famed = sorted((r for r in rows if r.get("fame") is not None), key=lambda r: -r["fame"])
    if len(famed) < 4:
        return {"queries": rows}
    names = ("most famous quarter", "second quarter", "third quarter", "least famous quarter")
    return {name: famed[i * len(famed) // 4:(i + 1) * len(famed) // 4] for i, name in enumerate(names)}


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


OUTCOME_COLOURS = {"correct": "#4c9a4c", "incorrect": "#c8453c", "abstain": "#7f8fa6"}
"""One colour per answer label (halluray.eval.qa.LABELS), in every short-QA / MCQ figure."""


@dataclass
class OutcomePanel:
    """One axes of an outcome figure: per-bucket values of each answer label it shows."""

    values: Mapping[str, Sequence[float | None]]
    ticks: list[str]
    title: str | None = None
    xlabel: str | None = None
    lines: bool = False
    """Lines with markers (e.g. mean probabilities) instead of stacked bars (fractions of answers)."""


def outcome_figure(rows: list[list[OutcomePanel]], path: str | Path, *, title: str, ylabels: list[str],
                   panel_width: float, height: float, legend_space: float, compact: bool = True,
                   colours: Mapping[str, str] = OUTCOME_COLOURS) -> None:
    """A grid of panels (one list per row, shared y axis 0-1): stacked correct / incorrect / abstain bars per
    unfamiliarity bucket (or lines), one legend below, `ylabels[r]` on row r. `compact`: smaller tick, title
    and axis-label fonts (for grids with more than one row). `colours`: the series a panel may show, in order,
    with their colours (default: the answer labels); one legend entry per series shown in a row's first panel."""
    fig, axes = plt.subplots(len(rows), len(rows[0]), figsize=(panel_width * len(rows[0]), height), squeeze=False,
                             sharey=True)
    tick_size, title_font, xlabel_font = (7, {"fontsize": 9}, {"fontsize": 8}) if compact else (8, {}, {})
    for row, panels in enumerate(rows):
        for ax, panel in zip(axes[row], panels):
            x = list(range(len(panel.ticks)))
            bottom = [0.0] * len(x)
            for label in (x for x in colours if x in panel.values):  # a panel may show some series only
                if panel.lines:
                    ax.plot(x, [v if v is not None else float("nan") for v in panel.values[label]], marker="o",
                            color=colours[label], label=label)
                    continue
                values = [v or 0.0 for v in panel.values[label]]
                ax.bar(x, values, bottom=bottom, color=colours[label], label=label, width=0.7)
                bottom = [b + v for b, v in zip(bottom, values)]
            ax.set_xticks(x, panel.ticks, fontsize=tick_size)
            if panel.title is not None:
                ax.set_title(panel.title, **title_font)
            if panel.xlabel is not None:
                ax.set_xlabel(panel.xlabel, **xlabel_font)
            ax.set_ylim(0, 1)
    for row, ylabel in enumerate(ylabels):
        axes[row][0].set_ylabel(ylabel)
    legend: dict = {}
    for row in axes:
        for handle, name in zip(*row[0].get_legend_handles_labels()):
            legend.setdefault(name, handle)
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=max(len(LABELS), len(legend)),
               fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, legend_space, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
