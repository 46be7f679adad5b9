#!/usr/bin/env bash
# make-venv.sh VERSION [VENV_DIR]
#
# A venv with torch==VERSION (the PyPI build, used on CPU) and torchvet's runtime
# dependencies, torch pinned by a constraints file so no later pip call replaces it.
# torch's CUDA libraries come from the real nvidia-* wheels, only those torch links at
# import (the CUDA runtime, cupti, cudnn, cublas, cufft, curand, cusparse, nvjitlink,
# nccl, nvtx); where torch does not import with that set, every wheel torch requires is
# installed. Reused as is when its torch is VERSION and its last build finished.
# Default VENV_DIR: ${TORCHVET_MATRIX_CACHE:-/var/cache/torchvet-matrix}/venv-VERSION.
set -euo pipefail

VERSION=${1:?usage: make-venv.sh VERSION [VENV_DIR]}
VENV=${2:-${TORCHVET_MATRIX_CACHE:-/var/cache/torchvet-matrix}/venv-$VERSION}
PYTHON=${PYTHON:-python3}
T0=$(date +%s)
say() { echo "[make-venv $VERSION +$(( $(date +%s) - T0 ))s] $*"; }

stamp="torch==$VERSION"
if [[ -x $VENV/bin/python && -f $VENV/.torch-matrix-ok && "$(cat "$VENV/.torch-matrix-ok")" == "$stamp" ]] \
    && "$VENV/bin/python" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$VERSION')" 2>/dev/null; then
    say "reusing $VENV"
    exit 0
fi

rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
PY=$VENV/bin/python
CONSTRAINTS=$VENV/torch-constraints.txt
# torch < 2.3 is built against numpy 1.x: numpy 2 breaks torch.from_numpy there
numpy_pin=$("$PY" -c "import sys; v = tuple(int(p) for p in sys.argv[1].split('.')[:2]); print('numpy<2' if v < (2, 3) else 'numpy')" "$VERSION")
printf 'torch==%s\n%s\n' "$VERSION" "$numpy_pin" > "$CONSTRAINTS"
# pip lists torch's uninstalled requirements as conflicts after --no-deps: expected here
quiet() { "$@" 2> >(grep -vE "is ignored: it is neither|requires (nvidia|triton|cuda)|dependency resolver does not|dependency conflicts" >&2); }
pip=(quiet "$PY" -m pip --disable-pip-version-check -q)

"${pip[@]}" install --no-deps "torch==$VERSION"
say "torch installed; its light dependencies and the nvidia wheels it links"
mapfile -t needed < <("$PY" - <<'PYEOF'
import re
from importlib.metadata import requires
from pip._vendor.packaging.requirements import Requirement
LINKED = re.compile(r"nvidia-(cuda-runtime|cuda-cupti|cudnn|cublas|cufft|curand|cusparse|"
                    r"nvjitlink|nccl|nvtx)(-cu\d+)?$")
for line in requires("torch") or []:
    req = Requirement(line)
    if req.marker and not req.marker.evaluate({"extra": ""}):
        continue
    name = req.name.lower().replace("_", "-")
    if re.match(r"(nvidia-|triton|cuda-|pytorch-triton)", name) and not LINKED.match(name):
        continue
    print(str(req))
PYEOF
)
"${pip[@]}" install -c "$CONSTRAINTS" "${needed[@]}"
if ! "$PY" -c "import torch" 2>/dev/null; then
    say "torch does not import with the linked set: installing every wheel torch requires"
    "${pip[@]}" install -c "$CONSTRAINTS" "torch==$VERSION"
fi
"${pip[@]}" install -c "$CONSTRAINTS" click "junit-xml>=1.9" "$numpy_pin"

"$PY" - "$VERSION" <<'PYEOF'
import sys, torch
assert torch.__version__.split("+")[0] == sys.argv[1], torch.__version__
x = torch.randn(8, 8)
torch.from_numpy(x.numpy())
print(f"torch {torch.__version__} imports; cuda available: {torch.cuda.is_available()}")
PYEOF
echo "$stamp" > "$VENV/.torch-matrix-ok"
say "done: $VENV ($(du -sh "$VENV" | cut -f1))"
