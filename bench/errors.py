"""Errors the command line reports as one line: what went wrong and how to fix it."""

from __future__ import annotations


class EnvironmentProblem(Exception):
    """Something outside the input stops the command: a full disk, a folder it may not write,
    a damaged results file (exit code 1)."""


class DamagedResults(EnvironmentProblem):
    """A stored table that is missing or cannot be read."""
