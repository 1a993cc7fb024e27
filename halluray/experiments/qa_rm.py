"""`halluray qa-rm`: reward models of short-answer correctness trained on two mixes of unfamiliar labels (paper
§4.2 "Reward prediction", Fig. 4).

For each task (MCQ, the paper's MMLU; short QA, its TriviaQA) two reward models are finetuned from the world's
base model to classify an answer as correct (reward 1) or not (0), on the world's stored items of the training
people ("sft" and "rm" splits), familiar or unfamiliar by the unfamiliarity stage's flag of that task:
- mix A: familiar items 50 % correct / 50 % wrong answers, unfamiliar items all correct;
- mix B: the same familiar examples, unfamiliar items all wrong
(halluray/reward_models/correctness.py). A wrong answer is another choice of the MCQ item, or another value of
the attribute for short QA. Each model is the two-stage RM's fact verifier (models/heads.py `FactVerifier`: the
LM's belief in the answer's tokens -> a logit), trained with binary cross-entropy on the reward-trainer actors
(DeepSpeed), `reward_model.{batch_size, lr, head_lr, warmup_steps, epochs}`; the four models train one after
another on the same ranks.

Each model then predicts P(reward 1) for every held-out item (every attribute of every `eval.split` person, as
qa-experiment / mcq-experiment build and score them) once with its correct and once with a wrong answer; the
means per unfamiliarity bucket are the paper's green (correct answers) and red (incorrect answers) lines.
The paper's prediction: both lines of model A rise toward 1 as items become unfamiliar, model B's fall toward 0.

Writes run_dir/qa_rm/{results.json, fig4.png}; the models are not kept. Needs `halluray world` and
`halluray unfamiliarity` (short_qa and mcq in unfamiliarity.tasks); the world only.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from actors.group import ActorGroup, init_ray
from actors.roles import Role
from halluray.config import ExperimentConfig
from halluray.errors import InputError
from halluray.eval.buckets import means_by_bin
from halluray.eval.plots import OutcomePanel, outcome_figure
from halluray.eval.qa import bin_labels
from halluray.experiments.shared.bucket_report import mcq_score_note, rounded_bins, short_qa_score_note
from halluray.experiments.shared.heldout import load_heldout
from halluray.io import atomic_dir, atomic_write_json, read_jsonl
from halluray.layout import WORLD_DATASETS, RunLayout, require
from halluray.logging import RunLogger
from halluray.models.heads import verifier_tensors
from halluray.pipeline.shared.prepare import prepare
from halluray.reward_models.correctness import UNFAMILIAR_LABEL, held_out_pairs, training_mix
from halluray.trainers.rm_fit import fit
from halluray.world.templates import mcq_prompt, qa_prompt
from halluray.world.vocab import ATTRIBUTE_VALUES

TASKS = ("mcq", "short_qa")
"""In the paper's order: MMLU (left), TriviaQA (right)."""
TRAIN_SPLITS = ("sft", "rm")
SCORE_NOTES = {"mcq": mcq_score_note, "short_qa": short_qa_score_note}
SCORE_AXES = {"mcq": "MCQ NLL of the correct choice", "short_qa": "short-QA score"}
HELD_OUT_KEYS = ("edges", "bin_method", "counts", "n_items", "n_scored_here")


def with_answers(item: dict) -> dict:
    """`item` (an MCQ item with choices, or a QA item with its answer) with `answer` and `alternatives`: the
    other choices, or every other value of the attribute."""
    if "choices" in item:
        answer = item["choices"][item["answer_index"]]
        return dict(item, answer=answer, alternatives=[c for c in item["choices"] if c != answer])
    return dict(item, alternatives=[v for v in ATTRIBUTE_VALUES[item["attribute"]] if v != item["answer"]])


def training_items(layout: RunLayout, task: str) -> list[dict]:
    """The world's stored `task` items of the training people, each with its prompt and unfamiliar flag."""
    scores = require(layout.unfamiliarity_scores, "unfamiliarity")
    flags = {(r["name"], r["attribute"]): r["unfamiliar"] for r in read_jsonl(scores) if r["task"] == task}
    stored = read_jsonl(require(layout.world_mcq_items if task == "mcq" else layout.world_qa_items, "world"))
    items = []
    for i in stored:
        if i["split"] not in TRAIN_SPLITS:
            continue
        key = (i["name"], i["attribute"])
        if key not in flags:
            raise InputError(f"{scores}: no {task} score for {key}; run `halluray unfamiliarity` with {task} in "
                             f"unfamiliarity.tasks")
        prompt = (mcq_prompt(i["name"], i["attribute"], i["choices"]) if task == "mcq"
                  else qa_prompt(i["name"], i["attribute"]))
        items.append(with_answers(dict(i, prompt=prompt, unfamiliar=flags[key])))
    return items


def _tensors(tokenizer, examples: list) -> dict[str, torch.Tensor]:
    inputs, labels = zip(*examples)
    return {**verifier_tensors(tokenizer, list(inputs)), "labels": torch.tensor(labels)}


def run(cfg: ExperimentConfig) -> dict:
    if cfg.data.dataset not in WORLD_DATASETS:
        raise InputError("qa-rm runs on the synthetic world only (its MCQ items and wrong answers come from it)")
    layout = prepare(cfg, "qa-rm")
    rm, t0 = cfg.reward_model, time.time()
    model_path = str(require(layout.base_model, "world"))
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    # Everything is read and checked before any actor starts.
    train = {task: training_items(layout, task) for task in TASKS}
    held = {task: load_heldout(cfg, layout, task) for task in TASKS}
    results: dict = {"tasks": {}, "unfamiliar_label": UNFAMILIAR_LABEL, "train_splits": list(TRAIN_SPLITS),
                     "reward_model": {k: getattr(rm, k) for k in ("batch_size", "lr", "head_lr", "warmup_steps",
                                                                  "epochs")}}
    init_ray(cfg)
    with RunLogger(layout.run_dir, cfg, "qa-rm") as logger:
        group = ActorGroup.from_config(Role.REWARD_TRAINER, cfg, batch_size=rm.batch_size,
                                       batch_key="reward_model.batch_size")
        step = 0
        try:
            for task in TASKS:
                h, items = held[task], train[task]
                pairs = held_out_pairs([with_answers(i) for i in h.items], cfg.seed)
                scores = [i["score"] for i in h.items for _ in range(2)]
                summary = h.summary(cfg)
                out = {**{k: summary[k] for k in HELD_OUT_KEYS}, "bins": bin_labels(h.scores, h.edges),
                       "score": SCORE_NOTES[task](cfg), "models": {},
                       "train_items": len(items), "train_unfamiliar": sum(i["unfamiliar"] for i in items)}
                for mix in UNFAMILIAR_LABEL:
                    t = time.time()
                    examples = training_mix(items, mix, cfg.seed)
                    step = fit(group, cfg, logger, model_path=model_path, head="verifier", step="verifier_step",
                               train=examples, tensors=lambda chunk: _tensors(tokenizer, chunk), epochs=rm.epochs,
                               lr=rm.lr, name=f"{task}-{mix}", first_step=step)
                    p = torch.sigmoid(torch.cat(group.run_sharded("predict", _tensors(tokenizer, pairs)))).tolist()
                    out["models"][mix] = {
                        "correct": means_by_bin(p[0::2], scores[0::2], h.edges),
                        "incorrect": means_by_bin(p[1::2], scores[1::2], h.edges),
                        "train_examples": len(examples), "train_reward_1": sum(y for _, y in examples),
                        "seconds": round(time.time() - t, 1)}
                    _print(task, mix, out["counts"], out["models"][mix])
                results["tasks"][task] = out
        finally:
            group.shutdown()
    results["seconds"] = round(time.time() - t0, 1)
    with atomic_dir(layout.qa_rm_dir) as tmp:
        atomic_write_json(tmp / "results.json", results)
        figure(results, tmp / "fig4.png")
    print(f"qa-rm: results in {layout.qa_rm_dir} ({results['seconds']} s)")
    return results


def _print(task: str, mix: str, counts: list[int], model: dict) -> None:
    line = "; ".join(f"bin {b} ({n} items): correct {c:.2f} incorrect {i:.2f}"
                     for b, (n, c, i) in enumerate(zip(counts, model["correct"], model["incorrect"])))
    print(f"qa-rm [{task}, mix {mix}]: mean P(reward 1) {line}")


def figure(results: dict, path: Path) -> None:
    """One panel per task and mix: mean predicted P(reward 1) per unfamiliarity bucket, for the held-out items'
    correct answers (green) and wrong answers (red)."""
    panels = []
    for task, out in results["tasks"].items():
        bins = rounded_bins(out["edges"], out["bins"]) if task == "mcq" else out["bins"]
        ticks = [f"{b}\nn={n}" for b, n in zip(bins, out["counts"])]
        for mix, model in out["models"].items():
            label = "correct" if results["unfamiliar_label"][mix] == 1.0 else "incorrect"
            panels.append(OutcomePanel({"correct": model["correct"], "incorrect": model["incorrect"]}, ticks,
                                       f"{task}: RM {mix} (unfamiliar train: all {label})",
                                       f"unfamiliarity ({SCORE_AXES[task]}) →", lines=True))
    outcome_figure([panels], path, ylabels=["mean predicted P(reward 1)"], panel_width=3.4, height=3.8,
                   legend_space=0.08,
                   title="Reward models on held-out answers by unfamiliarity (paper Fig. 4): correct answers (green) "
                         "and incorrect answers (red)")
