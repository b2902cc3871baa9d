"""Pinion's cluster layer: the rules of pinset coordination, sans-I/O (no sockets, no threads).

``pin.py`` (the Pin and its CBOR form), ``pinoptions.py``, ``allocator.py`` and
``prepare.py`` (where a pin goes, queue admission), ``reservations.py``, ``duties.py``
(which peer acts alone: expiry, re-allocation), ``trust.py``, ``monitor.py`` (metrics, peer
set, alerts), ``tracker.py`` (the pin tracker's state and rules), ``status.py``,
``uploads.py``, ``errors.py`` (:class:`~cluster.errors.ClusterError` tree) and ``crdt/``
(the Merkle-CRDT: deltas, replica, snapshots). The network side is ``node/cluster/``.
"""
