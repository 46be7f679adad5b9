# The torchvet GitHub Action: Python, CPU torch and torchvet. The entrypoint installs
# the repository under test and runs `torchvet run` (see entrypoint.py, action.yml).
#
#   docker build -t torchvet-action .
#   docker build --build-arg TORCH_VERSION=2.4.1 --build-arg PYTHON_VERSION=3.12 .
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

# The CPU wheel index keeps the image free of the multi-GB CUDA build.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# numpy: torch warns on every import without it, and most projects need it anyway.
ARG NUMPY_VERSION=2.2.6

LABEL org.opencontainers.image.title="torchvet" \
      org.opencontainers.image.description="Vet PyTorch models on every pull request" \
      org.opencontainers.image.source="https://github.com/torchvet/torchvet" \
      org.opencontainers.image.licenses="Apache-2.0"

# TORCHVET_TORCH_INDEX_URL: where the action installs another torch from when its input
# torch-index-url is empty (the default; see runner/torchvet/action/inputs.py).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TORCHVET_TORCH_INDEX_URL=${TORCH_INDEX_URL}

# git: projects versioned by setuptools-scm and the like need it to install.
# hadolint ignore=DL3008
RUN if ! command -v git >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends git \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# torch first: the heaviest layer, rebuilt only when its version or index changes.
RUN python -m pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
    && python -c "import torch; print('torch', torch.__version__)"

# torchvet from the build context (.dockerignore keeps it to the package sources).
COPY . /opt/torchvet/
RUN python -m pip install /opt/torchvet "numpy==${NUMPY_VERSION}" \
    && rm -rf /opt/torchvet/build /opt/torchvet/runner/*.egg-info \
    && torchvet --version

ENTRYPOINT ["python", "/opt/torchvet/entrypoint.py"]
