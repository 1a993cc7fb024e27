"""A tiny OpenAI-compatible chat-completions server on 127.0.0.1, in a thread of the test process, serving
canned replies (`Endpoint`): what tests/test_fact_checkers_openai.py checks the OpenAI checker and its HTTP
client against. `SECRET` is the API key it is called with, from the variable `KEY_ENV`."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
