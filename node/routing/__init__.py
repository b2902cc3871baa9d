"""Content routing of the node (issue 16): the glue between ``bitswap/routing`` and the daemon.

- ``settings.py``: :class:`RoutingSettings` from the config;
- ``service.py``: :class:`RoutingService`, owning the DHT (in the libp2p thread, on the swarm
  host only), the delegated routers, the connection manager, the provide queue and the
  reprovider; the daemon constructs it and calls ``start`` / ``stop``;
- ``fetch_assist.py``: :class:`FetchAssist`, what a fetch that connected peers do not serve
  asks of routing (find providers, dial a few, fetch over HTTP from gateway providers);
- ``connmgr.py``: the connection manager (low/high water marks, grace period);
- ``bootstrap_addrs.py``: ``/dnsaddr`` resolution of the bootstrap list;
- ``kubo_shapes.py``: kubo's ``routing/*`` output objects; ``rpc.py`` (kubo RPC) and
  ``node/cli/routing_cmds.py`` (CLI) the operator surface.
"""
