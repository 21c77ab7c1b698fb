"""MaskBench files: the split of a file and deterministic (stratified) samples of a folder.

Shared by ``bench/maskbench.py`` (mask-level benchmark) and
:mod:`constrain.benchmarks.jsonschemabench` (end-to-end generation), so both draw the same files
for the same ``--limit`` / ``--seed``.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path

__all__ = ["split_of", "list_files", "sample_files"]

_BFCL_RE = re.compile(r"^(.*?)_\d+\.json$")


def split_of(filename: str) -> str:
    """MaskBench split of a file: the part before ``---`` (``Github_easy---o1.json`` ->
    ``Github_easy``), else the name minus ``_<n>.json`` (``BFCL_simple_12.json`` -> ``BFCL_simple``)."""
    name = Path(filename).name
    if "---" in name:
        return name.split("---", 1)[0]
    m = _BFCL_RE.match(name)
    return m.group(1) if m else Path(name).stem


def list_files(data_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(data_dir).glob("*.json"))


def sample_files(files: list[str], limit: int | None, how: str = "stratified", seed: int = 0) -> list[str]:
    """``limit`` files: ``first`` (sorted order) or ``stratified``: allotted to the splits in
    proportion to their size (largest remainder, at least one per split while ``limit`` allows),
    then drawn from each split with ``random.Random(seed)``.  Deterministic; sorted output."""
    files = sorted(files)
    if limit is None or limit >= len(files):
        return files
    if how == "first":
        return files[:limit]
    if how != "stratified":
        raise ValueError(f"unknown sampling {how!r}")
    groups: dict[str, list[str]] = defaultdict(list)
    for f in files:
        groups[split_of(f)].append(f)
    splits = sorted(groups)
    total = len(files)
    alloc = {s: 0 for s in splits}
    if limit >= len(splits):
        for s in splits:
            alloc[s] = 1
        left = limit - len(splits)
        quotas = {s: left * len(groups[s]) / total for s in splits}
        for s in splits:
            alloc[s] += min(int(quotas[s]), len(groups[s]) - 1)
        rest = limit - sum(alloc.values())
        order = sorted(splits, key=lambda s: (-(quotas[s] - int(quotas[s])), s))
        while rest > 0:
            progressed = False
            for s in order:
                if rest and alloc[s] < len(groups[s]):
                    alloc[s] += 1
                    rest -= 1
                    progressed = True
            if not progressed:
                break
    else:  # fewer files than splits: one from each of `limit` splits chosen by the seed
        for s in random.Random(seed).sample(splits, limit):
            alloc[s] = 1
    out = []
    for s in splits:
        rng = random.Random(f"{seed}:{s}")
        out += rng.sample(groups[s], alloc[s])
    return sorted(out)
