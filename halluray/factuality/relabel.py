"""SFT target strategies (paper §4): supervise unfamiliar examples with an abstention, or a random control."""

from __future__ import annotations

import random

STRATEGIES = ("standard", "unfamiliar-idk", "random-idk")


def relabel(records: list[dict], unfamiliar: dict[str, bool], strategy: str, abstention: str,
            seed: int) -> tuple[list[dict], int]:
    """New records with some targets replaced by `abstention`; returns them and how many were replaced.

    unfamiliar-idk relabels exactly the examples whose topic is unfamiliar; random-idk relabels the same
    number of examples chosen uniformly at random, so the two differ only in *which* examples abstain.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown SFT strategy {strategy!r}; expected one of {STRATEGIES}")
    missing = [r["topic"] for r in records if r["topic"] not in unfamiliar]
    if strategy != "standard" and missing:
        raise ValueError(f"no unfamiliarity score for {len(missing)} SFT topics (e.g. {missing[0]!r}); "
                         f"run `halluray unfamiliarity` first")
    if strategy == "standard":
        chosen: set[int] = set()
    else:
        flagged = [i for i, r in enumerate(records) if unfamiliar[r["topic"]]]
        chosen = set(flagged) if strategy == "unfamiliar-idk" else set(
            random.Random(seed).sample(range(len(records)), len(flagged)))
    out = [dict(r, target=abstention, relabeled=True) if i in chosen else dict(r, relabeled=False)
           for i, r in enumerate(records)]
    return out, len(chosen)
