"""`python -m halluray.bench [name ...] [--quick] [--json FILE]`: run the benchmarks on a local Ray cluster and
print their reports. `make bench` runs them all (after importing the real model); `--quick` is the tiny PPO
step only."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# As the CLI does (halluray/cli.py), before torch and Ray are imported: passive idle OpenMP threads, and a local
# cluster that listens on 127.0.0.1 only.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
if not os.environ.get("RAY_ADDRESS"):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray

from actors.group import init_ray
from halluray.bench import ppo_step, pretrain, weight_sync, zero3
from halluray.config import build_config

BENCHES = {"ppo_step": ppo_step, "zero3": zero3, "weight_sync": weight_sync, "pretrain": pretrain}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m halluray.bench")
    parser.add_argument("names", nargs="*", choices=[*BENCHES, []], help="which benchmarks (default: all)")
    parser.add_argument("--quick", action="store_true", help="the PPO step at the tiny size only")
    parser.add_argument("--sizes", default="tiny,10m,135m", help="PPO step sizes, in order")
    parser.add_argument("--real-model", default=ppo_step.REAL_MODEL, help="SmolLM2-135M-Instruct imported with "
                        "`halluray import-model --dtype bfloat16` (used by the 135m size and zero3)")
    parser.add_argument("--json", help="also write the results to this JSON file (after each benchmark)")
    args = parser.parse_args()
    names = args.names or (["ppo_step"] if args.quick else list(BENCHES))
    sizes = ["tiny"] if args.quick else args.sizes.split(",")
    unknown = set(sizes) - set(ppo_step.sizes())
    if unknown:
        parser.error(f"unknown sizes {sorted(unknown)}; choose from {list(ppo_step.sizes())}")
    real_needed = "zero3" in names or ("ppo_step" in names and "135m" in sizes)
    if real_needed and not (Path(args.real_model) / "config.json").is_file():
        parser.error(f"no model at {args.real_model}: `make real-venv` and `halluray import-model --out "
                     f"{args.real_model} --dtype bfloat16` first (`make bench` does both), or --quick")
    # The tiny size's layout asks for the most logical CPUs (and sets the actors' threads as the driver does).
    init_ray(build_config({}, ppo_step.overrides(ppo_step.sizes()["tiny"], Path("runs"))))
    run_args = {"ppo_step": (sizes, args.real_model), "zero3": (args.real_model,), "weight_sync": (), "pretrain": ()}
    timer = ppo_step.Timer("")
    results = {}
    t0 = time.perf_counter()
    try:
        for name in names:
            with timer(name):
                results[name] = BENCHES[name].run(*run_args[name])
            print(BENCHES[name].report(results[name]), flush=True)
            results["seconds"] = {**timer.seconds, "all": round(time.perf_counter() - t0, 1)}
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        ray.shutdown()
    print("bench: seconds " + ", ".join(f"{k} {v:.0f}" for k, v in results.get("seconds", {}).items()), flush=True)


if __name__ == "__main__":
    main()
