"""The kubo RPC subset (``/api/v0``): routes and handlers (``app``, ``pins``, ``dag``, ``refs``, ``get``),
kubo's options and errors (``options``), responses (``respond``); uploads go through :mod:`node.uploads`."""
