"""One run of a QA/MCQ experiment: its run directory, metrics logger, held-out items, and the results it writes
all or nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from halluray.config import ExperimentConfig
from halluray.experiments.shared.heldout import HeldOut, load_heldout
from halluray.io import atomic_dir, atomic_write_json, write_jsonl
from halluray.layout import RunLayout
from halluray.logging import RunLogger
from halluray.pipeline.shared.prepare import prepare


@dataclass
class Experiment:
    """One run of a QA/MCQ experiment: its layout, metrics logger, held-out items and the results it collects."""

    cfg: ExperimentConfig
    stage: str
    layout: RunLayout
    logger: RunLogger
    held: HeldOut
    t0: float
    results: dict = field(default_factory=dict)
    answer_rows: list[dict] = field(default_factory=list)

    def finish(self, out: Path, figure_name: str, draw: Callable[[dict, Path], None], **extra) -> dict:
        """Complete the results (the held-out summary, then `extra`, then the seconds since the start), write
        out/{results.json, answers.jsonl, heldout_items.jsonl, <figure_name>} (drawn by `draw(results, path)`) all
        or nothing, print a summary line; return the results."""
        held, results = self.held, self.results
        results.update({**held.summary(self.cfg), **extra, "seconds": round(time.time() - self.t0, 1)})
        with atomic_dir(out) as tmp:
            atomic_write_json(tmp / "results.json", results)
            write_jsonl(tmp / "answers.jsonl", self.answer_rows)
            write_jsonl(tmp / "heldout_items.jsonl", held.items)
            draw(results, tmp / figure_name)
        print(f"{self.stage}: {len(held.items)} held-out items, buckets {results['counts']} ({held.bin_method} "
              f"edges {[round(e, 3) for e in held.edges]}); results in {out} ({results['seconds']} s)")
        return results


@contextmanager
def experiment(cfg: ExperimentConfig, stage: str, task: str) -> Iterator[Experiment]:
    """Prepare the run directory for `stage`, open its metrics logger and load the held-out items of `task`."""
    layout = prepare(cfg, stage)
    t0 = time.time()
    with RunLogger(layout.run_dir, cfg, stage) as logger:
        yield Experiment(cfg, stage, layout, logger, load_heldout(cfg, layout, task), t0)
