# One image for every prodflow service; docker-compose.yml picks the app factory per service.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv
WORKDIR /app
COPY . .
RUN uv sync --locked --no-dev
ENV PATH="/app/.venv/bin:$PATH" \
    PRODFLOW_DATA_DIR=/data
VOLUME /data
