"""SFT target strategies (paper §4): supervise unfamiliar examples with an abstention, or a random control."""

from __future__ import annotations

import random

STRATEGIES = ("standard", "unfamiliar-idk", "random-idk")
REAL_ABSTENTION = "I don't know."
"""The abstention target on real data (the fact checkers recognise it as an abstention)."""


def item_key(topic: str, attribute: str | None = None) -> str:
    """What an unfamiliarity score belongs to: the topic, or one attribute of it when a topic has several
    questions (a fact table may ask a country's capital and a city's country of the same name)."""
    return f"{topic}/{attribute}" if attribute else topic


def relabel(records: list[dict], unfamiliar: dict[str, bool], strategy: str, abstention: str,
            seed: int) -> tuple[list[dict], int]:
    """New records with some targets replaced by `abstention`; returns them and how many were replaced.

    unfamiliar-idk relabels exactly the examples whose topic is unfamiliar; random-idk relabels the same
    number of examples chosen uniformly at random, so the two differ only in *which* examples abstain.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown SFT strategy {strategy!r}; expected one of {STRATEGIES}")
    keys = [item_key(r["topic"], r.get("attribute")) for r in records]
    missing = [k for k in keys if k not in unfamiliar]
    if strategy != "standard" and missing:
        raise ValueError(f"no unfamiliarity score for {len(missing)} SFT topics (e.g. {missing[0]!r}); "
                         f"run `halluray unfamiliarity` first")
    if strategy == "standard":
        chosen: set[int] = set()
    else:
        flagged = [i for i, k in enumerate(keys) if unfamiliar[k]]
        chosen = set(flagged) if strategy == "unfamiliar-idk" else set(
            random.Random(seed).sample(range(len(records)), len(flagged)))
    out = [dict(r, target=abstention, relabeled=True) if i in chosen else dict(r, relabeled=False)
           for i, r in enumerate(records)]
    return out, len(chosen)
