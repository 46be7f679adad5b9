#!/usr/bin/env bash
# run.sh [VERSION...]  (default: the oldest supported torch, a middle one, the newest
# pip installs here)
#
# The torch-version matrix: for each VERSION, make or reuse its venv (make-venv.sh), run
# torchvet from this clone (PYTHONPATH) with --json on each target, and compare the
# verdicts with the main torch's (PYTHON_MAIN, default .venv/bin/python) via compare.py
# and limits.toml. Exits non-zero on any undocumented difference or a quickstart run
# that does not exit 0. Reports go to ${TORCH_MATRIX_OUT:-torch-matrix-out}.
set -uo pipefail
cd "$(dirname "$0")/../.."
VERSIONS=("$@"); [[ ${#VERSIONS[@]} -eq 0 ]] && VERSIONS=(2.1.2 2.4.1 2.14.1)
TARGETS=(examples/quickstart examples/buggy bench/project)
MAIN=${PYTHON_MAIN:-.venv/bin/python}
CACHE=${TORCHVET_MATRIX_CACHE:-/var/cache/torchvet-matrix}
OUT=${TORCH_MATRIX_OUT:-torch-matrix-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/runner PYTHONDONTWRITEBYTECODE=1
T0=$(date +%s)
status=0

run() {  # run LABEL PYTHON TARGET
    local json=$OUT/$1-$(basename "$3").json
    "$2" -m torchvet run "$3" --json "$json" -j 1 --no-github > "${json%.json}.txt" 2>&1
    local rc=$?
    echo "::: torch $1 $3: exit $rc ($(tail -n 3 "${json%.json}.txt" | grep -E 'passed|failed' | head -1))"
    if [[ $3 == examples/quickstart && $rc -ne 0 ]]; then status=1; fi
}

for target in "${TARGETS[@]}"; do run main "$MAIN" "$target"; done
for version in "${VERSIONS[@]}"; do
    TORCHVET_MATRIX_CACHE=$CACHE bash scripts/torch-matrix/make-venv.sh "$version" || { status=1; continue; }
    for target in "${TARGETS[@]}"; do
        run "$version" "$CACHE/venv-$version/bin/python" "$target"
        "$MAIN" scripts/torch-matrix/compare.py "$OUT/main-$(basename "$target").json" \
            "$OUT/$version-$(basename "$target").json" || status=1
    done
done
echo "::: torch matrix: ${VERSIONS[*]} in $(( $(date +%s) - T0 ))s, exit $status"
exit $status
