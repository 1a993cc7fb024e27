"""POSTing to a fact-checker endpoint with an API key (standard library only), hardened for the key and the run:

- https only; http:// only when allowed (`fact_checker.allow_http`), any other scheme never (urllib would
  read a file:// URL);
- a redirect is followed without the Authorization header (the new location may be another host), and only
  to an allowed scheme;
- one request ends by `total_timeout_s`, over all its attempts, retry waits and reads; each socket wait is
  at most `timeout_s` and at most what is left (the deadline is checked between reads of a reply, so a server
  that trickles bytes is cut off after one more socket wait at most);
- a reply larger than `max_response_bytes` fails at once, unread;
- timeouts, connection errors, HTTP 408/409/425/429/5xx and a body `parse` rejects are retried `max_retries`
  times, after exponential backoff or the server's Retry-After seconds on 429/503; a wait that would pass the
  deadline ends the request at once;
- other HTTP errors raise InputError at once (retrying cannot fix a wrong URL, model or key); a request that
  still fails after its retries raises CheckerError (a one-line exit 1 in the CLI).

Error messages and log lines pass through `halluray.secrets.redact`, so a key a server echoes back is not
repeated.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from halluray.errors import CheckerError, InputError
from halluray.secrets import redact

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_STATUS = {408, 409, 425, 429}
RETRY_AFTER_STATUS = {429, 503}
_CHUNK = 65536


class ParseError(Exception):
    """The reply's body is not what `parse` expects; retried like a transient failure."""


class _TooLarge(Exception):
    pass


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an allowed scheme, and without the Authorization header."""

    def __init__(self, schemes: tuple[str, ...]):
        super().__init__()
        self.schemes = schemes

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is None:
            return None
        scheme = urlsplit(new.full_url).scheme
        if scheme not in self.schemes:
            fp.close()
            raise InputError(f"fact checker endpoint {req.full_url}: redirected to a {scheme}:// URL, refused "
                             f"(allowed: {', '.join(self.schemes)}; http needs fact_checker.allow_http)")
        new.remove_header("Authorization")
        return new


def _retry_after(headers) -> float | None:
    """Retry-After in seconds; an HTTP date or anything else is ignored (the backoff applies)."""
    value = (headers.get("Retry-After") or "").strip()
    return float(value) if value.isdigit() else None


class HTTPClient:
    """POSTs bodies to one URL, with the key as a Bearer token, within the limits above."""

    def __init__(self, url: str, *, api_key: str | None = None, allow_http: bool = False, timeout_s: float = 60.0,
                 total_timeout_s: float = 300.0, max_retries: int = 3, retry_backoff_s: float = 1.0,
                 max_response_bytes: int = 4 * 1024 * 1024, status_hints: Mapping[int, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        schemes = ("https", "http") if allow_http else ("https",)
        scheme = urlsplit(url).scheme
        if scheme not in schemes:
            why = "set fact_checker.allow_http to send the key unencrypted" if scheme == "http" else "use https"
            raise InputError(f"fact checker endpoint {url}: a {scheme or 'scheme-less'} URL is refused ({why})")
        self.url = url
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._opener = urllib.request.build_opener(_Redirects(schemes))
        self.timeout_s, self.total_timeout_s = timeout_s, total_timeout_s
        self.max_retries, self.retry_backoff_s = max_retries, retry_backoff_s
        self.max_response_bytes = max_response_bytes
        self.status_hints = dict(status_hints or {})
        self._sleep = sleep

    def _read(self, body: bytes, deadline: float) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the deadline passed")
        request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")
        with self._opener.open(request, timeout=min(self.timeout_s, left)) as response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > self.max_response_bytes:
                raise _TooLarge(f"Content-Length {length}")
            chunks, size = [], 0
            while chunk := response.read1(_CHUNK):
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise _TooLarge(f"more than {self.max_response_bytes} bytes read")
                if time.monotonic() > deadline:
                    raise TimeoutError("the deadline passed while reading the reply")
                chunks.append(chunk)
        return b"".join(chunks)

    def post(self, body: bytes, parse: Callable[[bytes], T]) -> T:
        """`parse` of the reply to `body` (it raises ParseError for a body it cannot use)."""
        deadline = time.monotonic() + self.total_timeout_s
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            retry_after = None
            try:
                return parse(self._read(body, deadline))
            except urllib.error.HTTPError as e:
                try:
                    detail = redact(e.read(300).decode("utf-8", "replace").strip())
                except Exception:
                    detail = ""
                problem = f"HTTP {e.code}" + (f": {detail}" if detail else "")
                if e.code < 500 and e.code not in RETRY_STATUS:
                    hint = self.status_hints.get(e.code, "")
                    raise InputError(f"fact checker endpoint {self.url}: {problem}{hint}") from None
                if e.code in RETRY_AFTER_STATUS:
                    retry_after = _retry_after(e.headers)
            except (OSError, http.client.HTTPException) as e:  # OSError: URLError, timeouts, resets, TLS
                reason = getattr(e, "reason", None) or e
                problem = f"{type(e).__name__}: {redact(str(reason))}"
            except ParseError as e:
                problem = redact(str(e))
            except _TooLarge as e:
                raise CheckerError(f"fact checker endpoint {self.url}: the reply is larger than "
                                   f"fact_checker.max_response_bytes ({self.max_response_bytes}): {e}") from None
            if attempt == attempts:
                break
            wait = retry_after if retry_after is not None else self.retry_backoff_s * 2 ** (attempt - 1)
            if wait >= deadline - time.monotonic():
                raise CheckerError(f"fact checker endpoint {self.url} failed after {attempt} attempt(s), a retry in "
                                   f"{wait:g} s would pass fact_checker.total_timeout_s ({self.total_timeout_s:g} s): "
                                   f"{problem}")
            log.warning("fact checker endpoint %s: %s; retry %d of %d in %gs", self.url, problem, attempt,
                        self.max_retries, wait)
            self._sleep(wait)
        raise CheckerError(f"fact checker endpoint {self.url} failed after {attempts} attempt(s): {problem}")
