"""Errors and query options of the kubo RPC, as go-ipfs-cmds shapes them.

Errors travel as ``{"Message": ..., "Code": N, "Type": "error"}`` where
``Code`` is go-ipfs-cmds' ``ErrorType``: 0 normal (HTTP 500), 1 client
(HTTP 400), 3 not found (HTTP 404). Options come from the query string:
``?arg=`` repeatable, ``?name=value`` for the rest; booleans accept
go's ``strconv.ParseBool`` spellings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from multidict import MultiMapping

from blockstore.cid import CidError, cid_from_str, cid_to_str

CODE_NORMAL = 0
CODE_CLIENT = 1
CODE_NOT_FOUND = 3

_STATUS = {CODE_NORMAL: 500, CODE_CLIENT: 400, CODE_NOT_FOUND: 404}

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class RpcError(Exception):
    """An error answered as kubo's error JSON with the matching HTTP status."""

    def __init__(self, message: str, code: int = CODE_CLIENT, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status if status is not None else _STATUS.get(code, 500)

    def body(self) -> bytes:
        """The error JSON."""
        return json.dumps({"Message": self.message, "Code": self.code, "Type": "error"}).encode() + b"\n"


class Options:
    """Typed access to a request's query options, with kubo's errors for bad values."""

    def __init__(self, query: MultiMapping[str] | Mapping[str, str]) -> None:
        self._q = query

    def args(self) -> list[str]:
        """Every ``arg=`` value, in order."""
        getall = getattr(self._q, "getall", None)
        if getall is not None:
            return list(getall("arg", []))
        value = self._q.get("arg")
        return [value] if value is not None else []

    def one_arg(self, what: str = "argument") -> str:
        """The single required ``arg``."""
        args = self.args()
        if not args:
            raise RpcError(f"argument {what!r} is required")
        if len(args) > 1:
            raise RpcError(f"expected one {what!r} argument, got {len(args)}")
        return args[0]

    def has(self, name: str) -> bool:
        """True if the option was given."""
        return name in self._q

    def boolean(self, name: str, default: bool) -> bool:
        """A boolean option (``name`` alone, ``true``/``false``, ``1``/``0``...)."""
        value = self._q.get(name)
        if value is None:
            return default
        if value == "" or value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise RpcError(f"option {name!r}: could not parse {value!r} as a boolean")

    def optional_bool(self, name: str) -> bool | None:
        """A boolean option, or None when absent."""
        return self.boolean(name, False) if name in self._q else None

    def integer(self, name: str, default: int | None, *, minimum: int | None = None) -> int | None:
        """An integer option."""
        value = self._q.get(name)
        if value is None or value == "":
            return default
        try:
            n = int(value, 10)
        except ValueError:
            raise RpcError(f"option {name!r}: could not parse {value!r} as an integer") from None
        if minimum is not None and n < minimum:
            raise RpcError(f"option {name!r} must be >= {minimum}, got {n}")
        return n

    def string(self, name: str, default: str | None) -> str | None:
        """A string option."""
        return self._q.get(name, default)

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        """A string option restricted to ``choices``."""
        value = self._q.get(name, default)
        if value not in choices:
            raise RpcError(f"option {name!r}: invalid value {value!r} (expected one of {', '.join(choices)})")
        return value


def parse_cid_arg(text: str) -> bytes:
    """A CID argument (``CID`` or ``/ipfs/CID``) as bytes, or a 400."""
    t = text.strip()
    if t.startswith("/ipfs/"):
        t = t[len("/ipfs/") :]
    if "/" in t:
        raise RpcError(f"expected a CID, got the path {text!r}")
    try:
        return cid_from_str(t)
    except CidError as exc:
        raise RpcError(f"invalid CID: {exc}") from None


def format_cid(cid: bytes, base: str | None = None) -> str:
    """A CID string: kubo's default bases, or ``cid-base`` (base32 / base58btc / base36 ...)."""
    if not base:
        return cid_to_str(cid)
    from multiformats import CID

    try:
        c = CID.decode(cid)
        if base != "base58btc" and c.version == 0:
            c = c.set(version=1)
        return c.encode(base)
    except (KeyError, ValueError) as exc:
        raise RpcError(f"option 'cid-base': {exc}") from None
