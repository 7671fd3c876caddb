# judge: the grading service as a container.
#
#   docker build -t judge .
#   docker run -p 8000:8000 -v judge-data:/data judge
#
# BASE_IMAGE must provide python3 with venv (python:3.11-slim, or a Debian bookworm image with
# python3-venv). Without network access, build a wheelhouse first and install from it only:
#   pip wheel . setuptools wheel -w wheelhouse && docker build --build-arg PIP_NO_INDEX=1 .
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG PIP_NO_INDEX=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INDEX=${PIP_NO_INDEX}
RUN python3 -m venv /opt/venv
# wheelhouse* matches nothing in a plain checkout; with a wheelhouse, its wheels land in /src
COPY pyproject.toml README.md wheelhouse* /src/
COPY judge /src/judge
COPY rubrics /src/rubrics
# Installed packages' own test suites (scipy, scikit-learn, numpy: about 120 MB) are never run here
RUN /opt/venv/bin/pip install --find-links /src /src \
    && find /opt/venv/lib -depth -type d -name tests -path "*/site-packages/*" -exec rm -rf {} +

FROM ${BASE_IMAGE}
RUN useradd --system --uid 10001 --home-dir /data --no-create-home judge \
    && mkdir -p /data /rubrics \
    && chown judge /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LITELLM_OFFLINE_MODE=true \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    JUDGE_CACHE_DIR=/data/cache \
    JUDGE_STATE_DIR=/data/state \
    JUDGE_RUBRIC_DIRS='["/rubrics"]'
VOLUME ["/data"]
USER 10001
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
ENTRYPOINT ["judge", "serve", "--host", "0.0.0.0", "--port", "8000"]
