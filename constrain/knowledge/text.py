"""Entity extraction without spaCy: the ``ents(s)`` of the KID spec (docs algorithms.md §2b).

The reference code keeps the lowercased lemmas of NOUN/PROPN tokens that are not stop words
(spaCy ``en_core_web_sm`` + NLTK stop words). spaCy is not available here, so this module uses a
documented approximation:

* words are runs of ASCII/Unicode letters (apostrophes and hyphens inside a word are kept);
* a possessive ``'s`` is dropped, the word is lowercased;
* a word is "noun-ish" when it is not in :data:`STOP_WORDS` (English function words, pronouns,
  auxiliaries, very common verbs/adverbs/adjectives, numbers spelled out), has at least
  ``MIN_ENTITY_CHARS`` letters and does not end in ``-ly`` (adverbs);
* the lemma is a naive singular: ``-ies`` → ``-y``, ``-sses``/``-shes``/``-ches``/``-xes`` drop
  ``-es``, a final ``-s`` (not ``-ss``/``-us``/``-is``) is dropped.

It over-generates (verbs and adjectives that are not in the stop list count as entities); with a
trie built by the same function on both sides, that only adds extra knowledge words.
"""

from __future__ import annotations

import re

__all__ = ["STOP_WORDS", "MIN_ENTITY_CHARS", "entities", "lemma", "words"]

MIN_ENTITY_CHARS = 3

STOP_WORDS = frozenset(
    """
a about above across after afterwards again against all almost alone along already also although
always am among amongst an and another any anyhow anyone anything anyway anywhere are around as at
back be became because become becomes becoming been before beforehand behind being below beside
besides between beyond both but by can cannot could did do does doing done down due during each
either else elsewhere enough even ever every everyone everything everywhere except few first for
former formerly from further get gets getting give given go goes going gone got had has have having
he hence her here hereafter hereby herein hers herself him himself his how however i if in indeed
into is it its itself just keep last latter least less made make makes many may me meanwhile might
mine more moreover most mostly much must my myself namely neither never nevertheless next no nobody
none noone nor not nothing now nowhere of off often on once one only onto or other others otherwise
our ours ourselves out over own part per perhaps please put quite rather re really regarding same
say says said see seem seemed seeming seems serious several she should show side since so some
somehow someone something sometime sometimes somewhere still such take than that the their theirs
them themselves then thence there thereafter thereby therefore therein thereupon these they thing
things third this those though three through throughout thru thus to together too top toward
towards two under unless until up upon us used using very via was we well were what whatever when
whence whenever where whereafter whereas whereby wherein whereupon wherever whether which while
whither who whoever whole whom whose why will with within without would yet you your yours yourself
yourselves also can't won't don't doesn't didn't isn't aren't wasn't weren't i'm i've i'd i'll
you're you've you'd you'll he's she's it's we're we've they're they've that's there's here's let's
four five six seven eight nine ten hundred thousand million first second new old good great big
small little long high way ways lot lots like want wants wanted know knows knew think thinks
thought come comes came look looks looked use uses find found tell told ask asked work seem felt
feel feels try tried leave left call called need needs become became mean means yes okay sure
""".split()
)

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


def words(text: str) -> list[str]:
    """The words of ``text``, lowercased, possessive ``'s`` removed."""
    out = []
    for w in _WORD.findall(text):
        w = w.lower().replace("’", "'")
        if w.endswith("'s"):
            w = w[:-2]
        out.append(w)
    return out


def lemma(word: str) -> str:
    """A naive singular of a lowercased word (see the module docstring)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def is_entity_word(word: str) -> bool:
    return len(word) >= MIN_ENTITY_CHARS and word not in STOP_WORDS and not word.endswith("ly")


def entities(text: str) -> list[str]:
    """``ents(text)``: lemmas of the noun-ish words of ``text``, in order (duplicates kept)."""
    return [lemma(w) for w in words(text) if is_entity_word(w)]
