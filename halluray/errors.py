"""Errors caused by the user's input: the CLI prints their message (which names the problem) and exits 2."""


class InputError(Exception):
    """Bad input: a config key, a file, a dataset field, a prompt that cannot fit."""
