"""node/kuborpc/options.py: kubo option parsing and error JSON."""

from __future__ import annotations

import json

import pytest
from multidict import MultiDict

from blockstore.cid import cid_for, cid_to_str
from node.kuborpc.options import KuboRpcError, Options, format_cid, parse_cid_arg


def test_booleans_follow_go_parsebool() -> None:
    o = Options(MultiDict([("a", "true"), ("b", "0"), ("c", ""), ("d", "T"), ("e", "yes")]))
    assert o.boolean("a", False) is True
    assert o.boolean("b", True) is False
    assert o.boolean("c", False) is True  # a bare flag
    assert o.boolean("d", False) is True
    assert o.boolean("missing", True) is True
    assert o.optional_bool("missing") is None
    with pytest.raises(KuboRpcError, match='could not convert value "yes" to type "bool"') as info:
        o.boolean("e", False)
    assert info.value.status == 400 and info.value.code == 1  # go-ipfs-cmds refuses it before the command runs


def test_integers_choices_and_args() -> None:
    o = Options(MultiDict([("arg", "x"), ("arg", "y"), ("n", "12"), ("neg", "-1"), ("bad", "1.5"), ("t", "direct")]))
    assert o.args() == ["x", "y"]
    assert o.integer("n", None) == 12
    with pytest.raises(KuboRpcError, match=">= 0") as below:
        o.integer("neg", 0, minimum=0)
    assert below.value.status == 500  # a value the command refuses: a command error
    with pytest.raises(KuboRpcError, match='to type "int"') as bad:
        o.integer("bad", 0)
    assert bad.value.status == 400
    assert o.choice("t", ("all", "direct"), "all") == "direct"
    with pytest.raises(KuboRpcError, match=r"expected 1 argument\(s\), got 2"):
        o.one_arg("cid")
    with pytest.raises(KuboRpcError, match='argument "cid" is required') as missing:
        Options(MultiDict()).one_arg("cid")
    assert missing.value.status == 400


def test_error_json_shape() -> None:
    """go-ipfs-cmds: every command error is code 0 / HTTP 500, code 1 (client) is HTTP 400; nothing else."""
    err = KuboRpcError("boom")
    assert err.status == 500
    assert json.loads(err.body()) == {"Message": "boom", "Code": 0, "Type": "error"}
    assert KuboRpcError("bad", code=1).status == 400
    assert KuboRpcError("rate limited", code=3).status == 500
    assert KuboRpcError("x", status=413).status == 413


def test_cid_args_and_bases() -> None:
    cid = cid_for(b"x")
    text = cid_to_str(cid)
    assert parse_cid_arg(text) == cid
    assert parse_cid_arg("/ipfs/" + text) == cid
    with pytest.raises(KuboRpcError, match="path"):
        parse_cid_arg(text + "/a")
    with pytest.raises(KuboRpcError, match="invalid CID"):
        parse_cid_arg("zzz")
    assert format_cid(cid) == text
    assert format_cid(cid, "base58btc").startswith("z")
    with pytest.raises(KuboRpcError, match="cid-base"):
        format_cid(cid, "base-nonsense")
