"""The kubo RPC subset (``/api/v0``): routes (``app``), multipart parsing and upload streaming."""
