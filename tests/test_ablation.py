"""`halluray ablation`: which settings each point runs, and the table a user reads."""

from pathlib import Path

from halluray.campaigns import ablation
from halluray.config import load_config
from halluray.eval.report import METHODS
from halluray.layout import RunLayout

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo" / "demo.yaml"


def test_each_point_changes_only_the_ppo_protocol_and_the_penalty():
    cfg = load_config(DEMO)
    paper = ablation.point_cfg(cfg, "paper, penalty")
    assert paper == cfg and paper.lora.enabled and paper.ppo.reward.malformed_penalty == -15.0
    old = ablation.point_cfg(cfg, "old, no penalty")
    assert not old.lora.enabled and old.ppo.cliprange == 0.2 and old.ppo.kl_coef == 0.2
    assert old.ppo.advantage_estimator == "gae" and old.ppo.samples_per_prompt == 1
    assert old.ppo.policy_optimizer.lr == 2e-4 and old.ppo.policy_optimizer.min_lr_ratio == 0.0
    assert old.ppo.plateau_patience == 3
    assert old.ppo.reward.malformed_penalty is None
    assert old.model_copy(update={"ppo": cfg.ppo, "lora": cfg.lora}) == cfg  # nothing else moves
    assert ablation.point_cfg(cfg, "paper, no penalty").ppo.reward.malformed_penalty is None
    # A demo with segment credit: the points without a penalty credit whole responses (nothing to split).
    segment = load_config(DEMO, ["ppo.reward.malformed_credit=segment"])
    unpenalised = ablation.point_cfg(segment, "paper, no penalty").ppo.reward
    assert unpenalised.malformed_penalty is None and unpenalised.malformed_credit == "response"
    assert ablation.point_cfg(segment, "old, penalty").ppo.reward.malformed_credit == "segment"


def test_each_point_runs_in_its_own_directory_started_from_a_copy_of_the_run(tmp_path):
    cfg = load_config(DEMO, ["run.output_dir=" + str(tmp_path), "run.name=seed-0"])
    run_dir = RunLayout(cfg).run_dir
    for name, text in {"stamps/sft.json": "{}", "sft/model.bin": "weights", "metrics.jsonl": "{}",
                       "wandb/run.log": "w", "ablation/old-penalty/stale": "x"}.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(text)
    point = ablation.point_layout_cfg(cfg, "old, penalty")
    assert point.model_copy(update={"run": cfg.run}) == ablation.point_cfg(cfg, "old, penalty")
    target = RunLayout(point).run_dir
    assert target == run_dir / "ablation" / "old-penalty"
    (target / "stale").parent.mkdir(parents=True, exist_ok=True)
    ablation.seed_point_dir(run_dir, target)
    assert (target / "sft" / "model.bin").read_text() == "weights" and (target / "stamps" / "sft.json").is_file()
    assert not any((target / n).exists() for n in ("stale", "metrics.jsonl", "wandb", "ablation"))
    assert (run_dir / "metrics.jsonl").is_file()  # the demo's own directory is left as it was


def test_the_table_has_a_row_per_point_and_method():
    one = {"fraction_true_per_response": dict.fromkeys(METHODS, 0.5), "mean_true_facts": dict.fromkeys(METHODS, 2.0),
           "mean_false_facts": dict.fromkeys(METHODS, 1.0), "no_fact_rate": dict.fromkeys(METHODS, 0.1),
           "malformed_rate": dict.fromkeys(METHODS, 0.02)}
    table = ablation.render(dict.fromkeys(ablation.POINTS, one), 0.7)
    assert "sampled at T=0.7" in table
    assert table.count("| RL + conservative RM | 0.500 | 2.00 | 1.00 | 10% | 2% |") == len(ablation.POINTS)
