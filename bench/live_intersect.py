"""JSON schema ∩ keyword constraints on the SmolLM2 vocabulary: build time and mask time of the exact
(live) product against the schema alone and the lazy (unchecked) product.

For each example schema in ``schemas/`` and each keyword set, a valid example document gets the
keywords appended to a string value where it stays valid; its canonical tokenization is walked, timing
``fill_bitmask`` per token (fresh constraint objects, so every state's mask is computed once, as in
a first generation) for: the schema alone, the lazy product (masks ANDed), and the live product
(masks ANDed, then tokens leading to dead product states removed). The live mask is also checked
to allow every token of the walk (the document satisfies both parts).

    .venv/bin/python bench/live_intersect.py [--keywords waterproof "waterproof,light"] [--out FILE]

llguidance / XGrammar / outlines-core have no keyword-containment constraint to intersect with a
JSON schema, so there is no peer column here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from constrain import compile_json_schema, compile_keywords, intersect  # noqa: E402
from constrain.constraints.combine import LiveIntersectConstraint  # noqa: E402
from constrain.errors import ConstrainError  # noqa: E402
from constrain.integrations.transformers import load_default_tokenizer, vocabulary_for  # noqa: E402


def _with_keywords(doc, words: list[str], schema: dict):
    """``doc`` with ``" " + words`` appended to one of its string values such that it still
    validates against ``schema`` (the first such value, depth-first); None if there is none."""
    import jsonschema

    def variants(x):
        if isinstance(x, str):
            yield x + " " + " ".join(words)
        elif isinstance(x, dict):
            for k, v in x.items():
                for v2 in variants(v):
                    yield {**x, k: v2}
        elif isinstance(x, list):
            for i, v in enumerate(x):
                for v2 in variants(v):
                    yield x[:i] + [v2] + x[i + 1:]

    for cand in variants(doc):
        if jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).is_valid(cand):
            return cand
    return None


def _mask_times(constraint, ids: list[int]) -> tuple[list[float], bool]:
    m = constraint.matcher()
    words = np.zeros((1, (constraint.vocab.size + 31) // 32), dtype=np.int32)
    times, ok = [], True
    for t in ids:
        t0 = time.perf_counter()
        m.fill_bitmask(words, 0)
        times.append(time.perf_counter() - t0)
        if not (int(words[0, t >> 5]) >> (t & 31)) & 1 or not m.accept_token(t):
            ok = False
            break
    return times, ok and m.is_accepting()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keywords", nargs="+", default=["waterproof", "waterproof,light"],
                    help="keyword sets, comma-separated phrases each")
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = ap.parse_args()
    tok = load_default_tokenizer()
    vocab = vocabulary_for(tok)
    rows = []
    for path in sorted((ROOT / "schemas").glob("*.json")):
        if path.name.endswith(".examples.json"):
            continue
        schema = json.loads(path.read_text())
        examples = json.loads(path.with_name(path.stem + ".examples.json").read_text())["valid"]
        try:
            g = compile_json_schema(schema, vocab)
        except ConstrainError as e:
            print(f"{path.stem}: schema not compiled ({e})", file=sys.stderr)
            continue
        for kws in args.keywords:
            words = kws.split(",")
            doc = next((d for d in (_with_keywords(e, words, schema) for e in examples) if d is not None), None)
            if doc is None:
                print(f"{path.stem}: no example takes {words!r} in a string value", file=sys.stderr)
                continue
            ids = tok.encode(json.dumps(doc, ensure_ascii=False), add_special_tokens=False)
            kw = compile_keywords(words, vocab=vocab)
            row = {"schema": path.stem, "keywords": kws, "tokens": len(ids)}
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    live = intersect(g, kw)
                except ConstrainError as e:
                    row["error"] = str(e)
                    rows.append(row)
                    continue
            row["build_ms"] = (time.perf_counter() - t0) * 1e3
            row["exact"] = isinstance(live, LiveIntersectConstraint)
            row["warning"] = str(caught[0].message) if caught else ""
            for name, make in (("schema", lambda: compile_json_schema(schema, vocab)),
                               ("lazy", lambda: intersect(compile_json_schema(schema, vocab), kw, materialize="never")),
                               ("live", lambda: live)):
                c = make()
                if hasattr(c, "clear_cache"):
                    c.clear_cache()
                times, ok = _mask_times(c, ids)
                row[f"{name}_ok"] = ok
                row[f"{name}_p50_us"] = float(np.percentile(times, 50)) * 1e6
                row[f"{name}_p99_us"] = float(np.percentile(times, 99)) * 1e6
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| schema | keywords | tokens | exact | build ms | schema p50/p99 µs | lazy p50/p99 µs | live p50/p99 µs | doc accepted |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['schema']} | {r['keywords']} | {r['tokens']} | error: {r['error']} | | | | | |")
            continue
        cells = [f"{r[f'{n}_p50_us']:.0f} / {r[f'{n}_p99_us']:.0f}" for n in ("schema", "lazy", "live")]
        print(f"| {r['schema']} | {r['keywords']} | {r['tokens']} | {'yes' if r['exact'] else 'no (lazy, warned)'} "
              f"| {r['build_ms']:.0f} | {' | '.join(cells)} | {r['live_ok'] and r['schema_ok']} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
