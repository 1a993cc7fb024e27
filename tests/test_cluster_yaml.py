"""cluster.yaml, checked offline with the Ray cluster launcher's own helpers (Ray 2.60).

`prepare_config` and `validate_config` are private Ray API (ray.autoscaler._private.util), hence the Ray pin.
What they do in Ray 2.60 (read from the source):
- `prepare_config(cfg)` merges ray/autoscaler/aws/defaults.yaml, a file inside the ray package, into the
  config (shallowly: every top-level key given replaces the default's), prepends `setup_commands` to the
  head/worker setup commands, checks the docker section and fills each node type's min/max workers. It
  does not import boto3 or open a connection: the AWS calls (key pair, IAM role, subnets, AMI lookup) live in
  `commands._bootstrap_config` -> the provider's `bootstrap_config`, which `ray up` runs after it and these
  tests never call. `test_cluster_yaml_validates_offline` enforces this (no boto3, no sockets).
- `validate_config(prepared)` checks the JSON schema (unknown keys, wrong types), that `head_node_type` is
  one of `available_node_types`, and that the node types' min_workers sum to at most the global
  max_workers. On the raw file it fails on the missing `cluster_synced_files` (a default), so prepare first.
- It does not compare a node type's own min_workers with its max_workers; the test here does.
"""

from __future__ import annotations

import copy
import re
import shlex
import socket
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from halluray.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
LLAMA_CONFIGS = sorted((ROOT / "configs" / "llama2-7b").glob("*.yaml"))

# Hardware of the instance types a node type may declare (vCPUs, NVIDIA GPUs), from the EC2 instance pages.
INSTANCES = {
    "m5.xlarge": (4, 0), "m5.2xlarge": (8, 0), "m5.4xlarge": (16, 0),
    "g5.xlarge": (4, 1), "g5.12xlarge": (48, 4), "g5.48xlarge": (192, 8),
    "p4d.24xlarge": (96, 8), "p4de.24xlarge": (96, 8), "p5.48xlarge": (192, 8),
}


def _raw() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _validate(cfg: dict) -> dict:
    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    return prepared


@pytest.fixture
def offline(monkeypatch):
    """Any boto3/botocore import or socket connection fails the test."""
    for name in ("boto3", "botocore"):
        monkeypatch.setitem(sys.modules, name, None)  # `import boto3` now raises ImportError

    def no_network(*args, **kwargs):
        raise AssertionError(f"cluster.yaml validation tried to open a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)


def test_cluster_yaml_validates_offline(offline):
    raw = _raw()
    prepared = _validate(raw)
    assert prepared["provider"]["type"] == "aws" and prepared["provider"]["region"]
    assert prepared["head_node_type"] in prepared["available_node_types"]
    # The AWS defaults were merged in, and ours won where both give a key.
    assert "cluster_synced_files" in prepared
    assert prepared["head_start_ray_commands"] == raw["head_start_ray_commands"]
    assert prepared["head_setup_commands"][: len(raw["setup_commands"])] == raw["setup_commands"]


def test_validate_needs_the_prepared_config():
    with pytest.raises(RuntimeError, match="cluster_synced_files"):
        validate_config(_raw())


def _set(path: str, value):
    def mutate(cfg):
        *parents, last = path.split(".")
        node = cfg
        for part in parents:
            node = node[part]
        node[last] = value
    return mutate


def _worker_type(cfg: dict) -> str:
    return next(t for t in cfg["available_node_types"] if t != cfg["head_node_type"])


@pytest.mark.parametrize("mutate, error, message", [
    (_set("max_wrokers", 2), jsonschema.ValidationError, "'max_wrokers' was unexpected"),
    (lambda c: c["available_node_types"][_worker_type(c)].update(min_wrokers=1),
     jsonschema.ValidationError, "'min_wrokers' was unexpected"),
    (lambda c: c["available_node_types"][_worker_type(c)].update(min_workers=c["max_workers"] + 1),
     ValueError, "smaller than the sum of `min_workers`"),
    (_set("head_node_type", "ray.head.missing"), ValueError, "must be one of `available_node_types`"),
    (_set("max_workers", "two"), jsonschema.ValidationError, "'two' is not of type 'integer'"),
    (lambda c: c["available_node_types"][_worker_type(c)]["resources"].update(GPU="8"),
     jsonschema.ValidationError, "'8' is not of type 'integer'"),
], ids=["unknown-key", "unknown-node-type-key", "min-workers-above-max", "bad-head-node-type",
        "max-workers-not-int", "gpu-not-int"])
def test_validator_rejects_a_broken_copy(mutate, error, message):
    cfg = _raw()
    mutate(cfg)
    with pytest.raises(error, match=re.escape(message)):
        _validate(cfg)


def test_node_type_worker_bounds():
    # Ray 2.60's validate_config accepts a node type with min_workers > max_workers: checked here instead.
    cfg = _raw()
    for name, node in cfg["available_node_types"].items():
        lo, hi = node.get("min_workers", 0), node.get("max_workers", cfg["max_workers"])
        assert 0 <= lo <= hi <= cfg["max_workers"], name


def test_declared_resources_match_the_instance():
    cfg = _raw()
    gpu_types = 0
    for name, node in cfg["available_node_types"].items():
        instance = node["node_config"]["InstanceType"]
        assert instance in INSTANCES, f"{name}: add {instance}'s vCPUs and GPUs to INSTANCES"
        vcpus, gpus = INSTANCES[instance]
        resources = node.get("resources", {})
        assert resources.get("GPU", 0) == gpus, name
        assert resources.get("CPU", vcpus) <= vcpus, name
        gpu_types += gpus > 0
    assert gpu_types, "cluster.yaml has no GPU node type"


def _ray_start(commands: list[str]) -> list[str]:
    """The argv (with leading VAR=value assignments) of the `ray start` in a list of shell commands."""
    found = [shlex.split(part) for cmd in commands for part in cmd.split(";") if "ray start" in part]
    assert len(found) == 1, commands
    return found[0]


def _option(argv: list[str], name: str) -> list[str]:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
    values += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]
    return values


def test_head_dashboard_is_bound_to_loopback():
    cfg = _raw()
    head = _ray_start(cfg["head_start_ray_commands"])
    assert "--head" in head
    assert _option(head, "--dashboard-host") == ["127.0.0.1"]
    assert not _option(_ray_start(cfg["worker_start_ray_commands"]), "--dashboard-host")


def test_ray_job_stop_leaves_a_ppo_run_time_to_finish_its_step():
    head = _ray_start(_raw()["head_start_ray_commands"])
    waits = [int(a.split("=", 1)[1]) for a in head if a.startswith("RAY_JOB_STOP_WAIT_TIME_S=")]
    assert waits and waits[0] >= 600  # Ray's default of 3 s kills a run mid-step


def test_head_and_workers_agree_on_auth_mode():
    cfg = _raw()

    def auth_mode(argv):
        modes = [a.split("=", 1)[1] for a in argv if a.startswith("RAY_AUTH_MODE=")]
        return modes[0] if modes else None

    head, worker = _ray_start(cfg["head_start_ray_commands"]), _ray_start(cfg["worker_start_ray_commands"])
    assert auth_mode(head) == auth_mode(worker) and auth_mode(head) in ("token", "disabled")
    if auth_mode(head) == "token":  # every node needs the token that clients will present
        assert "~/.ray/auth_token" in cfg["file_mounts"]


def test_setup_installs_like_the_makefile():
    setup = _raw()["setup_commands"]
    pin = next(line.strip() for line in (ROOT / "constraints.txt").read_text().splitlines()
               if line.strip().startswith("torch=="))
    torch_step = next(i for i, c in enumerate(setup) if re.search(rf"pip install .*\b{re.escape(pin)}\b", c))
    project_step = next(i for i, c in enumerate(setup) if "-c constraints.txt" in c and "-e" in c)
    assert torch_step < project_step, "torch must be installed before the constrained project install"
    assert "[dev]" in setup[project_step]


@pytest.mark.parametrize("path", LLAMA_CONFIGS, ids=lambda p: p.name)
def test_llama_configs_fit_one_gpu_worker(path):
    cfg, cluster = load_config(path), _raw()
    node_gpus = max(n.get("resources", {}).get("GPU", 0) for n in cluster["available_node_types"].values())
    roles = [getattr(cfg.actors, r) for r in ("policy", "critic", "reference", "reward", "rollout")]
    assert sum(r.num_actors * r.num_gpus for r in roles) <= node_gpus
    assert cfg.model.pretrained_path and cfg.lora.enabled and cfg.deepspeed.zero_stage == 3
