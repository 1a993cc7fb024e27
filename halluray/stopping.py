"""SIGINT and SIGTERM (Ctrl-C; what `ray job stop` and a spot preemption send) end a command cleanly.

`install` (the CLI, for every command) makes both signals raise `Interrupted`, a KeyboardInterrupt, so that
every `finally` runs (actor groups and placement groups are released) and the CLI prints one line and exits
128 + the signal's number (130, 143). Inside `graceful` (a PPO run) the first signal only asks the run to stop
at its next safe point, the end of the current step (`check`); a second one stops it at once.

`ray.init` puts its own SIGTERM handler in place (one that exits 1), so Ray's entry (`actors.group.init_ray`)
and the PPO run call `rearm` after it. Handlers can only be set in the main thread; elsewhere this module does
nothing and the signals keep their defaults.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The command was stopped by `signum`; `where` says at which point (e.g. `after step 3`)."""

    def __init__(self, signum: int, where: str = ""):
        super().__init__(signal.Signals(signum).name + (f" {where}" if where else ""))
        self.signum, self.where = signum, where

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_installed = False
_graceful: str | None = None
"""What is stopping at its next safe point (e.g. `ppo`), while inside `graceful`."""
_requested: int | None = None


def _handler(signum: int, frame) -> None:
    global _requested
    if _graceful is not None and _requested is None:
        _requested = signum
        print(f"{_graceful}: {signal.Signals(signum).name} received: stopping after the current step (send it "
              f"again to stop at once)", file=sys.stderr, flush=True)
        return
    raise Interrupted(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _set_handlers() -> None:
    for s in SIGNALS:
        signal.signal(s, _handler)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Interrupted` (the handlers before it are put back after)."""
    global _installed
    if not _main_thread():
        yield
        return
    before, was = {s: signal.getsignal(s) for s in SIGNALS}, _installed
    _set_handlers()
    _installed = True
    try:
        yield
    finally:
        _installed = was
        for s, h in before.items():
            signal.signal(s, h)


def rearm() -> None:
    """Put this module's handlers back after a library (ray.init) replaced them, while they are installed."""
    if _installed and _main_thread():
        _set_handlers()


@contextlib.contextmanager
def graceful(what: str) -> Iterator[None]:
    """Within the block a first signal only sets a request that `check` turns into `Interrupted`."""
    global _graceful, _requested
    with installed():
        outer, _graceful, _requested = _graceful, what, None
        try:
            yield
        finally:
            _graceful, _requested = outer, None


def check(where: str) -> None:
    """At a safe point: raise `Interrupted` if a signal asked to stop."""
    if _requested is not None:
        raise Interrupted(_requested, where)
