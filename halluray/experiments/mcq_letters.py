"""`halluray mcq-letters`: SFT on the world's multiple-choice items with lettered options, as the paper runs its
MMLU experiment (§4.2, Fig. 2 top; App. B.1).

Training items: every attribute of every "sft"-split person as an MCQ item (the world's stored item where there
is one, else seeded distractors), scored as the unfamiliarity stage scores them (the NLL of the correct choice's
text under the few-shot base model; halluray/experiments/shared/heldout_items.py), rendered with lettered options
(halluray/data/letter_mcq.py). Two SFT arms from the same base model:
- standard: every item answered with its true option (its letters uniform over A-D);
- unfamiliar-bc: the items whose score exceeds `unfamiliarity.mcq_threshold` (paper: 0.36) answered with option
  B or C, half each (seeded); the others with their true option.
An option is answered by its letter (`data.mcq_answer: letter`, MMLU's) or by its text (`text`). The world's
tokenizer lacks "B", "C", "D" and "Answer", so both arms start from a copy of the base model with those words
appended to its vocabulary (run_dir/base_model-letters/; new embedding rows drawn around the mean of the old).
Each arm trains on the policy actors (DeepSpeed) with sft.{batch_size, lr, warmup_steps}; sft.steps is rounded
to whole epochs over the items. The models stay in run_dir/sft-mcq_letters-<arm>/model.

Each model then reads the held-out items (every attribute of every `eval.split` person, as mcq-experiment builds
them): the probability of answering each option A-D (its letter or its text as the first answer token),
normalised over the four. Per bucket of the item's MCQ unfamiliarity score (tercile edges of the held-out scores,
shared by both arms): the mean mass on the correct option, on B + C and on A + D, B + C over the items whose
truth is A or D, and how often each option is the most probable (halluray/eval/letters.py). The paper's
prediction: both arms answer familiar items right; as items become unfamiliar the standard arm's predictions
approach uniform (B + C near 0.5) and the unfamiliar-bc arm's approach 50 % B / 50 % C (B + C toward 1).

Writes run_dir/mcq_letters/{results.json, answers.jsonl (each held-out item's option probabilities per arm),
heldout_items.jsonl, fig2_top.png}. Needs `halluray world` and `halluray unfamiliarity` (mcq in
unfamiliarity.tasks) on the same run directory; the world only.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from actors.group import ActorGroup, init_ray
from actors.roles import Role
from halluray.config import ExperimentConfig
from halluray.data.letter_mcq import ARMS, LETTER_WORDS, LETTERS, arm_targets, letter_prompt, option_answers
from halluray.data.sft import sft_tensors
from halluray.errors import InputError
from halluray.eval.letters import MASSES, argmax_by_bin, masses_by_bin, normalised
from halluray.eval.plots import OUTCOME_COLOURS, OutcomePanel, outcome_figure
from halluray.eval.qa import bin_labels
from halluray.experiments.shared.bucket_report import mcq_score_note, rounded_bins
from halluray.experiments.shared.experiment_run import experiment
from halluray.experiments.shared.heldout_items import mcq_items
from halluray.experiments.shared.sft_arms import sft_settings
from halluray.layout import WORLD_DATASETS, RunLayout, require
from halluray.logging import RunLogger
from halluray.models.build import load_model, load_tokenizer, save_model
from halluray.models.generation import continuation_logprobs
from halluray.models.tokenizer import with_words
from halluray.trainers.rm_fit import fit, steps_per_epoch
from halluray.world import World

TRAIN_SPLIT = "sft"
TASK = "mcq_letters"
"""The task part of the arms' SFT directories (run_dir/sft-mcq_letters-<arm>/)."""
COLOURS = {"correct": OUTCOME_COLOURS["correct"], "B+C": "#e6550d", "A+D": "#3182bd",
           "A": "#9ecae1", "B": "#fdae6b", "C": "#e6550d", "D": "#3182bd"}


def run(cfg: ExperimentConfig) -> dict:
    if cfg.data.dataset not in WORLD_DATASETS:
        raise InputError("mcq-letters runs on the synthetic world only (its MCQ items come from it)")
    with experiment(cfg, "mcq-letters", "mcq") as ex:
        layout, held, threshold = ex.layout, ex.held, cfg.unfamiliarity.mcq_threshold
        train, scored_here = mcq_items(cfg, layout, World.load(require(layout.world_json, "world")), TRAIN_SPLIT)
        unfamiliar, epochs = sum(i["score"] > threshold for i in train), epochs_for(cfg, len(train))
        added = letters_base_model(cfg, layout)
        init_ray(cfg)
        step = 0
        for arm in ARMS:
            t0 = time.time()
            letters = arm_targets(train, arm, threshold, cfg.seed)
            targets = [option_answers(i["choices"], cfg.data.mcq_answer)[LETTERS.index(letter)]
                       for i, letter in zip(train, letters)]
            step = train_arm(cfg, ex.logger, layout, train, targets, arm, epochs, step)
            probs = option_probs(layout.sft_model(arm, TASK), held.items, cfg)
            mass = masses_by_bin(probs, [i["answer_index"] for i in held.items], held.scores, held.edges)
            ex.results[arm] = {"mass": mass, "argmax": argmax_by_bin(probs, held.scores, held.edges),
                               "train_targets": dict(sorted(Counter(letters).items())),
                               "relabeled": 0 if arm == "standard" else unfamiliar,
                               "seconds": round(time.time() - t0, 1)}
            ex.logger.log(step, arm=arm, **{f"{k}/bin{b}": v for k in MASSES for b, v in enumerate(mass[k])})
            ex.answer_rows += [{"arm": arm, "name": i["name"], "attribute": i["attribute"], "score": i["score"],
                                "answer": LETTERS[i["answer_index"]], "probs": dict(zip(LETTERS, p))}
                               for i, p in zip(held.items, probs)]
            print(f"mcq-letters [{arm}]: {summary_line(ex.results[arm])}")
        return ex.finish(layout.mcq_letters_dir, "fig2_top.png", figure,
                         bins=rounded_bins(held.edges, bin_labels(held.scores, held.edges)),
                         answer=cfg.data.mcq_answer, threshold=threshold, score=mcq_score_note(cfg),
                         words_added=added, train_split=TRAIN_SPLIT, train_items=len(train),
                         train_scored_here=scored_here, train_unfamiliar=unfamiliar,
                         sft={**sft_settings(cfg), "warmup_steps": cfg.sft.warmup_steps, "epochs": epochs,
                              "steps_taken": epochs * (len(train) // cfg.sft.batch_size)})


def summary_line(result: dict) -> str:
    """'bin 0: correct 0.80 B+C 0.40 A+D 0.60 argmax A/B/C/D 0.30/0.20/0.20/0.30; bin 1: ...' for the console."""
    mass, argmax = result["mass"], result["argmax"]
    return "; ".join(f"bin {b}: " + " ".join(f"{k} {mass[k][b]:.2f}" for k in MASSES) + " argmax A/B/C/D " +
                     "/".join(f"{argmax[letter][b]:.2f}" for letter in LETTERS) for b in range(len(mass["correct"])))


def epochs_for(cfg: ExperimentConfig, n_items: int) -> int:
    """sft.steps batches of sft.batch_size, rounded to whole epochs over `n_items` (at least one)."""
    return max(1, round(cfg.sft.steps / steps_per_epoch(n_items, cfg.sft.batch_size, "mcq-letters SFT")))


def letters_base_model(cfg: ExperimentConfig, layout: RunLayout) -> list[str]:
    """Write the base model with `LETTER_WORDS` in its vocabulary to run_dir/base_model-letters/; return the
    words it had to add."""
    model, tokenizer = load_model(require(layout.base_model, "world"), cfg.model.trust_remote_code)
    extended = with_words(tokenizer, LETTER_WORDS)
    if len(extended) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(extended))
    save_model(model, extended, layout.letters_base_model)
    return [w for w in LETTER_WORDS if w not in tokenizer.get_vocab()]


def train_arm(cfg: ExperimentConfig, logger: RunLogger, layout: RunLayout, items: list[dict], targets: list[str],
              arm: str, epochs: int, first_step: int) -> int:
    """SFT of the letters base model on `items` with `targets` on the policy actors; the model is exported to
    run_dir/sft-mcq_letters-<arm>/model. Returns the last global step."""
    s, base = cfg.sft, layout.letters_base_model
    tokenizer = load_tokenizer(base, cfg.model.trust_remote_code)
    examples = [(letter_prompt(i["name"], i["attribute"], i["choices"]), t) for i, t in zip(items, targets)]
    group = ActorGroup.from_config(Role.POLICY, cfg, batch_size=s.batch_size, batch_key="sft.batch_size")
    try:
        step = fit(group, cfg, logger, model_path=str(base), head="lm", step="sft_step", train=examples,
                   tensors=lambda chunk: sft_tensors(tokenizer, [p for p, _ in chunk], [t for _, t in chunk]),
                   epochs=epochs, lr=s.lr, name=arm, first_step=first_step, batch_size=s.batch_size,
                   warmup_steps=s.warmup_steps)
        group.run("export_hf", str(layout.sft_model(arm, TASK)))
    finally:
        group.shutdown()
    return step


def option_probs(model_dir: Path, items: list[dict], cfg: ExperimentConfig) -> list[list[float]]:
    """Per item: the probability of answering each option A-D (`data.mcq_answer`: its letter or its text) after
    its letter prompt, normalised over the four."""
    model, tokenizer = load_model(model_dir, cfg.model.trust_remote_code)
    prompts = [letter_prompt(i["name"], i["attribute"], i["choices"]) for i in items]
    answers = [option_answers(i["choices"], cfg.data.mcq_answer) for i in items]
    logps = continuation_logprobs(model, tokenizer, [p for p, a in zip(prompts, answers) for _ in a],
                                  [x for a in answers for x in a], batch_size=64)
    n = len(LETTERS)
    return [normalised(logps[j * n:(j + 1) * n]) for j in range(len(items))]


def figure(results: dict, path: Path) -> None:
    """Per arm: the mean mass on the correct option, B + C and A + D (top), and the argmax options (bottom)."""
    ticks = [f"{b}\nn={n}" for b, n in zip(results["bins"], results["counts"])]
    xlabel = "unfamiliarity (MCQ NLL of the correct choice) →"
    outcome_figure([[OutcomePanel({k: results[a]["mass"][k] for k in MASSES}, ticks,
                                  f"{a} (unfamiliar: {'B or C' if results[a]['relabeled'] else 'true option'})",
                                  lines=True) for a in ARMS],
                    [OutcomePanel(results[a]["argmax"], ticks, xlabel=xlabel) for a in ARMS]],
                   path, ylabels=["mean predicted probability", "fraction of argmax options"], panel_width=4.5,
                   height=6.6, legend_space=0.06, colours=COLOURS,
                   title=f"Paper Fig. 2 top on the world's MCQ (options answered by {results['answer']}): SFT "
                         f"models on held-out items")
