#!/bin/sh
# Initialise the repo on first start, find the bootstrap peer, run the daemon.
#
# First start: `pinion init --api-credentials` writes a random password for the kubo RPC, REST and
# pinning service APIs into $PINION_PATH/config.json (mode 0600; user admin). The image serves the
# APIs on 0.0.0.0, and the daemon refuses to do that without credentials. Read the password with
#   pinion config get ClusterAPI.BasicAuthCredentials --show-secrets   (or the config file)
# or give your own as JSON in PINION_CLUSTERAPI_BASICAUTHCREDENTIALS / PINION_API_BASICAUTHCREDENTIALS
# (e.g. from a Kubernetes Secret); the environment overrides the file.
#
# PINION_BOOTSTRAP_HOST: a peer's host name (e.g. pinion-0.pinion); its cluster peer ID is read from
# its REST API (/id, authenticated with this peer's ClusterAPI credentials: the peers share them) and
# the daemon joins /dns4/<host>/tcp/9096/p2p/<id> (/ip4/ for an IPv4 address).
# PINION_BOOTSTRAP_API_PORT and PINION_BOOTSTRAP_CLUSTER_PORT change the ports (9094, 9096).
# Unset: no bootstrap.
set -e
if [ ! -f "$PINION_PATH/config.json" ]; then
  pinion init --api-credentials
fi
if [ -n "$PINION_BOOTSTRAP_HOST" ] && [ "${PINION_BOOTSTRAP_HOST%%.*}" != "$(hostname)" ]; then
  ADDR=$(python - <<'PY'
import base64, ipaddress, json, os, sys, time, urllib.error, urllib.request

from node import config

host = os.environ["PINION_BOOTSTRAP_HOST"]
api_port = os.environ.get("PINION_BOOTSTRAP_API_PORT", "9094")
cluster_port = os.environ.get("PINION_BOOTSTRAP_CLUSTER_PORT", "9096")
creds = config.load(os.environ["PINION_PATH"])["ClusterAPI"]["BasicAuthCredentials"] or {}
headers = {}
if creds:
    user, password = next(iter(creds.items()))
    headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
try:
    proto = "ip4" if ipaddress.ip_address(host).version == 4 else "ip6"
except ValueError:
    proto = "dns4"
request = urllib.request.Request(f"http://{host}:{api_port}/id", headers=headers)
for _ in range(120):
    try:
        ident = json.load(urllib.request.urlopen(request, timeout=5))
        print(f"/{proto}/{host}/tcp/{cluster_port}/p2p/{ident['id']}")
        sys.exit(0)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            sys.exit(f"bootstrap peer {host} refused /id ({exc.code}): give every peer the same ClusterAPI.BasicAuthCredentials")
        time.sleep(2)
    except OSError:
        time.sleep(2)
sys.exit(f"bootstrap peer {host} did not answer on :{api_port}/id")
PY
)
  exec pinion daemon --bootstrap "$ADDR" "$@"
fi
exec pinion daemon "$@"
