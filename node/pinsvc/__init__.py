"""The IPFS Pinning Service API of a Pinion peer (``app.py``), over the cluster peer."""
