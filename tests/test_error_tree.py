"""Every exception class of a layer derives from that layer's base (one error tree per layer),
and the status hint the servers map errors with (node.errors.status_hint)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

from bitswap.errors import BitswapError, BlockNotDelivered
from blockstore.errors import BlockNotFound, BlockstoreError, InvalidData
from cluster.errors import ClusterError, InvalidRequest, NotFoundError
from node.errors import BadRequest, Busy, NodeError, NotFound, status_hint

ROOT = Path(__file__).resolve().parents[1]
BASES = {"blockstore": BlockstoreError, "bitswap": BitswapError, "cluster": ClusterError, "node": NodeError}
#: exceptions that are control flow inside one module, never raised to a caller
PRIVATE_OK = {"bitswap.routing.http_retrieval._BadData"}


def _modules(package: str) -> list[str]:
    names = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=package + "."):
        if ".cli.__main__" in info.name or info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("package", sorted(BASES))
def test_every_exception_class_derives_from_its_layer_base(package: str) -> None:
    base = BASES[package]
    strays = []
    for name in _modules(package):
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if not (inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == name):
                continue
            qual = f"{name}.{obj.__name__}"
            # node/cluster raises the cluster layer's errors (cluster.errors), re-exported there
            allowed = (base, ClusterError) if package == "node" else (base,)
            if qual not in PRIVATE_OK and not issubclass(obj, allowed):
                strays.append(qual)
    assert not strays, f"exceptions outside the {base.__name__} tree: {strays}"


def test_one_class_per_error_name_across_layers() -> None:
    seen: dict[str, str] = {}
    dupes = []
    for package in BASES:
        for name in _modules(package):
            module = importlib.import_module(name)
            for obj in vars(module).values():
                if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == name:
                    if obj.__name__ in seen and seen[obj.__name__] != name:
                        dupes.append(f"{obj.__name__}: {seen[obj.__name__]} and {name}")
                    seen.setdefault(obj.__name__, name)
    assert not dupes, dupes


def test_status_hints() -> None:
    assert status_hint(InvalidData("x")) == 400
    assert status_hint(BlockNotFound(b"\x01\x55\x12\x20" + bytes(32))) == 404
    assert status_hint(BlockNotDelivered("late")) == 504
    assert status_hint(InvalidRequest("x")) == 400
    assert status_hint(NotFoundError("x")) == 404
    assert status_hint(ClusterError("x")) == 500
    assert status_hint(NotFound("x")) == 404
    assert status_hint(BadRequest("x")) == 400
    assert status_hint(Busy("x")) == 429
    assert status_hint(ValueError("not ours")) == 400
    assert status_hint(RuntimeError("not ours")) is None
    # builtin bases are kept, so existing except clauses keep their meaning
    assert isinstance(InvalidData("x"), ValueError) and isinstance(BlockNotFound(b"\x00"), LookupError)
