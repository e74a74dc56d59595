# The isthmus image of the two-cluster demo (docker-compose.yml): the server, and the CLI that the
# one-shot setup and peering jobs run (deploy/*.sh). Build: docker build -t isthmus .
FROM node:20.19-bookworm-slim

WORKDIR /app
# `npm ci` runs `prepare`, which generates src/gen from proto/ with buf + ts-proto (dev
# dependencies); afterwards only the runtime dependencies are kept (tsx runs the TypeScript).
COPY package.json package-lock.json buf.yaml buf.gen.yaml ./
COPY scripts ./scripts
COPY proto ./proto
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY src ./src
RUN printf '#!/bin/sh\nexec node /app/bin/isthmus.js "$@"\n' > /usr/local/bin/isthmus \
 && chmod 0755 /usr/local/bin/isthmus \
 && isthmus --version

# The embedded store (LMDB) and, for the demo's setup jobs, the Envoy bootstraps they write:
# docker-compose.yml mounts named volumes here, which take this ownership when first mounted.
RUN mkdir -p /data /bootstrap && chown node:node /data /bootstrap
USER node
# HTTP API, xDS (gRPC), peering (gRPC over TLS)
EXPOSE 8500 8502 8503
ENTRYPOINT ["isthmus"]
CMD ["server", "--data-dir", "/data"]
