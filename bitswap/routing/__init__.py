"""Content routing for the public IPFS network: finding providers, announcing ours, fetching over HTTP.

Each part is a module of its own with its API in its docstring (``records``, ``delegated``,
``routing_v1_server``, ``http_retrieval``, ``provider_scores``, ``provide_queue``). Like the rest
of ``bitswap/``, nothing here imports the cluster or node layers.
"""
