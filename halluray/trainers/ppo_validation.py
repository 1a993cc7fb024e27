"""PPO's validation on the `val` split (never the test split, which only `halluray eval` reads): the policy's
factuality by the run's fact checker and, with a reward other than the checker (a learned RM), that reward on the
same responses and its over-estimation of the checker's by unfamiliarity tercile (a reward-hacking alarm), and
the plateau stop on the validation reward."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from halluray.config import CHECKER_REWARDS, ExperimentConfig
from halluray.data import LONG_FORM_DATASETS, prompts_for
from halluray.eval.claims_table import claim_rows
from halluray.eval.factuality import factuality_metrics
from halluray.eval.overestimation import overestimation, overestimation_alarm, tercile_edges, watched_overestimation
from halluray.factuality.checking import Checker, checker_for
from halluray.factuality.reward_functions import RewardScheme, long_form_reward
from halluray.io import read_jsonl
from halluray.layout import RunLayout
from halluray.models.generation import SamplingParams
from halluray.ppo.plateau import PlateauStop
from halluray.trainers.ppo_driver import PPODriver

EVAL_SEED_OFFSET = 7


@dataclass(frozen=True)
class Validation:
    """What PPO's evaluations read: the validation prompts, the run's checker, and each prompt topic's long-form
    unfamiliarity score with the terciles' edges (empty and None without the unfamiliarity stage's file)."""
    records: list[dict]
    checker: Checker
    unfamiliarity: dict[str, float]
    edges: list[float] | None


def validation_for(cfg: ExperimentConfig) -> Validation | None:
    """The run's validation set, or None when its prompts are not long-form (no fact checker to validate with)."""
    if cfg.data.dataset not in LONG_FORM_DATASETS:
        return None
    records = list(prompts_for(cfg, "val"))
    unfamiliarity = long_form_unfamiliarity(RunLayout(cfg).unfamiliarity_scores)
    known = [unfamiliarity[r["topic"]] for r in records if r["topic"] in unfamiliarity]
    if cfg.ppo.reward.kind not in CHECKER_REWARDS and not known:
        print("ppo: no unfamiliarity scores for the validation prompts; the reward-model over-estimation monitor "
              "reads all of them together, not by tercile", file=sys.stderr, flush=True)
    # The edges are computed once, so every evaluation puts each prompt in the same tercile.
    return Validation(records, checker_for(cfg), unfamiliarity, tercile_edges(known) if known else None)


def long_form_unfamiliarity(path: Path) -> dict[str, float]:
    """name -> long-form unfamiliarity score from the unfamiliarity stage's file; {} when there is none (real
    data that never ran the stage: the monitor then skips the tercile split)."""
    if not path.is_file():
        return {}
    return {r["name"]: r["score"] for r in read_jsonl(path) if r["task"] == "long_form"}


def evaluate(driver: PPODriver, cfg: ExperimentConfig, val: Validation, step: int) -> tuple[dict, list[dict]]:
    """The policy after `step` steps on the validation prompts, `eval.samples_per_prompt` samples each: the
    checker's factuality metrics and, with a reward other than the checker, that reward on the same responses and
    how much it over-estimates the checker's, overall and by unfamiliarity tercile (keys `val/*`); and the
    per-claim table's rows (`claims_table`)."""
    e, scheme = cfg.eval, RewardScheme.from_config(cfg.ppo.reward)
    records = [r for r in val.records for _ in range(e.samples_per_prompt)]
    prompts, topics = [r["prompt"] for r in records], [r["topic"] for r in records]
    params = SamplingParams(e.temperature, 1.0, cfg.ppo.max_new_tokens, tuple(cfg.ppo.stop))
    responses = driver.generate(prompts, params, seed=cfg.seed + EVAL_SEED_OFFSET)
    metrics = factuality_metrics(val.checker, topics, responses, scheme)
    if cfg.ppo.reward.kind not in CHECKER_REWARDS:
        rm = driver.score(prompts, responses, topics)
        # Labelled a second time per response: the checker is deterministic and an HTTP checker's replies are
        # cached, so this costs no new requests.
        gt = [long_form_reward(r, scheme) for r in val.checker.check_many(topics, responses)]
        metrics.update(overestimation(rm, gt, [val.unfamiliarity.get(t) for t in topics], val.edges))
    return {f"val/{k}": v for k, v in metrics.items()}, claims_table(driver, cfg, val, step, records, responses)


def claims_table(driver: PPODriver, cfg: ExperimentConfig, val: Validation, step: int, records: list[dict],
                 responses: list[str]) -> list[dict]:
    """The per-claim table (halluray/eval/claims_table.py) of the first sample of each of the first
    `ppo.claims_table_prompts` validation prompts: the same prompts at every evaluation, so a claim's P(true)
    can be followed across steps."""
    picked = list(range(0, len(records), cfg.eval.samples_per_prompt))[:cfg.ppo.claims_table_prompts]
    if not picked:
        return []
    records, responses = [records[i] for i in picked], [responses[i] for i in picked]
    explained = driver.explain([r["prompt"] for r in records], responses, [r["topic"] for r in records])
    return claim_rows(step, records, responses, explained, val.checker, RewardScheme.from_config(cfg.ppo.reward),
                      val.unfamiliarity)


class ValidationWatch:
    """PPO's evaluations and what the run reads across them: the over-estimation alarm (against the first
    evaluation, the policy before training) and the plateau stop. Its state goes into every checkpoint, so
    `--resume` and a restart continue both where the checkpoint left them."""

    def __init__(self, cfg: ExperimentConfig, val: Validation):
        self.cfg, self.val, ppo = cfg, val, cfg.ppo
        self.monitored = ppo.reward.kind not in CHECKER_REWARDS
        # The reward PPO optimises, on the validation responses: never the ground truth for a learned RM, which
        # would let the oracle decide when training stops.
        self.reward_key = "val/rm_reward" if self.monitored else "val/reward"
        self.plateau = PlateauStop(ppo.plateau_patience, ppo.plateau_min_delta)
        self.baseline: float | None = None

    def measure(self, driver: PPODriver, step: int) -> tuple[dict, list[dict]]:
        """`evaluate` the policy after `step` steps, with `val/overestimation_alarm` when the reward is not the
        checker (one stderr line when it is on); the first evaluation sets the alarm's baseline. Returns the
        metrics and the per-claim table's rows."""
        metrics, claims = evaluate(driver, self.cfg, self.val, step)
        if not self.monitored:
            return metrics, claims
        current = watched_overestimation({k.removeprefix("val/"): v for k, v in metrics.items()})
        if self.baseline is None:
            self.baseline = current
        on = overestimation_alarm(self.baseline, current, self.cfg.ppo.overestimation_warn)
        if on:
            where = "most unfamiliar " if "val/overestimation_t2" in metrics else ""
            print(f"ppo: warning: step {step}: the reward model over-estimates the {where}validation prompts by "
                  f"{current:+.1f} ({current - self.baseline:+.1f} since step 0): reward hacking?",
                  file=sys.stderr, flush=True)
        return {**metrics, "val/overestimation_alarm": int(on)}, claims

    def flat(self, metrics: dict) -> bool:
        """Record an evaluation's validation reward (all but the final one); True when training should stop."""
        return self.plateau.update(metrics[self.reward_key])

    def state_dict(self) -> dict:
        return {"baseline": self.baseline, "plateau": self.plateau.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        # A checkpoint written before the watch existed has no state: both then start from the next evaluation.
        if state:
            self.baseline = state["baseline"]
            self.plateau.load_state_dict(state["plateau"])
