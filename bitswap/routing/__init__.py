"""Content routing: finding who has a block, and telling the network what we have.

See ``README.md`` in this folder. Modules are imported directly (this file
imports none of them): ``bitswap.routing.dht`` (the Amino DHT on a libp2p
host) and its sans-I/O cores ``kad_message``, ``kad_keyspace``, ``kad_table``,
``kad_lookup``, ``kad_server``, ``providers_store``, ``dht_config``.
"""
