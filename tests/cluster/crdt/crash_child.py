"""Child process of the crash tests: writes to a replica until killed.

``python -m tests.cluster.crdt.crash_child put REPO`` queues pins with batching on
and prints ``ack <i>`` after each acknowledged one. ``... receive REPO SRC``
applies SRC's heads to REPO, printing ``start`` first.
"""

from __future__ import annotations

import sys
import time

from blockstore.db import open_db
from blockstore.store import BlockStore
from cluster.crdt import Replica
from tests.cluster.crdt.helpers import key


def main() -> None:
    """Run the mode named on the command line."""
    mode, repo = sys.argv[1], sys.argv[2]
    db = open_db(repo)
    if mode == "put":
        r = Replica(db, BlockStore(db), peer_id="child", max_batch_size=50, max_batch_age=3600.0, max_queue_size=10**9)
        i = 0
        while True:
            r.put(key(i), b"value-%d" % i, now=0.0)
            print(f"ack {i}", flush=True)
            i += 1
    elif mode == "receive":
        src_db = open_db(sys.argv[3])
        src = BlockStore(src_db)
        heads = Replica(src_db, src, peer_id="src").heads()
        r = Replica(db, BlockStore(db), peer_id="child", trusted_peers=["*"])
        print("start", flush=True)
        for head, _h in heads:
            r.receive(head, "src", src.get)
        print("done", flush=True)
        time.sleep(3600)  # wait to be killed
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
