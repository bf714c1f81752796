# syncd container image.
#
#   docker build -t syncd .
#   docker run -d --name syncd -v syncd-data:/data -v "$PWD/config:/config:ro" syncd
#   docker exec syncd syncd status          # or: syncd resync, syncd sync --dry-run, ...
#
# Two stages: the first builds wheels (syncd's own and its dependencies'), the second installs them into a
# clean python:3.11-slim, so no build tool, source tree or pip cache reaches the runtime image.
# tests/container/test_image_equivalent.py runs what this image runs (the installed wheel, this ENV, WORKDIR,
# ENTRYPOINT, CMD and HEALTHCHECK, as an unprivileged user) in a fresh venv, since no Docker engine is
# reachable where syncd is developed; `make lint` lints this file with hadolint.

# ---- build: wheels of syncd and of every dependency ----------------------------------------------------------
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the wheel is made of (.dockerignore keeps everything else, secrets and databases included, out of
# the build context). The test copies exactly these sources before building its own wheel.
COPY pyproject.toml README.md ./
COPY syncd ./syncd
COPY migrations ./migrations

# `pip wheel .` builds syncd's wheel (with migrations/ and its script.py.mako, so the image can upgrade its
# database) plus one wheel per dependency, resolved once here against pyproject.toml's ranges.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- runtime --------------------------------------------------------------------------------------------------
FROM python:3.11-slim

LABEL org.opencontainers.image.title="syncd" \
      org.opencontainers.image.description="Keeps IntelePeer SmartCommunicator agents in step with Microsoft Entra ID groups"

# Non-root: syncd needs no privilege (it only makes outbound HTTPS calls, writes its SQLite database and
# listens on an unprivileged port), so a compromise of it or of a dependency gets no root in the container.
# The uid/gid are fixed (10001, above any host's ordinary users) so that host directories or volumes can be
# prepared with `chown 10001:10001`. Its home is /data: the only place it may write.
RUN groupadd --gid 10001 syncd \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /data --shell /usr/sbin/nologin syncd \
    && mkdir -p /data /config \
    && chown 10001:10001 /data \
    && chmod 0750 /data

# Install from the build stage's wheels only (--no-index: nothing is fetched or resolved again); the bind
# mount keeps the wheels themselves out of every layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels --root-user-action=ignore \
        --disable-pip-version-check /wheels/syncd-*.whl

# /config holds syncd.toml (mount it read-only); SYNCD_CONFIG names it, so every command, including
# `docker exec <container> syncd resync`, finds the configuration without flags. Any key can still be set as
# SYNCD_<SECTION>__<KEY>, and secrets as *_FILE pointing at /run/secrets/... (see config/syncd.example.toml).
# The database URL is absolute (four slashes), so it does not depend on the working directory.
ENV PYTHONUNBUFFERED=1 \
    SYNCD_CONFIG=/config/syncd.toml \
    SYNCD_DATABASE__URL=sqlite:////data/syncd.db

# /data: the state (SQLite database with its WAL and shared-memory files) lives in a volume, so it outlives the
# container and an image upgrade; it is the working directory, so relative paths in a config land there too.
# The chown above precedes VOLUME on purpose: a new named volume starts as a copy of the image's /data,
# owner included, so the unprivileged user can write to it. (With PostgreSQL, /data stays empty.)
VOLUME /data
WORKDIR /data

# The admin API (/healthz /readyz /metrics /status /resync). admin.listen defaults to 127.0.0.1:8080, which
# the HEALTHCHECK below reaches from inside the container; to publish the port, set
# SYNCD_ADMIN__LISTEN=0.0.0.0:8080 (and an admin token) and map it.
EXPOSE 8080

# Health: /healthz answers 200 while the daemon's process and event loop are alive, so Docker (and compose's
# depends_on: condition: service_healthy) sees a hung daemon, not just a dead one. The slim image has no curl,
# so Python's urllib does it; the empty ProxyHandler ignores HTTP(S)_PROXY, which a corporate setup may set for
# Graph and which must not capture a request to 127.0.0.1. Any failure (refused, timeout, non-2xx) raises, and
# exits 1: unhealthy. The start period covers migrations and the first cycle's start.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:8080/healthz', timeout=4)"]

# The syncd user, by number: Kubernetes' runAsNonRoot can only verify a numeric user (hadolint DL3066).
USER 10001:10001

# syncd is PID 1: it handles SIGTERM itself (stops scheduling, settles in-flight writes, records the run, exits
# 0), and starts no child processes, so no init shim is needed. `docker run IMAGE sync --dry-run` and the like
# run a one-off command instead of the daemon.
ENTRYPOINT ["syncd"]
CMD ["run"]
