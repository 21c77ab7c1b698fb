"""Choice constraints (one of N product names) on the SmolLM2 vocabulary: compile and mask time.

For N = 1k / 10k / 100k random product names ("Acme Widget 12345"), constrain's ``compile_choice``
and llguidance's regex of the same alternation (``(p1|p2|...)``, escaped) are compiled once; then
the canonical tokenizations of sample phrases are walked, timing ``fill_bitmask`` per token. Masks
are cross-checked against constrain at every step of the first pass (special tokens aside).

    .venv/bin/python bench/choice_bench.py [--sizes 1000 10000 100000] [--no-peers] [--out FILE]
    .venv/bin/python bench/choice_bench.py --in-schema     # the catalog as a JSON-schema field

``--in-schema`` compiles ``{"type": "object", "properties": {"product": {"enum": names}},
"required": ["product"], "additionalProperties": false}`` instead (constrain: one catalog automaton
in the grammar's lexer; llguidance: its JSON compiler) and walks ``json.dumps({"product": name})``.

"constrain" is the engine as used (per-state mask cache, warm after a state's first visit);
"constrain-nocache" clears the cache before every fill, timing the trie walk itself.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import constrain  # noqa: E402
from constrain.constraints import compile_choice  # noqa: E402
from constrain.integrations.transformers import load_default_tokenizer  # noqa: E402

BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne",
          "Soylent", "Vandelay", "Gringotts", "Oscorp", "Monarch", "Aperture", "Black Mesa", "Duff", "Nakatomi",
          "Virtucon"]
KINDS = ["Widget", "Gadget", "Sprocket", "Gizmo", "Doohickey", "Flux Capacitor", "Thingamajig", "Turbo Encabulator",
         "Hoverboard", "Jetpack", "Laser", "Rocket Skates", "Portal Gun", "Toaster", "Blender", "Drone"]
ADJ = ["", "", "Mini ", "Pro ", "Ultra ", "Max ", "Lite ", "Classic "]


def product_names(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add(f"{rng.choice(BRANDS)} {rng.choice(ADJ)}{rng.choice(KINDS)} {rng.randint(0, 10 ** rng.randint(1, 5) - 1)}")
    return sorted(out)


IN_SCHEMA = False  # --in-schema: the catalog is the enum of a JSON-schema field


def catalog_schema(phrases: list[str]) -> dict:
    return {"type": "object", "properties": {"product": {"enum": phrases}}, "required": ["product"],
            "additionalProperties": False}


def sample_text(phrase: str) -> str:
    return json.dumps({"product": phrase}, ensure_ascii=False) if IN_SCHEMA else phrase


def _pct(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


class _Constrain:
    def __init__(self, vocab, cache: bool):
        self.vocab, self.cache = vocab, cache
        self.name = "constrain" if cache else "constrain-nocache"

    def compile(self, phrases):
        if IN_SCHEMA:
            return constrain.compile_json_schema(catalog_schema(phrases), self.vocab)
        return compile_choice(phrases, self.vocab)

    def allocate_bitmask(self):
        return constrain.allocate_bitmask(1, self.vocab.size)


class _LLG:
    name = "llguidance"

    def __init__(self, tokenizer, vocab_size):
        from peers import LLGuidanceEngine

        self.engine = LLGuidanceEngine(tokenizer, vocab_size)

    def compile(self, phrases):
        if IN_SCHEMA:
            return self.engine.compile_json_schema(catalog_schema(phrases))
        return self.engine.compile_regex("(" + "|".join(map(re.escape, phrases)) + ")")

    def allocate_bitmask(self):
        return self.engine.allocate_bitmask(1)


def run(sizes, use_peers: bool, samples: int, repeats: int) -> list[dict]:
    tokenizer = load_default_tokenizer()
    vocab = constrain.Vocabulary.from_tokenizer(tokenizer)
    engines = [_Constrain(vocab, True), _Constrain(vocab, False)]
    if use_peers:
        try:
            engines.append(_LLG(tokenizer, vocab.size))
        except Exception as e:  # pragma: no cover - optional peer
            print(f"llguidance unavailable: {e}", file=sys.stderr)
    compile_choice(["warm up numba"], vocab, dense_max_states=0).matcher().allowed_token_ids()
    compile_choice(["warm up numba"], vocab).matcher().allowed_token_ids()
    special = np.array([vocab.token_bytes(i) is None and not vocab.is_eos(i) for i in range(vocab.size)])
    rows = []
    for n in sizes:
        phrases = product_names(n)
        rng = random.Random(n)
        sample = rng.sample(phrases, min(samples, n))
        seqs = [tokenizer.encode(sample_text(p), add_special_tokens=False) + [vocab.eos_token_ids[0]] for p in sample]
        reference: list[np.ndarray] = []
        for eng in engines:
            t0 = time.perf_counter()
            try:
                compiled = eng.compile(phrases)
            except Exception as e:
                rows.append({"n": n, "engine": eng.name, "error": str(e)[:120]})
                continue
            compile_s = time.perf_counter() - t0
            detail = ""
            if eng.name.startswith("constrain") and hasattr(compiled, "dfa"):
                detail = f"{type(compiled).__name__}, {compiled.dfa.n_states} states"
            elif eng.name.startswith("constrain"):
                detail = f"grammar, lexer {type(compiled.lexer).__name__} of {compiled.lexer.n_states} states"
            bm = eng.allocate_bitmask()
            fills, mismatches, rejected, step = [], 0, 0, 0
            for rep in range(repeats):
                for seq in seqs:
                    m = compiled.matcher()
                    for tok in seq:
                        if eng.name == "constrain-nocache":
                            compiled.clear_cache()
                        t1 = time.perf_counter()
                        m.fill_bitmask(bm, 0)
                        t2 = time.perf_counter()
                        fills.append((t2 - t1) * 1e6)
                        if rep == 0:
                            allowed = constrain.bitmask_to_bool(bm[0], vocab.size)
                            if eng is engines[0]:
                                reference.append(allowed)
                            elif step < len(reference) and not np.array_equal(allowed & ~special, reference[step] & ~special):
                                mismatches += 1
                            step += 1
                        if not m.accept_token(tok):
                            rejected += 1
                            break
            rows.append({
                "n": n, "engine": eng.name, "compile_s": compile_s, "detail": detail,
                "mask_p50_us": _pct(fills, 50), "mask_p99_us": _pct(fills, 99), "steps": len(fills),
                "mismatches": mismatches, "rejected": rejected // repeats,
            })
    return rows


def print_table(rows) -> None:
    print("| phrases | engine | compile s | automaton | mask p50 us | mask p99 us | steps | masks differing from constrain | valid samples rejected |")
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['n']} | {r['engine']} | failed: {r['error']} | | | | | | |")
            continue
        print(f"| {r['n']} | {r['engine']} | {r['compile_s']:.3f} | {r['detail']} | {r['mask_p50_us']:.1f} | "
              f"{r['mask_p99_us']:.1f} | {r['steps']} | {r['mismatches']} | {r['rejected']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--samples", type=int, default=50, help="phrases walked per size (default 50)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--in-schema", action="store_true", help="the catalog as the enum of a JSON-schema field")
    args = ap.parse_args()
    global IN_SCHEMA
    IN_SCHEMA = args.in_schema
    rows = run(args.sizes, not args.no_peers, args.samples, args.repeats)
    print_table(rows)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
