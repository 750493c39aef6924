# syntax=docker/dockerfile:1.7
# Image for the meta consumer: the services environment plus torch (dependency group "meta"),
# to run the trained RL policy. Everything else runs from services.Dockerfile.
#
#   docker build -f deploy/docker/meta.Dockerfile -t btcmeta-meta .
#   docker run --rm btcmeta-meta python -m meta_consumer run
#
# The command decides the service (as in docker-compose.kafka.yml and the Helm chart):
#   python -m tick_emitter run | python -m strategy_consumers run <name> | python -m executor run
#   python -m bridge run | python -m ops migrate | python -m ops topics
# Configuration comes only from BTCMETA_* environment variables at run time; no secret is ever
# passed as a build argument or written into a layer.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: resolve the locked environment into /app/.venv ------------------------------------
FROM ${PYTHON_IMAGE} AS builder
# Same uv as scripts/python-env.sh, from PyPI.
ARG UV_VERSION=0.13.9
# Dependency group(s) of pyproject.toml to install (meta.Dockerfile uses "meta").
ARG UV_GROUP=meta
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# Only the lock inputs first: this layer is rebuilt when dependencies change, not when code does.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --group "${UV_GROUP}" --no-install-project \
 && /app/.venv/bin/python -c "import confluent_kafka, fastavro, sqlalchemy, pydantic_settings, torch"

# ---- runtime: slim Python, the venv and the source, nothing else --------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
# librdkafka ships inside the confluent-kafka wheel and psycopg[binary] bundles libpq: no apt
# packages are needed at run time.
RUN groupadd --system --gid "${UID}" btcmeta \
 && useradd --system --uid "${UID}" --gid btcmeta --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin btcmeta
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
# Source owned by root and read-only for the service user (.dockerignore keeps the context to the
# packages the services import, the registry, the schemas and the migrations).
COPY . /app
ENV PATH=/app/.venv/bin:$PATH \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BTCMETA_LOG_JSON=true \
    BTCMETA_METRICS_PORT=9100 \
    BTCMETA_BRIDGE__HOST=0.0.0.0 \
    BTCMETA_BRIDGE__PORT=8080
USER ${UID}:${UID}
# 9100: Prometheus /metrics of every long-running service (also its liveness signal);
# 8080: the bridge's HTTP API.
EXPOSE 9100 8080
# Health: a 2xx from BTCMETA_HEALTH_URL (default: /healthz/live of common/health.py). The bridge sets
# BTCMETA_HEALTH_URL to its own health route; one-shot commands (ops) do not need one.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('BTCMETA_HEALTH_URL') or 'http://127.0.0.1:%s/healthz/live' % os.environ['BTCMETA_METRICS_PORT'], timeout=4)"]
CMD ["python", "-m", "meta_consumer", "run"]
