"""Pinion's block store layer: blocks at rest, and the formats they are read and written in.

``db.py`` / ``kv.py`` / ``layout.py`` (LevelDB, the key-value Protocol the layers above use,
the key namespaces and their owners), ``store.py`` (verified, compressed blocks and import
journals), ``cid.py``, codecs (``dagpb.py``, ``unixfs.py``, ``hamt.py``, ``dagcodecs.py``,
``dagjson.py``, ``cborvalue.py``), ``importer.py`` / ``chunker.py`` (kubo-identical UnixFS
import), ``car.py``, the walks (``unixfs_walk.py`` sans-I/O cores, ``exporter.py``,
``dagwalk.py``, ``refs.py``), ``pins.py`` and ``gc.py`` (local pins, garbage collection) and
``errors.py`` (:class:`~blockstore.errors.BlockstoreError` tree).
"""
