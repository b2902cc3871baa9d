"""The CLI's one error: a message printed as ``Error: <message>`` before exiting with status 1."""

from __future__ import annotations


class CliError(Exception):
    """An error to print as one line before exiting with status 1."""
