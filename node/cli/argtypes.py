"""Argument value types shared by the ``pinion`` command groups."""

from __future__ import annotations

import argparse

from blockstore.cid import CidError, cid_from_str

from .errors import CliError


def parse_bool(text: str) -> bool:
    """kubo's boolean option values: 1/true/yes/on or 0/false/no/off (any case)."""
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_cid(text: str) -> bytes:
    """A CID argument as bytes (CliError naming what is wrong with it)."""
    try:
        return cid_from_str(text)
    except CidError as exc:
        raise CliError(str(exc)) from None
