"""Bounds that keep hostile or huge inputs from hanging or exhausting memory.

Every bound is one field of :class:`Limits`, with its unit in the name and its cost in the comment.
Exceeding one raises :class:`constrain.errors.LimitExceededError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Compile- and run-time bounds; pass ``Limits(field=...)`` to change one."""

    # Byte-DFA states of one regex or lexer after determinization; each costs 1 KiB (int32[256] row).
    # A grammar lexer too large to build eagerly is built lazily instead (see the next bound).
    max_dfa_states: int = 50_000
    # States a lazily built grammar lexer may create while masks are computed and tokens accepted
    # (a state is added when a walk first reaches it; over 1 KiB each: an int32[256] row and the
    # grammar engine's per-state tables; all kept for the constraint's lifetime). Real schemas
    # need up to ~80,000 over a few long documents (a string whose pattern counts words under a
    # maxLength visits a state per (length, words) pair); a long-lived constraint serving many
    # documents can reach the bound: LimitExceededError at that mask.
    max_lazy_lexer_states: int = 400_000
    # Thompson NFA states built from one regex before determinization (~100 bytes each).
    max_nfa_states: int = 500_000
    # Upper bound of a counted repetition {n,m} that is expanded (a{1000} is 1000 copies).
    max_repeat_count: int = 10_000
    # Upper bound of a repetition in a lazily built grammar lexer, where a repetition above 32 is a
    # counter in the lexer state instead of copies (a JSON string's maxLength 65535 costs no more
    # to compile than maxLength 50; each lexer state built holds its count).
    max_counted_repeat: int = 1_000_000
    # Cached per-state bitmasks of one compiled constraint; each costs ceil(V/32)*4 bytes (6 KiB for V=49152).
    max_cached_masks: int = 20_000
    # BNF rules of one grammar after lark expands EBNF ([], ?, *, +, ~n..m, templates); ~1 KiB each.
    max_grammar_rules: int = 50_000
    # Distinct parser states a compiled grammar keeps in its walk tables (memory: ~1 KiB each plus
    # one scan-table row of 4 bytes per lexer state); a grammar whose masks keep creating new
    # states (deeply nested or highly ambiguous input) stops with LimitExceededError, not OOM.
    max_parser_states: int = 500_000
    # Lexing threads of one grammar state (one per possible lexeme end still open); ~200 bytes each.
    max_lexer_threads: int = 4096
    # DFA states up to which token-level liveness is computed when the vocabulary lacks a
    # single-byte token for some byte the DFA uses (one trie walk per state at compile time).
    # Above it, a mask may allow a token after which no token sequence can finish the output;
    # generation then stops with VocabularyError instead of looping.
    max_liveness_states: int = 4096
    # Device-resident token tables of one regex constraint (next state [n, V] + bitmasks [n, V/32]);
    # beyond this, generation falls back to the CPU path. 256 MiB holds ~1,300 states at V=49,152.
    max_device_table_bytes: int = 256 * 1024 * 1024
    # JSON Schema compiler bounds (each raises LimitExceededError naming the field):
    # nested $ref/allOf/not inlinings of one schema;
    max_schema_ref_depth: int = 64
    # nesting of objects and arrays in the schema document (the compiler recurses per level; the
    # deepest MaskBench schema nests 63 deep, Python's recursion limit is reached near 400);
    max_schema_depth: int = 128
    # grammar rules one schema may generate (~200 bytes of grammar text each);
    max_schema_rules: int = 20_000
    # enum values (or enumerated multipleOf values) of one schema node;
    max_schema_enum_values: int = 10_000
    # alternatives allOf-of-anyOf distribution or 'not' may create for one node;
    max_schema_alternatives: int = 256
    # declared properties of one object under property_order="any" (the grammar grows as n!).
    max_schema_any_order_properties: int = 8
    # distinct item values of one 'uniqueItems: true' array (one grammar rule per used subset: 2**n);
    max_schema_unique_items_values: int = 10
    # regions of the key space one object's patternProperties/properties split into (one key
    # regex and one merged value schema each; up to 2**patterns);
    max_schema_key_regions: int = 64
    # characters of one regex built from a code-point DFA (pattern intersections, key regions);
    # compile_json_schema turns a string language over it into a byte-automaton terminal instead.
    max_schema_regex_chars: int = 200_000
    # Entries (int64, 8 bytes each) of the shortest-completion tables of one grammar (length bounds,
    # grammar x keywords intersections): lexeme targets x lexer states x k^2, where k is 1 for
    # bytes/chars, 2 for words, times the states of the DFA intersected with the grammar.
    max_completion_table_entries: int = 30_000_000
    # Consecutive ignored (whitespace) bytes the grammar engine allows before it forces a real terminal.
    max_consecutive_whitespace: int = 32


DEFAULT_LIMITS = Limits()
