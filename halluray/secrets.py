"""Secrets (API keys): where they are read from, and the one redaction for everything we write or log.

A secret NAME (e.g. `WANDB_API_KEY`) comes from the node's environment variable NAME, else from the file named
by `NAME_FILE`, which must be a regular file that only its owner may read or write (mode 0600 or stricter).
Never from a config or Ray's runtime env: Ray shows a runtime env in its dashboard and writes it to
`runtime_env_agent.log` on every node (README, "W&B and other secrets").

Every value `read_secret` returns is registered, and `redact` (used for saved configs, the config sent to W&B
and the fact checker's error messages) drops secret-named keys and replaces registered values, and the
current values of the known secret variables, and any `Bearer <token>`, inside strings by `***`.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from halluray.errors import InputError

KNOWN_SECRET_ENV = ("WANDB_API_KEY", "OPENAI_API_KEY")
"""Variables whose values `redact` always removes (with those of `read_secret` and its `env_names`)."""
MASK = "***"
MIN_REDACTED_CHARS = 8
"""Shorter values are placeholders (local servers take e.g. OPENAI_API_KEY=EMPTY), not keys: replacing
them everywhere would mangle unrelated text, such as the paths of a saved config."""
MAX_SECRET_FILE_BYTES = 65536

_SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "credential", "credentials", "auth",
                 "authorization", "bearer"}
_LOCATION_WORDS = {"env", "file", "path"}
_BEARER = re.compile(rf"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{{{MIN_REDACTED_CHARS},}}")
"""A bearer token written out (`Authorization: Bearer <token>` echoed in an error), known to us or not."""
_registry: set[str] = set()
_registry_lock = threading.Lock()


def _is_secret_name(name: str) -> bool:
    """True when a word of the key (split at `_`, `-`, `.`, camelCase) names a secret: `api_key`, `hfToken`,
    `client_secret`, `Authorization`, `basic_auth`, `bearer` (not `author`: words are compared whole), but not
    `max_new_tokens` (a plural is a count) nor `api_key_env` / `token_file` (they say where a secret is,
    and a saved config must keep them to be loaded again)."""
    words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).lower())
    return any(w in _SECRET_WORDS for w in words) and words[-1] not in _LOCATION_WORDS


def _read_secret_file(path: str, variable: str) -> str:
    where = f"{variable}={path}"
    try:
        # O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a regular file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise InputError(f"{where}: cannot open the secret file ({e.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode  # of what was opened: no window for the file to change in between
        if not stat.S_ISREG(mode):
            raise InputError(f"{where}: the secret file is not a regular file")
        if mode & 0o077:
            raise InputError(f"{where}: the secret file is open to its group or others (mode "
                             f"{stat.S_IMODE(mode):04o}); run `chmod 600 {path}`")
        data = os.read(fd, MAX_SECRET_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise InputError(f"{where}: the secret file is larger than {MAX_SECRET_FILE_BYTES} bytes")
    try:
        value = data.decode().strip()
    except UnicodeDecodeError:
        raise InputError(f"{where}: the secret file is not UTF-8 text") from None
    if not value:
        raise InputError(f"{where}: the secret file is empty")
    return value


def read_secret(name: str) -> str | None:
    """The secret `name`: the environment variable `name`, else the contents of the file named by `name`_FILE
    (stripped), else None. Raises InputError for a file that is missing, not regular, open to group or others,
    or empty. The value is registered for `redact`."""
    value = os.environ.get(name)
    if not value:
        path = os.environ.get(f"{name}_FILE")
        value = _read_secret_file(path, f"{name}_FILE") if path else None
    if value and len(value) >= MIN_REDACTED_CHARS:
        with _registry_lock:
            _registry.add(value)
    return value or None


def _secret_values(env_names: Iterable[str]) -> list[str]:
    """Every registered secret after reading the known variables and `env_names`; longest first, so a
    secret that contains another is replaced whole."""
    for name in (*KNOWN_SECRET_ENV, *env_names):
        with contextlib.suppress(InputError):  # a file we refuse to read is a secret we never use
            read_secret(name)
    with _registry_lock:
        return sorted(_registry, key=len, reverse=True)


def redact(obj: Any, env_names: Iterable[str] = ()) -> Any:
    """A copy of `obj` (recursing into mappings, lists and tuples; tuples become lists) without secret-named
    keys, and with every known secret value inside a string replaced by `***`. `env_names` adds variables
    to the known ones (e.g. the fact checker's `api_key_env`)."""
    values = _secret_values(env_names)

    def clean(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {clean(k): clean(x) for k, x in v.items() if not _is_secret_name(k)}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, str):
            for secret in values:
                v = v.replace(secret, MASK)
            v = _BEARER.sub(rf"\g<1>{MASK}", v)
        return v

    return clean(obj)
