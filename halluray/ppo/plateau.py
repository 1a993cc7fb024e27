"""Early stopping on a validation plateau: stop once the validation reward has not risen by more than
`min_delta` above its best for `patience` evaluations in a row (the `ppo.plateau_*` keys)."""

from __future__ import annotations


class PlateauStop:
    """Feed it each evaluation's validation reward in order; `update` says when to stop.

    `best` moves only on an improvement (more than `min_delta` above it), so a slow rise of less than
    `min_delta` per evaluation still counts once it adds up to more than `min_delta`. patience 0 never stops."""

    def __init__(self, patience: int, min_delta: float):
        self.patience, self.min_delta = patience, float(min_delta)
        self.best: float | None = None
        self.flat = 0
        """Evaluations in a row without an improvement."""

    def update(self, reward: float) -> bool:
        """Record one evaluation; True once the reward has been flat for `patience` evaluations in a row."""
        if self.best is None or reward > self.best + self.min_delta:
            self.best, self.flat = float(reward), 0
        else:
            self.flat += 1
        return self.patience > 0 and self.flat >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "flat": self.flat}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.flat = state["best"], int(state["flat"])
