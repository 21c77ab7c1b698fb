"""Knowledge-infused decoding (KID, docs algorithms.md §2): a knowledge trie and the decoding loop."""

from constrain.knowledge.kid import KIDConfig, KnowledgeResult, generate_with_knowledge
from constrain.knowledge.text import entities
from constrain.knowledge.trie import KnowledgeTrie

__all__ = ["KIDConfig", "KnowledgeResult", "KnowledgeTrie", "entities", "generate_with_knowledge"]
