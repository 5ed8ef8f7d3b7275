"""OpenVLA vision-language-action policy for ROS 2, served by vLLM."""
