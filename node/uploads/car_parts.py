"""The CARs of a multipart upload, read from the pipe as :meth:`node.core.CoreAPI.import_cars` takes them.

RPC ``dag/import`` sends any number of CAR parts, REST ``/add?format=car`` exactly
one; :class:`CarParts` hands each part's data on as it arrives (no re-chunking) and
remembers each part's ``Content-Disposition``.
"""

from __future__ import annotations

from collections.abc import Iterator

from .errors import UploadError
from .pipe import ItemPipe, PartReader, UploadAborted
from .multipart import PartStart


class CarParts:
    """Iterate to get each CAR part's chunks; ``at_most``: refuse more parts than this."""

    def __init__(self, pipe: ItemPipe, *, at_most: int | None = None) -> None:
        self._pipe = pipe
        self._at_most = at_most
        #: the ``Content-Disposition`` header of each part seen, in order
        self.dispositions: list[str] = []

    def __iter__(self) -> Iterator[Iterator[bytes]]:
        while True:
            ev = self._pipe.get()
            if ev is None:
                break
            if not isinstance(ev, PartStart):
                raise UploadAborted("multipart data outside a part")
            if self._at_most is not None and len(self.dispositions) >= self._at_most:
                raise UploadAborted("send one CAR per request" if self._at_most == 1 else f"send at most {self._at_most} CARs per request")
            self.dispositions.append(ev.headers.get("content-disposition", ""))
            reader = PartReader(self._pipe)
            yield iter(reader.next_data, None)
            reader.drain()  # anything after the CAR data (a CARv2 index) is not read
        if not self.dispositions:
            raise UploadError("no CAR was sent (expected a multipart part named 'file')")
