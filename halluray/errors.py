"""Errors caused by the user's input: the CLI prints their message (which names the problem) and exits 2."""


class InputError(Exception):
    """Bad input: a config key, a file, a dataset field, a prompt that cannot fit."""


class CheckerError(RuntimeError):
    """The fact checker's endpoint failed after its retries (or sent a reply too large to read): a failure of a
    service the run depends on, not of the input; the CLI prints it in one line and exits 1."""


class ActorFailure(RuntimeError):
    """An actor of a group died, raised, or did not answer; the message names the role and rank.

    `died` tells a dead process (which a restart can fix) from an exception raised inside a live actor
    (bad input, a non-finite loss: doing it again gives the same error); `cause` names that exception. `node_id`
    is set when the whole node holding the rank died (then `died` too)."""

    def __init__(self, message: str, role: str = "", rank: int | None = None, died: bool = False,
                 cause: str = "", node_id: str | None = None):
        super().__init__(message)
        self.role, self.rank, self.died, self.cause, self.node_id = role, rank, died, cause, node_id
