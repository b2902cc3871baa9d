"""The cluster peer of a node, one module per job (the pure rules are in the top-level ``cluster/`` package).

- ``peer.py``: :class:`~node.cluster.peer.ClusterPeer`, the front the APIs call (it only
  delegates), and :func:`~node.cluster.peer.open_cluster`, which builds the components;
- ``interfaces.py``: the typed seams (``PinsetState``, ``TrackerView``, ``ContentFetcher``,
  ``PeerCaller``, ``ClusterAPI``, ``StatsSource``);
- ``pinning.py``: pin, unpin, update, bulk add: admission, allocation, the pinset write;
- ``status.py``: status, status_all (the per-peer stream merge), recover, status counts;
- ``peer_rpc.py``: every peer RPC method other peers may call (transport: ``node/p2p/peer_rpc.py``);
- ``membership.py``: the peer set, peers' identities, ``ID``, peer removal;
- ``connect.py``: connection upkeep and redials; ``fetch.py``: fetching a pin's DAG;
- ``graph.py``: the connection graph; ``upkeep.py``: expiry and re-allocation loops;
  ``uploads.py``: releasing settled uploads;
- ``pinset.py``: the CRDT pinset on the network; ``pinset_routes.py``: its low-level
  ``/api/v0/pinset/*`` routes; ``pintracker.py``: the pin tracker's workers;
  ``informer.py``: metrics on gossipsub; ``errors.py``: the errors the APIs map.
"""
