"""How the experiments print, log and plot their answers by unfamiliarity bucket."""

from __future__ import annotations

from halluray.config import ExperimentConfig
from halluray.eval.qa import LABELS


def bucket_metrics(fractions: dict) -> dict[str, float | None]:
    """{"<label>/bin<b>": fraction} for the metrics log."""
    return {f"{label}/bin{b}": v for label in LABELS for b, v in enumerate(fractions[label])}


def bucket_line(bins: list[str], fractions: dict, samples: list[int] | None = None) -> str:
    """'<bin> (<n> answers): correct 0.50 incorrect 0.25 abstain 0.25; ...' for the console."""
    return "; ".join((f"{b} ({samples[j]} answers): " if samples is not None else f"{b}: ") +
                     " ".join(f"{label} {fractions[label][j]:.2f}" for label in LABELS) for j, b in enumerate(bins))


def rounded_bins(edges: list[float], bins: list[str]) -> list[str]:
    """Bin labels with the edges rounded for an axis (MCQ NLLs)."""
    if not edges:
        return bins
    lo = [f"{e:.2f}" for e in edges]
    return [f"< {lo[0]}"] + [f"{a}-{b}" for a, b in zip(lo, lo[1:])] + [f"≥ {lo[-1]}"]


def short_qa_score_note(cfg: ExperimentConfig) -> str:
    return f"short_qa: incorrect of {cfg.unfamiliarity.short_qa_samples} few-shot samples"


def mcq_score_note(cfg: ExperimentConfig) -> str:
    return f"mcq: NLL of the correct choice among the four ({cfg.unfamiliarity.n_shots}-shot base model)"
