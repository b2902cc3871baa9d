"""The IPFS Cluster REST API of a Pinion peer (routes and JSON shapes of IPFS Cluster 1.1).

``app.py`` builds the aiohttp application over a :class:`node.cluster.interfaces.ClusterAPI` (the cluster peer);
``auth.py`` holds Basic/JWT authentication, CORS and TLS; ``streams.py`` the NDJSON
streams with the ``X-Stream-Error`` trailer; ``add.py`` the ``/add`` upload.
"""
