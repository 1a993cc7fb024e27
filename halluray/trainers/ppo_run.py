"""One PPO run on Ray actor groups: iterate, log, validate, checkpoint, export, restart.

The iteration itself is `PPODriver.step` (ppo_driver.py). This module owns the run in run_dir/<ppo.name>/
(config.yaml, checkpoints/step_*/, model/): one run per directory, resuming, and restarts: when a training rank
(policy, critic) fails, every group is torn down and rebuilt from the last complete checkpoint, up to
`actors.max_restarts` times (a dying stateless worker is handled inside the driver). Long-form prompts are
validated before training, every `ppo.eval_every` steps and at the end (ppo_validation.py).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from ray.exceptions import RayError

from actors.cluster import node_name, placement, wait_for_room
from actors.group import init_ray
from actors.reward import RewardSpec
from halluray import checkpoints, preflight, run_lock, stopping
from halluray.config import CHECKER_REWARDS, ExperimentConfig
from halluray.data import prompts_for
from halluray.errors import ActorFailure, InputError
from halluray.factuality.reward_functions import RewardScheme
from halluray.io import atomic_write_text
from halluray.layout import WORLD_DATASETS, RunLayout
from halluray.logging import RunLogger, progress
from halluray.preflight.cluster import Demand, demands
from halluray.trainers.ppo_driver import PPODriver
from halluray.trainers.ppo_validation import Validation, ValidationWatch, validation_for

CLAIMS_TABLE = "val/claims"
"""The per-claim table's W&B key, and its records' `stage` in metrics.jsonl."""
DETERMINISTIC = {"NonFiniteError", "InputError", "ValueError", "TypeError", "KeyError", "FileNotFoundError"}
"""Errors raised inside a live actor that a restart would only repeat."""


def reward_spec(cfg: ExperimentConfig, prompts: list[dict] | None = None) -> RewardSpec:
    """What the reward actors score with; the checker kinds use the run's fact checker (and its own world).
    qa_checker sends the PPO prompts' records along: `prompts` when the caller has read them already."""
    r, layout = cfg.ppo.reward, RunLayout(cfg)
    if r.kind in CHECKER_REWARDS:
        if r.kind == "fact_checker":
            records = ()
        else:
            records = tuple(prompts if prompts is not None else prompts_for(cfg, "ppo"))
        return RewardSpec(r.kind, r.target or str(layout.world_json), RewardScheme.from_config(r),
                          cfg.model.trust_remote_code, cfg, records, str(layout.fact_checker_cache))
    if r.target is None:
        raise InputError(f"ppo.reward.target must be set for reward kind '{r.kind}'")
    return RewardSpec(r.kind, r.target, RewardScheme.from_config(r), cfg.model.trust_remote_code, cfg,
                      cache_path=str(layout.fact_checker_cache), world_path=str(layout.world_json))


def policy_init(cfg: ExperimentConfig) -> str:
    """`ppo.init_model`, else the run's standard SFT model, else its base model."""
    return cfg.ppo.init_model or str(RunLayout(cfg).default_policy_init())


def restartable(failure: ActorFailure) -> bool:
    return failure.cause not in DETERMINISTIC


def as_failure(error: ActorFailure | RayError) -> ActorFailure:
    """A Ray error raised outside a group's wait (placing or killing actors) is met like a dead actor: restart,
    or one line with the `--resume` command."""
    if isinstance(error, ActorFailure):
        return error
    first_line = (str(error).splitlines() or [""])[0]
    return ActorFailure(f"Ray: {error.__class__.__name__}: {first_line}", died=True)


def lost_node(failure: ActorFailure, driver: PPODriver | None) -> str | None:
    """`node <ip> (<id>) died: policy ranks [1], critic ranks [1]` when the failure was a lost node."""
    if failure.node_id is None:
        return None
    held = [f"{g.role} ranks {g.ranks_on(failure.node_id)}" for g in (driver.groups if driver else [])
            if g.ranks_on(failure.node_id)]
    return f"node {node_name(failure.node_id)} died" + (f": {', '.join(held)}" if held else "")


def ppo_demands(cfg: ExperimentConfig) -> list[Demand]:
    """What the PPO groups ask of the cluster, as the preflight plans them."""
    phase = next(p for p in preflight.check(cfg, "ppo").phases if p.name == "ppo")
    return demands(phase)


def run_inputs(cfg: ExperimentConfig, init: str) -> dict[str, Path]:
    """The files a resume must find unchanged (`run_lock.changed_inputs`): the prompts' data (the world's
    directory, or a local `data.path`) and the initial policy."""
    data = RunLayout(cfg).world_dir if cfg.data.dataset in WORLD_DATASETS else Path(cfg.data.path or "")
    found = {"data": data, "init model": Path(init)}
    return {label: p for label, p in found.items() if str(p) not in ("", ".") and p.exists()}


def run_ppo(cfg: ExperimentConfig, resume: bool = False, init: str | None = None, overwrite: bool = False) -> dict:
    """Train `ppo.steps` iterations into run_dir/<ppo.name>/ (from `init`, default `policy_init(cfg)`).

    A directory that already holds a PPO run is continued only with `resume`, replaced only with `overwrite`.
    The directory is locked for the whole run (`run_lock`); SIGINT/SIGTERM stop it after the current step
    (`stopping`), raising `stopping.Interrupted` once every group is released."""
    with run_lock.hold(RunLayout(cfg).ppo_dir(cfg.ppo.name)), stopping.graceful("ppo"):
        return _run_ppo(cfg, resume, init, overwrite)


def _run_ppo(cfg: ExperimentConfig, resume: bool, init: str | None, overwrite: bool) -> dict:
    layout, ppo = RunLayout(cfg), cfg.ppo
    out, ckpt_dir = layout.ppo_dir(ppo.name), layout.ppo_checkpoints(ppo.name)
    init = init or policy_init(cfg)
    if resume:
        if changed := run_lock.changed_inputs(out, run_inputs(cfg, init)):
            raise InputError(f"--resume {out}: {'; '.join(changed)} since the run started (a resumed run must "
                             f"read the same data and initial model); start a new run with another ppo.name")
        checkpoints.clean_leftovers(ckpt_dir)  # only under the lock: a live run's temp step is not a leftover
        start = checkpoints.latest(ckpt_dir)
        if start is None:
            raise InputError(f"--resume: no complete checkpoint under {ckpt_dir}")
    else:
        start = None
        held = [p for p in out.iterdir() if p.name != run_lock.LOCK]
        if held and not overwrite:
            raise InputError(f"{out} already holds a PPO run: continue it with `halluray ppo --resume {out}`, "
                             f"or start again with --overwrite (which deletes it)")
        for p in held:  # all but the lock, which this process holds
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    prompts = list(prompts_for(cfg, "ppo"))
    spec = reward_spec(cfg, prompts)
    if not resume:
        run_lock.record_inputs(out, run_inputs(cfg, init))
    atomic_write_text(out / "config.yaml", cfg.to_yaml())  # this PPO run's resolved config
    val = validation_for(cfg)
    init_ray(cfg)
    with RunLogger(layout.run_dir, cfg, ppo.name, out / "wandb_run_id") as logger:
        for restart in range(cfg.actors.max_restarts + 1):
            driver = None
            try:
                driver = PPODriver(cfg, init, spec, prompts)  # a failed start shuts its own groups down
                atomic_write_text(layout.ppo_placement(ppo.name), json.dumps(placement(driver.groups), indent=1))
                final = _train(driver, cfg, start, logger, val)
                driver.shutdown()
                return final
            except (ActorFailure, RayError) as caught:
                if driver:
                    driver.shutdown(graceful=False)
                e = as_failure(caught)
                lost = lost_node(e, driver)
                where = f"step {driver.step_done + 1}" if driver else "starting the actor groups"
                if not restartable(e) or restart == cfg.actors.max_restarts:
                    raise ActorFailure(f"{where}: {lost or e}", e.role, e.rank, e.died, e.cause) from None
                if lost:
                    # the groups come back only where the cluster can place them all again
                    print(f"ppo: {lost}", file=sys.stderr, flush=True)
                    missing = wait_for_room(ppo_demands(cfg), cfg.actors.placement_strategy, cfg.actors.node_wait_s,
                                            "ppo")
                    if missing:
                        raise ActorFailure(f"{where}: {lost}; no node took its place within actors.node_wait_s="
                                           f"{cfg.actors.node_wait_s:g} s ({missing})", e.role, e.rank, True,
                                           node_id=e.node_id) from None
                start = checkpoints.latest(ckpt_dir)
                print(f"ppo: {'' if lost else f'{e}; '}restarting every group from {start or 'the initial policy'} "
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
    start, stage_state = _load_verified(driver, ckpt_dir, start)
    if start is not None:
        if watch:
            watch.load_state_dict(stage_state)
        print(f"ppo: resumed from {start} (step {driver.step_done})")
    elif watch:
        first = _validate(watch, driver, 0, logger)
        watch.flat(first)  # the policy before training sets the plateau's first best
        logger.log(0, **first)
    stopped = False
    for step in progress(range(driver.step_done + 1, ppo.steps + 1), desc=ppo.name, initial=driver.step_done,
                         total=ppo.steps):
        metrics, samples = driver.step()
        if ppo.log_samples_every and step % ppo.log_samples_every == 0:
            logger.log_samples(step, samples)
        if watch and ppo.eval_every and step % ppo.eval_every == 0 and step < ppo.steps:
            metrics.update(_validate(watch, driver, step, logger))
            if ppo.plateau_patience:
                stopped = watch.flat(metrics)
                metrics["val/plateau_stop"] = int(stopped)
                if stopped:
                    metrics["val/plateau_stop_step"] = step
        logger.log(step, **metrics)
        if ppo.save_every and step % ppo.save_every == 0:
            _checkpoint(driver, ckpt_dir, ppo.keep_last, watch)
        stopping.check(f"after step {step}")  # SIGINT/SIGTERM: the step is done and logged
        if stopped:
            print(f"ppo: validation reward flat for {ppo.plateau_patience} evaluations; stopping at step {step} "
                  f"of {ppo.steps}", flush=True)
            break
    # the final policy: validation (at a plateau stop, the evaluation that stopped it), checkpoint, HF export
    if stopped:
        final = {k: v for k, v in metrics.items() if k.startswith("val/")}
    else:
        final = _validate(watch, driver, ppo.steps, logger) if watch else {}
        logger.log(ppo.steps, **final)
    _checkpoint(driver, ckpt_dir, ppo.keep_last, watch)
    driver.export(layout.ppo_model(ppo.name))
    return final


def _validate(watch: ValidationWatch, driver: PPODriver, step: int, logger: RunLogger) -> dict:
    """`watch.measure` after `step` steps; its per-claim table goes to W&B and metrics.jsonl at once, its
    metrics are returned for the step's record."""
    metrics, claims = watch.measure(driver, step)
    if claims:
        logger.log_table(step, CLAIMS_TABLE, claims)
    return metrics


def _checkpoint(driver: PPODriver, ckpt_dir, keep_last: int, watch: ValidationWatch | None) -> None:
    """Save this step; older steps are deleted (`keep_last`) only once the new one is committed and verified."""
    saved = driver.save(ckpt_dir, watch.state_dict() if watch else None)
    why = checkpoints.problem(saved, checksums=False)  # the ranks hashed it as they wrote it
    if why is not None:
        print(f"ppo: checkpoint {saved} failed its check after saving ({why}); keeping every older step",
              file=sys.stderr, flush=True)
        return
    checkpoints.keep_last(ckpt_dir, keep_last)


def _load_verified(driver: PPODriver, ckpt_dir: Path, start: Path | None) -> tuple[Path | None, dict]:
    """Load `start` into the driver's groups; a step whose parts fail to load on the actors (raising, not dying)
    is marked bad and the previous complete step is loaded instead. Returns the step loaded and its stage state."""
    while start is not None:
        try:
            return start, driver.load(start)
        except ActorFailure as e:
            if e.died or not e.cause:  # a dead or silent actor is not the step's fault: a restart
                raise
            bad = checkpoints.mark_bad(start)
            first_line = (str(e).splitlines() or [""])[0]
            print(f"ppo: checkpoint {start.name} does not load ({first_line}); kept as {bad.name}, falling back to "
                  f"the previous step", file=sys.stderr, flush=True)
            start = checkpoints.latest(ckpt_dir)
            if start is None:  # the groups may hold half a step: no way on from here
                raise InputError(f"no checkpoint under {ckpt_dir} loads (the last one tried is {bad}); start a new "
                                 f"run with another ppo.name") from None
    return None, {}
