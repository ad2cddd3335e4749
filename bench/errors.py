"""Errors the command line reports as one line: what went wrong and how to fix it."""

from __future__ import annotations


class EnvironmentProblem(Exception):
    """Something outside the input stops the command: a full disk, a folder it may not write,
    a damaged results file (exit code 1)."""


class DamagedResults(EnvironmentProblem):
    """A stored table that is missing or cannot be read."""


class ConfigError(ValueError):
    """A config problem: where (file and field path), what, and how to fix it (exit code 2)."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source, self.path, self.message = source, path, message
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {message}")


class ConfigErrors(ConfigError):
    """Several config problems found in one pass; ``errors`` holds each one."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.source, first.path, first.message)
        self.args = ("\n".join(str(e) for e in self.errors),)

    def __str__(self) -> str:
        return self.args[0]
