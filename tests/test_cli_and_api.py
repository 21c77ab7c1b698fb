"""Public surface: exported names, lazy torch imports, CLI help."""

from __future__ import annotations

import subprocess
import sys

import pytest

import constrain


def test_exported_members():
    assert sorted(constrain.__all__) == sorted(set(constrain.__all__))
    for name in constrain.__all__:
        assert getattr(constrain, name) is not None, name


def test_import_does_not_pull_torch():
    code = "import sys, constrain; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_cli_help_explains_itself():
    out = subprocess.run(
        [sys.executable, "-m", "constrain", "generate", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--regex" in out and "SmolLM2" in out and "examples:" in out


def test_cli_requires_a_constraint():
    proc = subprocess.run([sys.executable, "-m", "constrain", "generate", "hi"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--regex" in proc.stderr


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        constrain.nope  # noqa: B018


def test_generate_is_the_function_even_after_importing_its_module():
    import constrain.generate as module  # noqa: F401

    assert callable(constrain.generate) and constrain.generate.__name__ == "generate"
