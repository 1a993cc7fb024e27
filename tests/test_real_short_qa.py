"""The short-QA real-data path (`halluray demo-real`) on any fact table: unfamiliarity by P(gold) and samples,
the three SFT arms, held-out answers by bucket and QA-RL, graded by the fact-table checker. A tiny model stands
in for SmolLM2 (its 135M weights are the slow tests' business); chat formatting is checked on its own."""

import json
import random
from pathlib import Path

import pytest

from halluray.cli import main
from halluray.config import build_config
from halluray.data import prompts_for
from halluray.io import read_jsonl
from halluray.layout import RunLayout

SYLLABLES = ("zor", "bel", "kan", "dri", "mup", "fes", "lor", "tav", "quin", "rho")


def fact_table(path: Path, n: int = 40) -> Path:
    """Made-up countries and capitals with a fame column, as a CSV any user could bring."""
    rng = random.Random(0)
    rows = ["entity,attribute,question,answers,fame,answer_prefix"]
    for i in range(n):
        country = (SYLLABLES[i % 10] + SYLLABLES[i // 10]).capitalize() + "land"
        capital = (SYLLABLES[(i * 3) % 10] + SYLLABLES[i // 10]).capitalize() + "ville"
        rows.append(f"{country},capital,What is the capital of {country}?,{capital},{rng.uniform(3, 8):.2f},"
                    f"The capital of {country} is")
    path.write_text("\n".join(rows) + "\n")
    return path


def tiny_model(directory: Path, table: Path) -> Path:
    from halluray.models.build import build_gpt2, save_model
    from halluray.models.tokenizer import train_word_tokenizer

    texts = [f"{r['prompt']} {r['target']}" for r in read_rows(table)] + ["I don't know."]
    cfg = build_config({}, ["model.n_layer=2", "model.n_embd=32", "model.n_head=2", "model.n_positions=96"])
    tok = train_word_tokenizer(texts)
    save_model(build_gpt2(cfg.model, tok, seed=0), tok, directory / "model")
    return directory / "model"


def read_rows(table: Path) -> list[dict]:
    from halluray.data.fact_table import read_fact_tables

    return read_fact_tables(table)


def overrides(tmp_path: Path, model: Path, table: Path) -> list[str]:
    actors = [f"actors.{role}.num_actors=1" for role in ("policy", "critic", "reference", "reward", "rollout")]
    return [f"run.output_dir={tmp_path / 'runs'}", "run.name=real-qa", f"model.pretrained_path={model}",
            "data.dataset=fact_table", f"data.path={table}", "fact_checker.kind=fact_table",
            f"fact_checker.table_path={table}", "unfamiliarity.tasks=[short_qa]",
            "unfamiliarity.short_qa_score=p_gold", "unfamiliarity.short_qa_samples=2",
            "unfamiliarity.splits=[sft,eval]", "unfamiliarity.sampled_splits=[eval]",
            "sft.steps=2", "sft.batch_size=4", "ppo.steps=1", "ppo.batch_size=4", "ppo.minibatch_size=4",
            "ppo.save_every=0", "ppo.log_samples_every=0", *actors, "deepspeed.precision=fp32",
            "logging.wandb_mode=disabled", "threads=1", *GATES_OFF]


GATES_OFF = ["unfamiliarity.gate_max_label_share=1", "unfamiliarity.gate_min_p_gold_spread=0",
             "unfamiliarity.gate_min_corr=-1"]
"""A random tiny model knows nothing, which is what the gates stop on; the pipeline's plumbing is the point here."""


def test_unfamiliarity_gates_stop_a_run_on_scores_that_mean_nothing(tmp_path, capsys):
    table = fact_table(tmp_path / "capitals.csv")
    args = [a for a in overrides(tmp_path, tiny_model(tmp_path, table), table) if a not in GATES_OFF]
    assert main(["unfamiliarity", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    err = err.strip().splitlines()[-1]  # after the progress bars: one line
    assert err.startswith("halluray unfamiliarity: unfamiliarity gate: 100% of the base model's 14 sampled answers "
                          "are graded incorrect (unfamiliarity.gate_max_label_share 0.98)")
    assert "P(gold) has no spread" in err and "answer_prefix" in err and "inspect-table" in err
    layout = RunLayout(build_config({}, args))
    assert layout.unfamiliarity_scores.is_file()  # kept to look at
    assert main(["qa-experiment", *args]) == 2  # and not used
    assert "failed their gates" in capsys.readouterr().err


@pytest.mark.ray
def test_demo_real_runs_the_short_qa_experiments_on_a_users_fact_table(tmp_path, capsys):
    table = fact_table(tmp_path / "capitals.csv")
    args = overrides(tmp_path, tiny_model(tmp_path, table), table)
    assert main(["demo-real", *args]) == 0, capsys.readouterr().err[-2000:]
    layout = RunLayout(build_config({}, args))
    results = json.loads(layout.results.read_text())
    # Fig. 2: every arm has a label distribution per bucket; Fig. 3 right: before and after RL for both inits.
    assert set(results["sft"]) == {"standard", "unfamiliar-idk", "random-idk"}
    for arm in results["sft"].values():
        assert {"correct", "incorrect", "abstain"} <= set(arm)
        assert len(arm["abstain"]) == len(results["buckets"]["bins"])
    assert set(results["rl"]) == {"unfamiliar-idk", "standard"}
    scores = [r for r in read_jsonl(layout.unfamiliarity_scores) if r["task"] == "short_qa"]
    assert all(0 <= r["p_gold"] <= 1 and r["unfamiliar"] == (r["p_gold"] < 0.1) for r in scores)
    assert all(len(r["labels"]) == 2 for r in scores if r["split"] == "eval")
    # The unfamiliar-idk arm was trained on exactly the unfamiliar SFT queries relabeled.
    train = read_jsonl(layout.sft_dir("unfamiliar-idk", "short_qa") / "train.jsonl")
    unfamiliar = {r["name"] for r in scores if r["split"] == "sft" and r["unfamiliar"]}
    assert {r["topic"] for r in train if r["relabeled"]} == unfamiliar
    assert all(r["target"] == "I don't know." for r in train if r["relabeled"])
    report = layout.report.read_text()
    assert "paper Fig. 2" in report and "from unfamiliar-idk SFT" in report
    for name in ("fig2", "fig3_right", "unfamiliarity"):
        assert layout.figure(name).is_file()


def test_inspect_table_shows_answers_with_the_value_read_and_the_grade_and_writes_nothing(tmp_path, capsys):
    table = fact_table(tmp_path / "capitals.csv")
    args = [a for a in overrides(tmp_path, tiny_model(tmp_path, table), table) if a not in GATES_OFF]
    assert main(["inspect-table", "--n", "3", "--samples", "1", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("inspect-table: 3 of ") and out.count("\n[capital] ") == 3
    assert out.count("greedy: ") == 3 and out.count("T=1: ") == 3 and "-> incorrect (names " in out
    assert "grades over 6 answers: correct" in out
    assert "warning: 100% of these answers are graded incorrect, which would stop a run" in out
    assert not (tmp_path / "runs").exists()
    assert main(["inspect-table", "--n", "0", *args]) == 2


def test_a_chat_model_sees_every_prompt_in_its_chat_format(tmp_path):
    table = fact_table(tmp_path / "capitals.csv", n=10)
    model = tiny_model(tmp_path, table)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["chat_template"] = ("{% for m in messages %}<{{ m.role }}> {{ m.content }} {% endfor %}"
                               "{% if add_generation_prompt %}<assistant> {% endif %}")
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    cfg = build_config({}, [f"model.pretrained_path={model}", "model.chat_template=true",
                            "model.system_prompt=Be brief.", "data.dataset=fact_table", f"data.path={table}",
                            "data.entity_splits={sft: 1.0, rm: 0, ppo: 0, val: 0, eval: 0}"])
    prompts = [r["prompt"] for r in prompts_for(cfg, "sft")]
    assert len(prompts) == 10
    assert all(p.startswith("<system> Be brief. <user> What is the capital of ") and p.endswith("<assistant> ")
               for p in prompts)


def test_a_model_without_a_chat_template_is_refused_by_name(tmp_path):
    from halluray.errors import InputError

    table = fact_table(tmp_path / "capitals.csv", n=4)
    model = tiny_model(tmp_path, table)
    cfg = build_config({}, [f"model.pretrained_path={model}", "model.chat_template=true", "data.dataset=fact_table",
                            f"data.path={table}"])
    with pytest.raises(InputError, match=r"model.chat_template is on, but .*model has no chat template"):
        prompts_for(cfg, "sft")
