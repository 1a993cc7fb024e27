"""halluray.factuality.fact_checkers: the OpenAI-compatible checker and its HTTP client against a real HTTP
server on 127.0.0.1 serving canned chat completions (tests/openai_endpoint.py): decomposing, verifying and
labelling, retries, the API key, the client's limits (scheme, redirects, size, Retry-After, deadline), and
parsing the replies."""

import logging
import socket
import time

import pytest

from halluray.config import build_config
from halluray.errors import InputError
from halluray.factuality.fact_checkers import FactChecker, OpenAIFactChecker, load_fact_checker
from halluray.factuality.openai_checker import parse_facts, parse_verdict
from halluray.world.checker import CheckResult
from tests.openai_endpoint import KEY_ENV, SECRET, Endpoint


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
    assert prompt.startswith("Answer the question about Ada Lovelace based on the given context.\n\n"
                             "Title: Ada Lovelace\n"
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
