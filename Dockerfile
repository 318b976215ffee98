# calico-fanout's image: `docker build -t calico-fanout:0.1.0 .` (deploy/ runs it; README,
# "Deploy to Kubernetes"). Two stages: the build stage type-checks and compiles (dist/); the
# runtime stage holds the compiled code and production dependencies only, and runs exactly what
# `npm start` runs: node --enable-source-maps bin/calico-fanout.js serve.

# ---- build -------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` script (tsc) would run before the sources are
# copied; `npm run build` below does that step.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY cmd ./cmd
COPY src ./src
COPY server ./server
COPY snapshot ./snapshot
COPY dedupe ./dedupe
COPY client ./client
RUN npm run build

# ---- runtime -----------------------------------------------------------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# No dev dependencies (typescript, tsx, @types). --ignore-scripts because the package's `prepare`
# script runs tsc, which --omit=dev leaves out; the dependencies need no install scripts
# (msgpackr-extract loads its prebuilt platform package, installed as an optional dependency).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
# The memory datastore's default seed: `docker run -p 5473:5473 calico-fanout:0.1.0` serves the demo cluster.
COPY examples/demo-cluster ./examples/demo-cluster
COPY --from=build /app/dist ./dist
# Files stay root-owned and read-only to the server, which writes nothing to its filesystem.
USER 10001:10001
# client (TYPHA_SERVERPORT), health (TYPHA_HEALTHPORT), metrics (TYPHA_PROMETHEUSMETRICSPORT)
EXPOSE 5473 9098 9093
ENTRYPOINT ["node", "--enable-source-maps", "bin/calico-fanout.js"]
CMD ["serve"]
