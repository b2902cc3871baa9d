"""Light paths stay light: the offline CLI, the config check, the gateway and the error modules
import neither py-libp2p nor trio (each costs about a second and 50 MiB per process).

Found twice: node.errors once pulled in bitswap's package, and the config check imported
bitswap.routing.dht_config, whose package loaded the whole network stack: an offline
``pinion car import`` of 64 MiB took 1.48 s instead of 0.39 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _heavy_modules_after(code: str) -> list[str]:
    probe = code + "; import sys; print(sorted(m for m in ('libp2p', 'trio') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return eval(out.strip().splitlines()[-1])  # the printed list of module names, after what the code printed


def test_error_modules_and_gateway_import_no_network_stack() -> None:
    assert _heavy_modules_after("import node.errors, node.gateway, cluster.errors, bitswap.errors") == []


def test_cli_and_config_check_import_no_network_stack() -> None:
    code = "import node.cli.main, node.config as c; c.validate(c.default_config())"
    assert _heavy_modules_after(code) == []
    assert _heavy_modules_after("import bitswap.routing.dht_config, bitswap.routing.provide_queue") == []


def test_init_imports_no_network_stack(tmp_path: Path) -> None:
    # identities are made with PyNaCl directly: py-libp2p was 0.66 s of init's 1.0 s
    argv = ["--repo", str(tmp_path / "repo"), "init", "--profile", "test"]
    code = f"from node.cli.main import main; assert main({argv!r}) == 0"
    assert _heavy_modules_after(code) == []
    assert (tmp_path / "repo" / "config.json").is_file()
    assert _heavy_modules_after("from node.p2p.identity import generate_identity, public_key_b64; public_key_b64(generate_identity()[1])") == []


def test_an_offline_daemon_imports_no_network_stack(tmp_path: Path) -> None:
    # an --offline daemon (many RPC tests start one) starts and stops without py-libp2p or trio
    repo = str(tmp_path / "repo")
    code = (
        "import asyncio; from node.cli.main import main; from node.daemon import Daemon; from node.repo import Repo\n"
        f"assert main(['--repo', {repo!r}, 'init', '--profile', 'test']) == 0; repo = Repo.open({repo!r})\n"
        "async def run():\n    d = Daemon(repo, offline=True); await d.start(); await d.stop()\n"
        "asyncio.run(run()); repo.close()"
    )
    assert _heavy_modules_after(code) == []


def test_bitswap_names_still_import_on_use() -> None:
    assert _heavy_modules_after("from bitswap import Bitswap, fetch_dag") == ["libp2p", "trio"]
