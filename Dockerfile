# The torchvet GitHub Action: Python, CPU torch and torchvet. The entrypoint installs
# the repository under test and runs `torchvet run` as the unprivileged `torchvet`
# account (see entrypoint.py, action.yml, docs/security.md).
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

# The account the repository's code runs as (docs/security.md): fixed ids, no home, no
# shell, no supplementary group (so not the Docker socket's). torch, torchvet and this
# image's files stay root's; no setuid binary is left for it to gain privileges through.
ARG TORCHVET_UID=10001
RUN /usr/sbin/groupadd --system --gid "${TORCHVET_UID}" torchvet \
    && /usr/sbin/useradd --system --uid "${TORCHVET_UID}" --gid "${TORCHVET_UID}" --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin torchvet \
    && find / -xdev -type f -perm /6000 -exec chmod a-s {} + \
    && python -c "import pwd; assert pwd.getpwnam('torchvet').pw_uid == ${TORCHVET_UID}"

# -I: the entrypoint (root) imports nothing from the working directory (the workspace)
# or HOME, and reads no PYTHON* variable.
ENTRYPOINT ["python", "-I", "/opt/torchvet/entrypoint.py"]
