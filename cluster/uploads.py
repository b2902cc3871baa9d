"""When an upload's cluster pin is settled, so its blocks no longer need an upload marker.

Content uploaded to a peer (the REST API's ``/add``) is kept from garbage
collection by a marker (``blockstore/uploads.py``) until this rule says the
cluster no longer needs this peer to keep it on the upload's behalf:

- the pin is in the pinset and allocated to this peer (or to every peer), and
  this peer's tracker holds it: from then on the tracker's records and the
  local pin keep it;
- the pin is in the pinset, allocated elsewhere, and every allocated peer
  reports it ``pinned``: the copies the cluster asked for exist;
- the pin is not in the pinset and the upload is older than ``grace``: it was
  refused, removed, or the daemon stopped between the upload and the pin.

Pure: the caller gathers the facts (``ClusterPeer.release_uploads``).
"""

from __future__ import annotations

from collections.abc import Mapping

from .pin import Pin

#: seconds an upload whose pin is not in the pinset is kept anyway (a pin being written, a restart)
GRACE = 600.0


def settled(
    pin: Pin | None,
    *,
    me: str,
    age: float,
    tracked_here: bool,
    statuses: Mapping[str, str] | None = None,
    grace: float = GRACE,
) -> bool:
    """Whether the upload of ``pin``'s CID (``age`` seconds old) may lose its marker.

    ``tracked_here``: this peer's tracker has a pin record for the CID; ``statuses``:
    the allocated peers' statuses (peer -> status), when they were asked."""
    if pin is None:
        return age > grace
    if not pin.allocations or me in pin.allocations:
        return tracked_here
    if statuses is None:
        return False
    return all(statuses.get(peer) == "pinned" for peer in pin.allocations)
