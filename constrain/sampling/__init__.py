"""Sampling under constraints: grammar-aligned sampling (ASAp) and the masked baseline.

``AlignedSampler`` draws samples whose distribution converges to the model's distribution
conditioned on the constraint; ``MaskedSampler`` is plain masked sampling (biased). Both take a
``transformers`` causal LM + tokenizer or a ``NextTokenModel`` / callable + ``Vocabulary``.
Torch is imported only when a ``transformers`` model is used.
"""

from constrain.sampling.aligned import AlignedSampler, MaskedSampler, NoValidSampleError, generate_aligned
from constrain.sampling.lm import CallableLM, HFCausalLM, NextTokenModel
from constrain.sampling.trie import SampleTrie

__all__ = [
    "AlignedSampler",
    "CallableLM",
    "HFCausalLM",
    "MaskedSampler",
    "NextTokenModel",
    "NoValidSampleError",
    "SampleTrie",
    "generate_aligned",
]
