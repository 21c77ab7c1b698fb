"""Single-sequence forward passes over an immutable KV cache (a tuple of per-layer (K, V) tensors).

KID perturbs the cached keys/values and DeAL forks the cache for rollouts, so both keep the
cache as plain tensors and wrap it in a fresh ``DynamicCache`` for every forward pass. A forward
pass concatenates new tensors (``torch.cat``); the tensors handed in are never written to, so a
cache value can be reused, perturbed (``K + dK`` keeps the autograd graph) or forked freely.
"""

from __future__ import annotations

import inspect
from typing import Any

Past = tuple  # tuple[tuple[Tensor, Tensor], ...], shapes (batch, kv_heads, seq, head_dim)


class KVForward:
    """``logits, past = kv(input_ids, past)`` for a causal LM (transformers 4.5x / 5.x caches)."""

    def __init__(self, model: Any):
        params = inspect.signature(model.forward).parameters
        self.model = model
        self.cache_name = "cache" if "cache" in params else "past_key_values"
        self.can_keep_last = "logits_to_keep" in params
        self.n_forward = 0
        self.n_tokens = 0

    def __call__(self, input_ids, past: Past | None = None, *, last_only: bool = True):
        """Feed ``input_ids`` (LongTensor [batch, t]) after ``past``; logits [batch, t', V] and the new past."""
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=past) if past else DynamicCache()
        kwargs = {self.cache_name: cache, "use_cache": True}
        if last_only and self.can_keep_last:
            kwargs["logits_to_keep"] = 1
        start = past_length(past)
        import torch

        positions = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)[None, :].expand(input_ids.shape[0], -1)
        out = self.model(input_ids=input_ids, position_ids=positions, **kwargs)
        self.n_forward += 1
        self.n_tokens += int(input_ids.numel())
        new = getattr(out, self.cache_name, None)
        if new is None:
            new = out.past_key_values
        return out.logits, to_past(new)


def to_past(cache: Any) -> Past:
    if isinstance(cache, tuple):
        return cache
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return tuple((layer.keys, layer.values) for layer in layers)
    return tuple((k, v) for k, v in cache)  # pragma: no cover - legacy caches


def past_length(past: Past | None) -> int:
    return 0 if not past else int(past[0][0].shape[-2])


def expand_past(past: Past, batch: int) -> Past:
    """The same single-row past repeated ``batch`` times (views, no copy)."""
    return tuple((k.expand(batch, *k.shape[1:]), v.expand(batch, *v.shape[1:])) for k, v in past)


def model_device(model: Any):
    return next(model.parameters()).device
