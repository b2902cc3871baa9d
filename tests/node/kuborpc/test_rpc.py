"""The kubo RPC subset against a real daemon, with requests shaped as kubo's client sends them."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp

from kubo_http import BOUNDARY, call, multipart, part
from node_proc import PinionNode

FIXTURES = Path(__file__).resolve().parents[2].joinpath("fixtures")
SIMPLE_CAR = FIXTURES / "go-car-testdata/cmd/car/testdata/inputs/simple-unixfs.car"
SIMPLE_ROOT = "QmPLPpnptHc1DMhJAWNYMTqBTqqRQNy5WsY7F9pZgsBfMT"
CORRUPT_CAR = FIXTURES / "go-car-testdata/v2/testdata/sample-v1-tailing-corrupt-section.car"

HELLO_V0 = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
HELLO_V1_RAW = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


def _stat(base: str) -> dict:
    return call(base, "repo/stat").json()


def _pins(base: str) -> set[str]:
    return set(call(base, "pin/ls").json().get("Keys", {}))  # kubo omits "Keys" when there is no pin


def test_add_cat_ls_kubo_cids(daemon: PinionNode) -> None:
    base = daemon.url()
    r = call(base, "add", files=[part("hello.txt", b"hello world")])
    assert r.status == 200, r.body
    assert r.headers["X-Chunked-Output"] == "1"
    assert r.lines() == [{"Name": "hello.txt", "Hash": HELLO_V0, "Size": "19"}]
    r = call(base, "add", opts={"cid-version": "1"}, files=[part("hello.txt", b"hello world")])
    assert r.lines()[-1]["Hash"] == HELLO_V1_RAW
    assert call(base, "cat", HELLO_V0).body == b"hello world"
    assert call(base, "cat", HELLO_V0, opts={"offset": "6", "length": "3"}).body == b"wor"
    assert {HELLO_V0, HELLO_V1_RAW} <= _pins(base)


def test_add_directory_tree_matches_offline_add(make_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    online, offline = make_node("online"), make_node("offline")
    online.start("--offline")
    tree = tmp_path / "site"
    (tree / "sub").mkdir(parents=True)
    (tree / "index.html").write_bytes(b"<h1>hi</h1>")
    (tree / "sub" / "a b.txt").write_bytes(os.urandom(300_000))
    (tree / "sub" / "z.bin").write_bytes(b"z" * 10)
    files = [
        part("site", ctype="application/x-directory"),
        part("site/index.html", (tree / "index.html").read_bytes()),
        part("site/sub", ctype="application/x-directory"),
        part("site/sub/a b.txt", (tree / "sub" / "a b.txt").read_bytes()),
        part("site/sub/z.bin", (tree / "sub" / "z.bin").read_bytes()),
    ]
    r = call(online.url(), "add", opts={"progress": "true"}, files=files)
    assert r.status == 200, r.body
    lines = r.lines()
    entries = [x for x in lines if "Hash" in x]
    assert [e["Name"] for e in entries] == ["site/index.html", "site/sub/a b.txt", "site/sub/z.bin", "site/sub", "site"]
    assert any(x.get("Name") == "site/sub/a b.txt" and x.get("Bytes") == 300_000 for x in lines)
    out = offline.cli("add", "-r", "-Q", str(tree)).stdout.decode().strip()
    assert entries[-1]["Hash"] == out
    ls = call(online.url(), "ls", entries[-1]["Hash"]).json()
    links = ls["Objects"][0]["Links"]
    assert [(l["Name"], l["Type"]) for l in links] == [("index.html", 2), ("sub", 1)]
    assert call(online.url(), "cat", f"/ipfs/{entries[-1]['Hash']}/sub/z.bin").body == b"z" * 10


def test_add_wrap_quieter_pin_false_only_hash(daemon: PinionNode) -> None:
    base = daemon.url()
    before = _stat(base)["NumObjects"]
    r = call(base, "add", opts={"only-hash": "true"}, files=[part("x", b"x")])
    assert r.lines()[-1]["Hash"] == "QmULKig5Fxrs2sC4qt9nNduucXfb92AFYQ6Hi3YRqDmrYC"
    assert _stat(base)["NumObjects"] == before
    r = call(base, "add", opts={"wrap-with-directory": "true", "quieter": "true"}, files=[part("a", b"1"), part("b", b"2")])
    lines = r.lines()
    assert len(lines) == 1 and lines[0]["Name"] == ""
    ls = call(base, "ls", lines[0]["Hash"]).json()["Objects"][0]["Links"]
    assert [l["Name"] for l in ls] == ["a", "b"]
    r = call(base, "add", opts={"pin": "false"}, files=[part("c", b"unpinned")])
    assert r.lines()[-1]["Hash"] not in _pins(base)


def test_dag_import_export_and_stats(daemon: PinionNode) -> None:
    base = daemon.url()
    car = SIMPLE_CAR.read_bytes()
    r = call(base, "dag/import", opts={"stats": "true"}, files=[part("", car)])
    assert r.status == 200, r.body
    lines = r.lines()
    assert lines[0] == {"Root": {"Cid": {"/": SIMPLE_ROOT}, "PinErrorMsg": ""}}
    assert lines[1]["Stats"]["BlockCount"] == 22
    assert SIMPLE_ROOT in _pins(base)
    exp = call(base, "dag/export", SIMPLE_ROOT)
    assert exp.status == 200
    assert exp.headers["Content-Type"] == "application/vnd.ipld.car"
    # The export holds the same blocks: importing it elsewhere gives the same root.
    r2 = call(base, "dag/import", opts={"pin-roots": "false", "stats": "true"}, files=[part("", exp.body)])
    assert r2.lines() == [{"Stats": {"BlockCount": 22, "BlockBytesCount": lines[1]["Stats"]["BlockBytesCount"]}}]  # no Root lines


def test_blocks_and_pins(daemon: PinionNode) -> None:
    base = daemon.url()
    r = call(base, "block/put", files=[part("", b"hello world")])
    assert r.lines() == [{"Key": HELLO_V1_RAW, "Size": 11}]
    assert call(base, "block/get", HELLO_V1_RAW).body == b"hello world"
    assert call(base, "block/stat", HELLO_V1_RAW).json() == {"Key": HELLO_V1_RAW, "Size": 11}
    assert call(base, "pin/add", HELLO_V1_RAW).json() == {"Pins": [HELLO_V1_RAW]}
    stream = call(base, "pin/ls", opts={"stream": "true", "type": "recursive"}).lines()
    assert {"Cid": HELLO_V1_RAW, "Type": "recursive"} in stream  # an empty Name is omitted, as kubo
    assert call(base, "pin/ls", HELLO_V1_RAW).json()["Keys"][HELLO_V1_RAW]["Type"] == "recursive"
    r = call(base, "block/rm", HELLO_V1_RAW)
    assert r.lines()[0]["Error"]  # pinned: refused
    assert call(base, "pin/rm", HELLO_V1_RAW).json() == {"Pins": [HELLO_V1_RAW]}
    r = call(base, "pin/ls", HELLO_V1_RAW)
    assert r.status == 500 and "is not pinned" in r.json()["Message"]
    gc = call(base, "repo/gc").lines()
    assert {"Key": {"/": HELLO_V1_RAW}} in gc
    assert call(base, "block/get", HELLO_V1_RAW).status == 500  # a command error, as kubo


def test_id_version_repo_stat_resolve(daemon: PinionNode) -> None:
    base = daemon.url()
    ident = call(base, "id").json()
    assert ident["ID"] == daemon.endpoints["peer_id"]
    assert ident["PublicKey"].startswith("CAESI")  # protobuf Ed25519 public key, base64
    assert ident["AgentVersion"].startswith("pinion/")
    v = call(base, "version").json()
    assert set(v) >= {"Version", "Commit", "Repo", "System", "Golang"}
    st = call(base, "repo/stat").json()
    assert set(st) >= {"RepoSize", "StorageMax", "NumObjects", "RepoPath", "Version"}
    sized = call(base, "repo/stat", opts={"size-only": "true"}).json()  # kubo's whole Stat, the rest zero-valued
    assert sized.keys() == {"RepoSize", "StorageMax", "NumObjects", "RepoPath", "Version"} and sized["RepoPath"] == ""
    cfg = call(base, "config/show").json()
    assert cfg["Identity"]["PeerID"] == daemon.endpoints["peer_id"]
    assert "PrivKey" not in cfg["Identity"] and "Secret" not in cfg["Cluster"] and "PrivKey" not in cfg["Cluster"]
    assert cfg["Datastore"]["StorageMax"] == st["StorageMax"]
    call(base, "add", files=[part("hello.txt", b"hello world")])
    assert call(base, "resolve", f"/ipfs/{HELLO_V0}").json() == {"Path": f"/ipfs/{HELLO_V0}"}


# --------------------------------------------------------------------------- bad input
def _assert_error(r, status: int, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert r.status == status, (r.status, r.body)
    body = r.json()
    assert body["Type"] == "error" and isinstance(body["Code"], int)
    assert fragment.lower() in body["Message"].lower(), body["Message"]


def _assert_text(r, status: int, text: bytes) -> None:  # type: ignore[no-untyped-def]
    """go-ipfs-cmds answers these with Go's http.Error: plain text."""
    assert (r.status, r.body) == (status, text), (r.status, r.body)
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_protocol_errors(daemon: PinionNode) -> None:
    base = daemon.url()
    _assert_text(call(base, "version", method="GET"), 405, b"405 - Method Not Allowed\n")
    assert call(base, "version", method="OPTIONS").status == 204
    _assert_text(call(base, "no/such/command"), 404, b"404 page not found\n")
    _assert_text(call(base, "version", headers={"Origin": "http://evil.example"}), 403, b"403 - Forbidden\n")
    _assert_error(call(base, "cat"), 400, "required")


def test_bad_values_touch_nothing(daemon: PinionNode) -> None:
    base = daemon.url()
    before = _stat(base)
    # values the command refuses are command errors (500, code 0) in kubo; unparsable requests are 400
    _assert_error(call(base, "block/get", "not-a-cid"), 500, "invalid cid")
    _assert_error(call(base, "cat", "bafy-garbage"), 500, "")
    _assert_error(call(base, "cat", HELLO_V0), 500, "could not find")
    _assert_error(call(base, "cat", f"/ipfs/{HELLO_V0}/../etc/passwd"), 500, "..")
    _assert_error(call(base, "add", opts={"cid-version": "7"}, files=[part("a", b"a")]), 500, "cid-version")
    _assert_error(call(base, "add", opts={"pin": "maybe"}, files=[part("a", b"a")]), 400, "bool")
    _assert_error(call(base, "add", opts={"chunker": "rabin-x-y-z-w"}, files=[part("a", b"a")]), 500, "chunk")
    _assert_error(call(base, "cat", HELLO_V0, opts={"offset": "-1"}), 500, "offset")
    _assert_error(call(base, "pin/ls", opts={"type": "sideways"}), 500, "type")
    _assert_error(call(base, "block/put", opts={"cid-codec": "git-raw"}, files=[part("", b"x")]), 500, "codec")
    _assert_error(call(base, "add", files=[part("../escape.txt", b"x")]), 500, "..")
    _assert_error(call(base, "add", raw_body=b"not multipart", headers={"Content-Type": "text/plain"}), 400, "multipart")
    _assert_error(call(base, "add", raw_body=b""), 400, "truncated")
    assert _stat(base) == before
    assert _pins(base) == set()


def test_truncated_and_malformed_uploads_store_nothing(daemon: PinionNode) -> None:
    base = daemon.url()
    before = _stat(base)
    big = os.urandom(3 * 1024 * 1024)
    body = multipart([part("big.bin", big)])
    _assert_error(call(base, "add", raw_body=body[: len(body) // 2]), 400, "truncated")
    car = SIMPLE_CAR.read_bytes()
    _assert_error(call(base, "dag/import", raw_body=multipart([part("", car)])[:-200]), 400, "")
    # a truncated multipart body is a malformed request (400); a bad CAR inside a whole body a command error
    _assert_error(call(base, "dag/import", files=[part("", CORRUPT_CAR.read_bytes())]), 500, "car")
    _assert_error(call(base, "dag/import", files=[part("", b"\x00\x01garbage")]), 500, "car")
    assert _stat(base)["NumObjects"] == before["NumObjects"]
    assert _pins(base) == set()


def test_oversize_headers(daemon: PinionNode) -> None:
    base = daemon.url()
    r = call(base, "version", headers={"X-Huge": "a" * 20000})
    assert 400 <= r.status < 500
    body = multipart([part("a", b"a")]).replace(b"Content-Type: application/octet-stream", b"X-Pad: " + b"p" * 40000)
    _assert_error(call(base, "add", raw_body=body), 413, "too large")
    assert _pins(base) == set()


def test_client_disconnect_mid_upload_leaves_nothing(daemon: PinionNode) -> None:
    """A client that goes away mid-body: no pin, no partial root, blocks rolled back."""
    base = daemon.url()
    before = _stat(base)

    async def upload_then_vanish() -> None:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = (
            f"POST /api/v0/add?pin=true HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        writer.write(head.encode())
        first = multipart([part("big.bin", b"")]).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
        payload = first + os.urandom(4 * 1024 * 1024)
        for i in range(0, len(payload), 65536):
            piece = payload[i : i + 65536]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        writer.transport.abort()

    asyncio.run(upload_then_vanish())

    # the daemon rolls back in its worker thread: poll briefly until the counters are back
    for _ in range(100):
        if _stat(base)["NumObjects"] == before["NumObjects"]:
            break
        time.sleep(0.05)
    assert _stat(base)["NumObjects"] == before["NumObjects"]
    assert _pins(base) == set()
    # and the daemon still serves
    assert call(base, "add", files=[part("ok", b"ok")]).status == 200


def test_large_streamed_upload_keeps_daemon_memory_bounded(daemon: PinionNode) -> None:
    """After a warm-up upload, 128 MiB more through add grows the daemon's RSS by far less than that."""
    base = daemon.url()
    pid = daemon.proc.pid  # type: ignore[union-attr]

    def rss() -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    async def send(mib: int) -> list:
        async def gen():  # type: ignore[no-untyped-def]
            yield (multipart([part("big", b"")]).split(b"\r\n\r\n")[0] + b"\r\n\r\n")
            block = os.urandom(1024 * 1024)
            for _ in range(mib):
                yield block
            yield f"\r\n--{BOUNDARY}--\r\n".encode()

        async with aiohttp.ClientSession() as s:
            async with s.post(
                f"{base}/api/v0/add",
                data=gen(),
                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            ) as r:
                assert r.status == 200, await r.text()
                return [line for line in (await r.text()).splitlines() if line]

    asyncio.run(send(32))
    start = rss()
    lines = asyncio.run(send(128))
    assert len(lines) == 1
    assert rss() - start < 48 * 1024 * 1024


def test_uploads_over_max_upload_size_get_413_and_store_nothing(make_node) -> None:  # type: ignore[no-untyped-def]
    """Datastore.MaxUploadSize (here from the environment, as in a container) bounds add and dag/import."""
    node = make_node()
    node.env["PINION_DATASTORE_MAXUPLOADSIZE"] = str(256 * 1024)
    node.start("--offline")
    base = node.url()
    small = call(base, "add", files=[part("small.bin", b"fits")])
    assert small.status == 200
    before = _stat(base)
    _assert_error(call(base, "add", files=[part("big.bin", os.urandom(1024 * 1024))]), 413, "MaxUploadSize")
    from blockstore.car import encode_header, encode_section
    from blockstore.cid import RAW, cid_for

    blocks = [os.urandom(200 * 1024) for _ in range(3)]
    cids = [cid_for(b, codec=RAW) for b in blocks]
    car = encode_header(cids[:1]) + b"".join(encode_section(c, b) for c, b in zip(cids, blocks))
    big_car = multipart([part("", car)])
    _assert_error(call(base, "dag/import", raw_body=big_car), 413, "MaxUploadSize")
    assert _stat(base)["NumObjects"] == before["NumObjects"]
    assert call(base, "add", files=[part("again.bin", b"still fine")]).status == 200


def test_rpc_api_auth_when_configured(make_node) -> None:  # type: ignore[no-untyped-def]
    """API.BasicAuthCredentials: 401 without or with wrong credentials, Basic and unexpired JWTs pass,
    and the pinion CLI on the repo sends the configured credentials itself."""
    import base64
    import json as _json

    from node import config as cfgmod
    from node.restapi.auth import make_jwt

    node = make_node()
    path = node.path / cfgmod.CONFIG_FILE
    cfg = _json.loads(path.read_text())
    cfg["API"] = {"BasicAuthCredentials": {"admin": "s3cret"}}
    path.write_text(_json.dumps(cfg))
    node.start("--offline")
    base = node.url()

    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    for headers in ({}, basic("admin", "wrong"), basic("nobody", "s3cret"), {"Authorization": "Bearer " + make_jwt("admin", "s3cret", 60, now=time.time() - 120)}):
        r = call(base, "version", headers=headers)
        assert r.status == 401, (headers, r.status)
        assert "WWW-Authenticate" in r.headers
    assert call(base, "version", headers=basic("admin", "s3cret")).status == 200
    assert call(base, "version", headers={"Authorization": "Bearer " + make_jwt("admin", "s3cret", 60)}).status == 200
    assert node.cli("pin", "ls").returncode == 0  # the CLI found the credentials in the repo's config
