"""Knowledge-infused decoding (KID, docs algorithms.md §2): a knowledge trie and the decoding loop."""

from constrain.knowledge.text import entities
from constrain.knowledge.trie import KnowledgeTrie

__all__ = ["KnowledgeTrie", "entities"]
