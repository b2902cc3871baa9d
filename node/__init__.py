"""Pinion's node layer: the process, its servers and the cluster peer (imports everything below).

Rooms: ``core.py`` (operations every API shares), ``daemon.py`` (starts the servers and
services), ``config.py`` (every key with its default and check), ``repo.py``, ``errors.py``
(the node's error tree and :func:`~node.errors.status_hint`), ``fetching.py`` /
``content.py`` (blocks from the network on the event loop); packages ``cli/`` (the
``pinion`` command), ``kuborpc/`` (kubo's /api/v0), ``restapi/`` (IPFS Cluster's REST API),
``pinsvc/`` (Pinning Service API), ``gateway/``, ``uploads/`` (the one upload path),
``p2p/`` (libp2p hosts, peer RPC, the asyncio<->trio bridge), ``routing/`` (content
routing glue) and ``cluster/`` (the cluster peer; its pure rules live in the top-level
``cluster`` package).
"""
