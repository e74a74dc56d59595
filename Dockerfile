# The isthmus image of the two-cluster demo (docker-compose.yml): the server, and the CLI that the
# one-shot setup and peering jobs run (deploy/*.sh). Build: docker build -t isthmus .
#
# The build stage compiles; the image holds only the compiled dist/, the runtime dependencies and
# package.json (the version): no TypeScript sources, no compiler, no tsx.
FROM node:20.19-bookworm-slim AS build

WORKDIR /app
# `npm ci` runs `prepare`: it generates src/gen from proto/ with buf + ts-proto (dev dependencies)
# and compiles src/ to dist/ (tsconfig.build.json), here only src/gen, so this layer stays cached
# while only the hand-written sources change. The build after them compiles the rest.
COPY package.json package-lock.json buf.yaml buf.gen.yaml tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY proto ./proto
# The web UI is compiled by `prepare` too, into ui/dist/ (served at /ui/).
COPY ui ./ui
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npm run build \
 && rm dist/.tsbuildinfo && find dist ui/dist -name '*.map' -delete \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20.19-bookworm-slim

# A young generation sized for a push to thousands of proxies (README "Performance"): fewer
# scavenges in a round, for a few KB more memory per proxy. `-e NODE_OPTIONS=` sets another.
ENV NODE_OPTIONS=--max-semi-space-size=32
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/ui/dist ./ui/dist
COPY bin/isthmus.js ./bin/
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
