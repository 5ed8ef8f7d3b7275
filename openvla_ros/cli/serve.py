# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""``openvla-ros serve``: vLLM's OpenAI-compatible server with the OpenVLA template."""

from __future__ import annotations

import argparse
from typing import Any

from openvla_ros.core.engine import DEFAULT_API_KEY_ENV
from openvla_ros.tools.serve import (DEFAULT_HOST, DEFAULT_MAX_MODEL_LEN, DEFAULT_MAX_NUM_SEQS,
                                     DEFAULT_PORT, DEFAULT_STARTUP_TIMEOUT_S, DEV_MODE_ENV,
                                     serve)


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand: vLLM's OpenAI-compatible server for remote robots."""
    parser = subparsers.add_parser(
        'serve', help='serve OpenVLA over HTTP (vLLM OpenAI-compatible server) for robots',
        description='Start vLLM\'s OpenAI-compatible server with the OpenVLA chat template and '
                    'settings, wait until it is healthy, print its url, and run until '
                    'SIGINT/SIGTERM. Robots connect with the remote engine (RemotePolicy).')
    parser.add_argument('--model', help='checkpoint directory or hub id (e.g. '
                                        'openvla/openvla-7b)')
    parser.add_argument('--host', default=DEFAULT_HOST,
                        help='address to bind (default %(default)s: this machine only; use '
                             '0.0.0.0 for robots on the network: needs an API key)')
    parser.add_argument('--port', type=int, default=DEFAULT_PORT,
                        help='TCP port (default %(default)s)')
    parser.add_argument('--max-num-seqs', type=int, default=DEFAULT_MAX_NUM_SEQS,
                        help='requests the engine batches at once (default %(default)s; raise '
                             'it on a GPU serving several robots)')
    parser.add_argument('--dtype', default='auto',
                        help='auto (bfloat16 on a GPU or native-bf16 CPU, float32 otherwise), '
                             'bfloat16, float16 or float32 (default %(default)s)')
    parser.add_argument('--max-model-len', type=int, default=DEFAULT_MAX_MODEL_LEN,
                        help='context in tokens: 256 image + prompt + 7 (default %(default)s)')
    parser.add_argument('--gpu-memory-utilization', type=float, default=None,
                        help="share of accelerator memory to reserve (vLLM's default; 0.3 of "
                             'the CPU memory node on CPU)')
    parser.add_argument('--api-key-env', default=DEFAULT_API_KEY_ENV, metavar='NAME',
                        help='environment variable holding the API key clients must send on '
                             'every path but /health (default %(default)s; no key required '
                             'when it is unset, allowed on loopback only)')
    parser.add_argument('--ssl-certfile', default=None, metavar='PEM',
                        help='server certificate (PEM) for https; with --ssl-keyfile. Clients '
                             'trusting a private CA pass its certificate as --ca-file / '
                             'engine.ca_file')
    parser.add_argument('--ssl-keyfile', default=None, metavar='PEM',
                        help='private key (PEM) of --ssl-certfile')
    parser.add_argument('--insecure-no-api-key', action='store_true',
                        help='INSECURE: allow binding an address other than loopback without '
                             'an API key (anyone who reaches the port can use the model)')
    parser.add_argument('--insecure-dev-env', action='store_true',
                        help='INSECURE: pass ' + ', '.join(DEV_MODE_ENV) + ' to the server '
                             '(they open unauthenticated development endpoints); dropped '
                             'otherwise')
    parser.add_argument('--startup-timeout', type=float, default=DEFAULT_STARTUP_TIMEOUT_S,
                        metavar='S', help='give up when not healthy after S seconds '
                                          '(default %(default)s)')
    parser.add_argument('--print-template', action='store_true',
                        help='print the chat template path (for --chat-template of a server '
                             'started by hand) and exit')
    parser.add_argument('--print-command', action='store_true',
                        help='print the equivalent `vllm serve ...` line and exit')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the server (or print its template path / command line)."""
    return serve(args.model, host=args.host, port=args.port, max_num_seqs=args.max_num_seqs,
                 dtype=args.dtype, max_model_len=args.max_model_len,
                 gpu_memory_utilization=args.gpu_memory_utilization,
                 api_key_env=args.api_key_env, startup_timeout=args.startup_timeout,
                 print_template=args.print_template, print_command=args.print_command,
                 ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
                 insecure_no_api_key=args.insecure_no_api_key,
                 insecure_dev_env=args.insecure_dev_env)
