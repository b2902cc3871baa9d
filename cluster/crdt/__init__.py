"""The Merkle-CRDT pinset core: deltas, the add-wins set in LevelDB, replicas.

See ``README.md`` in this folder for the design, and :class:`.replica.Replica`
for the entry point.
"""

from .delta import Delta, DeltaError, decode_delta
from .orset import Change, ORSet
from .replica import DELETE, PUT, MissingBlock, ReceiveQueueFull, Received, Replica
from .snapshot import SnapshotError

__all__ = [
    "DELETE",
    "PUT",
    "Change",
    "Delta",
    "DeltaError",
    "MissingBlock",
    "ORSet",
    "ReceiveQueueFull",
    "Received",
    "Replica",
    "SnapshotError",
    "decode_delta",
]
