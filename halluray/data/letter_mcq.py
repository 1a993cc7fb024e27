"""The world's multiple-choice items in MMLU's format: lettered options, the answer a letter (paper §4.2, Fig. 2
top; `halluray mcq-letters`).

    Q : What is Zapur 's employer ? A . Northwind B . Ironleaf C . Bluefin D . Tidewater Answer :  ->  D

The correct letters are uniform over A-D because the world places the true value among its distractors by a
seeded shuffle (`world.corpus.mcq_item`). The world's tokenizer knows "A" (from "A :") but not "B", "C", "D" or
"Answer": the experiment appends them to the vocabulary of its copy of the base model (`LETTER_WORDS`,
`halluray.models.tokenizer.with_words`).

The SFT targets of the two arms (`arm_targets`, as letters): `standard`, the true letter; `unfamiliar-bc`, the
paper's second distribution: the items whose MCQ unfamiliarity score exceeds the threshold get B or C, half each
(a seeded shuffle), and the others keep the true letter. An item is answered (`data.mcq_answer`, `option_answers`)
by the letter itself, as MMLU is, or by the text of the option that letter names.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from halluray.world.templates import QUESTION_TEMPLATES

LETTERS = ("A", "B", "C", "D")
RELABEL_LETTERS = ("B", "C")
"""The targets of unfamiliar items in the paper's second SFT distribution: 50 % B, 50 % C."""
ANSWER_CUE = "Answer :"
LETTER_WORDS = (*LETTERS, "Answer")
"""Every word a letter prompt or target adds to the world's surface forms."""
ARMS = ("standard", "unfamiliar-bc")
"""standard: every target the true letter; unfamiliar-bc: unfamiliar items' targets B or C, half each."""


def letter_prompt(name: str, attribute: str, choices: Sequence[str]) -> str:
    if len(choices) > len(LETTERS):
        raise ValueError(f"{len(choices)} choices, but only the letters {', '.join(LETTERS)}")
    options = " ".join(f"{letter} . {choice}" for letter, choice in zip(LETTERS, choices))
    return f"Q : {QUESTION_TEMPLATES[attribute].format(name=name)} {options} {ANSWER_CUE}"


def option_answers(choices: Sequence[str], answer: str) -> list[str]:
    """What answering each option means: its letter (`answer` "letter") or its text ("text")."""
    return list(LETTERS[:len(choices)]) if answer == "letter" else list(choices)


def arm_targets(items: Sequence[dict], arm: str, threshold: float, seed: int) -> list[str]:
    """The target letter of each item ({answer_index, score}) in SFT arm `arm` (see the module doc); an item is
    unfamiliar when its score exceeds `threshold`."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; expected one of {ARMS}")
    targets = [LETTERS[i["answer_index"]] for i in items]
    if arm == "standard":
        return targets
    unfamiliar = [j for j, i in enumerate(items) if i["score"] > threshold]
    relabels = [RELABEL_LETTERS[k % len(RELABEL_LETTERS)] for k in range(len(unfamiliar))]
    random.Random(seed).shuffle(relabels)
    for j, letter in zip(unfamiliar, relabels):
        targets[j] = letter
    return targets
