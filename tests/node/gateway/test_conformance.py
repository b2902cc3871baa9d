"""gateway-conformance, re-implemented test by test for the trustless and path-UnixFS groups.

Every fixture CAR of ``tests/fixtures/gateway-conformance/`` is imported (not pinned) into a
fresh block store, a live gateway serves it on loopback, and each case of
the conformance suite (https://github.com/ipfs/gateway-conformance, ``tests/*_test.go``) is checked with the harness's rules: raw paths
percent-encoded like Go's ``net/url``, redirects not followed, CAR cases run twice (``?format=car`` and
``Accept: application/vnd.ipld.car``) with the standard CAR header checks on every 200.

Groups not run here (the gateway has no IPNS, DNSLink, subdomain, tar or DAG-JSON/CBOR views):
``TestGatewayIPNSRecord`` (trustless-ipns-gateway), ``TestGatewayCacheWithIPNS``, ``TestGatewayIPNSPath``,
``TestRedirectCanonicalIPNS``, ``TestGatewayIPNSRecordWithSubpath``, ``TestGatewayJSONCborAndIPNS`` (path-ipns-gateway),
the DNSLink and subdomain groups (dnslink-gateway, subdomain-ipfs-gateway, subdomain-ipns-gateway),
``TestTar`` (path-tar-gateway), ``TestGatewayJsonCbor``, ``TestCodecMismatchReturns406``, ``TestPlainCodec``,
``TestPathing``, ``TestNativeDag`` (path-dag-gateway), redirects-file and proxy-gateway.
``TestGatewayBlock`` (path-raw-gateway) is run because raw blocks are served.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest

from blockstore.cid import cid_to_str

from .helpers import FIXTURES, LiveGateway, Reply, c, read_car

RB = "bafybeie72edlprgtlwwctzljf6gkn2wnlrddqjbkxo3jomh4n7omwblxly"
RB_DIR = "bafybeifaqksygmsbnqe76kwvxoqxtkzcwssq5jkhuo65ldtqiunr3bxlra"
RB_A = "bafkreihhpc5y2pqvl5rbe5uuyhqjouybfs3rvlmisccgzue2kkt5zq6upq"
RB_A_DATA = b"hello application/vnd.ipld.raw\n"
S2 = "bafybeietjm63oynimmv5yyqay33nui4y4wx6u3peezwetxgiwvfmelutzu"
S2_SUB = "bafybeiggghzz6dlue3m6nb2dttnbrygxh3lrjl5764f2m4gq7dgzdt55o4"
MX = "bafybeidh6k2vzukelqtrjsmd4p52cpmltd2ufqrdtdg6yigi73in672fwu"
MX_SUB = "bafybeicnmple4ehlz3ostv2sbojz3zhh5q7tz5r2qkfdpqfilgggeen7xm"
ASC = "bafkreifkam6ns4aoolg3wedr4uzrs3kvq66p4pecirz6y2vlrngla62mxm"
ASC_DATA = b"hello application/vnd.ipld.car\n"
HEL = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
MB = "bafybeigcisqd7m5nf3qmuvjdbakl5bdnh4ocrmacaqkpuh77qjvggmt2sa"
C0, C1, C2, C3, C4 = (
    "bafkreie5noke3mb7hqxukzcy73nl23k6lxszxi5w3dtmuwz62wnvkpsscm",
    "bafkreih4ephajybraj6wnxsbwjwa77fukurtpl7oj7t7pfq545duhot7cq",
    "bafkreigu7buvm3cfunb35766dn7tmqyh2um62zcio63en2btvxuybgcpue",
    "bafkreicll3huefkc3qnrzeony7zcfo7cr3nbx64hnxrqzsixpceg332fhe",
    "bafkreifst3pqztuvj57lycamoi7z34b4emf7gawxs74nwrc2c7jncmpaqm",
)
MB_ALL = [MB, C0, C1, C2, C3, C4]
H = "bafybeidbclfqleg2uojchspzd4bob56dqetqjsj27gy2cq3klkkgxtpn4i"
H_07 = "bafybeiawjmzmi5c6v5h75nepfpx7jj5ns5t54girned3kilvakmhctxlxy"
H_FD = "bafybeifajm5xyg46n4hjxg7clq2f7vcn7eg7bn3yevylcemr6vd7mp6gta"
DC = "bafybeia264q44a3kmfc2otctzu4egp2k235o3t7mslz2yjraymp4nv6asi"
DC_DOC = "bafyreidy4q6mmetut5jzc54ambsfnatbyoujmwbfzyyolqw24majazwgha"
DUP = "bafybeihchr7vmgjaasntayyatmp5sv6xza57iy2h4xj7g46bpjij6yhrmy"
K = "QmYhmPjhFjYFyaoiuNzYv8WGavpSRDwdHWe5B4M5du5Rtk"
K0 = "QmPKt7ptM2ZYSGPUc8PmPT2VBkLDK3iqpG9TBJY7PCE9rF"
K2 = "QmWXY482zQdwecnfBsj78poUUuPXvyw2JAFAEMw4tzTavV"
GC = "bafybeib3ffl2teiqdncv3mkz4r23b5ctrwkzrrhctdbne6iboayxuxk5ui"
GC2 = "bafybeih2w7hjocxjg6g2ku25hvmd53zj7og4txpby3vsusfefw5rrg5sii"
GC3 = "bafybeiawdvhmjcz65x5egzx4iukxc72hg4woks6v6fvgyupiyt3oczk5ja"
GC4 = "bafybeifq2rzpqnqrsdupncmkmhs3ckxxjhuvdcbvydkgvch3ms24k5lo7q"
GCI = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
ABSENT = "QmYzfKSE55XCjD1MW128RfciAf2DViABhEiXfgVFMabSjN"
DL = "bafybeig6ka5mlwkl4subqhaiatalkcleo4jgnr3hqwvpmsqfca27cijp3i"
DLF = "bafkreialihlqnf5uwo4byh4n3cmwlntwqzxxs2fg5vanqdi3d7tb2l5xkm"
DF = DUP
SL = "QmWvY6FaqFMS89YAQ9NAPjVP4WZKA1qbHbicc9HeSKQTgt"
PE = "bafybeig675grnxcmshiuzdaz2xalm6ef4thxxds6o6ypakpghm5kghpc34"
RAW_ACCEPT = {"Accept": "application/vnd.ipld.raw"}
CAR_ACCEPT = {"Accept": "application/vnd.ipld.car"}


def _hamt_shards() -> list[str]:
    index = json.loads((FIXTURES / "index.json").read_text())

    def find(obj: object) -> list[str] | None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k == "hamt_subshards_dfs":
                    return list(v)
                got = find(v)
                if got is not None:
                    return got
        elif isinstance(obj, list):
            for v in obj:
                got = find(v)
                if got is not None:
                    return got
        return None

    shards = find(index)
    assert shards is not None, "index.json has no hamt_subshards_dfs"
    return shards


H_ALL = _hamt_shards()


def immutable_ok(value: str | None) -> bool:
    """The harness's Cache-Control check: public, immutable and max-age >= 29030400."""
    if value is None:
        return False
    parts = value.replace(" ", "").split(",")
    ages = [int(p[8:]) for p in parts if p.startswith("max-age=") and p[8:].isdigit()]
    return "public" in parts and "immutable" in parts and any(a >= 29030400 for a in ages)


def car_cids(r: Reply) -> list[str]:
    """The section CIDs of a CAR body, as strings of the exact CID bytes written."""
    return [cid_to_str(cid) for cid, _ in read_car(r.body)[1]]


def check_car_headers(r: Reply) -> None:
    """The standard CAR transform's header checks on a 200."""
    assert r.h("X-Content-Type-Options") == "nosniff"
    assert r.h("Accept-Ranges") == "none"
    assert "application/vnd.ipld.car" in (r.h("Content-Type") or "")
    assert re.search(r'attachment; filename=".*\.car"', r.h("Content-Disposition") or "")
    assert r.h("Etag")


def car_variants(gw: LiveGateway, path: str, query: dict[str, str]) -> list[Reply]:
    """Run a ``?format=car`` case as written and with ``Accept: application/vnd.ipld.car`` instead."""
    with_format = gw.request(f"{path}?{urlencode({'format': 'car', **query})}")
    rest = f"?{urlencode(query)}" if query else ""
    with_accept = gw.request(f"{path}{rest}", CAR_ACCEPT)
    return [with_format, with_accept]


def assert_car_exact(gw: LiveGateway, path: str, query: dict[str, str], expected: list[str], ordered: bool = True) -> None:
    for r in car_variants(gw, path, query):
        assert r.status == 200, r.body
        check_car_headers(r)
        got = car_cids(r)
        if ordered:
            assert got == expected
        else:
            assert set(got) == set(expected)


# ---------------------------------------------------------------------------------------- 2.1


def test_trustless_raw_block_bytes_match_fixture(gateway: LiveGateway) -> None:
    blocks = dict(read_car((FIXTURES / "gateway-raw-block.car").read_bytes())[1])
    for req in ((f"/ipfs/{RB_DIR}?format=raw", {}), (f"/ipfs/{RB_DIR}", RAW_ACCEPT)):
        r = gateway.request(*req)
        assert r.status == 200
        assert r.body == blocks[c(RB_DIR)]


def test_trustless_raw_headers(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{RB_A}", RAW_ACCEPT)
    assert r.status == 200
    assert r.h("Content-Type") == "application/vnd.ipld.raw"
    assert r.h("Content-Length") == "31"
    assert "attachment;" in r.h("Content-Disposition")
    assert r.h("X-Content-Type-Options") == "nosniff"
    assert r.body == RB_A_DATA
    assert r.h("Etag")
    assert r.h("X-Ipfs-Path") == f"/ipfs/{RB_A}"
    assert RB_A in r.h("X-Ipfs-Roots")
    assert immutable_ok(r.h("Cache-Control"))


def test_trustless_raw_filename(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{RB_A}?filename=foobar.bin", RAW_ACCEPT)
    assert r.status == 200
    assert "attachment;" in r.h("Content-Disposition")
    assert 'filename="foobar.bin' in r.h("Content-Disposition")


# ---------------------------------------------------------------------------------------- 2.2


def test_trustless_raw_single_range(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{RB_A}", {**RAW_ACCEPT, "Range": "bytes=7-9"})
    assert r.status == 206
    assert r.body == b"ppl"
    assert r.h("Content-Range") == "bytes 7-9/31"


def test_trustless_raw_multi_range(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{RB_A}", {**RAW_ACCEPT, "Range": "bytes=7-9,1-3"})
    assert r.status == 206
    assert r.h("Content-Type") == "application/vnd.ipld.raw"
    assert r.body == b"ppl" and r.h("Content-Range") == "bytes 7-9/31"


# ---------------------------------------------------------------------------------------- 2.3


def test_car_pathing_subdir_file(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{S2}/subdir/ascii.txt", {}, [S2, S2_SUB, ASC])


def test_car_pathing_hamt(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{H}/685.txt", {}, [H, H_FD, *MB_ALL])


def test_car_pathing_dag_cbor(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{DC_DOC}/files/single", {}, [DC_DOC, HEL])


def test_car_pathing_missing_segment(gateway: LiveGateway) -> None:
    for r in car_variants(gateway, f"/ipfs/{S2}/subdir/i-do-not-exist", {}):
        if r.status == 200:
            check_car_headers(r)
            assert car_cids(r) == [S2, S2_SUB]
        else:
            assert r.status == 404


# ---------------------------------------------------------------------------------------- 2.4


def test_dag_scope_block_dir(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{S2}/subdir", {"dag-scope": "block"}, [S2, S2_SUB])


def test_dag_scope_block_file(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{S2}/subdir/ascii.txt", {"dag-scope": "block"}, [S2, S2_SUB, ASC])


def test_dag_scope_block_hamt(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{H}/1.txt", {"dag-scope": "block"}, [H, H_07, MB])


# ---------------------------------------------------------------------------------------- 2.5


def test_dag_scope_entity_plain_dir(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{S2}", {"dag-scope": "entity"}, [S2])


def test_dag_scope_entity_hamt(gateway: LiveGateway) -> None:
    assert len(H_ALL) == 236
    assert_car_exact(gateway, f"/ipfs/{H}", {"dag-scope": "entity"}, [H, *H_ALL])


def test_dag_scope_entity_single_block_file(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{MX}/subdir/ascii.txt", {"dag-scope": "entity"}, [MX, MX_SUB, ASC])


def test_dag_scope_entity_multiblock_file(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{MX}/subdir/multiblock.txt", {"dag-scope": "entity"}, [MX, MX_SUB, *MB_ALL])


def test_dag_scope_entity_dag_cbor(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{DC}/document", {"dag-scope": "entity"}, [DC, DC_DOC])


# ---------------------------------------------------------------------------------------- 2.6


def test_dag_scope_all_dir(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{MX}/subdir", {"dag-scope": "all"}, [MX, MX_SUB, ASC, HEL, *MB_ALL])


def test_dag_scope_all_file(gateway: LiveGateway) -> None:
    assert_car_exact(gateway, f"/ipfs/{MX}/subdir/multiblock.txt", {"dag-scope": "all"}, [MX, MX_SUB, *MB_ALL])


# ---------------------------------------------------------------------------------------- 2.7


@pytest.mark.parametrize(
    ("path", "span", "expected", "ordered"),
    [
        (f"/ipfs/{K}", "0:1000", [K, K0], False),
        (f"/ipfs/{K}", "2200:*", [K, K2], False),
        (f"/ipfs/{MX}/subdir/multiblock.txt", "0:*", [MX, MX_SUB, *MB_ALL], True),
        (f"/ipfs/{H}", "0:*", [H, *H_ALL], True),
        (f"/ipfs/{MB}", "512:*", [MB, C2, C3, C4], True),
        (f"/ipfs/{MB}", "512:1023", [MB, C2, C3], True),
        (f"/ipfs/{MB}", "512:-256", [MB, C2, C3], True),
        (f"/ipfs/{MB}", "-5:*", [MB, C3, C4], True),
        (f"/ipfs/{MB}", "-9999:*", MB_ALL, True),
        (f"/ipfs/{MB}", "-9999:-3", [MB, C0, C1, C2, C3], True),
        (f"/ipfs/{MB}", "0:0", [MB, C0], True),
    ],
)
def test_entity_bytes(gateway: LiveGateway, path: str, span: str, expected: list[str], ordered: bool) -> None:
    assert_car_exact(gateway, path, {"dag-scope": "entity", "entity-bytes": span}, expected, ordered)


# ---------------------------------------------------------------------------------------- 2.8

DUP_Y = [DUP, ASC, ASC, HEL, *MB_ALL]
DUP_N = [DUP, ASC, HEL, *MB_ALL]


def test_order_dfs_dups_y(gateway: LiveGateway) -> None:
    for path in (f"/ipfs/{DUP}", f"/ipfs/{DUP}?format=car"):
        r = gateway.request(path, {"Accept": "application/vnd.ipld.car; version=1; order=dfs; dups=y"})
        assert r.status == 200
        ct = r.h("Content-Type")
        assert "application/vnd.ipld.car" in ct and "order=dfs" in ct and "dups=y" in ct
        assert car_cids(r) == DUP_Y


def test_order_dfs_dups_n(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{DUP}", {"Accept": "application/vnd.ipld.car; version=1; order=dfs; dups=n"})
    assert r.status == 200
    ct = r.h("Content-Type")
    assert "application/vnd.ipld.car" in ct and "order=dfs" in ct and "dups=n" in ct
    assert car_cids(r) == DUP_N


def test_order_unk(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{DUP}", {"Accept": "application/vnd.ipld.car; version=1; order=unk"})
    assert r.status == 200
    assert "application/vnd.ipld.car" in r.h("Content-Type") and "order=" in r.h("Content-Type")
    assert set(DUP_N) <= set(car_cids(r))


def test_identity_cid_car_has_no_blocks(gateway: LiveGateway) -> None:
    r = gateway.request("/ipfs/bafkqaf3imvwgy3zaneqgc3janfxgy2lomvscay3jmqfa", {"Accept": "application/vnd.ipld.car; dups=y"})
    assert r.status == 200
    assert "application/vnd.ipld.car" in r.h("Content-Type") and "dups=y" in r.h("Content-Type")
    header, sections = read_car(r.body)
    assert header["version"] == 1 and sections == []


def test_car_query_params_beat_accept(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{DUP}?format=car&car-order=dfs", {"Accept": "application/vnd.ipld.car; order=unk"})
    assert r.status == 200 and "order=dfs" in r.h("Content-Type")
    r = gateway.request(f"/ipfs/{DUP}?format=car&car-dups=y", {"Accept": "application/vnd.ipld.car; dups=n"})
    assert r.status == 200 and "dups=y" in r.h("Content-Type")
    assert car_cids(r) == DUP_Y


# ---------------------------------------------------------------------------------------- 2.9


def test_format_beats_accept(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{RB_DIR}?format=car", RAW_ACCEPT)
    assert r.status == 200 and "application/vnd.ipld.car" in r.h("Content-Type")
    r = gateway.request(f"/ipfs/{RB_DIR}?format=raw", CAR_ACCEPT)
    assert r.status == 200 and r.h("Content-Type") == "application/vnd.ipld.raw"


# ---------------------------------------------------------------------------------------- 3.1


def test_dir_listing_root(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{DL}/")
    assert r.status == 200
    assert b"Index of" in r.body
    assert f'<a href="/ipfs/{DL}/">..</a>'.encode() not in r.body


def test_dir_listing_redirects_to_trailing_slash(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{DL}/%C4%85/%C4%99")
    assert r.status == 301
    assert r.h("Location") == f"/ipfs/{DL}/%C4%85/%C4%99/"


def test_dir_listing_redirect_keeps_query(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{DL}/%C4%85?a=b")
    assert r.status == 301 and r.h("Location") == f"/ipfs/{DL}/%C4%85/?a=b"


def test_dir_listing_subdir(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{DL}/%C4%85/%C4%99/")
    assert r.status == 200
    assert '"DirIndex-' in r.h("Etag")
    body = r.body.decode()
    assert "Index of" in body
    assert (
        f'/ipfs/<a href="/ipfs/{DL}">{DL}</a>/<a href="/ipfs/{DL}/%C4%85">ą</a>/<a href="/ipfs/{DL}/%C4%85/%C4%99">ę</a>'
        in body
    )
    assert f'<a href="/ipfs/{DL}/%C4%85/%C4%99/..">..</a>' in body
    assert f'<a href="/ipfs/{DL}/%C4%85/%C4%99/file-%C5%BA%C5%82.txt">file-źł.txt</a>' in body
    assert f'<a class="ipfs-hash" translate="no" href="/ipfs/{DLF}?filename=file-%25C5%25BA%25C5%2582.txt">' in body


def test_dir_listing_missing(gateway: LiveGateway) -> None:
    assert gateway.request(f"/ipfs/{DL}/i-do-not-exist").status == 404


# ---------------------------------------------------------------------------------------- 3.2


def test_cache_dir_listing_headers(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{GC}/root2/root3/")
    assert r.status == 200
    assert r.h("X-Ipfs-Path") == f"/ipfs/{GC}/root2/root3/"
    assert r.h("X-Ipfs-Roots") == f"{GC},{GC2},{GC3}"
    assert re.search(f"DirIndex-.*_CID-{GC3}", r.h("Etag"))
    assert r.h("Cache-Control") in (None, "public, max-age=604800, stale-while-revalidate=2678400")


def test_cache_index_html(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{GC}/root2/root3/root4/")
    assert r.status == 200
    assert r.h("Cache-Control") == "public, max-age=29030400, immutable"
    assert r.h("X-Ipfs-Path") == f"/ipfs/{GC}/root2/root3/root4/"
    assert r.h("X-Ipfs-Roots") == f"{GC},{GC2},{GC3},{GC4}"
    assert r.h("Etag") == f'"{GC4}"'
    assert r.h("Content-Type") == "text/html"
    assert r.body == b"hello\n"


def test_cache_index_file(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{GC}/root2/root3/root4/index.html")
    assert r.status == 200
    assert r.h("Cache-Control") == "public, max-age=29030400, immutable"
    assert r.h("X-Ipfs-Path") == f"/ipfs/{GC}/root2/root3/root4/index.html"
    assert r.h("X-Ipfs-Roots") == f"{GC},{GC2},{GC3},{GC4},{GCI}"
    assert r.h("Etag") == f'"{GCI}"'


GC4_BLOCK = bytes.fromhex(
    "12340a24015512205891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03120a696e6465782e68746d6c18060a020801"
)


def test_cache_raw_of_dir(gateway: LiveGateway) -> None:
    url = f"/ipfs/{GC}/root2/root3/root4/?format=raw"
    r = gateway.request(url)
    assert r.status == 200
    assert r.h("Cache-Control") == "public, max-age=29030400, immutable"
    assert r.body == GC4_BLOCK
    assert gateway.request(url, {"Cache-Control": "only-if-cached"}, method="HEAD").status == 200
    assert gateway.request(url, {"Cache-Control": "only-if-cached"}).status == 200


def test_only_if_cached_absent(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{ABSENT}", {"Cache-Control": "only-if-cached"}, method="HEAD")
    assert r.status == 412 and r.body == b""
    r = gateway.request(f"/ipfs/{ABSENT}", {"Cache-Control": "only-if-cached"})
    assert r.status == 412
    assert f'"/ipfs/{ABSENT}" not in local datastore'.encode() in r.body


@pytest.mark.parametrize("inm", [f'"{GCI}"', f'"fakeEtag1", "fakeEtag2", "{GCI}"', f'W/"{GCI}"', "*"])
def test_if_none_match_file(gateway: LiveGateway, inm: str) -> None:
    r = gateway.request(f"/ipfs/{GC}/root2/root3/root4/index.html", {"If-None-Match": inm})
    assert r.status == 304 and r.body == b""


def test_if_none_match_index_dir(gateway: LiveGateway) -> None:
    assert gateway.request(f"/ipfs/{GC}/root2/root3/root4/", {"If-None-Match": f'"{GC4}"'}).status == 304


def test_if_none_match_listing(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{GC}/root2/root3/")
    etag = r.h("Etag").strip('"')
    assert r.status == 200 and etag
    assert gateway.request(f"/ipfs/{GC}/root2/root3/", {"If-None-Match": f'"{etag}"'}).status == 304
    assert gateway.request(f"/ipfs/{GC}/root2/root3/", {"If-None-Match": f'W/"{etag}"'}).status == 304


def test_if_none_match_other_etag_is_served(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{GC}/root2/root3/root4/index.html", {"If-None-Match": '"other"'})
    assert r.status == 200 and r.body == b"hello\n"


# ---------------------------------------------------------------------------------------- 3.4


def test_symlink(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{SL}/")
    assert r.status == 200 and b">foo<" in r.body and b">bar<" in r.body
    r = gateway.request(f"/ipfs/{SL}?format=raw")
    assert r.status == 200 and len(r.body) == 94
    r = gateway.request(f"/ipfs/{SL}/bar")
    assert r.status == 200 and r.body == b"foo"
    assert r.h("Content-Type") == "inode/symlink"


# ---------------------------------------------------------------------------------------- 3.5


def test_file_ranges(gateway: LiveGateway) -> None:
    url = f"/ipfs/{DF}/ascii.txt"
    r = gateway.request(url)
    assert r.status == 200 and r.h("Accept-Ranges") == "bytes" and r.body == ASC_DATA
    r = gateway.request(url, {"Range": "bytes=6-16"})
    assert r.status == 206 and r.h("Content-Range") == "bytes 6-16/31" and r.body == b"application"
    r = gateway.request(url, {"Range": "bytes=-3"})
    assert r.status == 206 and r.h("Content-Range") == "bytes 28-30/31" and r.body == b"ar\n"
    r = gateway.request(url, {"Range": "bytes=6-16,0-4"})
    assert r.status == 206 and r.h("Content-Range") == "bytes 6-16/31" and r.body == b"application"


def test_file_ranges_with_missing_block(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{K}", {"Range": "bytes=997-1000"})
    assert r.status == 206 and r.h("Content-Range") == "bytes 997-1000/3072" and len(r.body) == 4
    r = gateway.request(f"/ipfs/{K}", {"Range": "bytes=2200-2201"})
    assert r.status == 206 and r.h("Content-Range") == "bytes 2200-2201/3072" and len(r.body) == 2


# ---------------------------------------------------------------------------------------- 3.6


def test_percent_encoded_filename(gateway: LiveGateway) -> None:
    r = gateway.request(f"/ipfs/{PE}/Portugal%252C+Espa%C3%B1a=Peninsula%20Ib%C3%A9rica.txt")
    assert r.status == 200
    assert r.body == b"hello from a percent encoded filename\n"


# ---------------------------------------------------------------------------------------- 3.7


@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
def test_cors(gateway: LiveGateway, method: str) -> None:
    r = gateway.request("/ipfs/bafkqabtimvwgy3yk/", method=method)
    assert r.h("Access-Control-Allow-Origin") == "*"
    assert {"GET", "HEAD", "OPTIONS"} <= {m.strip() for m in r.h("Access-Control-Allow-Methods").split(",")}
    allowed = {m.strip() for m in r.h("Access-Control-Allow-Headers").split(",")}
    assert {"Content-Type", "Range", "User-Agent", "X-Requested-With"} <= allowed
    exposed = {m.strip() for m in r.h("Access-Control-Expose-Headers").split(",")}
    assert {"Content-Range", "Content-Length", "X-Ipfs-Path", "X-Ipfs-Roots", "X-Chunked-Output", "X-Stream-Output"} <= exposed


# ---------------------------------------------------------------------------------------- 4 (path-raw)


def test_gateway_block(gateway: LiveGateway) -> None:
    blocks = dict(read_car((FIXTURES / "gateway-raw-block.car").read_bytes())[1])
    dir_block = blocks[c(RB_DIR)]
    for req in ((f"/ipfs/{RB}/dir?format=raw", {}), (f"/ipfs/{RB}/dir", RAW_ACCEPT)):
        r = gateway.request(*req)
        assert r.status == 200 and r.body == dir_block
    r = gateway.request(f"/ipfs/{RB}/dir", {**RAW_ACCEPT, "Range": "bytes=6-16"})
    assert r.status == 206 and r.h("Content-Type") == "application/vnd.ipld.raw"
    assert r.h("Content-Range") == "bytes 6-16/57" and r.body == dir_block[6:17]
    r = gateway.request(f"/ipfs/{RB}/dir/ascii.txt", RAW_ACCEPT)
    assert r.h("Content-Type") == "application/vnd.ipld.raw" and r.h("Content-Length") == "31"
    assert "attachment;" in r.h("Content-Disposition") and r.h("X-Content-Type-Options") == "nosniff"
    assert r.body == RB_A_DATA and r.h("Etag")
    assert r.h("X-Ipfs-Path") == f"/ipfs/{RB}/dir/ascii.txt" and RB in r.h("X-Ipfs-Roots")
    assert immutable_ok(r.h("Cache-Control"))
    r = gateway.request(f"/ipfs/{RB}/dir/ascii.txt?filename=foobar.bin", RAW_ACCEPT)
    assert 'filename="foobar.bin' in r.h("Content-Disposition")


def test_probe_identity(gateway: LiveGateway) -> None:
    r = gateway.request("/ipfs/bafkqaaa?format=raw")
    assert r.status == 200 and r.body == b""
    r = gateway.request("/ipfs/bafkqaaa?format=car")
    assert r.status == 200
    header, sections = read_car(r.body)
    assert header["roots"][0].cid == c("bafkqaaa") and sections == []

