"""FActScore-style fact checking, and an independent responder, over an OpenAI-compatible chat endpoint.

`OpenAIFactChecker` plays FActScore's role (paper §5.1): one decomposition request per sentence ("Please
breakdown the following sentence into independent facts: ..."), one True/False verification request per fact,
optionally shown a knowledge-source passage about the topic. A reply that says neither True nor False leaves
the fact unverifiable (None). `check_many` checks responses concurrently and prints what it sent and cost.

`OpenAIResponder` answers prompts with a chat model: the independent source of the "standard" reward model's
training data on real data (its knowledge is not the policy's).

Both send through `ChatClient` (cache, concurrency, usage line; see chat_client.py). The API key is read
through `halluray.secrets` from the variable whose *name* the config gives; `http_client` sends it only in the
Authorization header (to https only, unless allowed, and never across a redirect), and it never appears in a
log line, an exception message or a repr.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from halluray.data.text import split_sentences
from halluray.errors import InputError
from halluray.factuality.base import DecomposeVerify, same_length
from halluray.factuality.chat_client import ChatClient
from halluray.secrets import redact
from halluray.world.checker import CheckResult
from halluray.world.templates import EOS

log = logging.getLogger(__name__)

# FActScore's decomposition prompt and one of its demonstrations.
DECOMPOSE_DEMO = (
    "Please breakdown the following sentence into independent facts: He made his acting debut in the film The "
    "Moon is the Sun's Dream (1992), and continued to appear in small and supporting roles throughout the 1990s.\n"
    "- He made his acting debut in the film.\n"
    "- He made his acting debut in The Moon is the Sun's Dream.\n"
    "- The Moon is the Sun's Dream is a film.\n"
    "- The Moon is the Sun's Dream was released in 1992.\n"
    "- After his acting debut, he appeared in small and supporting roles.\n"
    "- After his acting debut, he appeared in small and supporting roles throughout the 1990s.\n\n"
)
DECOMPOSE_PROMPT = DECOMPOSE_DEMO + "Please breakdown the following sentence into independent facts: {sentence}\n"
# FActScore's verification prompt, with and without a retrieved passage.
VERIFY_PROMPT = "Answer the question about {topic} based on the given context.\n\nTitle: {topic}\nText: {passage}\n\n" \
                "Input: {fact} True or False?\nOutput:"
VERIFY_PROMPT_NO_PASSAGE = "Answer the question about {topic}.\n\nInput: {fact} True or False?\nOutput:"

_BULLET = re.compile(r"^\s*(?:[-*•‣–]|\d+[.)])\s+(.*\S)\s*$")


def parse_facts(reply: str, sentence: str) -> list[str]:
    """Facts from a decomposition reply: its bullet lines, else its plain lines; the sentence itself if none."""
    lines = [line.strip() for line in reply.splitlines() if line.strip()]
    lines = [line for line in lines if not line.lower().startswith("please breakdown")]
    bullets = [m.group(1) for m in map(_BULLET.match, lines) if m]
    facts = bullets or [line for line in lines if not line.endswith(":")]
    facts = [" ".join(f.split()) for f in facts if f.strip()]
    return facts or [sentence]


_VERDICT_START = re.compile(r"^(?:(?:answer|output|verdict|label)\s*[:\-]?\s*)?"
                            r"(true|false|yes|no|correct|incorrect|supported|not supported|unsupported)\b")


def parse_verdict(reply: str) -> bool | None:
    """True/False from a verification reply ("True.", "**False**", "Output: true", "It is true that ...");
    None when it says neither or both."""
    text = re.sub(r"[*_`#\"'()\[\]]", " ", reply.lower())
    text = " ".join(text.split()).lstrip(" .:-")
    text = re.sub(r"\btrue or false\b\s*[?:]?", " ", text)  # the question echoed back
    text = " ".join(text.split()).lstrip(" .:-")
    text = re.sub(r"\bnot (true|correct|supported)\b", "false", text)
    m = _VERDICT_START.match(text)
    if m:
        return m.group(1) in ("true", "yes", "correct", "supported")
    said = set(re.findall(r"\b(true|false)\b", text))
    return (said == {"true"}) if len(said) == 1 else None


def load_knowledge(path: str | Path) -> dict[str, str]:
    """Knowledge-source passages from a jsonl file: one {"topic" | "title" | "name": ..., "text": ...} a line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: knowledge file not found (fact_checker.knowledge_path)")
    passages: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{path}:{n}: not valid JSON") from None
        topic = next((row[k] for k in ("topic", "title", "name") if isinstance(row, dict) and k in row), None)
        if topic is None or not isinstance(row.get("text"), str):
            keys = ", ".join(row) if isinstance(row, dict) else type(row).__name__
            raise InputError(f"{path}:{n}: missing field 'topic' (or 'title'/'name') or 'text' (has: {keys})")
        topic = str(topic)
        passages[topic] = f"{passages[topic]}\n{row['text']}" if topic in passages else row["text"]
    return passages


class OpenAIFactChecker(DecomposeVerify):
    """FActScore-style fact checking through an OpenAI-compatible chat-completions endpoint (standard library
    only). `client_options` are `ChatClient`'s (timeouts, retries, cache, concurrency, prices)."""

    def __init__(self, base_url: str, model: str, *,
                 knowledge: Mapping[str, str] | Callable[[str], str | None] | None = None,
                 max_passage_chars: int = 4000, **client_options):
        self.client = ChatClient(base_url, model, **client_options)
        self.endpoint, self.model, self.api_key_env = self.client.endpoint, model, self.client.api_key_env
        self.knowledge, self.max_passage_chars = knowledge, max_passage_chars

    @classmethod
    def from_config(cls, cfg, *, cache_path: str | Path | None = None, **kw) -> OpenAIFactChecker:
        knowledge = load_knowledge(cfg.knowledge_path) if cfg.knowledge_path else None
        return cls(cfg.base_url, cfg.model, knowledge=knowledge, max_passage_chars=cfg.max_passage_chars,
                   **{**ChatClient.options(cfg, cache_path), **kw})

    def __repr__(self) -> str:
        return f"OpenAIFactChecker(endpoint={self.endpoint!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def chat(self, prompt: str) -> str:
        return self.client.chat(prompt)

    def decompose(self, response: str) -> list[str]:
        facts = []
        for sentence in split_sentences(response.replace(EOS, " ")):
            facts += parse_facts(self.chat(DECOMPOSE_PROMPT.format(sentence=sentence)), sentence)
        return list(dict.fromkeys(facts))

    def passage(self, topic: str) -> str | None:
        if self.knowledge is None:
            return None
        text = self.knowledge(topic) if callable(self.knowledge) else self.knowledge.get(topic)
        return text[: self.max_passage_chars] if text else None

    def verify(self, topic: str, facts: list[str]) -> list[bool | None]:
        passage = self.passage(topic)
        labels = []
        for fact in facts:
            prompt = (VERIFY_PROMPT.format(topic=topic, passage=passage, fact=fact) if passage
                      else VERIFY_PROMPT_NO_PASSAGE.format(topic=topic, fact=fact))
            reply = self.chat(prompt)
            label = parse_verdict(reply)
            if label is None:
                log.warning("fact checker endpoint %s: unparseable verdict %r for a fact about %s; unverifiable",
                            self.endpoint, redact(reply)[:80], topic)
            labels.append(label)
        return labels

    def check_many(self, topics: list[str], responses: list[str]) -> list[CheckResult]:
        """`check` of each response, `max_concurrency` at a time, in order; ends with the usage line."""
        same_length(topics, responses)
        return self.client.map(lambda pair: self.check(*pair), list(zip(topics, responses)), desc="fact-checker")


class OpenAIResponder:
    """Answers each prompt, sent as one user message, with `fact_checker.responder_model` (or `model`) through
    the fact checker's endpoint, key, cache and concurrency; `cfg` is a `FactCheckerConfig`, `cache_path` the
    cache file when it names none."""

    def __init__(self, cfg, cache_path: str | Path | None = None, **client_options):
        options = {**ChatClient.options(cfg, cache_path), **client_options}
        self.client = ChatClient(cfg.base_url, cfg.responder_model or cfg.model, **options)

    def __repr__(self) -> str:
        return f"OpenAIResponder({self.client!r})"

    def respond(self, prompts: list[str]) -> list[str]:
        return self.client.map(self.client.chat, list(prompts), desc="responder")
