"""Chat completions for the fact checker and the independent responder: one client with a persistent reply
cache, a thread pool, and a count of what was sent and what it cost.

- Cache: replies are kept in memory, and in a jsonl file when `cache_path` is given, keyed by the sha256 of
  (model, messages). Requests are temperature 0, so a stage run again sends nothing it sent before. Each
  reply is appended as one line with one `write` on an O_APPEND descriptor, so a crash leaves at most a torn
  last line (skipped, with a warning, when the file is read) and two processes sharing a file do not
  interleave lines. Identical requests in flight at once are sent once.
- Concurrency: `map` runs a function over items on `max_concurrency` threads and returns the results in the
  items' order; the API's latency, not its throughput, bounds a sequential checker.
- Cost: `map` shows a progress bar over the items and ends with one line, e.g. `fact-checker: 412 requests
  (130 from cache), 51,200 prompt + 3,900 completion tokens, ~$0.03`. Tokens are the `usage` of the replies
  actually received (a cache hit costs nothing); the price is per million tokens and the estimate is left out
  when both prices are 0.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

from halluray.errors import InputError
from halluray.factuality.http_client import HTTPClient, ParseError
from halluray.logging import progress
from halluray.secrets import read_secret

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Usage:
    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    without_usage: int = 0
    """Replies received without a `usage` block: their tokens are not counted."""

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))


class ResponseCache:
    """Replies by key, in memory and appended to an optional jsonl file ({"key", "model", "content"} a line)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path).expanduser() if path else None
        self.replies: dict[str, str] = {}
        self._lock = threading.Lock()
        self._torn_tail = False
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        text = self.path.read_text(encoding="utf-8")
        self._torn_tail = bool(text) and not text.endswith("\n")  # the next line must not continue it
        torn = 0
        for line in text.splitlines():
            try:
                row = json.loads(line)
                self.replies[row["key"]] = row["content"]
            except (ValueError, KeyError, TypeError):
                torn += 1
        if torn:
            log.warning("fact checker cache %s: %d unreadable line(s) skipped (a run ended mid-write?)", self.path,
                        torn)

    def get(self, key: str) -> str | None:
        return self.replies.get(key)

    def put(self, key: str, model: str, content: str) -> None:
        with self._lock:
            self.replies[key] = content
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = json.dumps({"key": key, "model": model, "content": content}, ensure_ascii=False) + "\n"
            line = ("\n" + line if self._torn_tail else line).encode()
            self._torn_tail = False
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


def request_key(model: str, messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps([model, messages], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _chat_reply(raw: bytes) -> tuple[str, dict | None]:
    """(content, usage) of a chat completion; usage is None when the reply has none."""
    try:
        reply = json.loads(raw)
        content = reply["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ParseError(f"the reply is not a chat completion: {raw[:200].decode('utf-8', 'replace')!r}") from None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    usage = reply.get("usage")
    return (content if isinstance(content, str) else ""), (usage if isinstance(usage, dict) else None)


def _tokens(usage: dict, name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class ChatClient:
    """Temperature-0 chat completions from one OpenAI-compatible endpoint (timeouts, retries, redirects and
    limits are `HTTPClient`'s; the key is read by `halluray.secrets`)."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", allow_http: bool = False,
                 timeout_s: float = 60.0, total_timeout_s: float = 300.0, max_response_bytes: int = 4 * 1024 * 1024,
                 max_retries: int = 3, retry_backoff_s: float = 1.0, max_tokens: int = 256,
                 cache_path: str | Path | None = None, max_concurrency: int = 4, prompt_price_per_1m: float = 0.0,
                 completion_price_per_1m: float = 0.0, sleep: Callable[[float], None] = time.sleep):
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
        self.max_tokens, self.max_concurrency = max_tokens, max_concurrency
        self.prices = (prompt_price_per_1m, completion_price_per_1m)
        self.cache = ResponseCache(cache_path)
        self.usage = Usage()
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future] = {}

    @staticmethod
    def options(cfg, cache_path: str | Path | None = None) -> dict:
        """The constructor's keyword arguments from a `FactCheckerConfig` (all but base_url and model);
        `cache_path` is the cache file when the config names none (a stage passes one in its run directory)."""
        return dict(api_key_env=cfg.api_key_env, allow_http=cfg.allow_http, timeout_s=cfg.timeout_s,
                    total_timeout_s=cfg.total_timeout_s, max_response_bytes=cfg.max_response_bytes,
                    max_retries=cfg.max_retries, retry_backoff_s=cfg.retry_backoff_s, max_tokens=cfg.max_tokens,
                    cache_path=cfg.cache_path or cache_path, max_concurrency=cfg.max_concurrency,
                    prompt_price_per_1m=cfg.prompt_price_per_1m, completion_price_per_1m=cfg.completion_price_per_1m)

    def __repr__(self) -> str:
        return f"ChatClient(endpoint={self.endpoint!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def chat(self, prompt: str, model: str | None = None) -> str:
        """The reply to one user message: from the cache, from an identical request in flight, or sent."""
        model = model or self.model
        messages = [{"role": "user", "content": prompt}]
        key = request_key(model, messages)
        with self._lock:
            self.usage.requests += 1
            cached = self.cache.get(key)
            pending = self._in_flight.get(key) if cached is None else None
            if cached is not None or pending is not None:
                self.usage.cached += 1
            else:
                self._in_flight[key] = mine = Future()
        if cached is not None:
            return cached
        if pending is not None:
            return pending.result()
        try:
            body = json.dumps({"model": model, "messages": messages, "temperature": 0,
                               "max_tokens": self.max_tokens}).encode()
            content, usage = self._http.post(body, _chat_reply)
            self.cache.put(key, model, content)
            mine.set_result(content)
        except BaseException as e:
            mine.set_exception(e)
            raise
        finally:
            with self._lock:
                del self._in_flight[key]
        self._count(usage)
        return content

    def _count(self, usage: dict | None) -> None:
        with self._lock:
            if usage is None:
                self.usage.without_usage += 1
            else:
                self.usage.prompt_tokens += _tokens(usage, "prompt_tokens")
                self.usage.completion_tokens += _tokens(usage, "completion_tokens")

    def map(self, fn: Callable[[T], R], items: Sequence[T], desc: str) -> list[R]:
        """`fn` of each item on `max_concurrency` threads, in the items' order, with a progress bar and a
        closing usage line `desc: ...`. The first failure cancels what has not started and is raised."""
        before = self._snapshot()
        results: list = [None] * len(items)
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix=desc) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            try:
                for future in progress(as_completed(futures), total=len(items), desc=desc, leave=False):
                    results[futures[future]] = future.result()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        print(f"{desc}: {self.describe(self._snapshot() - before)}", flush=True)
        return results

    def _snapshot(self) -> Usage:
        with self._lock:
            return Usage(**vars(self.usage))

    def describe(self, usage: Usage) -> str:
        line = (f"{usage.requests:,} request{'' if usage.requests == 1 else 's'} ({usage.cached:,} from cache), "
                f"{usage.prompt_tokens:,} prompt + {usage.completion_tokens:,} completion tokens")
        if usage.without_usage:
            line += f" (not counted: {usage.without_usage:,} replies without usage)"
        if any(self.prices):
            cost = (usage.prompt_tokens * self.prices[0] + usage.completion_tokens * self.prices[1]) / 1e6
            line += f", ~${cost:,.2f}" if cost >= 0.01 or cost == 0 else f", ~${cost:.2g}"
        return line
