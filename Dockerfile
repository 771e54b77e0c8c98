# syntax=docker/dockerfile:1
# One image, two commands: `flowhooks serve` (the default) and `flowhooks worker`.
#
#   docker build -t flowhooks:0.1.0 .
#   docker run -p 8000:8000 -e FLOWHOOKS_REDIS_URL=... -v "$PWD/flowhooks.yaml:/etc/flowhooks/flowhooks.yaml:ro" flowhooks:0.1.0
#   docker run -e HEALTHCHECK_URL=http://127.0.0.1:9100/metrics ... flowhooks:0.1.0 worker --metrics-port 9100
#
# The builder turns the project and its dependencies into wheels and installs them into a
# virtualenv at /opt/flowhooks; the final stage copies only that virtualenv onto the same slim
# base, so it holds no compiler, no pip and no source tree. Every dependency ships wheels for
# linux amd64 and arm64; should one ever need compiling, install the compiler in the builder.

FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY receiver ./receiver
COPY workers ./workers
COPY flowhooks ./flowhooks

# /wheels holds flowhooks and exactly its dependencies. The virtualenv gets no pip of its own:
# the builder's pip installs into it (--python).
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/flowhooks \
    && pip --python /opt/flowhooks/bin/python install --no-index --no-deps /wheels/*.whl \
    && /opt/flowhooks/bin/flowhooks --help > /dev/null


FROM python:3.11.13-slim-bookworm

LABEL org.opencontainers.image.title="flowhooks" \
      org.opencontainers.image.description="Receive Etlworks webhooks, keep every one, and route them." \
      org.opencontainers.image.licenses="Apache-2.0"

# Bytecode was compiled when the wheels were installed: nothing is written at run time, so the
# root filesystem can be read-only.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/flowhooks/bin:${PATH}" \
    FLOWHOOKS_CONFIG=/etc/flowhooks/flowhooks.yaml

RUN groupadd --system --gid 10001 flowhooks \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin flowhooks

COPY --from=builder /opt/flowhooks /opt/flowhooks

USER 10001:10001
WORKDIR /tmp
EXPOSE 8000

# The receiver's /healthz. A worker has no HTTP port unless it runs with --metrics-port N:
# set HEALTHCHECK_URL=http://127.0.0.1:N/metrics for it, or run it with --no-healthcheck.
# Kubernetes ignores HEALTHCHECK: the Helm chart sets probes of its own for both.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:8000/healthz'), timeout=4)"]

ENTRYPOINT ["flowhooks"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
