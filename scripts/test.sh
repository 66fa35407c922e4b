#!/usr/bin/env bash
# Install everything napari-unet's tests need on a fresh Debian/Ubuntu machine, then run them.
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# napari's canvas needs OpenGL: a virtual X server (Xvfb) and Mesa.
if ! command -v xvfb-run >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0 libxcb-cursor0 \
        libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0 libxcb-render-util0 \
        libxcb-image0 libxcb-xinerama0 libxcb-xkb1 libdbus-1-3 libfontconfig1 libglib2.0-0 \
        python3-venv >/dev/null
fi

PYTHON=${PYTHON:-python3}
# A Debian/Ubuntu system Python refuses pip installs (PEP 668): use a virtual environment.
if $PYTHON -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'
then
    [ -x .venv/bin/python ] || $PYTHON -m venv .venv
    PYTHON=.venv/bin/python
fi
# PyTorch first, so the package's torch>=2.10 needs nothing more (the project's machines take
# its CPU build from a local wheel; elsewhere on Linux pip may take the CUDA build).
$PYTHON -m pip install -q torch==2.13.0
$PYTHON -m pip install -q -e '.[testing]'
# A CUDA build brings Triton, whose LLVM crashes napari drawn by Mesa under Xvfb (README,
# Quick start); napari-unet does not use it.
if $PYTHON -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("triton") is None)'
then
    echo "scripts/test.sh: uninstalling triton (it crashes napari under Xvfb; napari-unet does not use it)"
    $PYTHON -m pip uninstall -y -q triton
fi

xvfb-run -a -s "-screen 0 1600x1200x24" $PYTHON -m pytest "$@"
