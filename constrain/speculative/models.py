"""Language-model adapters for speculative decoding: the target and draft models.

``CachedLM`` wraps a ``transformers`` causal LM with a KV cache that follows the token sequence it
is asked about: every call crops the cache to the longest common prefix with the previous call and
feeds only the rest (one forward pass), so rolling back after a rejected draft is a ``crop``.
``CallableLM`` wraps a plain function ``prefix -> logits`` (toy models in tests). Both expose

    lm.logits(ids, n_last) -> float64 ndarray [n_last, V]   # next-token logits after ids[:len-n_last+1+j]
    lm.crop(n)                                             # keep the KV of the first n ids only
    lm.cache_length                                         # ids whose keys/values are held

``layer_skip_model`` builds the self-speculative draft: the same weights, first ``n_layers``
decoder layers, final norm and LM head.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from constrain.decode import crop_cache


class CachedLM:
    """A ``transformers`` causal LM over a growing/shrinking token sequence, batch 1, with a KV cache."""

    def __init__(self, model: Any):
        params = inspect.signature(model.forward).parameters
        self.model = model
        self.cache_name = "cache" if "cache" in params else "past_key_values"
        self.can_keep = "logits_to_keep" in params
        self.device = next(model.parameters()).device
        self.cache: Any = None
        self._ids: list[int] = []  # ids whose keys/values the cache holds
        self.n_forward = 0
        self.n_tokens_fed = 0

    @property
    def cache_length(self) -> int:
        if self.cache is None:
            return 0
        return int(self.cache.get_seq_length())

    def crop(self, n: int) -> None:
        """Keep the keys/values of the first ``n`` ids (drop the rest)."""
        n = min(n, len(self._ids))
        if self.cache is not None and not crop_cache(self.cache, n):
            self.cache, n = None, 0
        del self._ids[n:]

    def logits(self, ids: Sequence[int], n_last: int = 1) -> np.ndarray:
        import torch

        ids = [int(t) for t in ids]
        if not 1 <= n_last <= len(ids):
            raise ValueError(f"n_last={n_last} for {len(ids)} ids")
        keep, limit = 0, min(len(self._ids), len(ids) - n_last)
        while keep < limit and self._ids[keep] == ids[keep]:
            keep += 1
        self.crop(keep)
        keep = len(self._ids)
        feed = torch.tensor([ids[keep:]], dtype=torch.long, device=self.device)
        positions = torch.arange(keep, len(ids), device=self.device)[None, :]
        kwargs = {self.cache_name: self.cache, "use_cache": True}
        if self.can_keep:
            kwargs["logits_to_keep"] = n_last
        with torch.no_grad():
            out = self.model(input_ids=feed, position_ids=positions, **kwargs)
        cache = getattr(out, self.cache_name, None)
        self.cache = cache if cache is not None else out.past_key_values
        self._ids = ids
        self.n_forward += 1
        self.n_tokens_fed += len(ids) - keep
        return out.logits[0, -n_last:].double().cpu().numpy()


class CallableLM:
    """A function ``prefix -> logits[V]`` as an LM (no cache; for toy models and tests)."""

    def __init__(self, fn: Callable[[Sequence[int]], Any]):
        self.fn = fn
        self.n_forward = 0
        self._length = 0

    @property
    def cache_length(self) -> int:
        return self._length

    def crop(self, n: int) -> None:
        self._length = min(self._length, n)

    def logits(self, ids: Sequence[int], n_last: int = 1) -> np.ndarray:
        ids = list(ids)
        self.n_forward += 1
        self._length = len(ids)
        rows = [np.asarray(self.fn(ids[: len(ids) - n_last + 1 + j]), dtype=np.float64) for j in range(n_last)]
        return np.stack(rows)


def as_lm(model: Any) -> CachedLM | CallableLM:
    """``model`` as an LM adapter: adapters pass through, ``transformers`` models get a KV cache."""
    if isinstance(model, (CachedLM, CallableLM)):
        return model
    if hasattr(model, "forward") and hasattr(model, "parameters"):
        return CachedLM(model)
    if callable(model):
        return CallableLM(model)
    raise TypeError(f"cannot use {type(model).__name__} as a language model")


def layer_skip_model(model: Any, n_layers: int) -> Any:
    """The self-speculative draft of a Llama-family ``*ForCausalLM``: its first ``n_layers`` layers.

    Returns a shallow copy that shares every weight with ``model`` (no memory): the embedding, the
    first ``n_layers`` decoder layers (``model.model.layers``), the final norm and the LM head. Its
    config is a copy with ``num_hidden_layers = n_layers`` so the decoder loop and the KV cache
    cover those layers only. ``model`` itself is not changed.
    """
    import torch

    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise TypeError("layer skipping needs a model with decoder layers at model.model.layers (Llama family)")
    total = len(layers)
    if not 1 <= n_layers <= total:
        raise ValueError(f"n_layers must be in 1..{total}, got {n_layers}")
    config = copy.copy(inner.config)
    config.num_hidden_layers = n_layers
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[:n_layers]
    new_inner = copy.copy(inner)
    new_inner._modules = dict(inner._modules)  # never write into the original's module dict
    new_inner.config = config
    new_inner.layers = torch.nn.ModuleList(list(layers)[:n_layers])
    draft = copy.copy(model)
    draft._modules = dict(model._modules)
    draft.model = new_inner
    draft.config = config
    return draft
