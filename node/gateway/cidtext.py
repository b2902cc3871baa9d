"""CID text <-> bytes for the gateway's paths and headers, remembered for the most recent CIDs.

Parsing a CID's text (base58btc, base32, ...) and formatting one back take microseconds of
pure Python each, and one request names its CID in the path, in ``X-Ipfs-Roots`` and in its
``Etag``. A CID's text and its bytes name each other for ever, so the most recent
:data:`REMEMBERED` conversions of each kind are kept (``functools.lru_cache``: bounded, least
recently used evicted). Texts or CIDs longer than :data:`LONGEST` (no real CID is) are converted
without being kept, and a text that does not parse raises every time (errors are never kept), so
a flood of distinct or invalid CIDs costs at most ``REMEMBERED * LONGEST`` bytes of keys.
"""

from __future__ import annotations

from functools import lru_cache

from blockstore.cid import cid_from_str, cid_to_str

__all__ = ["parse", "text", "REMEMBERED", "LONGEST"]

#: conversions kept in each direction
REMEMBERED = 4096
#: longest CID text or binary CID that is kept (a sha2-512 CIDv1 in base32 is ~110 characters)
LONGEST = 128

_parse = lru_cache(maxsize=REMEMBERED)(cid_from_str)
_text = lru_cache(maxsize=REMEMBERED)(cid_to_str)


def parse(cid_text: str) -> bytes:
    """The binary CID of ``cid_text`` (raises :class:`~blockstore.cid.CidError` as ``cid_from_str`` does)."""
    return _parse(cid_text) if len(cid_text) <= LONGEST else cid_from_str(cid_text)


def text(cid: bytes) -> str:
    """The canonical text of the binary ``cid`` (``cid_to_str``)."""
    return _text(cid) if len(cid) <= LONGEST else cid_to_str(cid)
