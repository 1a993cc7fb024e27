"""halluray.secrets: keys from the environment or a 0600 file, one redaction; and a real run that leaks no key."""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml

from halluray.config import build_config
from halluray.errors import InputError
from halluray.secrets import read_secret, redact
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
NAME = "HALLURAY_TEST_SECRET"


@pytest.fixture
def secret_env(monkeypatch):
    for var in (NAME, f"{NAME}_FILE"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_read_secret_from_the_environment_or_a_file(secret_env, tmp_path):
    assert read_secret(NAME) is None
    key_file = private_file(tmp_path / "key", "file-secret-value-0123\n")
    secret_env.setenv(f"{NAME}_FILE", str(key_file))
    assert read_secret(NAME) == "file-secret-value-0123"  # stripped
    secret_env.setenv(NAME, "env-secret-value-4567")
    assert read_secret(NAME) == "env-secret-value-4567"  # the variable wins
    key_file.chmod(0o400)
    secret_env.delenv(NAME)
    assert read_secret(NAME) == "file-secret-value-0123"  # stricter than 0600 is fine


@pytest.mark.parametrize("make, message", [
    (lambda p: private_file(p, "value-0123456789", 0o640),
     r"open to its group or others \(mode 0640\); run `chmod 600 "),
    (lambda p: private_file(p, "value-0123456789", 0o604), r"open to its group or others \(mode 0604\)"),
    (lambda p: private_file(p, " \n"), "the secret file is empty"),
    (lambda p: p, r"cannot open the secret file \(No such file or directory\)"),
    (lambda p: (p.mkdir(mode=0o700), p)[1], "not a regular file"),
    (lambda p: (os.mkfifo(p, 0o600), p)[1], "not a regular file"),  # refused, without hanging on the open
])
def test_a_secret_file_must_be_a_private_regular_file(secret_env, tmp_path, make, message):
    path = make(tmp_path / "key")
    secret_env.setenv(f"{NAME}_FILE", str(path))
    with pytest.raises(InputError, match=rf"^{NAME}_FILE={path}: .*{message}"):
        read_secret(NAME)


def test_redact_drops_secret_keys_and_replaces_every_known_value(secret_env, tmp_path):
    wandb, openai, other, read = (f"{n}-{uuid.uuid4().hex}" for n in ("wandb", "openai", "other", "read"))
    secret_env.setenv("WANDB_API_KEY", wandb)
    secret_env.setenv("OPENAI_API_KEY_FILE", str(private_file(tmp_path / "openai", openai)))
    secret_env.delenv("OPENAI_API_KEY", raising=False)
    secret_env.setenv("MY_CHECKER_KEY", other)
    secret_env.setenv(NAME, read)
    assert read_secret(NAME) == read
    secret_env.delenv(NAME)  # read once: registered for good
    assert redact(other) == other  # MY_CHECKER_KEY is known once named (then registered, as a read secret)
    d = {"api_key": "x", "hfToken": "x", "client_secret": "x", "Password": "x", "max_new_tokens": 64,
         "api_key_env": "MY_CHECKER_KEY", "token_file": "/run/key",
         "nested": {"db": {"password": "x", "host": "h"}, "items": [{"access_token": "x", "n": 1}]},
         "note": f"keys {wandb}, {openai}, {other} and {read}", "tags": ("a", wandb), f"by {read}": 1}
    assert redact(d, env_names=["MY_CHECKER_KEY"]) == {
        "max_new_tokens": 64, "api_key_env": "MY_CHECKER_KEY", "token_file": "/run/key",
        "nested": {"db": {"host": "h"}, "items": [{"n": 1}]},
        "note": "keys ***, ***, *** and ***", "tags": ["a", "***"], "by ***": 1}
    assert d["api_key"] == "x"  # a copy; the input is untouched
    secret_env.setenv("OPENAI_API_KEY", "EMPTY")  # a placeholder, not a key: too short to replace
    assert redact("EMPTY runs/EMPTY") == "EMPTY runs/EMPTY"


def test_redact_drops_auth_keys_and_bearer_tokens():
    d = {"auth": "x", "Authorization": "Bearer x", "basic_auth": "x", "bearer": "x", "proxyAuth": "x",
         "author": "Ada", "auth_file": "/run/auth", "headers": {"authorization": "x", "accept": "json"},
         "error": "HTTP 401: sent Authorization: Bearer sk-abcdef0123456789 (bearer short)"}
    assert redact(d) == {"author": "Ada", "auth_file": "/run/auth", "headers": {"accept": "json"},
                         "error": "HTTP 401: sent Authorization: Bearer *** (bearer short)"}


def test_saved_configs_are_redacted_and_load_back(secret_env, tmp_path):
    key = f"sk-{uuid.uuid4().hex}"
    secret_env.setenv("MY_CHECKER_KEY", key)
    cfg = build_config({"fact_checker": {"kind": "pkg.mod:Checker", "api_key_env": "MY_CHECKER_KEY",
                                         "options": {"api_key": key, "comment": f"uses {key}", "n": 2}}})
    text = cfg.to_yaml()
    assert key not in text
    saved = yaml.safe_load(text)["fact_checker"]
    assert saved["api_key_env"] == "MY_CHECKER_KEY" and saved["options"] == {"comment": "uses ***", "n": 2}
    assert build_config(yaml.safe_load(text)).fact_checker.api_key_env == "MY_CHECKER_KEY"


# --- the must-show: a real run leaks no key -------------------------------------------------------------------------

RUN = """
import sys
from halluray.cli import main
for stage in ("world", "sft"):
    if main([stage, "--config", sys.argv[1], *sys.argv[2:]]):
        sys.exit(f"{stage} failed")
"""


def test_no_key_in_any_file_of_a_run_wandb_or_ray(tmp_path):
    """`world` then `sft` (Ray actors, DeepSpeed, offline W&B) in a fresh process whose environment has the
    fact-checker key and the W&B key's file, so the driver, Ray's raylet and every worker inherit them; a
    config also names them. Then no file of the run, of W&B or of Ray's session holds either key."""
    wandb_key, openai_key = f"wandb-{uuid.uuid4().hex}", f"sk-{uuid.uuid4().hex}"
    key_file = private_file(tmp_path / "wandb_api_key", wandb_key + "\n")
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({"fact_checker": {"options": {"api_key": openai_key,
                                                                   "note": f"keys {wandb_key} {openai_key}"}}}))
    ray_tmp = Path(tempfile.mkdtemp(prefix="hr", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "WANDB_"))}
    env.update(OPENAI_API_KEY=openai_key, WANDB_API_KEY_FILE=str(key_file), WANDB_MODE="offline",
               RAY_TMPDIR=str(ray_tmp), PYTHONPATH=str(ROOT), DS_ACCELERATOR="cpu",
               **{v: str(tmp_path / "wandb-home" / v.lower()) for v in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR",
                                                                        "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR")})
    overrides = [*TINY, f"run.output_dir={tmp_path / 'runs'}", "run.name=leak", "sft.steps=2", "sft.batch_size=4",
                 "actors.policy.num_actors=1"]
    try:
        done = subprocess.run([sys.executable, "-c", RUN, str(config), *overrides], env=env, cwd=ROOT,
                              capture_output=True, timeout=240)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        run = tmp_path / "runs" / "leak"
        # The places a leak would land exist: W&B's offline runs, the saved configs, Ray's session logs.
        assert len(list((run / "wandb").glob("offline-run-*"))) == 2
        assert "keys *** ***" in (run / "config.sft.yaml").read_text()
        (session,) = (ray_tmp / "ray").glob("session_2*")
        assert list((session / "logs").glob("worker-*.out"))
        files = [p for root in (tmp_path, ray_tmp) for p in root.rglob("*")
                 if p.is_file() and not p.is_symlink() and p not in (key_file, config)]
        assert len(files) > 50
        for key in (wandb_key, openai_key):
            assert key.encode() not in done.stdout + done.stderr
            assert [str(p) for p in files if key.encode() in p.read_bytes()] == []
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
