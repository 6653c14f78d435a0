"""Error types that the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class DriftlineError(Exception):
    """A problem the user can fix: bad input, bad settings, unreachable service.

    The message is one line that names the file, row or field. ``exit_code`` is what the
    CLI exits with (2 = unusable input, by convention across driftline commands).
    """

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(DriftlineError):
    """Settings or contract file is invalid."""


class InputError(DriftlineError):
    """A data file cannot be used (unreadable, empty, missing columns)."""


def describe_validation_error(source: str, err: object) -> str:
    """One line from a pydantic ValidationError: the source, the first bad field and its value."""
    first = err.errors()[0]  # type: ignore[attr-defined]
    loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"{source}: field {loc}: {first['msg']}{shown}"


class TransientError(DriftlineError):
    """A failure that may pass on a second try: a server unreachable, a registry busy, a timeout.

    Prefect tasks retry these (and only these among driftline's errors); permanent errors fail at once.
    """

    exit_code = 3


class RefusedError(DriftlineError):
    """A registry move refused by driftline's rule (gates, provenance, compare-and-set, lineage).

    ``code`` names the refusal so each face (CLI, flow) can add a hint in its own terms:
    ``not_promotable`` (add --force / force=true), ``no_previous`` (name a version),
    ``moved`` (the alias moved since the decision was taken), ``foreign`` (not driftline's model).
    """

    def __init__(self, message: str, *, code: str, exit_code: int | None = None) -> None:
        super().__init__(message, exit_code=exit_code)
        self.code = code
