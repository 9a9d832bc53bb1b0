#!/usr/bin/env bash
# GPU check of toscore, at most 10 minutes on one CUDA device:
#   1. the smoke profile of the notebooks with device cuda (figures/smoke/);
#   2. the engine benchmark on the GPU at fp32, tf32 and bf16 (bench_engine.py). The
#      tf32 and bf16 runs also compare a minima barcode with fp32 (target: within 1e-3).
# Exits non-zero when no CUDA device is present or any step fails or runs out of time.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TOTAL_S=600      # the whole check
SMOKE_S=240      # step 1
ENGINE_S=110     # each of the three runs of step 2

usage() {
    cat <<EOF
Usage: benchmarks/gpu_check.sh [--write]

Runs, on a machine with a CUDA device, within ${TOTAL_S} s:
  python -m toscore.reproduce --profile smoke -p device cuda      (${SMOKE_S} s at most)
  python benchmarks/bench_engine.py --device cuda --precision P    (P = fp32, tf32, bf16;
                                                                    ${ENGINE_S} s at most each)
and prints their tables.

Options:
  --write     pass --write to bench_engine.py (bench_engine_cuda_<P>.{csv,md} next to it)
  -h, --help  show this help

Environment:
  PYTHON      interpreter with toscore installed (default: $ROOT/.venv/bin/python when
              it exists, else python3)
EOF
}

WRITE=()
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        --write) WRITE=(--write) ;;
        *) echo "gpu_check.sh: unknown argument '$arg'; see --help" >&2; exit 2 ;;
    esac
done

if [[ -n "${PYTHON:-}" ]]; then
    PY="$PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
    PY="$ROOT/.venv/bin/python"
else
    PY=python3
fi

if ! "$PY" -c 'import toscore' 2>/dev/null; then
    echo "gpu_check.sh: error: $PY cannot import toscore; run ./reproduce.sh --list once" \
         "(it sets up .venv) or set PYTHON to an interpreter with toscore installed" >&2
    exit 2
fi

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    version="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo unknown)"
    echo "gpu_check.sh: error: no CUDA device: torch $version reports" \
         "torch.cuda.is_available() == False on this machine. This check needs an NVIDIA GPU" \
         "with a working driver and a CUDA build of torch; nothing was run." >&2
    exit 3
fi

cd "$ROOT" || exit 2
export MPLBACKEND=Agg
START=$SECONDS
failures=()

# Runs "$@" with at most $1 seconds, never past the whole check's budget.
run_step() {
    local limit=$1 name=$2
    shift 2
    local left=$(( TOTAL_S - (SECONDS - START) ))
    (( limit > left )) && limit=$left
    if (( limit < 10 )); then
        echo "==> $name: skipped, the ${TOTAL_S} s budget is spent" >&2
        failures+=("$name (no time left)")
        return
    fi
    echo "==> $name (at most ${limit} s): $*"
    timeout --kill-after=10 "$limit" "$@"
    local status=$?
    if (( status == 124 || status == 137 )); then
        failures+=("$name (timed out after ${limit} s)")
    elif (( status != 0 )); then
        failures+=("$name (exit code $status)")
    fi
}

"$PY" -c 'import torch; print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)'

run_step "$SMOKE_S" "smoke profile on cuda" \
    "$PY" -m toscore.reproduce --profile smoke -p device cuda
for precision in fp32 tf32 bf16; do
    run_step "$ENGINE_S" "bench_engine $precision" \
        "$PY" benchmarks/bench_engine.py --device cuda --precision "$precision" "${WRITE[@]}"
done

echo "==> gpu_check.sh finished in $(( SECONDS - START )) s"
if (( ${#failures[@]} )); then
    printf 'failed: %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "all steps passed"
