"""Errors and query options of the kubo RPC, as go-ipfs-cmds shapes them.

Errors travel as ``{"Message": ..., "Code": N, "Type": "error"}`` where
``Code`` is go-ipfs-cmds' ``ErrorType``. As in kubo (go-ipfs-cmds
``http/responseemitter.go``), every error a command returns is code 0 with
HTTP 500, whatever went wrong (a missing block, an unpinned CID, a bad CID
string); only a request go-ipfs-cmds itself cannot parse (a missing
argument, an option value that is not of the option's type) is code 1 with
HTTP 400. 404 is kept for unknown endpoints. Options come from the query
string: ``?arg=`` repeatable, ``?name=value`` for the rest; booleans accept
go's ``strconv.ParseBool`` spellings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from multidict import MultiMapping

from blockstore.cid import CidError, cid_from_str, cid_to_str
from ..errors import NodeError

CODE_NORMAL = 0  #: a command failed (HTTP 500)
CODE_CLIENT = 1  #: the request could not be parsed (HTTP 400)

_STATUS = {CODE_NORMAL: 500, CODE_CLIENT: 400}

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class KuboRpcError(NodeError):
    """An error answered as kubo's error JSON with the matching HTTP status.

    The default is a command error (code 0, HTTP 500); :func:`client_error`
    makes the code-1 errors of requests that cannot be parsed.
    """

    def __init__(self, message: str, code: int = CODE_NORMAL, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status if status is not None else _STATUS.get(code, 500)

    def body(self) -> bytes:
        """The error JSON."""
        obj = {"Message": self.message, "Code": self.code, "Type": "error"}
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def client_error(message: str) -> KuboRpcError:
    """A request go-ipfs-cmds would refuse before running the command (code 1, HTTP 400)."""
    return KuboRpcError(message, CODE_CLIENT)


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
            raise client_error(f'argument "{what}" is required')
        if len(args) > 1:
            raise client_error(f"expected 1 argument(s), got {len(args)}")
        return args[0]

    def some_args(self, what: str) -> list[str]:
        """One or more ``arg`` values (a required, variadic argument)."""
        args = self.args()
        if not args:
            raise client_error(f'argument "{what}" is required')
        return args

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
        raise client_error(f'could not convert value "{value}" to type "bool" (for option "-{name}")')

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
            raise client_error(f'could not convert value "{value}" to type "int" (for option "-{name}")') from None
        if minimum is not None and n < minimum:
            raise KuboRpcError(f"option {name!r} must be >= {minimum}, got {n}")
        return n

    def string(self, name: str, default: str | None) -> str | None:
        """A string option."""
        return self._q.get(name, default)

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        """A string option restricted to ``choices``."""
        value = self._q.get(name, default)
        if value not in choices:
            raise KuboRpcError(f"option {name!r}: invalid value {value!r} (expected one of {', '.join(choices)})")
        return value


def parse_cid_arg(text: str) -> bytes:
    """A CID argument (``CID`` or ``/ipfs/CID``) as bytes; a command error (500) otherwise, as kubo."""
    t = text.strip()
    if t.startswith("/ipfs/"):
        t = t[len("/ipfs/") :]
    if "/" in t:
        raise KuboRpcError(f"expected a CID, got the path {text!r}")
    try:
        return cid_from_str(t)
    except CidError as exc:
        raise KuboRpcError(f"invalid CID: {exc}") from None


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
        raise KuboRpcError(f"option 'cid-base': {exc}") from None
