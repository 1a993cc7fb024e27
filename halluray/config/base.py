"""What every config section is built from: the strict `Section` base model, the field types that refuse
booleans (`Int`, `Float`) or anything but one directory name (`DirName`), and `ConfigError`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from halluray.errors import InputError


class ConfigError(InputError):
    """A config that cannot be used; the message names the offending key or path."""


def not_bool(value: Any) -> Any:
    # YAML reads true/false/yes/no as booleans, which pydantic would take as the numbers 1/0.
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


def _dir_name(value: str) -> str:
    # The name joins a directory the run writes into and replaces: a separator, '..' or an absolute path
    # would point outside the output directory; a leading dot, at a hidden (or the same) directory.
    if not value or value.startswith(".") or any(c in value for c in "/\\\0"):
        raise ValueError("must be a single directory name: not empty, without '/' or '\\', not starting with '.'")
    return value


Int = Annotated[int, BeforeValidator(not_bool)]
"""Every integer of the config: a boolean is refused."""
Float = Annotated[float, BeforeValidator(not_bool)]
"""Every float of the config: a boolean is refused, and nan/inf by `Section`'s allow_inf_nan=False."""
DirName = Annotated[str, AfterValidator(_dir_name)]
"""A config value used as one directory name inside the run's output directory."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
