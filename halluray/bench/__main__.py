"""`python -m halluray.bench [name ...]`: run the benchmarks on a local Ray cluster and print their reports."""

from __future__ import annotations

import argparse
import json
import os

import ray

from halluray.bench import ppo_step, weight_sync


def main() -> None:
    benches = {"ppo_step": ppo_step, "weight_sync": weight_sync}
    parser = argparse.ArgumentParser(prog="python -m halluray.bench")
    parser.add_argument("names", nargs="*", choices=[*benches, []], help="which benchmarks (default: all)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}})
    results = {}
    for name in args.names or list(benches):
        results[name] = benches[name].run()
        print(benches[name].report(results[name]), flush=True)
    ray.shutdown()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
