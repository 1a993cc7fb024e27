"""halluray.factuality.fact_checkers: the decompose/verify interface, the world adapter, user checkers, and the
OpenAI-compatible checker and its HTTP client against a real HTTP server on 127.0.0.1 serving canned chat
completions (tests/test_checking.py covers the other kinds and the fake FActScore server)."""

import json
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from halluray.config import ConfigError, FactCheckerConfig, build_config
from halluray.errors import InputError
from halluray.factuality.fact_checkers import (
    FactChecker, OpenAIFactChecker, WorldFactChecker, check_with, load_fact_checker,
)
from halluray.factuality.openai_checker import parse_facts, parse_verdict
from halluray.world.checker import CheckResult
from halluray.world.checker import ExactChecker
from halluray.world.templates import render_fact

SECRET = "sk-test-Zq81SECRETvalue"
KEY_ENV = "HALLURAY_TEST_FACT_KEY"

# What the fake endpoint says. Decomposition: sentence -> reply; verification: fact -> reply.
DECOMPOSITIONS = {
    "Ada Lovelace was born in London in 1815.":
        "Here are the independent facts:\n- Ada Lovelace was born in London.\n- Ada Lovelace was born in 1815.",
    "She worked as a chemist.": "1. Ada Lovelace worked as a chemist.",
    "She liked poetry.": "Ada Lovelace liked poetry.",
}
VERDICTS = {
    "Ada Lovelace was born in London.": "True.",
    "Ada Lovelace was born in 1815.": "**True**",
    "Ada Lovelace worked as a chemist.": "Output: False",
    "Ada Lovelace liked poetry.": "Hmm, I cannot tell from what I know.",  # unparseable -> unverifiable
}


CLIENT_GONE = (BrokenPipeError, ConnectionResetError)


def completion(content: str) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}).encode()


class Endpoint:
    """A tiny OpenAI-compatible server. `mode` picks the behaviour: ok, 500, 500-once, 401, garbage, slow,
    redirect (302 to `redirect_to`), 429-once (with Retry-After: `retry_after`), big and big-unsized (10 MB with
    and without Content-Length), trickle (a reply a byte at a time). A GET (what urllib sends after a 302)
    is recorded and answered "True."."""

    def __init__(self):
        self.mode = "ok"
        self.redirect_to = self.retry_after = None
        self.requests: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _record(self, **body):
                endpoint.requests.append({"method": self.command, "path": self.path,
                                          "auth": self.headers.get("Authorization"), **body})

            def do_GET(self):
                self._record()
                self._send(200, completion("True."))

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._record(body=body)
                mode = endpoint.mode
                if mode in ("500-once", "429-once"):
                    endpoint.mode = "ok"
                if mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", endpoint.redirect_to)
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                if mode == "429-once":
                    return self._send(429, b'{"error": "rate limited"}', {"Retry-After": endpoint.retry_after})
                if mode in ("big", "big-unsized"):
                    return self._stream(b"x" * 65536 for _ in range(160))  # 10 MB
                if mode == "trickle":
                    return self._stream((b" " for _ in range(1000)), pause=0.05)
                if mode in ("500", "500-once"):
                    return self._send(500, b'{"error": "upstream overloaded for key ' + SECRET.encode() + b'"}')
                if mode == "401":
                    return self._send(401, b'{"error": {"message": "Incorrect API key provided: ' + SECRET.encode()
                                      + b'"}}')
                if mode == "garbage":
                    return self._send(200, b"<html>gateway says hi</html>")
                if mode == "slow":
                    time.sleep(1.0)
                self._send(200, completion(endpoint.answer(body["messages"][-1]["content"])))

            def _send(self, status, payload, headers=None):
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", "Content-Length": str(len(payload)),
                                    **(headers or {})}.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except CLIENT_GONE:  # after a client timeout (mode slow)
                    pass

            def _stream(self, chunks, pause=0.0):
                chunks = list(chunks)
                self.send_response(200)
                if endpoint.mode != "big-unsized":  # else HTTP/1.0: the body ends when the connection closes
                    self.send_header("Content-Length", str(sum(map(len, chunks))))
                self.end_headers()
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        time.sleep(pause)
                except CLIENT_GONE:  # the client gave up, as it should
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @staticmethod
    def answer(prompt: str) -> str:
        last = prompt.rsplit("Please breakdown the following sentence into independent facts: ", 1)
        if len(last) == 2:
            return DECOMPOSITIONS[last[1].strip()]
        fact = prompt.rsplit("Input: ", 1)[1].split(" True or False?")[0]
        return VERDICTS[fact]

    def prompts(self) -> list[str]:
        return [r["body"]["messages"][-1]["content"] for r in self.requests if r["method"] == "POST"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = Endpoint()
    yield server
    server.close()


def make_checker(endpoint, **kw):
    sleeps = []
    kw = {"timeout_s": 5, "max_retries": 2, **kw}
    checker = OpenAIFactChecker(endpoint.url, "gpt-test", api_key_env=KEY_ENV, allow_http=True, retry_backoff_s=0.5,
                                sleep=sleeps.append, **kw)
    return checker, sleeps


RESPONSE = "Ada Lovelace was born in London in 1815. She worked as a chemist. She liked poetry."


def test_openai_checker_decomposes_verifies_and_labels(endpoint, caplog):
    checker, _ = make_checker(endpoint)
    assert isinstance(checker, FactChecker)
    with caplog.at_level(logging.DEBUG):
        result = checker.check("Ada Lovelace", RESPONSE)
    assert isinstance(result, CheckResult)
    assert [(f.text, f.label) for f in result.facts] == [
        ("Ada Lovelace was born in London.", "true"), ("Ada Lovelace was born in 1815.", "true"),
        ("Ada Lovelace worked as a chemist.", "false")]
    assert result.unverifiable == ["Ada Lovelace liked poetry."]
    assert (result.n_true, result.n_false, result.abstained) == (2, 1, False)
    # 3 sentences decomposed + 4 facts verified, each over the chat-completions route with the key as a Bearer.
    assert len(endpoint.requests) == 7
    assert {r["path"] for r in endpoint.requests} == {"/v1/chat/completions"}
    assert {r["auth"] for r in endpoint.requests} == {f"Bearer {SECRET}"}
    assert {r["body"]["model"] for r in endpoint.requests} == {"gpt-test"}
    assert all(r["body"]["temperature"] == 0 for r in endpoint.requests)
    verify_prompts = [p for p in endpoint.prompts() if "True or False?" in p]
    assert verify_prompts[0] == ("Answer the question about Ada Lovelace.\n\nInput: Ada Lovelace was born in London. "
                                 "True or False?\nOutput:")
    assert "unparseable verdict" in caplog.text and SECRET not in caplog.text


def test_openai_checker_shows_the_knowledge_passage_and_caches(endpoint):
    checker, _ = make_checker(endpoint, knowledge={"Ada Lovelace": "Ada Lovelace was an English mathematician. " * 10},
                              max_passage_chars=50)
    assert checker.verify("Ada Lovelace", ["Ada Lovelace was born in London."]) == [True]
    [prompt] = endpoint.prompts()
    assert prompt.startswith("Answer the question about Ada Lovelace based on the given context.\n\nTitle: Ada Lovelace\n"
                             "Text: " + ("Ada Lovelace was an English mathematician. " * 10)[:50] + "\n\n")
    # The same fact again (or a repeated sentence) is not asked twice.
    assert checker.verify("Ada Lovelace", ["Ada Lovelace was born in London."]) == [True]
    assert checker.decompose("She liked poetry. She liked poetry.") == ["Ada Lovelace liked poetry."]
    assert len(endpoint.requests) == 2


def test_check_many_counts_replies_without_usage(endpoint, capsys):
    checker, _ = make_checker(endpoint, max_concurrency=2)
    results = checker.check_many(["Ada Lovelace"] * 2, [RESPONSE, "I don't know."])
    assert results[0] == checker.check("Ada Lovelace", RESPONSE) and results[1].abstained
    assert len(endpoint.requests) == 7
    # This endpoint sends no `usage`: its tokens are said to be uncounted, not reported as 0.
    assert capsys.readouterr().out == ("fact-checker: 7 requests (0 from cache), 0 prompt + 0 completion tokens "
                                       "(not counted: 7 replies without usage)\n")


def test_abstention_sends_nothing(endpoint):
    checker, _ = make_checker(endpoint)
    result = checker.check("Ada Lovelace", "I don't know anything about Ada Lovelace.")
    assert result.abstained and result.facts == [] and result.unverifiable == [] and endpoint.requests == []


def test_http_500_is_retried_with_backoff_then_names_the_endpoint(endpoint, caplog):
    endpoint.mode = "500"
    checker, sleeps = make_checker(endpoint)
    with caplog.at_level(logging.WARNING), pytest.raises(RuntimeError) as e:
        checker.verify("Ada Lovelace", ["Ada Lovelace was born in London."])
    msg = str(e.value)
    assert f"{endpoint.url}/chat/completions failed after 3 attempt(s): HTTP 500" in msg
    assert len(endpoint.requests) == 3 and sleeps == [0.5, 1.0]
    # The server echoed the key in its error body; neither the exception nor the log repeats it.
    assert "upstream overloaded for key ***" in msg
    assert SECRET not in msg and SECRET not in caplog.text and SECRET not in repr(checker)
    assert caplog.text.count("retry") == 2


def test_a_transient_500_recovers(endpoint):
    endpoint.mode = "500-once"
    checker, sleeps = make_checker(endpoint)
    assert checker.verify("Ada Lovelace", ["Ada Lovelace worked as a chemist."]) == [False]
    assert len(endpoint.requests) == 2 and sleeps == [0.5]


def test_http_401_is_an_input_error_at_once(endpoint):
    endpoint.mode = "401"
    checker, sleeps = make_checker(endpoint)
    with pytest.raises(InputError) as e:
        checker.decompose("She liked poetry.")
    msg = str(e.value)
    assert endpoint.url in msg and "HTTP 401" in msg and KEY_ENV in msg and SECRET not in msg
    assert len(endpoint.requests) == 1 and sleeps == []


def test_malformed_body_is_retried_then_fails_clearly(endpoint):
    endpoint.mode = "garbage"
    checker, sleeps = make_checker(endpoint)
    with pytest.raises(RuntimeError, match=r"failed after 3 attempt\(s\): the reply is not a chat completion: "
                                           r"'<html>gateway says hi</html>'"):
        checker.decompose("She liked poetry.")
    assert len(endpoint.requests) == 3


def test_timeout_and_refused_connection(endpoint):
    endpoint.mode = "slow"
    checker = OpenAIFactChecker(endpoint.url, "m", api_key_env=KEY_ENV, allow_http=True, timeout_s=0.2, max_retries=0)
    with pytest.raises(RuntimeError, match=r"failed after 1 attempt\(s\): .*timed out"):
        checker.decompose("She liked poetry.")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = OpenAIFactChecker(f"http://127.0.0.1:{port}/v1/", "m", api_key_env=KEY_ENV, allow_http=True,
                               max_retries=1, sleep=lambda s: None)
    with pytest.raises(RuntimeError, match=rf"127\.0\.0\.1:{port}/v1/chat/completions failed after 2 attempt"):
        closed.decompose("She liked poetry.")


def test_api_key_env_must_be_a_name(endpoint, monkeypatch):
    with pytest.raises(InputError) as e:
        OpenAIFactChecker("https://127.0.0.1:9/v1", "m", api_key_env=SECRET)
    assert "NAME of an environment variable" in str(e.value) and SECRET not in str(e.value)
    # No key in the environment: requests go without an Authorization header (local servers need none).
    monkeypatch.delenv(KEY_ENV)
    checker, _ = make_checker(endpoint)
    assert checker.verify("Ada Lovelace", ["Ada Lovelace was born in London."]) == [True]
    assert endpoint.requests[0]["auth"] is None


def test_the_key_can_come_from_a_0600_file(endpoint, monkeypatch, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    key_file.chmod(0o644)
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv(f"{KEY_ENV}_FILE", str(key_file))
    with pytest.raises(InputError, match=rf"{KEY_ENV}_FILE=.*key: .*mode 0644.*chmod 600"):
        make_checker(endpoint)
    key_file.chmod(0o600)
    checker, _ = make_checker(endpoint)
    checker.verify("Ada Lovelace", ["Ada Lovelace was born in London."])
    assert endpoint.requests[0]["auth"] == f"Bearer {SECRET}"


# --- the HTTP client's limits: scheme, redirects, size, Retry-After, deadline -------------------------------------

def test_plain_http_and_other_schemes_are_refused_unless_allowed(monkeypatch):
    with pytest.raises(InputError, match=r"http://127\.0\.0\.1:9/v1/chat/completions: a http URL is refused "
                                         r"\(set fact_checker.allow_http"):
        OpenAIFactChecker("http://127.0.0.1:9/v1", "m")
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/v1", "127.0.0.1:9/v1"):
        with pytest.raises(InputError, match="URL is refused"):
            OpenAIFactChecker(url, "m", allow_http=True)
    assert OpenAIFactChecker("https://api.example.com/v1/", "m").endpoint.startswith("https://api.example.com/")
    cfg = build_config({"fact_checker": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}})
    with pytest.raises(InputError, match="allow_http"):
        load_fact_checker(cfg.fact_checker)


def test_a_redirect_drops_the_authorization_header(endpoint):
    other = Endpoint()  # another host, as far as the client can tell
    try:
        endpoint.mode, endpoint.redirect_to = "redirect", f"{other.url}/chat/completions"
        checker, _ = make_checker(endpoint)
        assert checker.chat("Is this true?") == "True."
        assert [(r["method"], r["auth"]) for r in endpoint.requests] == [("POST", f"Bearer {SECRET}")]
        assert [(r["method"], r["path"], r["auth"]) for r in other.requests] == [("GET", "/v1/chat/completions", None)]
    finally:
        other.close()


def test_a_redirect_to_another_scheme_is_refused(endpoint):
    endpoint.mode, endpoint.redirect_to = "redirect", "ftp://127.0.0.1/secret"
    checker, _ = make_checker(endpoint)
    with pytest.raises(InputError, match=r"redirected to a ftp:// URL, refused"):
        checker.chat("Is this true?")


@pytest.mark.parametrize("mode", ["big", "big-unsized"])
def test_a_reply_over_the_size_cap_fails_at_once(endpoint, mode):
    endpoint.mode = mode
    checker, sleeps = make_checker(endpoint, max_response_bytes=1024 * 1024)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"larger than fact_checker.max_response_bytes \(1048576\)"):
        checker.chat("Is this true?")
    assert time.monotonic() - start < 5 and len(endpoint.requests) == 1 and sleeps == []  # not retried


def test_retry_after_is_honoured_within_the_deadline(endpoint):
    endpoint.mode, endpoint.retry_after = "429-once", "7"
    checker, sleeps = make_checker(endpoint)
    assert checker.verify("Ada Lovelace", ["Ada Lovelace was born in London."]) == [True]
    assert sleeps == [7.0] and len(endpoint.requests) == 2
    # A Retry-After past the deadline ends the request at once instead of sleeping into it.
    endpoint.mode, endpoint.retry_after = "429-once", "1000"
    checker, sleeps = make_checker(endpoint, total_timeout_s=30)
    with pytest.raises(RuntimeError, match=r"failed after 1 attempt\(s\), a retry in 1000 s would pass "
                                           r"fact_checker.total_timeout_s \(30 s\): HTTP 429"):
        checker.chat("Is this true?")
    assert sleeps == [] and len(endpoint.requests) == 3


@pytest.mark.parametrize("mode", ["slow", "trickle"])
def test_the_total_deadline_bounds_a_request(endpoint, mode):
    # Each socket wait may take 5 s; the request as a whole, with 5 retries, gets 0.4 s.
    endpoint.mode = mode
    checker, sleeps = make_checker(endpoint, timeout_s=5, total_timeout_s=0.4, max_retries=5)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"pass fact_checker.total_timeout_s \(0.4 s\): .*(timed out|deadline)"):
        checker.verify("Ada Lovelace", ["Ada Lovelace was born in London."])
    assert time.monotonic() - start < 1.0 and len(endpoint.requests) == 1 and sleeps == []


@pytest.mark.parametrize("reply, verdict", [
    ("True", True), ("true.", True), ("**FALSE**", False), ("Output: false", False), ("Yes, he was.", True),
    ("No.", False), ("That is not true.", False), ("The statement is true.", True), ("True or False? False", False),
    ("I don't know.", None), ("", None), ("It is true that it is false.", None),
])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) is verdict


def test_parse_facts():
    assert parse_facts("Sure:\n- A is B.\n* C is D.\n3) E is F.", "s") == ["A is B.", "C is D.", "E is F."]
    assert parse_facts("A is B.\nC is D.", "s") == ["A is B.", "C is D."]
    assert parse_facts("   ", "The sentence.") == ["The sentence."]


# --- the world adapter and the generic check --------------------------------------------------------------------

def test_world_fact_checker_matches_the_exact_checker(world):
    person, other = world.people[0], world.people[1]
    attribute = next(a for a in person.facts if person.facts[a] != other.facts[a])
    response = (render_fact(person.name, "occupation", person.facts["occupation"]) + " "
                + render_fact(person.name, attribute, other.facts[attribute], 1) + " Nothing to see here .")
    adapter = WorldFactChecker(world)
    assert isinstance(adapter, FactChecker)
    exact = ExactChecker(world).check(person.name, response)
    assert adapter.check(person.name, response) == exact  # dataclass equality: every fact and label
    assert (exact.n_true, exact.n_false) == (1, 1)
    facts = adapter.decompose(response)
    assert len(facts) == 2
    assert adapter.verify(person.name, facts + ["Nothing to see here"]) == [True, False, None]
    generic = check_with(adapter, person.name, response)
    assert [f.label for f in generic.facts] == ["true", "false"] and generic.unverifiable == []


def test_check_with_rejects_bad_labels():
    class Bad:
        def decompose(self, response):
            return ["a fact"]

        def verify(self, topic, facts):
            return ["true"]

    with pytest.raises(InputError, match="Bad.verify returned 'true'"):
        check_with(Bad(), "t", "Some response.")


# --- load_fact_checker -------------------------------------------------------------------------------------------

USER_MODULE = '''
class KeywordChecker:
    """Facts are sentences; a fact is true when it mentions a keyword, unverifiable when it says 'maybe'."""
    def __init__(self, keywords, unsure="maybe"):
        self.keywords, self.unsure = keywords, unsure

    def decompose(self, response):
        return [s.strip() for s in response.split(".") if s.strip()]

    def verify(self, topic, facts):
        return [None if self.unsure in f else any(k in f for k in self.keywords) for f in facts]

INSTANCE = KeywordChecker(["London"])
NOT_A_CHECKER = 42
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "halluray_user_checkers.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "halluray_user_checkers"
    sys.modules.pop("halluray_user_checkers", None)


def test_load_fact_checker_from_an_import_path(user_module):
    cfg = FactCheckerConfig(kind=f"{user_module}:KeywordChecker", options={"keywords": ["London"]})
    checker = load_fact_checker(cfg)
    assert isinstance(checker, FactChecker)
    result = checker.check("Ada", "Ada lived in London. Ada lived in Paris. Ada maybe sang.")
    assert [(f.text, f.label) for f in result.facts] == [("Ada lived in London", "true"), ("Ada lived in Paris", "false")]
    assert result.unverifiable == ["Ada maybe sang"]
    # Keyword options given to load_fact_checker override the config's.
    assert load_fact_checker(cfg, keywords=["Paris"]).check("Ada", "Ada lived in Paris.").n_true == 1
    # What user code lacks of the Checker interface is supplied: check_many, and label_answer by `verify`.
    assert [r.n_true for r in checker.check_many(["Ada", "Ada"], ["In London.", "In Paris."])] == [1, 0]
    record = {"topic": "Ada", "prompt": "Where did Ada live?"}
    assert checker.label_answer(record, "London.") == "correct"  # verified: "Where did Ada live? London"
    assert checker.label_answer(record, "Paris.") == "incorrect"
    assert checker.label_answer({**record, "answers": ["Paris"]}, "Paris.") == "correct"  # matched, not verified
    # A ready-made object is used as it is.
    assert load_fact_checker(f"{user_module}:INSTANCE").check("Ada", "In London.").n_true == 1


def test_load_fact_checker_errors(user_module, world):
    with pytest.raises(InputError, match="cannot import module 'no_such_pkg.mod'"):
        load_fact_checker("no_such_pkg.mod:Checker")
    with pytest.raises(InputError, match=f"'{user_module}' has no attribute 'Missing'"):
        load_fact_checker(f"{user_module}:Missing")
    with pytest.raises(InputError, match="neither callable nor an object with decompose/verify"):
        load_fact_checker(f"{user_module}:NOT_A_CHECKER")
    with pytest.raises(InputError, match=r"calling it with options \[\] failed.*fact_checker.options"):
        load_fact_checker(f"{user_module}:KeywordChecker")
    with pytest.raises(InputError, match="kind must be 'world', 'qa', 'fact_table', 'openai' or an import path"):
        load_fact_checker("factscore")
    with pytest.raises(InputError, match="needs the synthetic world"):
        load_fact_checker("world")
    assert isinstance(load_fact_checker("world", world=world), WorldFactChecker)


def test_load_fact_checker_from_config(monkeypatch, tmp_path):
    knowledge = tmp_path / "wiki.jsonl"
    knowledge.write_text('{"title": "Ada Lovelace", "text": "An English mathematician."}\n')
    cfg = build_config({"fact_checker": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1/", "model": "m",
                                         "api_key_env": KEY_ENV, "allow_http": True, "knowledge_path": str(knowledge)}})
    monkeypatch.setenv(KEY_ENV, SECRET)
    checker = load_fact_checker(cfg.fact_checker)
    assert isinstance(checker, OpenAIFactChecker)
    assert checker.endpoint == "http://127.0.0.1:1/v1/chat/completions"
    assert checker.passage("Ada Lovelace") == "An English mathematician." and checker.passage("Bob") is None
    assert SECRET not in repr(checker) and KEY_ENV in repr(checker)
    assert build_config({}).fact_checker.kind == "world"
    with pytest.raises(ConfigError, match="fact_checker.*kind must be"):
        build_config({}, ["fact_checker.kind=nonsense"])
    with pytest.raises(ConfigError, match="fact_checker.timeout_s"):
        build_config({}, ["fact_checker.timeout_s=0"])
    with pytest.raises(ConfigError, match="fact_checker.max_response_bytes"):
        build_config({}, ["fact_checker.max_response_bytes=0"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no topic"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1: missing field 'topic'"):
        load_fact_checker(FactCheckerConfig(kind="openai", knowledge_path=str(bad)))
