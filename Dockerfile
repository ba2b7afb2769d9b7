# whop-twenty-bridge: the admin page, the Whop webhook endpoint and the hourly reconciliation,
# served by uvicorn on port 8000. Build: `docker build -t whop-twenty-bridge .`
# Run next to Twenty: docker-compose.twenty.yml.

# --- build: install the package and its dependencies into a virtualenv -----------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Dependencies first, so a code change does not reinstall them: exactly the releases pinned in
# requirements.lock (scripts/lock), each checked against its sha256, as CI tested them.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY schema ./schema
COPY bridge ./bridge
# --no-deps: everything the package needs came from the lock above; pip check proves it.
# python -I leaves /src off sys.path, so the check loads the installed package and its
# bridge/_schema, as the image will.
RUN pip install --no-deps . \
    && pip check \
    && whop-twenty-bridge --help >/dev/null \
    && python -I -c "from bridge.twenty.schema import load_data_model; load_data_model()"

# --- run: the virtualenv only, as an unprivileged user ----------------------------------------
FROM python:3.11-slim

# The bridge's own state (connections, encrypted tokens, webhook inbox, sync runs) lives in the
# /data volume unless DATABASE_URL points elsewhere (docker-compose.twenty.yml uses PostgreSQL).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8 \
    DATABASE_URL=sqlite:////data/whop-twenty-bridge.db

RUN groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --home-dir /data --no-create-home --shell /usr/sbin/nologin bridge \
    && mkdir /data \
    && chown bridge:bridge /data

COPY --from=build /opt/venv /opt/venv

# The working directory is the volume, so a relative path (a SQLite file, say) also lands there.
WORKDIR /data
VOLUME ["/data"]
# Numeric, so an orchestrator can verify "not root" without reading /etc/passwd.
USER 10001:10001

EXPOSE 8000

# /healthz answers as soon as the app runs (liveness); curl is not in the slim image, Python is.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

CMD ["whop-twenty-bridge", "serve", "--host", "0.0.0.0", "--port", "8000"]
