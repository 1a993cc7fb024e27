"""`halluray ppo`: the PPO loop on Ray actor groups — iterate, log, evaluate, checkpoint, export.

The iteration itself is `PPODriver.step` (halluray/driver.py); this stage owns the run: where it writes
(run_dir/<ppo.name>/: config.yaml, checkpoints/step_*/, model/), one run per directory, resuming, and restarts:
when a training rank (policy, critic) fails, every group is torn down and rebuilt from the last complete
checkpoint, up to `actors.max_restarts` times (a dying stateless worker is handled inside the driver).

When the prompts are long-form (the world, WikiBios, WikiPlots: the run's fact checker) it also validates the
policy before training, every `ppo.eval_every` steps and at the end, on the `val` split (never the test split,
which only `halluray eval` reads), logging `val/*`. With a reward other than the checker (a learned RM) the
same responses are scored by that reward too, and its over-estimation of the checker's reward by unfamiliarity
tercile warns of reward hacking; `ppo.plateau_patience` stops training once the validation reward is flat.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from actors.group import init_ray
from actors.reward import RewardSpec
from halluray import checkpoints
from halluray.config import ExperimentConfig
from halluray.data import LONG_FORM_DATASETS, prompts_for
from halluray.driver import PPODriver
from halluray.errors import ActorFailure, InputError
from halluray.eval.factuality import factuality_metrics
from halluray.eval.overestimation import overestimation, overestimation_alarm, tercile_edges, watched_overestimation
from halluray.factuality.checking import Checker
from halluray.factuality.reward_functions import RewardScheme, long_form_reward
from halluray.io import atomic_write_text, read_jsonl
from halluray.layout import RunLayout
from halluray.logging import RunLogger, progress
from halluray.models.generation import SamplingParams
from halluray.ppo.plateau import PlateauStop
from halluray.stages.common import checker_for, prepare

EVAL_SEED_OFFSET = 7
DETERMINISTIC = {"NonFiniteError", "InputError", "ValueError", "TypeError", "KeyError", "FileNotFoundError"}
"""Errors raised inside a live actor that a restart would only repeat."""
CHECKER_REWARDS = ("fact_checker", "qa_checker")
"""Reward kinds that are the checker itself: their validation reward is the ground truth, nothing to monitor."""


def reward_spec(cfg: ExperimentConfig, prompts: list[dict] | None = None) -> RewardSpec:
    """What the reward actors score with; the checker kinds use the run's fact checker (and its own world).
    qa_checker sends the PPO prompts' records along: `prompts` when the caller has read them already."""
    r, layout = cfg.ppo.reward, RunLayout(cfg)
    if r.kind in ("fact_checker", "qa_checker"):
        if r.kind == "fact_checker":
            records = ()
        else:
            records = tuple(prompts if prompts is not None else prompts_for(cfg, "ppo"))
        return RewardSpec(r.kind, r.target or str(layout.world_json), RewardScheme.from_config(r),
                          cfg.model.trust_remote_code, cfg, records, str(layout.fact_checker_cache))
    if r.target is None:
        raise InputError(f"ppo.reward.target must be set for reward kind '{r.kind}'")
    return RewardSpec(r.kind, r.target, RewardScheme.from_config(r), cfg.model.trust_remote_code)


def policy_init(cfg: ExperimentConfig) -> str:
    """`ppo.init_model`, else the run's standard SFT model, else its base model."""
    return cfg.ppo.init_model or str(RunLayout(cfg).default_policy_init())


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


def evaluate(driver: PPODriver, cfg: ExperimentConfig, val: Validation) -> dict:
    """The current policy on the validation prompts, `eval.samples_per_prompt` samples each: the checker's
    factuality metrics and, with a reward other than the checker, that reward on the same responses and how
    much it over-estimates the checker's, overall and by unfamiliarity tercile. Keys `val/*`."""
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
    return {f"val/{k}": v for k, v in metrics.items()}


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

    def measure(self, driver: PPODriver, step: int) -> dict:
        """`evaluate` the policy after `step` steps, with `val/overestimation_alarm` when the reward is not the
        checker (one stderr line when it is on); the first evaluation sets the alarm's baseline."""
        metrics = evaluate(driver, self.cfg, self.val)
        if not self.monitored:
            return metrics
        current = watched_overestimation({k.removeprefix("val/"): v for k, v in metrics.items()})
        if self.baseline is None:
            self.baseline = current
        on = overestimation_alarm(self.baseline, current, self.cfg.ppo.overestimation_warn)
        if on:
            where = "most unfamiliar " if "val/overestimation_t2" in metrics else ""
            print(f"ppo: warning: step {step}: the reward model over-estimates the {where}validation prompts by "
                  f"{current:+.1f} ({current - self.baseline:+.1f} since step 0): reward hacking?",
                  file=sys.stderr, flush=True)
        return {**metrics, "val/overestimation_alarm": int(on)}

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


def restartable(failure: ActorFailure) -> bool:
    return failure.cause not in DETERMINISTIC


def run_ppo(cfg: ExperimentConfig, resume: bool = False, init: str | None = None, overwrite: bool = False) -> dict:
    """Train `ppo.steps` iterations into run_dir/<ppo.name>/ (from `init`, default `policy_init(cfg)`).

    A directory that already holds a PPO run is continued only with `resume`, replaced only with `overwrite`."""
    layout, ppo = RunLayout(cfg), cfg.ppo
    out, ckpt_dir = layout.ppo_dir(ppo.name), layout.ppo_checkpoints(ppo.name)
    if resume:
        checkpoints.clean_leftovers(ckpt_dir)
        start = checkpoints.latest(ckpt_dir)
        if start is None:
            raise InputError(f"--resume: no complete checkpoint under {ckpt_dir}")
    else:
        start = None
        if out.exists() and not overwrite:
            raise InputError(f"{out} already holds a PPO run: continue it with `halluray ppo --resume {out}`, "
                             f"or start again with --overwrite (which deletes it)")
        shutil.rmtree(out, ignore_errors=True)
    prompts = list(prompts_for(cfg, "ppo"))
    spec, init = reward_spec(cfg, prompts), init or policy_init(cfg)
    atomic_write_text(out / "config.yaml", cfg.to_yaml())  # this PPO run's resolved config
    val = validation_for(cfg)
    init_ray(cfg)
    with RunLogger(layout.run_dir, cfg, ppo.name) as logger:
        for restart in range(cfg.actors.max_restarts + 1):
            driver = None
            try:
                driver = PPODriver(cfg, init, spec, prompts)  # a failed start shuts its own groups down
                final = _train(driver, cfg, start, logger, val)
                driver.shutdown()
                return final
            except ActorFailure as e:
                if driver:
                    driver.shutdown(graceful=False)
                if not restartable(e) or restart == cfg.actors.max_restarts:
                    where = f"step {driver.step_done + 1}" if driver else "starting the actor groups"
                    raise ActorFailure(f"{where}: {e}", e.role, e.rank, e.died, e.cause) from None
                start = checkpoints.latest(ckpt_dir)
                print(f"ppo: {e}; restarting every group from {start or 'the initial policy'} "
                      f"(restart {restart + 1} of {cfg.actors.max_restarts})", file=sys.stderr, flush=True)
            except BaseException:
                if driver:
                    driver.shutdown(graceful=False)
                raise
    raise AssertionError("unreachable")


def _train(driver: PPODriver, cfg: ExperimentConfig, start, logger: RunLogger, val: Validation | None) -> dict:
    ppo, layout = cfg.ppo, RunLayout(cfg)
    ckpt_dir = layout.ppo_checkpoints(ppo.name)
    watch = ValidationWatch(cfg, val) if val else None
    # resume from the last complete checkpoint, or measure the starting policy
    if start is not None:
        stage_state = driver.load(start)
        if watch:
            watch.load_state_dict(stage_state)
        print(f"ppo: resumed from {start} (step {driver.step_done})")
    elif watch:
        first = watch.measure(driver, 0)
        watch.flat(first)  # the policy before training sets the plateau's first best
        logger.log(0, **first)
    stopped = False
    for step in progress(range(driver.step_done + 1, ppo.steps + 1), desc=ppo.name, initial=driver.step_done,
                         total=ppo.steps):
        metrics, samples = driver.step()
        if ppo.log_samples_every and step % ppo.log_samples_every == 0:
            logger.log_samples(step, samples)
        if watch and ppo.eval_every and step % ppo.eval_every == 0 and step < ppo.steps:
            metrics.update(watch.measure(driver, step))
            if ppo.plateau_patience:
                stopped = watch.flat(metrics)
                metrics["val/plateau_stop"] = int(stopped)
                if stopped:
                    metrics["val/plateau_stop_step"] = step
        logger.log(step, **metrics)
        if ppo.save_every and step % ppo.save_every == 0:
            _checkpoint(driver, ckpt_dir, ppo.keep_last, watch)
        if stopped:
            print(f"ppo: validation reward flat for {ppo.plateau_patience} evaluations; stopping at step {step} "
                  f"of {ppo.steps}", flush=True)
            break
    # the final policy: validation (at a plateau stop, the evaluation that stopped it), checkpoint, HF export
    if stopped:
        final = {k: v for k, v in metrics.items() if k.startswith("val/")}
    else:
        final = watch.measure(driver, ppo.steps) if watch else {}
        logger.log(ppo.steps, **final)
    _checkpoint(driver, ckpt_dir, ppo.keep_last, watch)
    driver.export(layout.ppo_model(ppo.name))
    return final


def _checkpoint(driver: PPODriver, ckpt_dir, keep_last: int, watch: ValidationWatch | None) -> None:
    driver.save(ckpt_dir, watch.state_dict() if watch else None)
    checkpoints.keep_last(ckpt_dir, keep_last)


def run(cfg: ExperimentConfig, resume: bool = False, overwrite: bool = False) -> dict:
    prepare(cfg, "ppo")
    final = run_ppo(cfg, resume=resume, overwrite=overwrite)
    if final:
        print("ppo: validation " + ", ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in final.items()
                                           if isinstance(v, float)))
    return final
