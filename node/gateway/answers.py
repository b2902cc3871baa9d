"""Prebuilt answers to the commonest gateway request: a plain GET or HEAD of ``/ipfs/<cid>`` whose body is one small block.

Such an answer depends only on the request's path and query, its ``Accept`` header and one
immutable block (the CID's own), so the first GET builds it through the whole pipeline and the
requests after it reuse its status, headers and body (HEAD without the body). It is the gateway's
prebuilt header set for that CID.

What stays per request, so that a cached answer is exactly what the pipeline would answer:

- the block is read from the block source every time (a block removed from the store is 404 as
  before, a network source still decides; the block read metrics count it);
- requests with ``Range``, ``If-None-Match``, ``Cache-Control`` or ``Service-Worker`` headers (the
  request headers other than ``Accept`` that change an answer), and paths below the CID (whose
  answers depend on more blocks), always take the pipeline.

Only 200 answers with a body of at most :data:`~node.gateway.app.SMALL_BODY` bytes are kept, in
a :class:`~node.gateway.lru.SizedLRU` bounded by entries and bytes (each answer counted for its
body, its key and its headers): a flood of distinct paths or queries evicts, it cannot grow it.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

from .lru import SizedLRU

__all__ = ["Answer", "AnswerCache", "answer_key", "ANSWER_OVERHEAD"]

#: bytes an answer is counted for beyond its body, key and header text (the objects and dict slots)
ANSWER_OVERHEAD = 512
#: request headers (besides Accept) that change the gateway's answer: their requests are not cached
_VARYING = ("Range", "If-None-Match", "Cache-Control", "Service-Worker")


class Answer(NamedTuple):
    """A complete 200 answer: the CID whose block it is made of, its headers and its body."""

    cid: bytes
    headers: Mapping[str, str]
    body: bytes


def answer_key(method: str, raw_path: str, headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The cache key of a request whose answer may be prebuilt: (raw path with query, Accept), else None."""
    if method != "GET" and method != "HEAD":
        return None
    path = raw_path.partition("?")[0]
    if not path.startswith("/ipfs/") or "/" in path[6:]:
        return None  # not /ipfs/<cid> itself: /ipns/, a trailing slash, a path below the CID
    for name in _VARYING:
        if name in headers:
            return None
    return raw_path, headers.get("Accept", "")


class AnswerCache(SizedLRU[tuple[str, str], Answer]):
    """Prebuilt answers by :func:`answer_key` (module docstring)."""

    def __init__(self, max_entries: int = 4096, max_bytes: int = 16 << 20, max_body: int = 64 * 1024) -> None:
        super().__init__(max_entries, max_bytes)
        self.max_body = max_body

    def keep(self, key: tuple[str, str], answer: Answer) -> None:
        """Keep ``answer`` under ``key`` if its body is at most ``max_body`` bytes."""
        if len(answer.body) > self.max_body:
            return
        text = sum(len(k) + len(v) for k, v in answer.headers.items())
        self.put(key, answer, len(answer.body) + len(key[0]) + len(key[1]) + text + ANSWER_OVERHEAD)
