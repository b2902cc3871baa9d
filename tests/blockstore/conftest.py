"""Shared helpers for the blockstore tests: deterministic test data and a minimal fixture-CAR reader."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from blockstore.cid import read_cid, read_varint

FIXTURES = Path(__file__).resolve().parents[1].joinpath("fixtures")


def chacha_bytes(seed: bytes | str, n: int) -> bytes:
    """kubo's test data: the ChaCha20 keystream with key sha256(seed), zero nonce, counter 0."""
    if isinstance(seed, str):
        seed = seed.encode()
    enc = Cipher(algorithms.ChaCha20(hashlib.sha256(seed).digest(), b"\0" * 16), mode=None).encryptor()
    return enc.update(b"\0" * n)


def read_car_blocks(path: Path) -> dict[bytes, bytes]:
    """All blocks of a CARv1 file, keyed by CID bytes (the header is skipped, nothing verified)."""
    buf = path.read_bytes()
    n, pos = read_varint(buf, 0)
    pos += n
    blocks: dict[bytes, bytes] = {}
    while pos < len(buf):
        n, pos = read_varint(buf, pos)
        end = pos + n
        cid, p = read_cid(buf, pos)
        blocks[cid] = buf[p:end]
        pos = end
    return blocks


class DictSink:
    """An in-memory importer sink that records every block and every batch."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}
        self.batches: list[int] = []

    def put_many(self, blocks: list[tuple[bytes, bytes]], verify: bool = False) -> int:
        self.batches.append(len(blocks))
        new = 0
        for cid, data in blocks:
            if cid not in self.blocks:
                new += 1
            self.blocks[cid] = data
        return new

    def get(self, cid: bytes) -> bytes:
        return self.blocks[cid]


@pytest.fixture
def sink() -> DictSink:
    """A fresh in-memory sink."""
    return DictSink()


@pytest.fixture
def chacha() -> Callable[[bytes | str, int], bytes]:
    """The ChaCha20 test-data generator."""
    return chacha_bytes


@pytest.fixture
def car_blocks() -> Callable[[Path], dict[bytes, bytes]]:
    """The fixture-CAR reader."""
    return read_car_blocks
