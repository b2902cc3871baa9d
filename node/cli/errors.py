"""The CLI's one error: a message printed as ``Error: <message>`` before exiting with status 1."""

from __future__ import annotations
from ..errors import NodeError


class CliError(NodeError):
    """An error to print as one line before exiting with status 1."""
