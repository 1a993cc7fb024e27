"""PPO validation's per-claim table: for a few validation responses, each claim the reward reads, with the checker's
label and the RM's P(true), beside the response's RM reward and ground truth (W&B `val/claims`, metrics.jsonl).

Whose claims: the two-stage RM's own decomposition when the reward has one. Those rows are exactly what the RM
paid for (its reward is sum(p * true_fact + (1 - p) * false_fact) over them), so a policy hacking the RM shows
up as rows: a false claim the verifier trusts (label false, high P(true)), or the decomposer's own errors (a
claim split in two, one read where the response says something else). What the decomposer misses is in the
checker's own counts of the response's claims on every row (`checker_true`, `checker_false`,
`checker_not_checkable`), from which `gt_reward` is computed. The two decompose separately and need not agree
sentence by sentence, so each RM claim is labelled by the run's checker reading the claim's text alone: false
when any fact in it is false, else true when one is true, else not checkable. Any other reward (the checker
itself, a scalar RM, a callable) reads no claims: the rows are then the checker's own claims, P(true) None.
"""

from __future__ import annotations

from halluray.factuality.checking import Checker
from halluray.factuality.reward_functions import RewardScheme, long_form_reward
from halluray.world.checker import FALSE, TRUE, CheckResult

NOT_CHECKABLE = "not checkable"


def claim_label(result: CheckResult) -> str:
    """The label of one claim from the checker's `check` of its text alone."""
    if result.n_false:
        return FALSE
    return TRUE if result.n_true else NOT_CHECKABLE


def checker_claims(result: CheckResult) -> list[tuple[str, str, None]]:
    """(claim, label, no P(true)) of the checker's own claims in a response."""
    return ([(f.text, f.label, None) for f in result.facts]
            + [(text, NOT_CHECKABLE, None) for text in result.unverifiable])


def rm_claims(checker: Checker, topic: str, claims: list[tuple[str, float]]) -> list[tuple[str, str, float]]:
    """(claim, the checker's label of it, the RM's P(true)) of the claims an RM read in a response about `topic`."""
    results = checker.check_many([topic] * len(claims), [text for text, _ in claims]) if claims else []
    return [(text, claim_label(result), p) for (text, p), result in zip(claims, results)]


def claim_rows(step: int, records: list[dict], responses: list[str], explained: list[dict], checker: Checker,
               scheme: RewardScheme, unfamiliarity: dict[str, float]) -> list[dict]:
    """One row per claim of each response (a response with none: one row, claim None), in response order.

    `records` are the responses' prompt records, `explained` their `RewardActor.explain` ({"reward", "claims"}),
    `unfamiliarity` each topic's long-form unfamiliarity score (None where unknown)."""
    topics = [r["topic"] for r in records]
    rows = []
    for record, response, rm, result in zip(records, responses, explained, checker.check_many(topics, responses)):
        topic = record["topic"]
        claims = checker_claims(result) if rm["claims"] is None else rm_claims(checker, topic, rm["claims"])
        response_cells = {
            "rm_reward": rm["reward"], "gt_reward": long_form_reward(result, scheme), "malformed": result.malformed,
            "checker_true": result.n_true, "checker_false": result.n_false,
            "checker_not_checkable": len(result.unverifiable), "unfamiliarity": unfamiliarity.get(topic),
            "response": response, "prompt": record["prompt"]}
        # Claim columns first: in W&B a user sorts and filters by them (label false, P(true) high).
        rows.extend({"step": step, "topic": topic, "claim": text, "label": label, "p_true": p, **response_cells}
                    for text, label, p in claims or [(None, None, None)])
    return rows
