# One image for every Jobbers process. Default: the manager.
#   worker:  node packages/worker/dist/bin.js
#   cleaner: node packages/cleaner/dist/bin.js --state completed --older-than 7d
FROM node:20-bookworm-slim AS build
WORKDIR /app
ENV TURBO_TELEMETRY_DISABLED=1 \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false
COPY package.json package-lock.json tsconfig.json tsconfig.base.json turbo.json ./
COPY packages/core/package.json packages/core/
COPY packages/manager/package.json packages/manager/
COPY packages/worker/package.json packages/worker/
COPY packages/cleaner/package.json packages/cleaner/
COPY packages/client/package.json packages/client/
COPY examples/package.json examples/
RUN npm ci
COPY packages packages
COPY examples examples
RUN npm run build

FROM node:20-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false
COPY package.json package-lock.json ./
COPY packages/core/package.json packages/core/
COPY packages/manager/package.json packages/manager/
COPY packages/worker/package.json packages/worker/
COPY packages/cleaner/package.json packages/cleaner/
COPY packages/client/package.json packages/client/
COPY examples/package.json examples/
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/packages/core/dist packages/core/dist
COPY --from=build /app/packages/manager/dist packages/manager/dist
COPY --from=build /app/packages/worker/dist packages/worker/dist
COPY --from=build /app/packages/cleaner/dist packages/cleaner/dist
COPY --from=build /app/examples/dist examples/dist
USER node
EXPOSE 8080 9464
CMD ["node", "packages/manager/dist/bin.js"]
