"""JSON from the network, decoded within bounds: size, nesting depth, and a JSON content type.

Python's ``json`` decoder recurses once per nesting level, so ``[[[[...]]]]``
a hundred thousand levels deep raises ``RecursionError`` (an answer of 500, or
worse if the recursion limit was raised). Every JSON body or header value a
Pinion server decodes goes through :func:`loads`, which refuses, as
:class:`JsonLimitError` (a ValueError: a 400 everywhere), input longer than
``max_bytes`` or nested deeper than ``max_depth`` *before* the decoder sees
it. The depth check is linear: it skips strings, counts brackets, and stops at
the first level too deep; input with fewer brackets than ``max_depth`` in all
(any ordinary pin, token or metric) is not scanned at all.

:func:`is_json_type` tells whether a ``Content-Type`` is JSON. JSON bodies are
required to say so: an HTML form can only send ``text/plain``,
``application/x-www-form-urlencoded`` or ``multipart/form-data`` across sites
without a CORS preflight (https://fetch.spec.whatwg.org/#cors-safelisted-request-header),
so refusing those types for JSON bodies keeps a plain form from posting one.
"""

from __future__ import annotations

import json
import re
from typing import Any
from .errors import NodeError

#: deepest nesting accepted (a pin is 3 levels deep)
MAX_DEPTH = 64
#: largest JSON document accepted by default, bytes
MAX_BYTES = 1024 * 1024

_SPECIAL = re.compile(rb'[\[\]{}"\\]')


class JsonLimitError(NodeError, ValueError):
    """JSON refused before decoding (too large, too deep) or not JSON at all; the message says which."""


def _check_depth(data: bytes, max_depth: int) -> None:
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return
    depth = 0
    in_string = False
    skip_until = -1  # the character after a backslash inside a string
    for m in _SPECIAL.finditer(data):
        pos = m.start()
        if pos < skip_until:
            continue
        ch = data[pos]
        if in_string:
            if ch == 0x5C:  # backslash: the next character is escaped
                skip_until = pos + 2
            elif ch == 0x22:
                in_string = False
        elif ch == 0x22:
            in_string = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                raise JsonLimitError(f"JSON nested deeper than {max_depth} levels")
        elif ch in (0x5D, 0x7D):
            depth -= 1


def loads(data: bytes | bytearray | str, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """Decode JSON that is at most ``max_bytes`` long and ``max_depth`` deep (JsonLimitError otherwise)."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise JsonLimitError(f"JSON longer than {max_bytes} bytes")
    _check_depth(raw, max_depth)
    try:
        return json.loads(raw)
    except RecursionError:  # not reached after the depth check; kept so no input can make a 500
        raise JsonLimitError(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise JsonLimitError(f"not valid JSON: {exc}") from None


def is_json_type(content_type: str) -> bool:
    """Whether a media type (``Content-Type`` without parameters) is JSON: ``application/json``,
    ``application/*+json`` or ``application/x-ndjson``."""
    ct = content_type.split(";", 1)[0].strip().lower()
    return ct in ("application/json", "application/x-ndjson") or (ct.startswith("application/") and ct.endswith("+json"))
