# The service, and the simulator of the compose profile `sim`: Node.js 20, production dependencies,
# TypeScript run by tsx (as `npm start` does). Data (registry, spool) lives in the /data volume.
FROM node:20-bookworm-slim AS dependencies
WORKDIR /app
# better-sqlite3 builds from source when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    WASTE_DATA_DIR=/data \
    WASTE_INFLUX_START_PRIVATE=false
COPY --from=dependencies /app/node_modules node_modules
COPY package.json tsconfig.json ./
COPY services services
COPY device-sim device-sim
COPY scripts scripts
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
# MQTT, MQTT over WebSocket, HTTP API (/api/v1, /docs, /metrics)
EXPOSE 1883 8083 6808 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s CMD node -e "fetch('http://127.0.0.1:8080/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# A 96 MiB semi-space for V8's young generation, as npm start gives it: docs/alerts.md, "Speed".
CMD ["node", "--max-semi-space-size=96", "--import", "tsx", "services/main.ts"]
