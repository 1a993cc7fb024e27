"""Label responses with the ground-truth checker: atomic facts, their labels, and the paper's reward."""

from __future__ import annotations

from halluray.factuality.reward_functions import RewardScheme, long_form_reward


def label_responses(checker, records: list[dict], responses: list[str], scheme: RewardScheme) -> list[dict]:
    out = []
    for record, response in zip(records, responses):
        result = checker.check(record["topic"], response)
        out.append({**record, "response": response, "facts": [[f.text, f.value, f.label] for f in result.facts],
                    "n_true": result.n_true, "n_false": result.n_false, "abstained": result.abstained,
                    "malformed": result.malformed, "reward": long_form_reward(result, scheme)})
    return out


def verifier_examples(records: list[dict]) -> list[tuple[tuple[str, str], float]]:
    """((fact sentence, stated value), 1.0 if true else 0.0) for every labeled atomic fact."""
    return [((f"{text} .", value), 1.0 if label == "true" else 0.0)
            for r in records for text, value, label in r["facts"]]


def scalar_examples(records: list[dict]) -> list[tuple[str, float]]:
    return [(f"{r['prompt']} {r['response']}", float(r["reward"])) for r in records]
