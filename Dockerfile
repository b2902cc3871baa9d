# Pinion: one IPFS Cluster peer with its own IPFS node.
#   docker build -t pinion .
#   docker run -v pinion-data:/data -e PINION_CLUSTER_SECRET=<64 hex> -p 9094:9094 -p 8080:8080 pinion
# The APIs listen on 0.0.0.0 here, so they need credentials: the first start generates a random
# password (user admin) in /data/config.json; see it with
#   docker exec <container> pinion config get ClusterAPI.BasicAuthCredentials --show-secrets
# or pass your own: -e PINION_CLUSTERAPI_BASICAUTHCREDENTIALS='{"admin":"..."}' (and PINION_API_...).
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 pinion
WORKDIR /app
COPY pyproject.toml README.md ./
COPY blockstore ./blockstore
COPY bitswap ./bitswap
COPY cluster ./cluster
COPY node ./node
RUN pip install --no-cache-dir . && rm -rf /root/.cache
COPY deploy/docker-entrypoint.sh /usr/local/bin/pinion-entrypoint
RUN chmod 0755 /usr/local/bin/pinion-entrypoint

# The repo (config, identities, LevelDB) lives on a volume.
ENV PINION_PATH=/data
# In a container the HTTP APIs must listen beyond loopback (the defaults are 127.0.0.1); the daemon
# serves the RPC, REST and pinning service APIs there only with credentials (the entrypoint makes them).
ENV PINION_ADDRESSES_API=/ip4/0.0.0.0/tcp/5001 \
    PINION_ADDRESSES_GATEWAY=/ip4/0.0.0.0/tcp/8080 \
    PINION_ADDRESSES_METRICS=/ip4/0.0.0.0/tcp/8888 \
    PINION_ADDRESSES_CLUSTERAPI=/ip4/0.0.0.0/tcp/9094 \
    PINION_ADDRESSES_PINSVCAPI=/ip4/0.0.0.0/tcp/9097
RUN mkdir -p /data && chown pinion:pinion /data
VOLUME /data
USER pinion

# swarm (libp2p), cluster (private libp2p), kubo RPC, gateway, metrics, cluster REST API, pinning service API
EXPOSE 4001 9096 5001 8080 8888 9094 9097

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9094/health', timeout=4).status == 204 else 1)"

ENTRYPOINT ["pinion-entrypoint"]
