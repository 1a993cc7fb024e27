"""`halluray qa-rl`: PPO on short QA with the paper's QA reward (§4.2 "Reinforcement learning", Fig. 3 right).

Each short-QA SFT model of `halluray qa-experiment` (run_dir/sft-short_qa-<strategy>/model; trained here
first when missing) initialises a PPO run (run_dir/ppo-qa-<strategy>/) on the world's short-QA prompts of the
"ppo" split (`data.dataset=world_qa`: all six questions of every PPO-split person), rewarded by the world's
answer checker (`ppo.reward.kind=qa_checker`): +2 correct, -3 incorrect, `ppo.reward.abstain` (paper: 0) for
"I do not know". The control run (run_dir/ppo-qa-<strategy>-abstain-penalized/, by default from the
unfamiliar-idk model) punishes abstaining like a wrong answer (abstain reward = `ppo.reward.incorrect`, -3),
so guessing pays more than abstaining on every query.

The paper's prediction: with abstain = 0, abstaining has the higher expected reward whenever P(correct) < 0.6,
so the RL policy keeps (or learns) "I do not know" on unfamiliar queries and answers familiar ones; with
abstain = -3, guessing always pays at least as much, so the policy abstains less and guesses more.

Each policy before RL (the SFT model) and after RL answers the held-out QA items of qa-experiment (all six
attributes of every "eval"-split person; `eval.samples_per_prompt` samples at `eval.temperature`, at most 4 new
tokens); answers are labeled correct / incorrect / abstain and grouped into buckets of the query's short-QA
unfamiliarity score (edges computed once from the held-out scores, shared by every model).

PPO settings come from the config's `ppo` section except what the stage fixes: name, reward kind and
abstain value, and on the world `data.dataset=world_qa`, `ppo.max_new_tokens=5` and `ppo.stop=["."]` (an answer
is one word and a full stop; "I do not know ." is five tokens). On real data (fact tables, TriviaQA) the prompts
are the config's own "ppo" split, an answer is one sentence (at most 24 new tokens, ended by the model's
end-of-turn token), and the run's fact checker labels it (`label_answer`).

Writes run_dir/qa_rl/{results.json, answers.jsonl, heldout_items.jsonl, rl_short_qa.png}.
Needs `halluray world` and `halluray unfamiliarity` (short_qa in unfamiliarity.tasks) on the same run directory.

`run_rl` (experiments/shared/short_answer_rl.py) is the experiment for any short-answer task (`RLTask`);
`halluray mcq-rl` (mcq_rl.py) runs it on the world's multiple-choice items.
"""

from __future__ import annotations

from operator import attrgetter

from halluray.config import ExperimentConfig
from halluray.experiments.shared.bucket_report import short_qa_score_note
from halluray.experiments.shared.short_answer_rl import CONTROL_STRATEGIES, RLTask, run_rl
from halluray.factuality.relabel import STRATEGIES

SHORT_QA = RLTask("qa-rl", "short_qa", "ppo-qa", attrgetter("qa_rl_dir"), "rl_short_qa.png", "short QA",
                  short_qa_score_note, "short-QA score")


def run(cfg: ExperimentConfig, strategies: tuple[str, ...] = STRATEGIES,
        control: tuple[str, ...] = CONTROL_STRATEGIES) -> dict:
    return run_rl(cfg, SHORT_QA, strategies, control)
