"""The text two-stage RM's formats (paper §5, App. D): what the decomposer LM reads and writes, what the
verifier LM classifies, and the examples both are trained on. Training and scoring use the same functions."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from halluray.factuality.fact_checkers import is_abstention

DECOMPOSER_PROMPT = "Response: {response}\nFacts:\n"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
VERIFIER_INPUT = "{prompt}\nFact: {fact}"


@dataclass(frozen=True)
class FactLines:
    """How the decomposer writes its facts: `bullet` + fact + `end` each, then EOS; a generated text is cut
    into facts at `split`."""
    bullet: str
    end: str
    split: str

    @classmethod
    def for_tokenizer(cls, tokenizer) -> FactLines:
        """'- fact\\n' lines where the tokenizer keeps newlines (byte-level BPE, SentencePiece). A word-level
        tokenizer that splits on whitespace (the synthetic world's) loses them and has no '-': there each
        fact ends with ' . ', as the world's sentences do, and its output (words joined by single spaces) is
        cut at ' .'."""
        if "\n" in tokenizer.decode(tokenizer("a\nb")["input_ids"]):
            return cls("- ", "\n", "\n")
        return cls("", " . ", " .")

    def format(self, facts: list[str]) -> str:
        return "".join(f"{self.bullet}{fact}{self.end}" for fact in facts)

    def parse(self, text: str) -> list[str]:
        """The facts of a generated text, deduplicated in order (a half-written last fact counts too)."""
        marker = self.bullet.strip()
        facts = []
        for line in text.split(self.split):
            fact = " ".join(line.split())
            if marker:
                fact = fact.removeprefix(marker).strip()
            facts.append(fact)
        return list(dict.fromkeys(f for f in facts if f))


def verifier_input(prompt: str, fact: str) -> str:
    return VERIFIER_INPUT.format(prompt=prompt, fact=fact)


def stated_facts(record: dict) -> list[str]:
    """Every fact a reward-data response states, labeled or unverifiable, in the order the response states
    them where it quotes them (the world's sentences): the decomposer then reads left to right."""
    facts = [text for text, _, _ in record["facts"]] + list(record.get("unverifiable", []))
    response = record["response"]

    def position(fact: str) -> float:
        at = response.find(fact)
        return at if at >= 0 else float("inf")

    return sorted(dict.fromkeys(facts), key=position)


def decomposer_examples(records: list[dict]) -> list[tuple[str, list[str]]]:
    """(response, its facts) for every response that does not abstain; an empty list teaches "no facts".
    Abstentions are left out: the RM gives them 0 without asking the decomposer."""
    return [(r["response"], stated_facts(r)) for r in records if not is_abstention(r["response"])]


def _bare(sentence: str) -> str:
    return " ".join(sentence.rstrip(".!? ").split())


def _swapped(text: str, swap: dict[str, str]) -> str:
    return " ".join(swap.get(w, w) for w in text.split(" "))


def capitalised_words(tokenizer) -> list[str]:
    """The tokenizer's capitalised alphabetic vocabulary entries, sorted: on a word-level vocabulary (the
    synthetic world's) its names and places, what a decomposer must copy; on a subword one, capitalised pieces."""
    return sorted(w for w in tokenizer.get_vocab() if w.isalpha() and w[:1].isupper())


def recombined_examples(examples: list[tuple[str, list[str]]], n: int, seed: int,
                        names: list[str] = ()) -> list[tuple[str, list[str]]]:
    """`n` more decomposer examples made of the training responses' own sentences, drawn across responses in
    random number and order, each listing the facts among its sentences; with `names`, each capitalised word of
    an example is swapped for a random one of them half of the time (the same swap in its text and its facts).

    A tiny LM trained on a few hundred responses learns to write what it knows about the name rather than copy
    what the response says (measured on the demo world: held-out fact-list F1 0.32); sentences of many people
    in random order leave copying as the only way to fit. It still copies only the names it was trained on: on
    the people of another split its lists lost the name or wrote another, which the swaps teach it not to. Only
    responses whose facts are each one of their sentences (the synthetic world's) lend sentences;
    decompositions that rewrite the text (FActScore's) are kept as they are and lend none."""
    pool: list[tuple[str, str | None]] = []
    longest = 1
    for response, facts in examples:
        sentences = [x for x in SENTENCE_END.split(response.strip()) if x.strip()]
        if not facts or not set(facts) <= {_bare(x) for x in sentences}:
            continue
        pool += [(x, _bare(x) if _bare(x) in facts else None) for x in sentences]
        longest = max(longest, len(sentences))
    if not pool:
        return []
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        picked = [pool[rng.randrange(len(pool))] for _ in range(rng.randint(1, longest))]
        text, facts = " ".join(x for x, _ in picked), list(dict.fromkeys(f for _, f in picked if f))
        if names:
            swap = {w: rng.choice(names) for w in sorted(set(text.split(" ")))
                    if w[:1].isupper() and rng.random() < 0.5}
            text, facts = _swapped(text, swap), list(dict.fromkeys(_swapped(f, swap) for f in facts))
        out.append((text, facts))
    return out


def text_verifier_examples(records: list[dict]) -> list[tuple[tuple[str, str], float]]:
    """((prompt, fact), 1.0 if true else 0.0) for every labeled fact; unverifiable facts have no label."""
    return [((r["prompt"], text), 1.0 if label == "true" else 0.0)
            for r in records for text, _, label in r["facts"] if label in ("true", "false")]


def fact_set_scores(predicted: list[list[str]], gold: list[list[str]]) -> dict[str, float]:
    """Exact match of the fact sets, and the mean F1 of each response's facts (two empty sets agree)."""
    exact, f1 = 0, 0.0
    for p, g in zip(predicted, gold):
        p, g = set(p), set(g)
        exact += p == g
        both = len(p & g)
        f1 += 1.0 if not p and not g else 2 * both / (len(p) + len(g))
    n = max(1, len(gold))
    return {"exact_match": exact / n, "f1": f1 / n}
