# The control-plane image: the operator and the API from one image, told apart by the
# command (the Helm chart sets it per Deployment):
#   python -m podtask_api        the API (the default), on PODTASK_API_PORT (8080)
#   python -m podtask_operator   the operator
#
# Build it from the repository root, after making the wheelhouse there (see docs/ci.md):
#   make wheelhouse
#   docker build -t ghcr.io/podtask/podtask:0.1.0 .

# The same pinned base as runner-image/Dockerfile; bump both together.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE}
# The chart runs both with a read-only root filesystem: nothing here writes outside /tmp.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
# The wheelhouse, as in runner-image/Dockerfile: mounted for this step only. The operator
# and the API are podtask's `control-plane` extra.
RUN --mount=type=bind,source=wheelhouse,target=/wheelhouse \
    pip install --no-cache-dir --no-index --find-links /wheelhouse 'podtask[control-plane]'
RUN groupadd --system --gid 10001 podtask \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin podtask
WORKDIR /app
USER 10001:10001
EXPOSE 8080
CMD ["python", "-m", "podtask_api"]
