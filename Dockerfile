# One image for the bot and the runner (the command picks the role).
FROM node:20-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

# Install exact dependencies first so code edits don't bust the layer cache.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts=false \
    && npm cache clean --force

COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY tsconfig.json ./

# Run as the unprivileged user the node image ships.
RUN mkdir -p /data && chown node:node /data
USER node
ENV DATA_DIR=/data

ENTRYPOINT ["node", "bin/comicmaster.js"]
CMD ["bot"]
