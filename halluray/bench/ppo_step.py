"""PPO step time at three model sizes: ours (`PPODriver.step`, Ray actor groups + DeepSpeed) in every rollout mode
against the bare single-process torch loop (halluray/ppo/reference_loop.py, same math) on the same model and
prompt batches, in the same run on the same cores; then each advantage estimator (and, with LoRA, the full
critic against the LoRA critic) in the size's fastest mode, each against its own bare loop; rollout tokens/s
against raw HF `generate` (the bare loop's generate phase is exactly that); peak memory of every actor and of the
bare process."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import typing
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ray
import torch

from halluray.bench.bare import PHASES, peak_rss_bytes, step_row
from halluray.config import CRITIC_FREE, ActorsConfig, ExperimentConfig, build_config
from halluray.data import prompts_for
from halluray.data.stream import PromptStream
from halluray.pipeline import world
from halluray.trainers.ppo_driver import PPODriver
from halluray.trainers.ppo_run import policy_init, reward_spec

MODES = typing.get_args(ActorsConfig.model_fields["rollout_mode"].annotation)
REAL_MODEL = "runs/models/smollm2-135m-instruct-bf16"
"""Where `make bench` imports SmolLM2-135M-Instruct (`halluray import-model --dtype bfloat16`)."""


@dataclass(frozen=True)
class Size:
    name: str
    model: str
    overrides: tuple[str, ...]
    steps: int
    """Measured steps, after one warm-up step."""


def sizes(real_model: str = REAL_MODEL) -> dict[str, Size]:
    real = str(Path(real_model).resolve())
    return {s.name: s for s in (
        Size("tiny", "GPT-2 4 x 128 (the demo's shape)",
             ("model.pretrain.steps=50", "ppo.batch_size=32", "ppo.minibatch_size=16", "ppo.ppo_epochs=2"), 5),
        Size("10m", "GPT-2 8 x 320",
             ("model.n_layer=8", "model.n_embd=320", "model.n_head=5", "model.pretrain.steps=10",
              "ppo.batch_size=16", "ppo.minibatch_size=8", "ppo.ppo_epochs=1"), 4),
        # The real-model layout of configs/real/demo-real.yaml (the policy is its own reference under LoRA).
        Size("135m", "SmolLM2-135M-Instruct, bf16 weights, LoRA r=16 on q_proj, v_proj (policy and critic)",
             (f"model.pretrained_path={real}", f"ppo.init_model={real}", "lora.enabled=true",
              "lora.target_modules=[q_proj,v_proj]", "ppo.batch_size=8", "ppo.minibatch_size=4", "ppo.ppo_epochs=1",
              "ppo.max_new_tokens=32", "actors.critic.num_actors=1", "actors.rollout.num_actors=1"), 3),
    )}


COMMON = ("run.name=bench", "ppo.cliprange=0.2", "ppo.kl_coef=0.05", "ppo.policy_optimizer.lr=1e-4",
          "ppo.critic_optimizer.lr=1e-4", "actors.rollout.num_actors=2", "deepspeed.zero_stage=2",
          "logging.wandb_mode=disabled", "actors.reuse_actors=false")
"""Fresh actors for every mode and size: a reused process would report the previous run's peak memory."""


def overrides(size: Size, run_dir: Path, mode: str = "separate", variant: tuple[str, ...] = ()) -> list[str]:
    return [*COMMON, f"run.output_dir={run_dir}", *size.overrides, f"ppo.steps={size.steps + 1}",
            f"actors.rollout_mode={mode}", *variant]


def variants(cfg: ExperimentConfig) -> dict[str, tuple[str, ...]]:
    """The rows run after the modes, in the fastest one: each critic-free estimator on the same responses per
    step (half the prompts, 2 samples each: the smallest group GRPO and RLOO take), and with LoRA the full critic
    that the LoRA critic (the default) replaces."""
    half = (f"ppo.batch_size={cfg.ppo.batch_size // 2}", "ppo.samples_per_prompt=2")
    rows = {name: (f"ppo.advantage_estimator={name}", *half) for name in CRITIC_FREE}
    if cfg.lora.enabled:
        rows["gae, full critic"] = ("ppo.lora_critic=false",)
    return rows


class Timer:
    """Prints a line when a part starts and its seconds when it ends; keeps the seconds by part."""

    def __init__(self, prefix: str):
        self.prefix, self.seconds = prefix, {}

    @contextmanager
    def __call__(self, part: str, detail: str = ""):
        print(f"bench: {self.prefix}{part}{detail} ...", flush=True)
        t0 = time.perf_counter()
        yield
        self.seconds[part] = round(time.perf_counter() - t0, 1)
        print(f"bench: {self.prefix}{part} done in {self.seconds[part]:.0f} s", flush=True)


def bare_loop(size: Size, run_dir: Path, policy_path: str, batches: list[list[dict]],
              variant: tuple[str, ...] = ()) -> dict:
    """halluray.bench.bare in a fresh process using every core, as a single-process loop would."""
    spec = {"overrides": overrides(size, run_dir, variant=variant), "policy_path": policy_path, "batches": batches,
            "threads": os.cpu_count() or 1}
    spec_path, out_path = run_dir / "bare_spec.json", run_dir / "bare_out.json"
    spec_path.write_text(json.dumps(spec))
    subprocess.run([sys.executable, "-m", "halluray.bench.bare", str(spec_path), str(out_path)], check=True)
    return json.loads(out_path.read_text())


def actor_peaks(groups) -> list[dict]:
    """Each actor's peak RSS by role and rank, read inside its process through Ray's `__ray_call__` (the actor
    classes need no method for it; Ray's state API would need the dashboard, which the bench does not start)."""
    rows = []
    for group in groups:
        peaks = ray.get([a.__ray_call__.remote(_own_peak) for a in group.actors], timeout=120)
        rows += [{"role": group.role, "rank": rank, "peak_rss_bytes": peak} for rank, peak in enumerate(peaks)]
    return rows


def _own_peak(_actor) -> int | None:
    return peak_rss_bytes()


def distributed_loop(cfg: ExperimentConfig, prompts: list[dict], timer: Timer, label: str) -> dict:
    """`PPODriver.step` on the actor groups (it draws the same batches from the same prompt stream); the actors'
    peak memory is read after the last step, before shutdown."""
    with timer(f"{label} start"):
        driver = PPODriver(cfg, policy_init(cfg), reward_spec(cfg, prompts), prompts)
    try:
        with timer(f"{label} steps"):
            steps = []
            for _ in range(cfg.ppo.steps):
                t0 = time.perf_counter()
                metrics, _ = driver.step()
                steps.append(step_row(metrics, time.perf_counter() - t0, cfg.ppo.responses_per_step))
        memory = actor_peaks(driver.groups)
    finally:
        driver.shutdown()
    return {"steps": steps, "peak_rss": memory}


def summary(steps: list[dict], overlapped: bool = False) -> dict:
    """Medians over the measured steps (the first, warm-up step is left out). Rollout tokens/s is every
    response token over every generate second; None when generation overlaps training (one-step-off: its
    generate phase is only the wait for the batch started during the previous step)."""
    measured = steps[1:]
    out = {"phases": {p: statistics.median(s[p] for s in measured) for p in PHASES},
           "total": statistics.median(sum(s[p] for p in PHASES) for s in measured),
           "wall": statistics.median(s["wall"] for s in measured)}
    generate = sum(s["generate"] for s in measured)
    out["tokens_per_s"] = None if overlapped else sum(s["tokens"] for s in measured) / generate
    return out


def run(size_names: list[str], real_model: str = REAL_MODEL) -> dict:
    """Every size in `size_names`, in order, each in every rollout mode (tokens/s against HF needs separate and
    colocated at every size; one-step-off has none), then its estimator rows in its fastest mode."""
    specs = sizes(real_model)
    return {"sizes": {name: run_size(specs[name], MODES) for name in size_names}}


def run_size(size: Size, modes: tuple[str, ...]) -> dict:
    timer = Timer(f"{size.name}: ")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        cfg = build_config({}, overrides(size, run_dir))
        with timer("world"):
            world.run(cfg)
        prompts = list(prompts_for(cfg, "ppo"))
        bare = measure_bare(size, run_dir, cfg, prompts, timer, "bare torch")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the driver process shares the cores with the actors
        ours, rows = {}, {}
        try:
            for mode in modes:
                ours[mode] = distributed_loop(build_config({}, overrides(size, run_dir, mode)), prompts, timer,
                                              mode)
            fastest = min(ours, key=lambda m: summary(ours[m]["steps"])["wall"])
            for label, variant in variants(cfg).items():
                row_cfg = build_config({}, overrides(size, run_dir, fastest, variant))
                torch.set_num_threads(threads)
                row_bare = measure_bare(size, run_dir, row_cfg, prompts, timer, f"{label}: bare torch", variant)
                torch.set_num_threads(1)
                rows[label] = {"mode": fastest, "bare": row_bare,
                               "ours": distributed_loop(row_cfg, prompts, timer, f"{label}: {fastest}")}
        finally:
            torch.set_num_threads(threads)
    return summarise(size, cfg, bare, ours, timer.seconds, rows)


def measure_bare(size: Size, run_dir: Path, cfg: ExperimentConfig, prompts: list[dict], timer: Timer, label: str,
                 variant: tuple[str, ...] = ()) -> dict:
    """The bare loop on the batches the driver's prompt stream draws for `cfg`."""
    stream = PromptStream(prompts, cfg.seed)
    batches = [stream.next_batch(cfg.ppo.batch_size) for _ in range(cfg.ppo.steps)]
    with timer(label, f" ({cfg.ppo.steps} steps)"):
        return bare_loop(size, run_dir, policy_init(cfg), batches, variant)


def layout(cfg: ExperimentConfig) -> str:
    a = cfg.actors
    critic = "LoRA critic" if cfg.lora.enabled and cfg.ppo.lora_critic else "critic"
    parts = [f"policy {a.policy.num_actors} + {critic} {a.critic.num_actors} (ZeRO-{cfg.deepspeed.zero_stage})"]
    if not cfg.lora.enabled:
        parts.append(f"reference {a.reference.num_actors}")
    parts += [f"reward {a.reward.num_actors}", f"rollout {a.rollout.num_actors} (colocated: none)"]
    return ", ".join(parts)


def summarise(size: Size, cfg: ExperimentConfig, bare: dict, ours: dict, seconds: dict, rows: dict) -> dict:
    p = cfg.ppo
    result = {"model": size.model, "parameters": bare["parameters"],
              "trainable_parameters": bare["trainable_parameters"], "batch": p.batch_size,
              "minibatch": p.minibatch_size, "ppo_epochs": p.ppo_epochs, "max_new_tokens": p.max_new_tokens,
              "measured_steps": size.steps, "warmup_steps": 1, "layout": layout(cfg),
              "bare": {**summary(bare["steps"]), "ratio": 1.0, "tokens_per_s_ratio": 1.0, "steps": bare["steps"],
                       "peak_rss_bytes": bare["peak_rss_bytes"]},
              "modes": {}, "seconds": seconds}
    base = result["bare"]
    for mode, run_ in ours.items():
        s = summary(run_["steps"], overlapped=mode == "one-step-off")
        s["ratio"] = s["wall"] / base["wall"]
        s["tokens_per_s_ratio"] = s["tokens_per_s"] / base["tokens_per_s"] if s["tokens_per_s"] else None
        result["modes"][mode] = {**s, "steps": run_["steps"], "peak_rss": run_["peak_rss"]}
    result["fastest_mode"] = min(result["modes"], key=lambda m: result["modes"][m]["wall"])
    result["estimators"] = {}
    for label, row in rows.items():
        row_bare = summary(row["bare"]["steps"])
        s = summary(row["ours"]["steps"], overlapped=row["mode"] == "one-step-off")
        s["ratio"] = s["wall"] / row_bare["wall"]
        s["tokens_per_s_ratio"] = s["tokens_per_s"] / row_bare["tokens_per_s"] if s["tokens_per_s"] else None
        result["estimators"][label] = {
            "mode": row["mode"], "bare": {**row_bare, "steps": row["bare"]["steps"],
                                          "peak_rss_bytes": row["bare"]["peak_rss_bytes"]},
            "ours": {**s, "steps": row["ours"]["steps"], "peak_rss": row["ours"]["peak_rss"]}}
    return result


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.0f}"


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def report_size(name: str, r: dict) -> str:
    modes = list(r["modes"])
    trainable = ("all trained" if r["trainable_parameters"] == r["parameters"]
                 else f"{r['trainable_parameters']:,} trained")
    rows = [f"PPO step, {name}: {r['model']}, {r['parameters']:,} parameters ({trainable}); batch {r['batch']}, "
            f"minibatch {r['minibatch']}, {r['ppo_epochs']} PPO epoch(s), <= {r['max_new_tokens']} new tokens; "
            f"median of {r['measured_steps']} steps after {r['warmup_steps']} warm-up",
            f"  ours: {r['layout']}; bare torch: one process, every core",
            "  " + f"{'seconds':16s}{'bare':>10s}" + "".join(f"{m:>14s}" for m in modes)]

    def row(label: str, get, fmt: str = ".3f") -> None:
        rows.append("  " + f"{label:16s}{_cell(get(r['bare']), fmt):>10s}"
                    + "".join(f"{_cell(get(r['modes'][m]), fmt):>14s}" for m in modes))

    for phase in PHASES:
        row(phase, lambda s, phase=phase: s["phases"][phase])
    row("total (phases)", lambda s: s["total"])
    row("wall", lambda s: s["wall"])
    row("wall / bare", lambda s: s["ratio"], ".2f")
    row("rollout tok/s", lambda s: s["tokens_per_s"], ".0f")
    row("tok/s / HF", lambda s: s["tokens_per_s_ratio"], ".2f")
    if len(modes) > 1:
        rows.append(f"  fastest mode: {r['fastest_mode']} ({r['modes'][r['fastest_mode']]['ratio']:.2f}x bare)")
    if "one-step-off" in modes:
        rows.append("  one-step-off: generate is the wait for the batch started a step earlier (no tok/s)")
    rows.append(f"  peak RSS (MiB): bare {_mib(r['bare']['peak_rss_bytes'])}")
    for mode in modes:
        peaks = r["modes"][mode]["peak_rss"]
        by_role = {}
        for p in peaks:
            by_role.setdefault(p["role"], []).append(_mib(p["peak_rss_bytes"]))
        total = sum(p["peak_rss_bytes"] or 0 for p in peaks)
        rows.append(f"    {mode}: " + ", ".join(f"{role} {' '.join(v)}" for role, v in by_role.items())
                    + f" (sum {total / 2**30:.1f} GiB)")
    rows += report_estimators(r)
    rows.append("  time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in r["seconds"].items()))
    return "\n".join(rows)


def _peaks(peaks: list[dict], role: str) -> str:
    return " ".join(_mib(p["peak_rss_bytes"]) for p in peaks if p["role"] == role) or "-"


def report_estimators(r: dict) -> list[str]:
    """One line per estimator row: its mode, bare and our wall seconds, the ratio, tokens/s against HF and the
    peak memory of the critic (none without one) and of every actor together. The first line is the mode rows'
    own estimator (GAE, with the size's critic) in the fastest mode, for comparison."""
    if not r.get("estimators"):
        return []
    fastest = r["modes"][r["fastest_mode"]]
    lines = ["  estimators, each in the fastest mode against its own bare loop (critic-free: half the prompts x 2 "
             "samples, the same responses per step):",
             f"    {'estimator':18s}{'mode':>11s}{'bare s':>9s}{'ours s':>9s}{'ours/bare':>11s}{'tok/s/HF':>10s}"
             f"{'critic MiB':>12s}{'actors GiB':>12s}"]

    def line(label: str, mode: str, bare_wall: float, ours: dict) -> None:
        total = sum(p["peak_rss_bytes"] or 0 for p in ours["peak_rss"]) / 2**30
        lines.append(f"    {label:18s}{mode:>11s}{bare_wall:>9.2f}{ours['wall']:>9.2f}{ours['ratio']:>11.2f}"
                     f"{_cell(ours['tokens_per_s_ratio'], '.2f'):>10s}{_peaks(ours['peak_rss'], 'critic'):>12s}"
                     f"{total:>12.1f}")

    line("gae" + (" (LoRA critic)" if "LoRA critic" in r["layout"] else ""), r["fastest_mode"], r["bare"]["wall"],
         fastest)
    for label, row in r["estimators"].items():
        line(label, row["mode"], row["bare"]["wall"], row["ours"])
    return lines


def report(result: dict) -> str:
    return "\n\n".join(report_size(name, r) for name, r in result["sizes"].items())
