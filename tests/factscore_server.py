"""A fake FActScore endpoint: an OpenAI-compatible chat-completions server on 127.0.0.1 (standard library only).

    python tests/factscore_server.py --knowledge knowledge.jsonl --port-file port.txt [--delay 0.005]

It binds a free port, writes it to the port file (atomically), and answers POST /v1/chat/completions
deterministically, with a `usage` block (tokens = whitespace-separated words of the prompt and the reply):
- decomposition ("Please breakdown the following sentence into independent facts: S"): S split into clauses
  at ", " and " and ", each clause that does not start with the subject prefixed with it (the words before
  " is " / " was ", else the first two words), one "- fact." line each;
- verification ("... Input: FACT True or False?"): "True" when every content word of FACT (lower-case
  alphanumeric tokens minus a few stopwords) is in the passage the request shows, or, without one, in the
  topic's text in the knowledge file; else "False";
- anything else ("Write a biography for NAME."): the first sentence of the text of the knowledge file's
  name found in the prompt, with its last content word replaced by "Atlantis" for every second name in sorted
  order (an independent source that is right about half the time); "I don't know." for no known name.
GET /stats returns {"requests", "prompt_tokens", "completion_tokens"} so far, and "max_in_flight": the most
chat requests served at once since the previous GET /stats.
The knowledge file is jsonl: {"topic": name, "text": reference text} a line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DECOMPOSE = "Please breakdown the following sentence into independent facts: "
STOPWORDS = frozenset("a an the is was he she his her in of for and to at on by as with it its from has had be been "
                      "that this they their who what where when which".split())
WRONG_WORD = "Atlantis"


def content_words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower())) - STOPWORDS


def decompose(sentence: str) -> str:
    sentence = sentence.strip().rstrip(".")
    m = re.match(r"(.+?) (?:is|was) ", sentence)
    subject = m.group(1) if m else " ".join(sentence.split()[:2])
    clauses = [c.strip() for c in re.split(r", | and ", sentence) if c.strip()]
    facts = [c if c.startswith(subject) else f"{subject} {c}" for c in clauses]
    return "\n".join(f"- {fact}." for fact in facts)


def verify(prompt: str, knowledge: dict[str, str]) -> str:
    fact = prompt.rsplit("Input: ", 1)[1].split(" True or False?")[0]
    shown = re.search(r"\nText: (.*?)\n\nInput: ", prompt, re.S)
    if shown:
        passage = shown.group(1)
    else:
        topic = re.match(r"Answer the question about (.*?)\.\n", prompt)
        passage = knowledge.get(topic.group(1), "") if topic else ""
    return "True" if content_words(fact) <= content_words(passage) else "False"


def biography(prompt: str, knowledge: dict[str, str]) -> str:
    names = sorted(knowledge)
    found = [name for name in names if name in prompt]
    if not found:
        return "I don't know."
    name = max(found, key=len)
    first = re.split(r"(?<=\.) ", knowledge[name].strip(), maxsplit=1)[0]
    if names.index(name) % 2 == 1:
        last = [m for m in re.finditer(r"[A-Za-z0-9]+", first) if m.group().lower() not in STOPWORDS][-1]
        first = first[: last.start()] + WRONG_WORD + first[last.end():]
    return first


def answer(prompt: str, knowledge: dict[str, str]) -> str:
    if DECOMPOSE in prompt:
        return decompose(prompt.rsplit(DECOMPOSE, 1)[1])
    if "True or False?" in prompt:
        return verify(prompt, knowledge)
    return biography(prompt, knowledge)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "max_in_flight": 0}
        self.in_flight = 0


def serve(knowledge: dict[str, str], port_file: str, delay: float) -> None:
    stats = Stats()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the test's output stays readable
            pass

        def _send(self, payload: dict, status: int = 200) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != "/stats":
                return self._send({"error": "not found"}, 404)
            with stats.lock:
                counts = dict(stats.counts)
                stats.counts["max_in_flight"] = stats.in_flight
            self._send(counts)

        def do_POST(self):
            if self.path != "/v1/chat/completions":
                return self._send({"error": "not found"}, 404)
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with stats.lock:
                stats.in_flight += 1
                stats.counts["max_in_flight"] = max(stats.counts["max_in_flight"], stats.in_flight)
            try:
                time.sleep(delay)  # so that concurrent clients overlap measurably
                prompt = request["messages"][-1]["content"]
                reply = answer(prompt, knowledge)
                usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(reply.split())}
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                with stats.lock:
                    stats.counts["requests"] += 1
                    stats.counts["prompt_tokens"] += usage["prompt_tokens"]
                    stats.counts["completion_tokens"] += usage["completion_tokens"]
            finally:
                with stats.lock:
                    stats.in_flight -= 1
            self._send({"id": "fake", "object": "chat.completion",
                        "model": request.get("model"), "usage": usage,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": reply}}]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = f"{port_file}.tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, port_file)  # the reader never sees a partial port number
    server.serve_forever()


def load(path: str) -> dict[str, str]:
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    return {row["topic"]: row["text"] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knowledge", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each chat request takes")
    args = parser.parse_args()
    serve(load(args.knowledge), args.port_file, args.delay)


if __name__ == "__main__":
    main()
