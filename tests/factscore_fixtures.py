"""A session-wide fake FActScore endpoint (tests/factscore_server.py) over a small WikiBios-shaped knowledge file.

tests/conftest.py registers it for every test file: a test argument `factscore_server` is a
`FactScoreServer(base_url, knowledge_path, records)`, where `base_url` is the OpenAI-style base (".../v1", http:
set fact_checker.allow_http) and `records` the knowledge rows ({"topic", "text"}). `server_stats(base_url)` reads
the server's request and token counters.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest

SERVER = Path(__file__).with_name("factscore_server.py")
PEOPLE = {
    "Aoife Brennan": "Aoife Brennan is an Irish footballer who played for Leeds United. She was born in 1970 in "
                     "Cork. She won the FAI Cup in 1995.",
    "Bruno Castellano": "Bruno Castellano is an Italian cyclist who rode for Team Sky. He was born in 1982 in "
                        "Turin. He won a stage of the Giro in 2009.",
    "Chidi Okafor": "Chidi Okafor is a Nigerian novelist who wrote The River Between Us. He was born in 1965 in "
                    "Enugu. He taught literature at the University of Lagos.",
    "Dagny Lindqvist": "Dagny Lindqvist is a Swedish architect who designed the Malmo concert hall. She was born "
                       "in 1958 in Uppsala.",
    "Elena Petrova": "Elena Petrova is a Russian chess player who became a grandmaster in 1994. She was born in "
                     "1976 in Kazan. She won the European championship in 2001.",
    "Farid Haddad": "Farid Haddad is a Lebanese painter known for his portraits of fishermen. He was born in 1949 "
                    "in Tyre.",
    "Grace Mwangi": "Grace Mwangi is a Kenyan runner who won the Boston Marathon. She was born in 1988 in "
                    "Eldoret. She trained in Iten.",
    "Hiroshi Tanaka": "Hiroshi Tanaka is a Japanese composer who scored the film Autumn Rain. He was born in 1961 "
                      "in Osaka.",
    "Ines Duarte": "Ines Duarte is a Portuguese politician who served as mayor of Porto. She was born in 1967 in "
                   "Braga. She studied law at the University of Coimbra.",
    "Jonas Weber": "Jonas Weber is a German footballer who played for Werder Bremen. He was born in 1979 in "
                   "Hamburg.",
}
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
START_TIMEOUT_S = 15.0


class FactScoreServer(NamedTuple):
    base_url: str
    knowledge_path: Path
    records: list[dict]


def server_stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/stats", timeout=5) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="session")
def factscore_server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("factscore")
    records = [{"topic": name, "text": text} for name, text in PEOPLE.items()]
    knowledge = directory / "knowledge.jsonl"
    knowledge.write_text("".join(json.dumps(r) + "\n" for r in records))
    port_file, log = directory / "port", directory / "server.log"
    with pytest.MonkeyPatch.context() as env, log.open("w") as err:
        # The checker's urllib would send 127.0.0.1 through a proxy named in the environment.
        for variable in PROXY_VARIABLES:
            env.delenv(variable, raising=False)
        env.setenv("NO_PROXY", "127.0.0.1,localhost")
        # A small delay per request, so that a concurrent client's requests measurably overlap.
        server = subprocess.Popen([sys.executable, str(SERVER), "--knowledge", str(knowledge), "--port-file",
                                   str(port_file), "--delay", "0.005"], stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not port_file.exists():
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the fake FActScore server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.02)
            yield FactScoreServer(f"http://127.0.0.1:{port_file.read_text()}/v1", knowledge, records)
        finally:
            server.terminate()
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
