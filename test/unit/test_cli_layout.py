# Copyright 2026 openvla_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The package's layers and the command line's shape: one cli module per verb, imports downward."""

import ast
import importlib
from pathlib import Path

import pytest

from openvla_ros.cli import main, SUBCOMMAND_MODULES

PACKAGE = Path(__file__).resolve().parents[2] / 'openvla_ros'
#: Each layer and the layers it must not import (imports only go cli -> tools -> node -> core).
FORBIDDEN = {'core': ('node', 'tools', 'cli'), 'node': ('tools', 'cli'), 'tools': ('cli',)}
VERBS = ('predict', 'prepare-image', 'make-test-model', 'demo', 'make-bag', 'evaluate',
         'replay', 'benchmark', 'doctor', 'serve', 'sim-arm', 'run')


def _imports(path):
    """Yield (line, module) for every import in a file, function-level ones included."""
    tree = ast.parse(path.read_text(encoding='utf-8'))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module, [alias.name for alias in node.names]


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_imports_only_go_downward(layer):
    wrong = []
    for path in sorted((PACKAGE / layer).glob('*.py')):
        for line, module, _ in _imports(path):
            parts = module.split('.')
            if parts[0] == 'openvla_ros' and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                wrong.append(f'{path.relative_to(PACKAGE)}:{line} imports {module}')
    assert not wrong, '\n'.join(wrong)


def test_no_private_name_is_imported_across_modules():
    wrong = []
    for path in sorted(PACKAGE.rglob('*.py')):
        for line, module, names in _imports(path):
            if module.startswith('openvla_ros'):
                wrong += [f'{path.relative_to(PACKAGE)}:{line} imports {module}.{name}'
                          for name in names if name.startswith('_')]
    assert not wrong, '\n'.join(wrong)


def test_every_verb_is_one_cli_module_with_register_and_run():
    assert all(name.startswith('openvla_ros.cli.') for name in SUBCOMMAND_MODULES)
    for name in SUBCOMMAND_MODULES:
        module = importlib.import_module(name)
        assert callable(module.register) and callable(module.run), name
    # Module cli/make_bag.py is the verb make-bag, and so on: one module, one verb.
    assert tuple(n.rsplit('.', 1)[1].replace('_', '-') for n in SUBCOMMAND_MODULES) == VERBS


@pytest.mark.parametrize('verb', VERBS)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as done:
        main([verb, '--help'])
    assert done.value.code == 0
    assert f'usage: openvla-ros {verb}' in capsys.readouterr().out


def test_no_verb_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert 'COMMAND' in capsys.readouterr().out


def test_top_level_help_names_every_verb(capsys):
    with pytest.raises(SystemExit) as done:
        main(['--help'])
    assert done.value.code == 0
    out = capsys.readouterr().out
    description = ' '.join(out.split('\n\n')[1].split())   # the paragraph after the usage
    assert description.startswith('OpenVLA vision-language-action policy tools:')
    listed = description.split(':', 1)[1].rstrip('.').replace(' ', '').split(',')
    assert listed == list(VERBS)
