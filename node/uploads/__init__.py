"""One upload path for every HTTP server that takes files (kubo RPC ``add``/``dag/import``, cluster REST ``/add``).

- :mod:`.multipart`: the sans-I/O ``multipart/form-data`` parser and kubo's part-name rules;
- :mod:`.pipe`: the bounded hand-off of parsed parts from the event loop to one worker thread;
- :mod:`.drive`: :func:`~.drive.drive_upload`, reading a request body into a worker (admission,
  ``Datastore.MaxUploadSize`` 413, ``HTTP.BodyTimeout`` 408, rollback on any failure);
- :mod:`.unixfs_add`: the UnixFS add worker, returning a typed :class:`~.unixfs_add.AddResult`;
- :mod:`.car_parts`: the CAR parts of a body, for :meth:`node.core.CoreAPI.import_cars`
  (every CAR import of the node goes through that one call);
- :mod:`.errors`: :class:`~.errors.UploadError`, mapped once by each server.
"""
