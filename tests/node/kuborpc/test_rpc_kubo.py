"""The kubo RPC as kubo answers it, one difference of issue 13 per test, through a real daemon's HTTP API.

Each test states what kubo (core/commands/*.go, go-ipfs-cmds, boxo) does: the
HTTP status, the body, and which JSON fields are present, since kubo's
clients read the presence of a field (``Error``) or a status (404) as meaning.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from urllib.parse import quote

from kubo_http import BOUNDARY, call, part
from node_proc import PinionNode

MISSING = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"  # "hello world" as a raw block, never added


def _js_multipart(parts: list[tuple[str, str, bytes]]) -> bytes:
    """A body as kubo-rpc-client (JavaScript) writes it: field names file/dir/file-1..., encodeURIComponent names."""
    out = []
    for i, (name, kind, body) in enumerate(parts):
        field = ("file" if kind == "file" else "dir") + (f"-{i}" if i else "")
        if i:
            out.append(b"\r\n")
        out.append(f"--{BOUNDARY}\r\n".encode())
        out.append(f'Content-Disposition: form-data; name="{field}"; filename="{quote(name, safe="")}"\r\n'.encode())
        ctype = "application/octet-stream" if kind == "file" else "application/x-directory"
        out.append(f"Content-Type: {ctype}\r\n\r\n".encode())
        out.append(body)
    out.append(f"\r\n--{BOUNDARY}--\r\n".encode())
    return b"".join(out)


def _error(r, status: int, message: str, code: int) -> None:  # type: ignore[no-untyped-def]
    """kubo's error: the status, JSON content type and exactly {"Message","Code","Type":"error"}."""
    assert r.status == status, (r.status, r.body)
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body.keys() == {"Message", "Code", "Type"} and body["Type"] == "error" and body["Code"] == code, body
    assert message in body["Message"], body["Message"]


def _add_tree(base: str) -> tuple[str, dict[str, str]]:
    """A directory added as the JS client sends it; returns its root and {name: cid}."""
    files = [("/site/a.txt", "file", b"alpha"), ("/site/sub", "dir", b""), ("/site/sub/b.bin", "file", b"b" * 600_000)]
    r = call(base, "add", raw_body=_js_multipart(files))
    assert r.status == 200, r.body
    names = {e["Name"]: e["Hash"] for e in r.lines() if "Hash" in e}
    return names["site"], names


def test_js_client_part_names_with_a_leading_slash_are_cleaned(make_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """boxo cleans a part's name with path.Clean("/" + name): "/site/a.txt" is "site/a.txt"; ".." that climbs
    above the root is refused (kubo silently drops it) and stores nothing."""
    online, offline = make_node("online"), make_node("offline")
    online.start("--offline")
    base = online.url()
    root, names = _add_tree(base)
    assert set(names) == {"site/a.txt", "site/sub/b.bin", "site/sub", "site"}
    tree = tmp_path / "site"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"alpha")
    (tree / "sub" / "b.bin").write_bytes(b"b" * 600_000)
    assert offline.cli("add", "-r", "-Q", str(tree)).stdout.decode().strip() == root
    r = call(base, "add", raw_body=_js_multipart([("//site//./c.txt", "file", b"gamma")]))
    assert [e["Name"] for e in r.lines()] == ["site/c.txt", "site"]
    before = call(base, "repo/stat").json()["NumObjects"]
    _error(call(base, "add", raw_body=_js_multipart([("/../etc/passwd", "file", b"x")])), 500, "above the upload's root", 0)
    assert call(base, "repo/stat").json()["NumObjects"] == before


def test_block_rm_success_has_no_error_field(daemon: PinionNode) -> None:
    """kubo's removedBlock has Hash and Error both omitempty: success lines carry no "Error" key."""
    base = daemon.url()
    key = call(base, "block/put", files=[part("", b"to be removed")]).lines()[0]["Key"]
    r = call(base, "block/rm", key)
    assert r.status == 200 and r.headers["X-Chunked-Output"] == "1"
    assert r.body == json.dumps({"Hash": key}, separators=(",", ":")).encode() + b"\n"
    assert call(base, "block/rm", key).lines() == [{"Hash": key, "Error": f"ipld: could not find {key}"}]
    assert call(base, "block/rm", key, opts={"force": "true"}).lines() == [{"Hash": key}]
    assert call(base, "block/rm", key, opts={"force": "true", "quiet": "true"}).body == b""
    root, names = _add_tree(base)
    inner = names["site/sub/b.bin"]
    direct = call(base, "block/put", files=[part("", b"direct")]).lines()[0]["Key"]
    call(base, "pin/add", direct, opts={"recursive": "false"})
    lines = call(base, "block/rm", root, inner, direct).lines()
    assert lines == [
        {"Hash": root, "Error": "pinned: recursive"},
        {"Hash": inner, "Error": f"pinned via {root}"},  # a block inside a pinned DAG is pinned too
        {"Hash": direct, "Error": "pinned: direct"},
    ]
    assert call(base, "block/stat", inner).status == 200


def test_command_errors_are_http_500_code_0(daemon: PinionNode) -> None:
    """go-ipfs-cmds: every error a command returns is HTTP 500 with Code 0; 400 / Code 1 only for requests it
    cannot parse; 404 (plain text) only for an endpoint that does not exist."""
    base = daemon.url()
    _error(call(base, "cat", MISSING), 500, f"block was not found locally (offline): ipld: could not find {MISSING}", 0)
    _error(call(base, "block/get", MISSING), 500, "could not find", 0)
    _error(call(base, "block/stat", MISSING), 500, "could not find", 0)
    _error(call(base, "pin/rm", MISSING), 500, "not pinned or pinned indirectly", 0)
    _error(call(base, "pin/ls", MISSING), 500, f"path '{MISSING}' is not pinned", 0)
    _error(call(base, "block/get", "not-a-cid"), 500, "invalid CID", 0)
    _error(call(base, "pin/ls", opts={"type": "sideways"}), 500, "invalid type 'sideways', must be one of {direct, indirect, recursive, all}", 0)
    _error(call(base, "cat", MISSING, opts={"offset": "-1"}), 500, "cannot specify negative offset", 0)
    _error(call(base, "cat"), 400, 'argument "ipfs-path" is required', 1)
    _error(call(base, "cat", MISSING, opts={"offset": "ten"}), 400, 'could not convert value "ten" to type "int"', 1)
    _error(call(base, "pin/add", MISSING, opts={"recursive": "maybe"}), 400, 'to type "bool"', 1)
    r = call(base, "no/such/command")
    assert (r.status, r.headers["Content-Type"], r.body) == (404, "text/plain; charset=utf-8", b"404 page not found\n")
    r = call(base, "version", method="GET")
    assert (r.status, r.body, r.headers["Allow"]) == (405, b"405 - Method Not Allowed\n", "OPTIONS, POST")


def test_indirect_pins(daemon: PinionNode) -> None:
    """pin/ls of a block inside a pinned DAG: "indirect through <root>"; --type=indirect and all list them."""
    base = daemon.url()
    root, names = _add_tree(base)
    leaf = names["site/a.txt"]
    assert call(base, "pin/ls", leaf).json() == {"Keys": {leaf: {"Type": f"indirect through {root}", "Name": ""}}}
    assert call(base, "pin/ls", leaf, opts={"type": "indirect"}).json()["Keys"][leaf]["Type"] == f"indirect through {root}"
    _error(call(base, "pin/ls", leaf, opts={"type": "recursive"}), 500, f"path '{leaf}' is not pinned", 0)
    _error(call(base, "pin/ls", root, opts={"type": "indirect"}), 500, "is not pinned", 0)  # recursive wins over indirect
    indirect = call(base, "pin/ls", opts={"type": "indirect"}).json()["Keys"]
    below = set(names.values()) - {root}
    assert below <= set(indirect) and root not in indirect
    assert all(v == {"Type": "indirect", "Name": ""} for v in indirect.values())
    every = call(base, "pin/ls", opts={"type": "all", "stream": "true"}).lines()
    assert {"Cid": root, "Type": "recursive"} in every and {"Cid": leaf, "Type": "indirect"} in every
    assert len(every) == len({line["Cid"] for line in every})  # each CID once
    call(base, "pin/add", leaf, opts={"recursive": "false"})  # direct pins come before indirect ones, as kubo
    assert call(base, "pin/ls", opts={"type": "all"}).json()["Keys"][leaf]["Type"] == "direct"
    assert leaf not in call(base, "pin/ls", opts={"type": "indirect"}).json()["Keys"]
    assert call(base, "pin/ls", leaf, opts={"type": "indirect"}).json()["Keys"][leaf]["Type"] == f"indirect through {root}"


def test_pin_names(daemon: PinionNode) -> None:
    """pin/add?name= is stored; pin/ls shows names only with names=true or a name filter (substring)."""
    base = daemon.url()
    a = call(base, "block/put", files=[part("", b"a")]).lines()[0]["Key"]
    b = call(base, "block/put", files=[part("", b"b")]).lines()[0]["Key"]
    assert call(base, "pin/add", a, opts={"name": "holiday photos"}).json() == {"Pins": [a]}
    call(base, "pin/add", b, opts={"recursive": "false", "name": "work"})
    assert call(base, "pin/ls", opts={"names": "true"}).json()["Keys"] == {
        a: {"Type": "recursive", "Name": "holiday photos"},
        b: {"Type": "direct", "Name": "work"},
    }
    assert call(base, "pin/ls").json()["Keys"][a] == {"Type": "recursive", "Name": ""}  # names not asked for
    assert call(base, "pin/ls", opts={"name": "photo"}).json() == {"Keys": {a: {"Type": "recursive", "Name": "holiday photos"}}}
    assert call(base, "pin/ls", opts={"name": "photo", "stream": "true"}).lines() == [{"Cid": a, "Name": "holiday photos", "Type": "recursive"}]
    assert call(base, "pin/ls", opts={"stream": "true", "type": "direct"}).lines() == [{"Cid": b, "Type": "direct"}]
    call(base, "pin/add", a, opts={"name": "renamed"})  # pinning again renames
    assert call(base, "pin/ls", a, opts={"names": "true"}).json()["Keys"][a]["Name"] == "renamed"
    _error(call(base, "pin/add", a, opts={"name": "x" * 256}), 500, "pin name is 256 bytes (max 255 bytes)", 0)
    r = call(base, "add", opts={"pin-name": "via add"}, files=[part("f.txt", b"named by add")])
    added = r.lines()[-1]["Hash"]
    assert call(base, "pin/ls", added, opts={"names": "true"}).json()["Keys"][added]["Name"] == "via add"
    _error(call(base, "add", opts={"pin-name": "n", "pin": "false"}, files=[part("g", b"g")]), 500, "pin-name option requires pin", 0)
    call(base, "pin/rm", a)
    call(base, "pin/rm", b)
    call(base, "pin/rm", added)
    assert call(base, "pin/ls").json() == {}  # kubo omits an empty "Keys"


def test_pin_state_rules(daemon: PinionNode) -> None:
    """kubo's pinner: no direct pin over a recursive one; a recursive pin replaces a direct one;
    pin/rm -r=false refuses a recursive pin."""
    base = daemon.url()
    root, _names = _add_tree(base)
    _error(call(base, "pin/add", root, opts={"recursive": "false"}), 500, f"pin: {root} already pinned recursively", 0)
    _error(call(base, "pin/rm", root, opts={"recursive": "false"}), 500, f"{root} is pinned recursively", 0)
    assert call(base, "pin/ls", root).json()["Keys"][root]["Type"] == "recursive"
    blk = call(base, "block/put", files=[part("", b"upgrade me")]).lines()[0]["Key"]
    call(base, "pin/add", blk, opts={"recursive": "false"})
    assert call(base, "pin/rm", blk, opts={"recursive": "false"}).json() == {"Pins": [blk]}
    call(base, "pin/add", blk, opts={"recursive": "false"})
    call(base, "pin/add", blk)
    assert call(base, "pin/ls", blk).json()["Keys"][blk]["Type"] == "recursive"


def test_refs(daemon: PinionNode) -> None:
    """refs lines are {"Ref","Err"} with both fields; -r, --unique, --max-depth, --edges, --format; refs/local."""
    base = daemon.url()
    root, names = _add_tree(base)
    sub, big = names["site/sub"], names["site/sub/b.bin"]
    top = call(base, "refs", root)
    assert top.headers["X-Chunked-Output"] == "1"
    assert top.lines() == [{"Ref": names["site/a.txt"], "Err": ""}, {"Ref": sub, "Err": ""}]
    deep = [x["Ref"] for x in call(base, "refs", root, opts={"recursive": "true"}).lines()]
    # b.bin is 3 chunks of "b"s, the first two the same block: listed twice without --unique
    assert deep[:3] == [names["site/a.txt"], sub, big] and len(deep) == 6 and deep[3] == deep[4]
    assert [x["Ref"] for x in call(base, "refs", root, opts={"recursive": "true", "max-depth": "2"}).lines()] == deep[:3]
    edges = [x["Ref"] for x in call(base, "refs", root, opts={"recursive": "true", "edges": "true"}).lines()]
    assert edges[:2] == [f"{root} -> {names['site/a.txt']}", f"{root} -> {sub}"]
    fmt = call(base, "refs", root, opts={"format": "<linkname>: <dst>"}).lines()
    assert [x["Ref"] for x in fmt] == [f"a.txt: {names['site/a.txt']}", f"sub: {sub}"]
    _error(call(base, "refs", root, opts={"edges": "true", "format": "<src>"}), 500, "using format argument with edges is not allowed", 0)
    unique = [x["Ref"] for x in call(base, "refs", root, opts={"recursive": "true", "unique": "true"}).lines()]
    assert unique == deep[:4] + deep[5:]
    # a missing block: an Err line, then the next root is still walked
    chunk = call(base, "refs", big).lines()[0]["Ref"]
    call(base, "pin/rm", root)
    call(base, "block/rm", chunk)
    lines = call(base, "refs", big, names["site/a.txt"], sub, opts={"recursive": "true"}).lines()
    failed = {"Ref": "", "Err": f"block was not found locally (offline): ipld: could not find {chunk}"}
    assert lines == [failed, {"Ref": big, "Err": ""}, failed]  # each root walked after the one that failed
    # dag/export --local-only: a partial CAR of what is stored (b.bin's node and its last chunk)
    partial = call(base, "dag/export", big, opts={"local-only": "true"})
    assert partial.status == 200 and partial.headers["Content-Type"] == "application/vnd.ipld.car"
    r = call(base, "dag/import", opts={"local-only": "true", "stats": "true"}, files=[part("", partial.body)])
    assert [list(x) for x in r.lines()] == [["Stats"]] and r.lines()[0]["Stats"]["BlockCount"] == 2  # no Root lines unpinned
    # dag/import pins a root only if its whole DAG is there, and says why not (kubo's PinErrorMsg)
    r = call(base, "dag/import", files=[part("", partial.body)])
    assert r.lines() == [{"Root": {"Cid": {"/": big}, "PinErrorMsg": failed["Err"]}}]
    assert big not in call(base, "pin/ls").json().get("Keys", {})
    _error(call(base, "dag/import", opts={"local-only": "true", "pin-roots": "true"}, files=[part("", partial.body)]), 500, "--local-only implies --pin-roots=false", 0)
    local = {x["Ref"] for x in call(base, "refs/local").lines()}
    assert chunk not in local and len(local) == call(base, "repo/stat").json()["NumObjects"]
    assert all(r.startswith("bafkrei") for r in local)  # CIDv1 raw, as kubo's blockstore keys
    _error(call(base, "refs"), 400, 'argument "ipfs-path" is required', 1)


def test_dag_put_resolve_stat(daemon: PinionNode) -> None:
    base = daemon.url()
    r = call(base, "dag/put", files=[part("", b'{"hello":"world"}')])
    assert r.status == 200 and r.lines() == [{"Cid": {"/": "bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae"}}]
    root, names = _add_tree(base)
    doc = json.dumps({"site": {"/": root}, "meta": {"tags": ["a", "b"]}}).encode()
    r = call(base, "dag/put", opts={"pin": "true"}, files=[part("", doc), part("", b'{"second":true}')])
    cids = [x["Cid"]["/"] for x in r.lines()]
    assert len(cids) == 2 and all(c.startswith("bafyrei") for c in cids)
    assert call(base, "pin/ls", cids[0]).json()["Keys"][cids[0]]["Type"] == "recursive"
    as_json = call(base, "dag/put", opts={"store-codec": "dag-json"}, files=[part("", b'{"b":1,"a":2}')]).lines()[0]["Cid"]["/"]
    assert call(base, "block/get", as_json).body == b'{"a":2,"b":1}'
    _error(call(base, "dag/put", files=[part("", b"{broken")]), 500, "invalid DAG-JSON", 0)
    _error(call(base, "dag/put", opts={"store-codec": "dag-yaml"}, files=[part("", b"{}")]), 500, "unknown multicodec", 0)
    assert call(base, "dag/resolve", f"{cids[0]}/meta/tags/1").json() == {"Cid": {"/": cids[0]}, "RemPath": "/meta/tags/1"}
    assert call(base, "dag/resolve", f"/ipfs/{cids[0]}/site/sub/b.bin").json() == {"Cid": {"/": names["site/sub/b.bin"]}, "RemPath": ""}
    _error(call(base, "dag/resolve", f"{cids[0]}/nope"), 500, f'no link named "nope" under {cids[0]}', 0)
    stat = call(base, "dag/stat", root, opts={"progress": "false"})
    assert stat.headers["X-Chunked-Output"] == "1"
    final = stat.lines()
    assert len(final) == 1
    assert final[0]["UniqueBlocks"] == 6 and final[0]["Ratio"] == 1 and "SharedSize" not in final[0]
    assert final[0]["DagStats"] == [{"Cid": root, "Size": final[0]["TotalSize"], "NumBlocks": 6}]
    progress = call(base, "dag/stat", root).lines()  # kubo streams the summary after every block by default
    assert len(progress) == 7 and progress[0]["DagStats"][0]["NumBlocks"] == 1 and "Ratio" not in progress[0]
    both = call(base, "dag/stat", root, names["site/sub"], opts={"progress": "false"}).lines()[-1]
    assert both["UniqueBlocks"] == 6 and both["SharedSize"] == both["DagStats"][1]["Size"] and both["Ratio"] > 1
    _error(call(base, "dag/stat", MISSING, opts={"progress": "false"}), 500, "could not find", 0)


def test_get_streams_a_tar(daemon: PinionNode) -> None:
    base = daemon.url()
    root, names = _add_tree(base)
    r = call(base, "get", root)
    assert r.status == 200 and r.headers["Content-Type"] == "application/x-tar" and r.headers["X-Stream-Output"] == "1"
    assert int(r.headers["X-Content-Length"]) > 600_000
    with tarfile.open(fileobj=io.BytesIO(r.body)) as tar:
        assert [m.name.rstrip("/") for m in tar.getmembers()] == [root, f"{root}/a.txt", f"{root}/sub", f"{root}/sub/b.bin"]
        assert tar.extractfile(f"{root}/sub/b.bin").read() == b"b" * 600_000  # type: ignore[union-attr]
    r = call(base, "get", f"/ipfs/{root}/sub", opts={"archive": "true", "compress": "true", "compression-level": "9"})
    assert r.headers["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(r.body), mode="r:gz") as tar:
        assert tar.getnames()[0] == "sub"
    import gzip

    plain = call(base, "get", names["site/a.txt"], opts={"compress": "true"})
    assert gzip.decompress(plain.body) == b"alpha"  # a file without --archive: its bytes, gzipped
    _error(call(base, "get", root, opts={"compress": "true", "compression-level": "12"}), 500, "compression level must be between 1 and 9", 0)
    _error(call(base, "get", root, opts={"compress": "true"}), 500, "file is not regular", 0)
    _error(call(base, "get", MISSING), 500, "could not find", 0)


def test_block_put_several_blocks_and_listing_shapes(daemon: PinionNode) -> None:
    """block/put takes several parts in one request; ls links carry Mode/ModTime; repo/stat size-only is kubo's Stat."""
    base = daemon.url()
    blocks = [os.urandom(100) for _ in range(3)]
    r = call(base, "block/put", opts={"pin": "true"}, files=[part("", b) for b in blocks])
    keys = [x["Key"] for x in r.lines()]
    assert len(keys) == 3 and [call(base, "block/get", k).body for k in keys] == blocks
    assert r.lines()[0]["Size"] == 100
    assert set(call(base, "pin/ls", opts={"type": "recursive"}).json()["Keys"]) == set(keys)
    assert call(base, "block/get", keys[0]).headers["Content-Type"] == "application/vnd.ipld.raw"
    root, _ = _add_tree(base)
    link = call(base, "ls", root).json()["Objects"][0]["Links"][0]
    assert link.keys() == {"Name", "Hash", "Size", "Type", "Target", "Mode", "ModTime"}
    assert (link["Mode"], link["ModTime"]) == (0, "0001-01-01T00:00:00Z")
    stat = call(base, "repo/stat", opts={"size-only": "true"}).json()
    assert stat.keys() == {"RepoSize", "StorageMax", "NumObjects", "RepoPath", "Version"} and stat["NumObjects"] == 0
    # repo/gc: quiet changes only kubo's text output, silent empties the answer
    garbage = call(base, "block/put", files=[part("", b"garbage 1")]).lines()[0]["Key"]
    assert {"Key": {"/": garbage}} in call(base, "repo/gc", opts={"quiet": "true"}).lines()
    garbage = call(base, "block/put", files=[part("", b"garbage 2")]).lines()[0]["Key"]
    assert call(base, "repo/gc", opts={"silent": "true"}).body == b""
    assert call(base, "block/stat", garbage).status == 500
