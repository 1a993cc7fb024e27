"""The reward role: scores responses with a pluggable reward.

kinds: `fact_checker` (the run's fact checker with the paper's +2/-3 per-fact reward), `qa_checker` (its
short-answer labels: +2 correct, -3 incorrect, 0 or -3 for abstaining), `callable` (any
'package.module:function' taking (prompts, responses, topics)), `model` (a learned reward model
directory trained by `halluray train-rm`: two-stage or scalar, see halluray/reward_models/models.py). With
`ppo.reward.malformed_penalty` every long-form kind gives a malformed response that penalty (the checker kinds
through their labels, callable and model through `MalformedPenalty`), and `prefix_scores_batch` scores the
well-formed prefixes of malformed responses for segment credit (`ppo.reward.malformed_credit`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from actors.base import RankActor
from halluray.config import CHECKER_REWARDS, ExperimentConfig
from halluray.factuality.checking import build_checker
from halluray.factuality.reward_functions import (
    FactCheckerReward,
    MalformedPenalty,
    QACheckerReward,
    RewardScheme,
    import_callable,
    prefix_scores,
)
from halluray.reward_models.models import FactRewardSum, load_reward_model


@dataclass(frozen=True)
class RewardSpec:
    kind: str
    """fact_checker | qa_checker | callable | model"""
    target: str | None
    """The world file (checker kinds with fact_checker.kind 'world'), 'package.module:function', or a
    reward-model directory."""
    scheme: RewardScheme = RewardScheme()
    trust_remote_code: bool = False
    config: ExperimentConfig = field(default_factory=ExperimentConfig)
    """Checker kinds: the config whose `fact_checker` scores (the default is the world's exact checker)."""
    records: tuple[dict, ...] = ()
    """qa_checker: the PPO prompts' records, which say what each prompt asks."""
    cache_path: str | None = None
    """Checker kinds: where an HTTP checker caches its replies."""
    world_path: str | None = None
    """callable and model with `scheme.malformed`: the world file the run's checker reads to tell a malformed
    response (its `config` names the checker)."""


class RewardActor(RankActor):
    def init_reward(self, spec: RewardSpec) -> None:
        # A two-stage RM (its `claims` and `rewards_of`, for `explain`) and the malformed rule over it; None for
        # other rewards. `form` is the checker that tells a malformed response (None without the rule).
        self.claims_rm, self.penalty, self.form = None, None, None
        if spec.kind in CHECKER_REWARDS:
            checker = build_checker(spec.config, world_path=spec.target, cache_path=spec.cache_path)
            self.fn = (FactCheckerReward(checker, spec.scheme) if spec.kind == "fact_checker"
                       else QACheckerReward(checker, list(spec.records), spec.scheme))
            if spec.kind == "fact_checker" and spec.scheme.malformed is not None:
                self.form = checker
        elif spec.kind in ("callable", "model"):
            self.fn = (import_callable(spec.target) if spec.kind == "callable"
                       else load_reward_model(spec.target, self.device, spec.trust_remote_code))
            self.claims_rm = self.fn if isinstance(self.fn, FactRewardSum) else None
            if spec.scheme.malformed is not None:
                checker = build_checker(spec.config, world_path=spec.world_path, cache_path=spec.cache_path)
                self.fn = self.penalty = MalformedPenalty(self.fn, checker, spec.scheme.malformed)
                self.form = checker
        else:
            raise ValueError(f"unknown reward kind {spec.kind!r}; expected fact_checker, qa_checker, callable or model")
        self.name = f"{spec.kind}:{spec.target}"

    def score_batch(self, batch: dict) -> list[float]:
        """`score` on a dict of equal-length lists (what ActorGroup.call_sharded splits)."""
        return self.score(batch["prompts"], batch["responses"], batch["topics"])

    def score(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[float]:
        self._require("fn")
        return self._checked(self.fn(prompts, responses, topics), responses, topics)

    def _checked(self, scores: list, responses: list[str], topics: list[str]) -> list[float]:
        """`scores` as floats, one per response, every one finite."""
        scores = [float(s) for s in scores]
        if len(scores) != len(responses):
            raise ValueError(f"reward {self.name} returned {len(scores)} scores for {len(responses)} responses")
        bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
        if bad:
            i = bad[0]
            raise ValueError(f"reward {self.name} returned {scores[i]} for response {i} "
                             f"(topic {topics[i]!r}: {responses[i][:80]!r})")
        return scores

    def prefix_scores_batch(self, batch: dict) -> list[tuple[str, float] | None]:
        """`prefix_scores` (reward_functions.py) of each response with this reward; all None without a malformed
        rule."""
        self._require("fn")
        prompts, responses, topics = batch["prompts"], batch["responses"], batch["topics"]
        if self.form is None:
            return [None] * len(responses)
        return prefix_scores(self.score, self.form.well_formed, prompts, responses, topics)

    def explain_batch(self, batch: dict) -> list[dict]:
        """`explain` on a dict of equal-length lists (what ActorGroup.call_sharded splits)."""
        return self.explain(batch["prompts"], batch["responses"], batch["topics"])

    def explain(self, prompts: list[str], responses: list[str], topics: list[str]) -> list[dict]:
        """Each response's `score` and the claims a two-stage RM paid for: {"reward": float, "claims": [(claim,
        P(true)), ...]}, "claims" None for a reward that reads no claims (checker kinds, scalar RM, callable)."""
        if self.claims_rm is None:
            return [{"reward": s, "claims": None} for s in self.score(prompts, responses, topics)]
        # The claims are read once and scored as `score` scores them (the RM's sum, then the malformed rule).
        claims = self.claims_rm.claims(prompts, responses, topics)
        scores = self.claims_rm.rewards_of(claims)
        if self.penalty is not None:
            scores = self.penalty.apply(scores, responses, topics)
        return [{"reward": s, "claims": c} for s, c in zip(self._checked(scores, responses, topics), claims)]
