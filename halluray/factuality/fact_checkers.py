"""Pluggable fact checkers for real data: decompose a response into atomic facts, verify each against a topic.

A fact checker plays FActScore's role (paper §5.1): it labels the facts of a response true or false, and
`check` returns the same `CheckResult` as the synthetic world's exact checker, so rewards and metrics do not
care which one produced it. Three kinds:

- `WorldFactChecker`: the synthetic world's exact checker (`halluray.world.checker.FactChecker`) behind this
  interface;
- `OpenAIFactChecker`: FActScore-style, over any OpenAI-compatible chat-completions endpoint: one
  decomposition request per sentence ("Please breakdown the following sentence into independent facts: ..."),
  one True/False verification request per fact, optionally shown a knowledge-source passage about the topic.
  A reply that says neither True nor False leaves the fact unverifiable (None);
- user code: `load_fact_checker("package.module:callable")`, where the callable returns (or is) an object with
  `decompose(response) -> list[str]` and `verify(topic, facts) -> list[bool | None]`; `check` is supplied
  when it has none.

The API key is read through `halluray.secrets` from the variable whose *name* the config gives (the node's
environment, or the 0600 file named by `<NAME>_FILE`); `http_client` sends it only in the Authorization header
(to https only, unless allowed, and never across a redirect), and it never appears in a log line, an exception
message or a repr.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from halluray.config import FactCheckerConfig
from halluray.data.text import split_sentences
from halluray.errors import InputError
from halluray.factuality.http_client import HTTPClient, ParseError
from halluray.secrets import read_secret, redact
from halluray.world.checker import FALSE, TRUE, AtomicFact, CheckResult, ExactChecker
from halluray.world.entities import World
from halluray.world.templates import EOS

log = logging.getLogger(__name__)

__all__ = ["FactChecker", "CheckResult", "WorldFactChecker", "OpenAIFactChecker", "load_fact_checker",
           "check_with", "is_abstention", "parse_facts", "parse_verdict", "load_knowledge"]

# Responses that begin with one of these are abstentions: nothing is decomposed or verified (as in FActScore).
ABSTAIN_PHRASES = ("i do not know", "i don't know", "i dont know", "i'm not sure", "i am not sure",
                   "i could not find any information", "i cannot find any information",
                   "i have no information", "there is no information", "i'm sorry", "i am sorry")


@runtime_checkable
class FactChecker(Protocol):
    def decompose(self, response: str) -> list[str]:
        """The atomic facts stated in `response`."""

    def verify(self, topic: str, facts: list[str]) -> list[bool | None]:
        """For each fact about `topic`: True, False, or None when it cannot be verified."""

    def check(self, topic: str, response: str) -> CheckResult:
        """Decompose and verify a response to a prompt about `topic`."""


def is_abstention(response: str) -> bool:
    text = " ".join(response.replace(EOS, " ").replace("’", "'").split()).lower()
    return text.startswith(ABSTAIN_PHRASES)


def check_with(checker: Any, topic: str, response: str) -> CheckResult:
    """`check` from `decompose` + `verify`: an abstention states nothing, a repeated fact counts once,
    and a fact verified as None is unverifiable."""
    result = CheckResult()
    text = " ".join(response.replace(EOS, " ").split())
    if is_abstention(text):
        result.abstained = True
        return result
    facts = list(dict.fromkeys(" ".join(f.split()) for f in (checker.decompose(text) if text else []) if f.strip()))
    labels = list(checker.verify(topic, facts)) if facts else []
    name = type(checker).__name__
    if len(labels) != len(facts):
        raise InputError(f"{name}.verify returned {len(labels)} labels for {len(facts)} facts")
    for fact, label in zip(facts, labels):
        if label is None:
            result.unverifiable.append(fact)
        elif isinstance(label, bool):
            result.facts.append(AtomicFact(fact, topic, "", "", TRUE if label else FALSE))
        else:
            raise InputError(f"{name}.verify returned {label!r} for a fact; expected True, False or None")
    return result


class DecomposeVerify:
    """Base for checkers that implement `decompose` and `verify`: supplies `check`."""

    def check(self, topic: str, response: str) -> CheckResult:
        return check_with(self, topic, response)


class WorldFactChecker:
    """The synthetic world's exact checker as a `FactChecker`; `check` is exactly the world checker's."""

    def __init__(self, world: World | ExactChecker):
        self.exact = world if isinstance(world, ExactChecker) else ExactChecker(world)

    def decompose(self, response: str) -> list[str]:
        facts, _ = self.exact.decompose(response)
        return [sentence for sentence, *_ in facts]

    def verify(self, topic: str, facts: list[str]) -> list[bool | None]:
        labels = []
        for fact in facts:
            found = self.exact.check(topic, fact).facts
            labels.append(found[0].label == TRUE if len(found) == 1 else None)
        return labels

    def check(self, topic: str, response: str) -> CheckResult:
        return self.exact.check(topic, response)


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


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _chat_content(raw: bytes) -> str:
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ParseError(f"the reply is not a chat completion: {raw[:200].decode('utf-8', 'replace')!r}") from None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


class OpenAIFactChecker(DecomposeVerify):
    """FActScore-style fact checking through an OpenAI-compatible chat-completions endpoint (standard library
    only; timeouts, retries, redirects and limits are `http_client.HTTPClient`'s)."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", allow_http: bool = False,
                 timeout_s: float = 60.0, total_timeout_s: float = 300.0, max_response_bytes: int = 4 * 1024 * 1024,
                 max_retries: int = 3, retry_backoff_s: float = 1.0, max_tokens: int = 256,
                 knowledge: Mapping[str, str] | Callable[[str], str | None] | None = None,
                 max_passage_chars: int = 4000, sleep: Callable[[float], None] = time.sleep):
        base = base_url.rstrip("/")
        self.endpoint = base if base.endswith("/chat/completions") else base + "/chat/completions"
        self.model = model
        if not _ENV_NAME.match(api_key_env or ""):
            # Not echoed: a value that is not a variable name may well be the key itself.
            raise InputError("fact_checker.api_key_env must be the NAME of an environment variable holding the "
                             "API key (the value given is not a variable name; never put the key in a config)")
        self.api_key_env = api_key_env
        where = f"the environment variable {api_key_env} (or the file named by {api_key_env}_FILE)"
        hints = {401: f"; is the API key in {where}?",
                 403: f"; is the API key in {where} allowed to use model {model!r}?",
                 404: f"; check fact_checker.base_url and fact_checker.model ({model!r})"}
        self._http = HTTPClient(self.endpoint, api_key=read_secret(api_key_env), allow_http=allow_http,
                                timeout_s=timeout_s, total_timeout_s=total_timeout_s, max_retries=max_retries,
                                retry_backoff_s=retry_backoff_s, max_response_bytes=max_response_bytes,
                                status_hints=hints, sleep=sleep)
        self.max_tokens, self.max_passage_chars = max_tokens, max_passage_chars
        self.knowledge = knowledge
        self._cache: dict[str, str] = {}

    @classmethod
    def from_config(cls, cfg, **kw) -> "OpenAIFactChecker":
        knowledge = load_knowledge(cfg.knowledge_path) if cfg.knowledge_path else None
        return cls(cfg.base_url, cfg.model, api_key_env=cfg.api_key_env, allow_http=cfg.allow_http,
                   timeout_s=cfg.timeout_s, total_timeout_s=cfg.total_timeout_s,
                   max_response_bytes=cfg.max_response_bytes, max_retries=cfg.max_retries,
                   retry_backoff_s=cfg.retry_backoff_s, max_tokens=cfg.max_tokens, knowledge=knowledge,
                   max_passage_chars=cfg.max_passage_chars, **kw)

    def __repr__(self) -> str:
        return f"OpenAIFactChecker(endpoint={self.endpoint!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def chat(self, prompt: str) -> str:
        """The endpoint's reply to one user message (temperature 0; identical prompts are asked once)."""
        if prompt not in self._cache:
            body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                               "temperature": 0, "max_tokens": self.max_tokens}).encode()
            self._cache[prompt] = self._http.post(body, _chat_content)
        return self._cache[prompt]

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


class _Adapter(DecomposeVerify):
    """Gives user code with only decompose/verify the full interface."""

    def __init__(self, inner: Any):
        self.inner = inner

    def decompose(self, response: str) -> list[str]:
        return list(self.inner.decompose(response))

    def verify(self, topic: str, facts: list[str]) -> list[bool | None]:
        return list(self.inner.verify(topic, facts))

    def __repr__(self) -> str:
        return f"_Adapter({self.inner!r})"


def _import(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(module_name.strip())
    except ModuleNotFoundError as e:
        raise InputError(f"fact checker '{spec}': cannot import module '{module_name}' ({e})") from None
    except Exception as e:  # noqa: BLE001 - user code failing at import time
        raise InputError(f"fact checker '{spec}': importing '{module_name}' failed ({type(e).__name__}: {e})") from None
    for part in attr.strip().split("."):
        if not hasattr(obj, part):
            raise InputError(f"fact checker '{spec}': '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    return obj


def _is_checker(obj: Any) -> bool:
    return not isinstance(obj, type) and callable(getattr(obj, "decompose", None)) and \
        callable(getattr(obj, "verify", None))


def load_fact_checker(spec, *, world: World | None = None, **options) -> FactChecker:
    """A fact checker from a `FactCheckerConfig` or a kind string: 'world' (needs `world`), 'openai', or an
    import path 'package.module:callable' (called with the config's `options` updated by `options`, unless it
    already is a checker object)."""

    if isinstance(spec, str):
        try:
            cfg = FactCheckerConfig(kind=spec)
        except ValueError as e:
            raise InputError(f"fact checker '{spec}': {e.errors()[0]['msg'] if hasattr(e, 'errors') else e}") \
                from None
    else:
        cfg = spec
    if cfg.kind == "world":
        if world is None:
            raise InputError("the 'world' fact checker needs the synthetic world (run `halluray world` first)")
        return WorldFactChecker(world)
    if cfg.kind == "openai":
        return OpenAIFactChecker.from_config(cfg)
    obj = _import(cfg.kind)
    if not _is_checker(obj):
        if not callable(obj):
            raise InputError(f"fact checker '{cfg.kind}' is neither callable nor an object with decompose/verify")
        kwargs = {**cfg.options, **options}
        try:
            obj = obj(**kwargs)
        except TypeError as e:
            raise InputError(f"fact checker '{cfg.kind}': calling it with options {sorted(kwargs)} failed ({e}); "
                             f"set fact_checker.options to its keyword arguments") from None
    missing = [m for m in ("decompose", "verify") if not callable(getattr(obj, m, None))]
    if missing:
        raise InputError(f"fact checker '{cfg.kind}' returned a {type(obj).__name__} without {', '.join(missing)}()")
    return obj if callable(getattr(obj, "check", None)) else _Adapter(obj)
