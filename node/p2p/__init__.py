"""libp2p inside Pinion: identities, the asyncio/trio bridge, py-libp2p fixes and the two hosts.

From asyncio (the daemon)::

    from node.p2p.service import P2PService, P2PSettings
    p2p = P2PService(P2PSettings.from_config(cfg), db=repo.db)   # db: peers remembered across restarts
    await p2p.start()                        # swarm host (+ cluster host when Cluster.Secret is set)
    await p2p.id("swarm")                    # {"ID","PublicKey","Addresses","AgentVersion","Protocols"}
    p2p.peer_info("swarm")                   # the same, synchronous snapshot (no PublicKey/AgentVersion)
    await p2p.connect("/ip4/…/tcp/4001/p2p/12D3…", "swarm")   # -> peer ID; raises hosts.P2PError
    await p2p.peers("swarm")                 # [{"Peer", "Addr"}]
    await p2p.disconnect(peer_id, "swarm"); await p2p.ping(peer_id, "swarm")
    sub = await p2p.subscribe(topic); await p2p.publish(topic, data); await sub.get()  # cluster gossipsub
    await p2p.start_libp2p_service(bitswap.run)   # a trio service next to the hosts
    await p2p.run_in_libp2p(trio_fn, *args)        # any trio coroutine function, result back in asyncio
    await p2p.stop()

On the trio side, ``p2p.swarm`` / ``p2p.cluster`` are ``hosts.HostHandle`` objects
(``host`` is the running py-libp2p host; ``new_stream``, ``set_stream_handler``,
``connect``, ``peers``, ``subscribe``, ``publish``).

Modules: ``identity`` (keys and peer IDs), ``bridge`` (``TrioThread``),
``compat`` (py-libp2p 0.8.1 fixes), ``hosts``, ``peerstore`` (``PeerBook``),
``service`` (``P2PService``).
"""
