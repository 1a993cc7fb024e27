"""`halluray mcq-rl`: PPO on the world's multiple-choice items with the paper's two reward functions (§4.2
"Reinforcement learning", Fig. 3 left; App. B.2).

The task is to answer one of the four choices or "I do not know" (the paper's option E). Each run starts from
an MCQ SFT model of `halluray mcq-experiment` (run_dir/sft-mcq-<strategy>/model; trained here first when
missing) and runs PPO (run_dir/ppo-mcq-<strategy>[-abstain-penalized]/) on the multiple-choice prompts of the
"ppo" split (`data.dataset=world_qa`, `data.subset=mcq`: all six attributes of every PPO-split person, seeded
distractors), rewarded by the world's answer checker: +2 correct, -3 incorrect, and for abstaining
`ppo.reward.abstain` (paper: 0) or, in the control, `ppo.reward.incorrect` (-3).

By default both runs start from the random-idk model: as in the paper (App. B.2: "trained to predict the E
option 50% of the time"), its abstentions are not tied to familiarity, so whatever link between familiarity
and abstaining the RL policy shows, RL made it. The paper's prediction: with 0 for abstaining, abstaining pays
more than guessing among four (expected -1.75), so the policy abstains on unfamiliar items and answers familiar
ones; with -3, guessing pays at least as much everywhere, so it stops abstaining and guesses.

Held-out answers before and after RL: every attribute of every "eval"-split person as an MCQ item (as
mcq-experiment builds them), `eval.samples_per_prompt` samples each, labeled correct / incorrect / abstain and
grouped by the item's MCQ unfamiliarity (NLL of the correct choice under the few-shot base model).
The experiment itself is `qa_rl.run_rl` (shared with qa-rl).

Writes run_dir/mcq_rl/{results.json, answers.jsonl, heldout_items.jsonl, rl_mcq.png}. Needs `halluray world`
and `halluray unfamiliarity` (mcq in unfamiliarity.tasks) on the same run directory; the world only.
"""

from __future__ import annotations

from operator import attrgetter

from halluray.config import ExperimentConfig
from halluray.experiments.shared.bucket_report import mcq_score_note
from halluray.experiments.shared.short_answer_rl import RLTask, run_rl

MCQ = RLTask("mcq-rl", "mcq", "ppo-mcq", attrgetter("mcq_rl_dir"), "rl_mcq.png", "multiple choice (world MCQ)",
             mcq_score_note, "MCQ NLL of the correct choice", subset="mcq", round_edges=True)
INIT_STRATEGIES = ("random-idk",)


def run(cfg: ExperimentConfig, strategies: tuple[str, ...] = INIT_STRATEGIES,
        control: tuple[str, ...] = INIT_STRATEGIES) -> dict:
    return run_rl(cfg, MCQ, strategies, control)
