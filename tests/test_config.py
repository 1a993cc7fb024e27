from pathlib import Path

import pytest
import yaml

from halluray.cli import main
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
    cfg = build_config({}, ["ppo.kl_coef=0.1", "world.fact_frequencies=[0, 5]", "world.frequency_weights=[1, 3]", "model.pretrain.lr=1e-4"])
    assert cfg.ppo.kl_coef == 0.1
    assert cfg.world.fact_frequencies == [0, 5]
    assert cfg.model.pretrain.lr == 1e-4


@pytest.mark.parametrize("overrides, message", [
    (["ppo.kl_coeff=0.5"], "unknown key 'ppo.kl_coeff' (did you mean 'kl_coef'?)"),
    (["bogus=1"], "unknown key 'bogus'"),
    (["seed=abc"], "invalid value for 'seed'"),
    (["ppo.kl_coef=-1"], "invalid value for 'ppo.kl_coef'"),
    (["model.n_head=3"], "must be divisible by n_head"),
    (["world.splits={sft: 0.5, rm: 0.5, ppo: 0.5, eval: 0.5}"], "summing to 1"),
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
