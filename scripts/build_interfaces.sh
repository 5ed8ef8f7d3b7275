#!/usr/bin/env bash
# Build the openvla_ros_interfaces package (the ExecuteInstruction action) with plain CMake into
# a Python environment's prefix, for machines without a ROS distribution: the PyPI ROS 2 wheels
# provide rosidl and ament. In a ROS distribution use colcon instead (see README, "Install").
#
#   scripts/build_interfaces.sh [VENV]      (default: .venv at the repository root)
#
# Idempotent: does nothing when the installed package is newer than its sources; a changed
# .action file or CMakeLists rebuilds (~10 s).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$(cd "${1:-$root/.venv}" && pwd)
py="$venv/bin/python"
src="$root/openvla_ros_interfaces"
# One build directory per environment (.venv, .venv-jazzy): each has its own ROS 2 wheels.
build="$root/build/$(basename "$venv")/openvla_ros_interfaces"
stamp="$venv/share/openvla_ros_interfaces/.built-from-source"

newest_source=$(find "$src" -type f -newer "$stamp" 2>/dev/null | head -n 1 || true)
if [ -f "$stamp" ] && [ -z "$newest_source" ] \
    && "$py" -c 'from openvla_ros_interfaces.action import ExecuteInstruction' 2>/dev/null; then
  echo "[interfaces] openvla_ros_interfaces is up to date in $venv"
  exit 0
fi

# The build tools come from the `ros` extra of setup.py; check rather than install here.
for tool in cmake ninja; do
  [ -x "$venv/bin/$tool" ] || {
    echo "[interfaces] $venv/bin/$tool is missing: pip install '.[ros]' into $venv first" >&2
    exit 1
  }
done

# A build directory configured for another prefix has that prefix's packages cached: start over.
if [ -f "$build/CMakeCache.txt" ] \
    && ! grep -qx "CMAKE_INSTALL_PREFIX:PATH=$venv" "$build/CMakeCache.txt"; then
  rm -rf "$build"
fi
mkdir -p "$build"
echo "[interfaces] building openvla_ros_interfaces into $venv"
started=$(date +%s)
# The venv's bin first: its cmake, ninja and python, and the rosidl generators' scripts.
export PATH="$venv/bin:$PATH"
# ament's CMake looks up typesupports through the ament index of AMENT_PREFIX_PATH (Jazzy's does
# not fall back to CMAKE_PREFIX_PATH): the environment is the prefix.
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
"$venv/bin/cmake" -S "$src" -B "$build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" \
  -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release >"$build.log" 2>&1 \
  && "$venv/bin/cmake" --build "$build" >>"$build.log" 2>&1 \
  && "$venv/bin/cmake" --install "$build" >>"$build.log" 2>&1 \
  || { tail -n 40 "$build.log" >&2
       echo "[interfaces] build failed; full log: $build.log" >&2; exit 1; }
"$py" -c 'from openvla_ros_interfaces.action import ExecuteInstruction' \
  || { echo "[interfaces] built, but Python cannot import it (see above)" >&2; exit 1; }
touch "$stamp"
echo "[interfaces] built in $(( $(date +%s) - started )) s"
