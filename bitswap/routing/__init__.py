"""Content routing for the public IPFS network: finding who has a block, announcing ours, fetching over HTTP.

See ``README.md`` in this folder. Modules are imported directly (this file imports none of
them). The Amino DHT: ``dht`` (the shell on a libp2p host) and its sans-I/O cores
``kad_message``, ``kad_keyspace``, ``kad_table``, ``kad_lookup``, ``kad_server``,
``providers_store``, ``dht_config``. Delegated routing and HTTP retrieval: ``records``,
``delegated``, ``routing_v1_server``, ``http_retrieval``, ``provider_scores``. Providing:
``provide_queue``. Like the rest of ``bitswap/``, nothing here imports the cluster or node layers.
"""
