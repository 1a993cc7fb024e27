import copy
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from halluray.cli import default_config, main
from halluray.config import ConfigError, ExperimentConfig, build_config, load_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))


def test_configs_are_shipped():
    assert SHIPPED, "no configs found under configs/"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, ExperimentConfig)
    # Round trip: the resolved config written to a run directory loads back to the same config.
    assert build_config(yaml.safe_load(cfg.to_yaml())) == cfg


def test_override_sets_nested_value():
    cfg = build_config({}, ["ppo.kl_coef=0.1", "world.fact_frequencies=[0, 5]", "world.frequency_weights=[1, 3]",
                            "model.pretrain.lr=1e-4"])
    assert cfg.ppo.kl_coef == 0.1
    assert cfg.world.fact_frequencies == [0, 5]
    assert cfg.model.pretrain.lr == 1e-4


@pytest.mark.parametrize("overrides, message", [
    (["ppo.kl_coeff=0.5"], "unknown key 'ppo.kl_coeff' (did you mean 'kl_coef'?)"),
    (["bogus=1"], "unknown key 'bogus'"),
    (["seed=abc"], "invalid value for 'seed'"),
    (["ppo.kl_coef=-1"], "invalid value for 'ppo.kl_coef'"),
    (["model.n_head=3"], "must be divisible by n_head"),
    (["world.splits={sft: 0.5, rm: 0.5, ppo: 0.5, val: 0, eval: 0.5}"], "summing to 1"),
    (["reward_data.source_accuracy=[0.5, 0.9]"], "source_accuracy has 2 values but world.fact_frequencies has 4 tiers"),
    (["ppo.plateau_patience=2"], "plateau_patience needs eval_every"),
    (["ppo.kl_coef"], "must look like section.key=value"),
    (["seed=1", "seed.x=1"], "'seed' is not a section"),
])
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        build_config({}, overrides)
    assert message in str(e.value)


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ppo:\n  cliprange: fast\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid value for 'ppo.cliprange'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found: .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("ppo: [1,\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML at line"):
        load_config(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listy)


def test_cli_config_error_exits_2_without_traceback(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("world:\n  num_peeple: 10\n")
    assert main(["world", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'world.num_peeple' (did you mean 'num_people'?)" in err
    assert "Traceback" not in err


def test_cli_missing_input_stage_exits_2(tmp_path, capsys):
    assert main(["unfamiliarity", f"run.output_dir={tmp_path}"]) == 2
    assert "run `halluray world` with this config first" in capsys.readouterr().err


def test_cli_help_lists_stages(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "world" in out and "unfamiliarity" in out


# --- numbers: no booleans, no nan/inf, in every numeric key --------------------------------------------------------

def _number_type(annotation) -> type | None:
    """int or float when the annotation holds numbers (inside Optional, Annotated, list, tuple, dict, Literal)."""
    if annotation in (int, float):
        return annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return int if all(type(a) is int for a in args) else None
    found = {_number_type(a) for a in args} - {None}
    return float if float in found else found.pop() if found else None


def _numeric_keys(model: type[BaseModel] = ExperimentConfig, prefix: tuple = ()):
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _numeric_keys(field.annotation, (*prefix, name))
        elif kind := _number_type(field.annotation):
            yield (*prefix, name), kind


NUMERIC_KEYS = list(_numeric_keys())
DEFAULTS = ExperimentConfig().model_dump()


def _with_value(path: tuple, bad) -> dict:
    """The defaults with the number at `path` (its first element in a list, tuple or dict) set to `bad`."""
    data = copy.deepcopy(DEFAULTS)
    node = data
    for part in path[:-1]:
        node = node[part]
    value = node[path[-1]]
    if isinstance(value, (list, tuple)):
        node[path[-1]] = [bad, *value[1:]]
    elif isinstance(value, dict):
        node[path[-1]] = {**value, next(iter(value)): bad}
    else:
        node[path[-1]] = bad
    return data


def test_every_numeric_key_is_found():
    keys = {".".join(p) for p, _ in NUMERIC_KEYS}
    assert len(keys) > 80
    assert {"ppo.cliprange", "ppo.steps", "seed", "threads", "deepspeed.zero_stage", "world.splits",
            "ppo.policy_optimizer.betas", "world.fact_frequencies"} <= keys


@pytest.mark.parametrize("path, kind", [pytest.param(p, k, id=".".join(p)) for p, k in NUMERIC_KEYS])
def test_numbers_reject_booleans_and_non_finite_floats(path, kind):
    key = ".".join(path)
    for bad in (True, False) + ((float("nan"), float("inf"), float("-inf")) if kind is float else ()):
        with pytest.raises(ConfigError, match=rf"<config>: invalid value for '{key}(\.\w+)?'"):
            build_config(_with_value(path, bad))


@pytest.mark.parametrize("override, message", [
    ("ppo.cliprange=.inf", "invalid value for 'ppo.cliprange': Input should be a finite number (got inf)"),
    ("ppo.kl_coef=.nan", "invalid value for 'ppo.kl_coef': Input should be a finite number (got nan)"),
    ("ppo.steps=true", "invalid value for 'ppo.steps': must be a number, not a boolean (got True)"),
    ("deepspeed.zero_stage=false",
     "invalid value for 'deepspeed.zero_stage': must be a number, not a boolean (got False)"),
])
def test_non_finite_and_boolean_numbers_name_the_key_and_file(tmp_path, override, message):
    path = tmp_path / "exp.yaml"
    path.write_text("seed: 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, [override])
    assert str(e.value) == f"{path}: {message}"


def test_numbers_still_parse_from_yaml():
    # PyYAML reads 1e-4 (no dot) as a string; a number in a string is still a number.
    cfg = build_config({}, ["model.pretrain.lr=1e-4", "ppo.kl_coef=0", "actors.policy.num_cpus=2"])
    assert (cfg.model.pretrain.lr, cfg.ppo.kl_coef, cfg.actors.policy.num_cpus) == (1e-4, 0.0, 2.0)


# --- names that become directories --------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["run.name", "ppo.name"])
@pytest.mark.parametrize("value", ["../x", "a/../../b", "/tmp/y", "a/b", "..", ".", ".hidden", "a\\b", "''"])
def test_directory_names_must_be_one_safe_component(key, value):
    with pytest.raises(ConfigError, match=f"invalid value for '{key}': must be a single directory name"):
        build_config({}, [f"{key}={value}"])


def test_a_name_escaping_the_output_directory_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["world", f"run.output_dir={out}", "run.name=../x"]) == 2
    assert "invalid value for 'run.name'" in capsys.readouterr().err
    assert main(["ppo", f"run.output_dir={out}", f"ppo.name={tmp_path / 'y'}"]) == 2
    assert "invalid value for 'ppo.name'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert build_config({}, ["run.name=exp-1_b.2", "ppo.name=ppo-standard-rm"]).run_dir.name == "exp-1_b.2"


def test_demo_without_a_config_runs_what_make_demo_runs():
    makefile = (ROOT / "Makefile").read_text()
    assert f"halluray demo --config {default_config('demo').relative_to(ROOT)}\n" in makefile
    assert default_config("sweep") == default_config("demo") and default_config("ppo") is None


@pytest.mark.parametrize("overrides, cores, threads", [
    ([], 2, 1),  # policy 2 + critic 2 + reference + reward score at once: 6 actors on 2 cores
    ([], 16, 2),  # 16 // 6
    (["lora.enabled=true"], 16, 3),  # no reference actor: 16 // 5
    (["actors.rollout.num_actors=8"], 24, 3),  # 8 rollout workers generate at once: 24 // 8
    (["actors.rollout.num_actors=8", "actors.rollout_mode=colocated"], 24, 4),  # no rollout group: 24 // 6
    (["actors.threads_per_actor=4"], 2, 4),  # given: taken as is
])
def test_threads_per_actor_share_the_cores_among_actors_busy_at_once(overrides, cores, threads):
    cfg = build_config({}, overrides)
    assert cfg.actors.threads(cores, cfg.lora.enabled) == threads


def test_a_frozen_belief_verifier_with_lora_is_refused_and_other_kinds_ignore_it():
    with pytest.raises(ConfigError, match="belief verifier keeps its LM frozen"):
        build_config({}, ["reward_model.kind=two-stage-text", "reward_model.verifier=belief", "reward_model.lora=true"])
    # Switching the demo's RM to another kind by one override needs no second one.
    assert build_config({}, ["reward_model.kind=scalar", "reward_model.verifier=belief"]).reward_model.kind == "scalar"
