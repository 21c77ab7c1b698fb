"""Mask time per token for regex constraints on the SmolLM2 vocabulary, constrain vs the peers.

For each regex, every engine compiles it once, then walks the canonical tokenization of each sample
text: per token it fills the bitmask (timed) and accepts the token (timed). The same texts, the same
tokenizer and the same vocabulary width go to every engine in one run. Masks are cross-checked:
every engine must allow exactly the same tokens at every step (XGrammar's allowed special tokens
aside, see bench/peers.py), so a fast engine cannot win by allowing the wrong tokens.

    .venv/bin/python bench/regex_mask.py            # table to stdout, JSON to bench/results/
    .venv/bin/python bench/regex_mask.py --no-peers

"constrain" is the engine as used (per-state mask cache warm after the first visit of a state);
"constrain-nocache" clears the cache before every fill, so it times the numba trie walk itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import constrain  # noqa: E402
from constrain.integrations.transformers import load_default_tokenizer  # noqa: E402

# [0-9], not \d: llguidance and outlines-core read \d as any Unicode digit, constrain as ASCII
# (re.ASCII); explicit classes give every engine the same language, so masks can be compared.
REGEXES = {
    "phone": (
        r"\([0-9]{3}\) [0-9]{3}-[0-9]{4}",
        ["(555) 123-4567", "(212) 555-0199", "(800) 000-1111", "(415) 867-5309", "(999) 999-9999"],
    ),
    "iso-datetime": (
        r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})",
        ["2024-05-17T12:30:00Z", "1999-12-31T23:59:59.999+01:00", "2000-01-01T00:00:00-08:00",
         "2023-07-04T09:15:42.5Z", "2010-10-10T10:10:10+05:30"],
    ),
    "email": (
        r"[a-zA-Z0-9._%+-]{1,64}@[a-zA-Z0-9-]{1,63}(\.[a-zA-Z0-9-]{1,63})*\.[a-zA-Z]{2,10}",
        ["ada.lovelace@example.com", "support+billing@shop.co.uk", "x@y.io", "first_last-99@mail.server.org",
         "HELLO.World%tag@sub.domain.example.travel"],
    ),
}


class _ConstrainEngine:
    def __init__(self, vocab, *, cache: bool):
        self.vocab = vocab
        self.cache = cache
        self.name = "constrain" if cache else "constrain-nocache"

    def compile_regex(self, pattern):
        return constrain.compile_regex(pattern, self.vocab)

    def allocate_bitmask(self, batch=1):
        return constrain.allocate_bitmask(batch, self.vocab.size)


def _percentile(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def run(use_peers: bool, repeats: int) -> dict:
    tokenizer = load_default_tokenizer()
    vocab = constrain.Vocabulary.from_tokenizer(tokenizer)
    engines: list = [_ConstrainEngine(vocab, cache=True), _ConstrainEngine(vocab, cache=False)]
    if use_peers:
        from peers import available_engines

        engines += available_engines(tokenizer, vocab.size)
    # Warm numba's JIT so compile time is not charged to the first regex.
    constrain.compile_regex("a", vocab).matcher().fill_bitmask(constrain.allocate_bitmask(1, vocab.size))
    results = {}
    special = np.zeros(vocab.size, dtype=bool)
    special[[i for i in range(vocab.size) if vocab.token_bytes(i) is None and not vocab.is_eos(i)]] = True
    for name, (pattern, texts) in REGEXES.items():
        token_seqs = [tokenizer.encode(t, add_special_tokens=False) + [vocab.eos_token_ids[0]] for t in texts]
        reference_masks: list[np.ndarray] = []
        for engine in engines:
            t0 = time.perf_counter()
            compiled = engine.compile_regex(pattern)
            compile_s = time.perf_counter() - t0
            fill_us, accept_us, mismatches, step, rejected = [], [], 0, 0, 0
            bm = engine.allocate_bitmask(1)
            for rep in range(repeats):
                for seq in token_seqs:
                    m = compiled.matcher()
                    for tok in seq:
                        if engine.name == "constrain-nocache":
                            compiled.clear_cache()
                        t1 = time.perf_counter()
                        m.fill_bitmask(bm, 0)
                        t2 = time.perf_counter()
                        ok = m.accept_token(tok)
                        t3 = time.perf_counter()
                        if not ok:
                            # A valid sample was blocked: a correctness failure, counted and reported.
                            rejected += 1
                            if engine is engines[0]:
                                raise SystemExit(f"constrain rejected token {tok} of a valid {name} sample")
                            break
                        fill_us.append((t2 - t1) * 1e6)
                        accept_us.append((t3 - t2) * 1e6)
                        if rep == 0:
                            allowed = constrain.bitmask_to_bool(bm[0], vocab.size)
                            if engine is engines[0]:
                                reference_masks.append(allowed)
                            elif step < len(reference_masks):
                                ref = reference_masks[step]
                                if not np.array_equal(allowed & ~special, ref & ~special):
                                    mismatches += 1
                            step += 1
            results.setdefault(name, {})[engine.name] = {
                "compile_ms": compile_s * 1e3,
                "fill_p50_us": _percentile(fill_us, 50),
                "fill_p99_us": _percentile(fill_us, 99),
                "step_p50_us": _percentile([a + b for a, b in zip(fill_us, accept_us)], 50),
                "step_p99_us": _percentile([a + b for a, b in zip(fill_us, accept_us)], 99),
                "tokens": len(fill_us),
                "mask_mismatches_vs_constrain": mismatches,
                "valid_samples_rejected": rejected // repeats,
            }
    return results


def print_table(results: dict) -> None:
    print("| regex | engine | compile ms | mask p50 us | mask p99 us | mask+accept p50 us | mask+accept p99 us | tokens | masks differing from constrain | valid samples rejected |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, per_engine in results.items():
        for engine, r in per_engine.items():
            print(
                f"| {name} | {engine} | {r['compile_ms']:.2f} | {r['fill_p50_us']:.1f} | {r['fill_p99_us']:.1f} | "
                f"{r['step_p50_us']:.1f} | {r['step_p99_us']:.1f} | {r['tokens']} | {r['mask_mismatches_vs_constrain']} | {r['valid_samples_rejected']} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-peers", action="store_true", help="time constrain only")
    parser.add_argument("--repeats", type=int, default=20, help="passes over the samples (default: 20)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "regex_mask.json")
    args = parser.parse_args()
    results = run(not args.no_peers, args.repeats)
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
