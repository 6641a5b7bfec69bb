# syntax=docker/dockerfile:1
# The gateway's container image: built in one stage, run from a second with production dependencies only.
#
# Node 22 LTS: the project supports Node >= 20.19, but Node 20 left support on 2026-04-30, so an image built today
# would get no security fixes. Every pinned dependency (http-proxy-3 1.23.x, opossum 9, prom-client 15) supports 22.
# Debian bookworm "slim": glibc, apt and the smallest official Debian variant (no curl: the health check uses node).
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are here; the build runs below.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE}
# MALLOC_TRIM_THRESHOLD_: glibc keeps up to 64 MiB of freed heap instead of shrinking and regrowing it around every
# burst of 64 KiB socket read buffers; that churn cost up to half the CPU of proxying 16 KiB responses
# (docs/operations.md, "Memory allocator").
ENV NODE_ENV=production \
    GATEWAY_CONFIG=/etc/gateway/gateway.yaml \
    GATEWAY_HEALTHCHECK_URL=http://127.0.0.1:8002/healthz \
    MALLOC_TRIM_THRESHOLD_=67108864
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; --ignore-scripts because `prepare` (the build) needs the dev dependencies.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY gateway.schema.json ./
# The bundled sample topology, to try the image: `docker run --init -p 8002:8002 IMAGE start -c /app/gateway.yaml`
# starts the sample services of examples/ as managed upstreams (their commands are relative to that file).
COPY gateway.yaml ./
COPY examples ./examples
# No config is used unless you say so: mount yours at $GATEWAY_CONFIG (docs/operations.md). Without one the
# gateway exits 1, naming the missing file.
USER node
EXPOSE 8002
# node, not curl (the slim image has none). Set GATEWAY_HEALTHCHECK_URL when /healthz is elsewhere (another
# port, or admin.listen).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["node", "-e", "fetch(process.env.GATEWAY_HEALTHCHECK_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form, no shell in between: under `docker run --init` (docs/operations.md) tini is PID 1 and forwards
# `docker stop`'s SIGTERM to node; without --init node is PID 1 and gets it itself. Either way the gateway drains.
ENTRYPOINT ["node", "/app/bin/gateway.js"]
CMD ["start"]
