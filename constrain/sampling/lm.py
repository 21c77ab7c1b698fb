"""Next-token models for the samplers: a tiny protocol, a callable adapter, a transformers adapter.

A :class:`NextTokenModel` answers one question: the next-token scores after a prefix of *generated*
token ids (the prompt is the model's business). The samplers normalise what they get with a
float64 log-softmax after dividing by the temperature, so an implementation may return
log-probabilities or raw logits. The width may exceed the vocabulary's size; columns beyond it are
never allowed but still count in the normaliser (the distribution is the full-vocabulary one).

Torch is imported only by :class:`HFCausalLM`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from constrain.decode import crop_cache


@runtime_checkable
class NextTokenModel(Protocol):
    """``logprobs(prefix) -> float[V]``: next-token log-probabilities (or logits) after ``prefix``."""

    def logprobs(self, prefix: Sequence[int]) -> np.ndarray: ...


def log_softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """float64 ``log_softmax(x / temperature)``; ``-inf`` entries stay ``-inf``."""
    x = np.asarray(x, dtype=np.float64)
    if temperature != 1.0:
        x = x / temperature
    m = np.max(x)
    if not np.isfinite(m):
        raise ValueError("the model gave no finite score to any token")
    z = x - m
    return z - np.log(np.sum(np.exp(z)))


class CallableLM:
    """Adapts ``fn(prefix_token_ids) -> float[V]`` to :class:`NextTokenModel`.

    ``prompt_ids`` (default: none) are prepended to every prefix handed to ``fn``.
    """

    def __init__(self, fn: Callable[[Sequence[int]], Any], prompt_ids: Sequence[int] = ()):
        self.fn = fn
        self.prompt_ids = [int(t) for t in prompt_ids]
        self.n_calls = 0

    def logprobs(self, prefix: Sequence[int]) -> np.ndarray:
        self.n_calls += 1
        return np.asarray(self.fn(self.prompt_ids + list(prefix)), dtype=np.float64)


class HFCausalLM:
    """A ``transformers`` causal LM after a fixed prompt, with KV-cache reuse between calls.

    Each call feeds only the tokens after the longest common prefix with the previous call: the
    cache is cropped back to that prefix (never below the prompt), so the prompt is encoded once
    and a sampler descending a trie pays one token per new node. ``n_forward`` / ``n_tokens_fed``
    count the work done.
    """

    def __init__(self, model: Any, prompt_ids: Sequence[int]):
        from constrain.decode import BatchForward

        self.model = model
        self.prompt_ids = [int(t) for t in prompt_ids]
        if not self.prompt_ids:
            raise ValueError("a transformers model needs a non-empty prompt (at least a BOS token)")
        self._forward = BatchForward(model)
        self._ids: list[int] = []  # the ids whose keys/values the cache holds
        self.device = next(model.parameters()).device
        self.n_forward = 0
        self.n_tokens_fed = 0

    def logprobs(self, prefix: Sequence[int]) -> np.ndarray:
        import torch

        full = self.prompt_ids + [int(t) for t in prefix]
        keep = 0
        limit = min(len(self._ids), len(full) - 1)
        while keep < limit and self._ids[keep] == full[keep]:
            keep += 1
        if self._forward.cache is not None and not crop_cache(self._forward.cache, keep):
            self._forward.cache = None
        if self._forward.cache is None:
            keep = 0
        feed = torch.tensor([full[keep:]], dtype=torch.long, device=self.device)
        with torch.no_grad():
            logits = self._forward(feed)[0, -1]
        self._ids = full
        self.n_forward += 1
        self.n_tokens_fed += len(full) - keep
        return logits.double().cpu().numpy()


def is_hf_model(model: Any) -> bool:
    """Whether ``model`` looks like a torch ``nn.Module`` causal LM (has ``forward`` and ``parameters``)."""
    return hasattr(model, "forward") and hasattr(model, "parameters") and not hasattr(model, "logprobs")
