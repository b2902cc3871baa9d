#!/bin/sh
# Initialise the repo on first start, find the bootstrap peer, run the daemon.
#   PINION_BOOTSTRAP_HOST: a peer's host name (e.g. pinion-0.pinion); its cluster peer ID is read from
#   its REST API (/id) and the daemon joins /dns4/<host>/tcp/9096/p2p/<id>. Unset: no bootstrap.
set -e
if [ ! -f "$PINION_PATH/config.json" ]; then
  pinion init
fi
if [ -n "$PINION_BOOTSTRAP_HOST" ] && [ "${PINION_BOOTSTRAP_HOST%%.*}" != "$(hostname)" ]; then
  ADDR=$(python - <<PY
import json, os, sys, time, urllib.request
host = os.environ["PINION_BOOTSTRAP_HOST"]
for _ in range(120):
    try:
        ident = json.load(urllib.request.urlopen(f"http://{host}:9094/id", timeout=5))
        print(f"/dns4/{host}/tcp/9096/p2p/{ident['id']}")
        sys.exit(0)
    except OSError:
        time.sleep(2)
sys.exit(f"bootstrap peer {host} did not answer on :9094/id")
PY
)
  exec pinion daemon --bootstrap "$ADDR" "$@"
fi
exec pinion daemon "$@"
