"""The HTTP gateway: path gateway (deserialized UnixFS) and trustless gateway (raw blocks, CAR).

``app.py`` routes and answers; ``walk.py`` drives the shared UnixFS walk cores of
``blockstore/unixfs_walk.py`` over a :class:`BlockSource` (``source.py``) that may fetch over the
network; ``unixfs_http.py`` and ``car_http.py`` turn the walks into bodies; ``params.py`` parses
requests; ``errors.py`` holds :class:`GatewayError` (an HTTP status and a message); ``limits.py`` is
the one middleware (URL length, per-client requests, metrics). Small answers are cheap because of
three bounded caches (``lru.py``): ``nodecache.py`` (a node decoded once per request, small ones
once per CID), ``answers.py`` (prebuilt answers of plain ``/ipfs/<cid>`` requests) and
``cidtext.py`` (CID text conversions).
"""

from .app import make_gateway_app
from .errors import GatewayError
from .source import BlockNotFound, BlockSource, StoreBlockSource

__all__ = ["make_gateway_app", "BlockSource", "BlockNotFound", "StoreBlockSource", "GatewayError"]
