#!/usr/bin/env bash
# Set up a virtual environment for toscore and run every notebook with papermill.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
PYTHON="${PYTHON:-python3}"
VENV="${TOSCORE_VENV:-$ROOT/.venv}"

usage() {
    cat <<EOF
Usage: ./reproduce.sh [--profile P] [--only NAME]... [-p NAME VALUE]... [--list] [--dry-run] [--fresh]

Creates or reuses a virtual environment, installs toscore into it (pip install -e .,
only when pyproject.toml changed since the last install), registers its Jupyter
kernel, then executes the notebooks notebooks/NN_name.ipynb in number order with
papermill (python -m toscore.reproduce).

Options (passed to python -m toscore.reproduce):
  --profile P       parameter profile, a folder of notebooks/profiles (default: cpu)
  --only NAME       run only this notebook; NAME is its stem (02_to_score_depth_width)
                    or the part after the number (to_score_depth_width); repeatable
  -p NAME VALUE     set a parameter in every selected notebook that has it, after the
                    profile file; VALUE is converted to the type of the default
  --list            list the notebooks and profiles, then exit
  --dry-run         check every parameter, then execute each notebook only up to its
                    cell tagged plan, with dry_run=True: every configuration is built
                    (on synthetic data where a dataset is missing) and its table of
                    sizes and memory estimates printed; writes only runs/<profile>/dry-run/
  --fresh           recompute everything instead of reusing the minima and barcodes
                    saved in runs/<profile>/cache/ by an earlier run
  -h, --help        show this help

Resuming: minima and barcodes are saved as soon as they are computed. After an
interruption (Ctrl-C, a killed process) run the same command again: saved results
are reused (checked by checksum) and only the missing ones are computed.

Parameters of a notebook: its parameters cell, overridden by
notebooks/profiles/<profile>/<stem>.yaml, overridden by -p.
Outputs: figures/<profile>/ (figures, CSVs, README.md written by 06_summary),
figures/<profile>/MANIFEST.json (commit, date, versions, device, wall time per
notebook; runs with --only update their notebooks' entries), runs/<profile>/notebooks/
(executed copies), runs/<profile>/timings.json (wall time per notebook).

Environment:
  TOSCORE_CACHE_DIR folder of saved minima and barcodes (default: runs/<profile>/cache)
  TOSCORE_VENV      virtual environment to create or reuse (default: $ROOT/.venv)
  PYTHON            interpreter that creates it (default: python3; needs >= 3.10)
EOF
}

for arg in "$@"; do
    if [[ "$arg" == "-h" || "$arg" == "--help" ]]; then
        usage
        exit 0
    fi
done

step() { printf '==> %s\n' "$*"; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found; install Python >= 3.10 or set PYTHON" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "error: toscore needs Python >= 3.10; $PYTHON is $("$PYTHON" -c 'import platform; print(platform.python_version())')" >&2
    exit 1
fi

VENV="$("$PYTHON" -c 'import os, sys; print(os.path.abspath(sys.argv[1]))' "$VENV")"
VPY="$VENV/bin/python"
STAMP="$VENV/.toscore-install-stamp"

if [[ -x "$VPY" ]]; then
    step "reusing virtual environment $VENV"
else
    step "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall when pyproject.toml is newer than the last install, or when the
# environment imports toscore from another checkout (or not at all).
installed_from="$("$VPY" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("toscore")
print(pathlib.Path(spec.origin).resolve().parents[1] if spec else "")' 2>/dev/null || true)"
if [[ ! -f "$STAMP" || "$ROOT/pyproject.toml" -nt "$STAMP" || "$installed_from" != "$ROOT" ]]; then
    step "installing toscore and its dependencies (pip install -e .)"
    "$VPY" -m pip install -e "$ROOT"
    touch "$STAMP"
else
    step "toscore already installed in $VENV"
fi

KERNEL_SPEC="$VENV/share/jupyter/kernels/python3/kernel.json"
if ! grep -qF "\"$VPY\"" "$KERNEL_SPEC" 2>/dev/null; then
    step "registering the python3 Jupyter kernel of $VENV"
    "$VPY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (toscore)" >/dev/null
fi

step "running notebooks: python -m toscore.reproduce $*"
cd "$ROOT"
export MPLBACKEND=Agg
exec "$VPY" -m toscore.reproduce "$@"
