"""The ``pinion`` command line and the API clients it uses.

- :mod:`.main`: the parser and :func:`main` (the ``pinion`` console script, ``python -m node.cli``);
- one module per command group: :mod:`.node_cmds` (init, daemon, id, swarm, version),
  :mod:`.content_cmds` (add, cat, ls, car, block), :mod:`.pin_cmds` (pin, repo),
  :mod:`.state_cmds` (state), :mod:`.ctl` (``pinion ctl``, as ``ipfs-cluster-ctl``),
  :mod:`.top` (``pinion top``), :mod:`.config_cli` (``pinion config``);
- :mod:`.node_api`: which node a command talks to (the daemon's RPC or the repo);
- the clients: :mod:`.kubo_client` (the daemon's kubo RPC), :mod:`.cluster_client`
  (the IPFS Cluster REST API), :mod:`.multipart_body` (the upload bodies both send);
- :mod:`.progress`, :mod:`.argtypes`, :mod:`.errors`: what the command groups share.

Imports point one way: main -> command groups -> node_api / clients / progress.
"""

from .main import main

__all__ = ["main"]
