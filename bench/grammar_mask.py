"""Per-token cost of grammar constraints on the corpus grammars (SmolLM2 tokenizer).

For each ``grammars/NAME.lark``: compile time, then for every valid sample tokenized by the model's
tokenizer, time ``fill_bitmask`` + ``accept_token`` per token (fresh matcher per sample, so masks
are not served from a previous sample's cache... except within this grammar's compiled constraint,
which is shared like in serving). Prints p50/p99 in microseconds. With ``--peers`` (default on if
llguidance imports) llguidance's ``compile_lark`` runs the same token sequences in the same process
and the ratio of p50s is printed.

With ``--cold`` every document gets a freshly compiled constraint (compile time not counted), so
no cache survives from one document to the next: mask cache, Earley memo tables, kernel tables.
This is the first-visit cost. ``--only NAME[,NAME]`` restricts the grammars.

    .venv/bin/python bench/grammar_mask.py [--no-peers] [--repeat N] [--cold] [--only lisp,json]
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

from constrain.grammar import compile_grammar  # noqa: E402
from constrain.kernels.bitmask import allocate_bitmask  # noqa: E402
from constrain.vocab.vocabulary import Vocabulary  # noqa: E402


def _run(make_matcher, sequences, vocab_size, eos):
    """Per-token times (s) of fill_bitmask + accept_token; and how many sequences fully passed."""
    bm = allocate_bitmask(1, vocab_size) if vocab_size else None
    times: list[float] = []
    ok = 0
    for seq in sequences:
        m = make_matcher()
        good = True
        for t in list(seq) + [eos]:
            t0 = time.perf_counter()
            m.fill_bitmask(bm, 0)
            accepted = m.accept_token(t)
            times.append(time.perf_counter() - t0)
            if not accepted:
                good = False
                break
        ok += good
    return times, ok


def _pct(times, q):
    return float(np.percentile(np.asarray(times) * 1e6, q)) if times else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="passes over the samples (cache warm after the first)")
    ap.add_argument("--cold", action="store_true", help="fresh compile per document: no cache survives")
    ap.add_argument("--only", default="", help="comma-separated grammar names")
    args = ap.parse_args()

    from constrain.integrations.transformers import load_default_tokenizer

    tok = load_default_tokenizer()
    vocab = Vocabulary.from_tokenizer(tok)
    eos = vocab.eos_token_ids[0]
    peers = []
    if not args.no_peers:
        sys.path.insert(0, str(ROOT / "bench"))
        try:
            from peers import LLGuidanceEngine, XGrammarEngine
        except ImportError as exc:  # pragma: no cover - peers are optional
            print(f"(peers unavailable: {exc})")
        else:
            for cls in (LLGuidanceEngine, XGrammarEngine):
                try:
                    peers.append(cls(tok, vocab_size=vocab.size))
                except ImportError as exc:
                    print(f"({cls.__name__} unavailable: {exc})")

    # Load numba's compiled kernels before timing anything.
    warm = compile_grammar('start: "a"+ B\nB: /[0-9]+/', vocab).matcher()
    _run(lambda: warm, [tok.encode("aa1", add_special_tokens=False)], vocab.size, eos)

    print(f"mode: {'cold (fresh compile per document)' if args.cold else 'warm (one compiled constraint per grammar)'}")
    print("| grammar | engine | compile ms | valid samples accepted | tokens | p50 us | p99 us | max us | p50 / constrain p50 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for path in sorted((ROOT / "grammars").glob("*.lark")):
        name = path.stem
        if args.only and name not in args.only.split(","):
            continue
        text = path.read_text(encoding="utf-8")
        samples = json.loads((ROOT / "grammars" / f"{name}.samples.json").read_text(encoding="utf-8"))
        seqs = [tok.encode(s, add_special_tokens=False) for s in samples["valid"]] * args.repeat
        engines = [("constrain", lambda text=text, start=samples["start"]: compile_grammar(text, vocab, start=start), vocab.size)]
        engines += [(p.name, lambda text=text, p=p: p.compile_lark(text), p.vocab_size) for p in peers]
        base_p50 = None
        for engine, compile_fn, width in engines:
            try:
                t0 = time.perf_counter()
                compiled = compile_fn()
                compile_ms = (time.perf_counter() - t0) * 1e3
            except Exception as exc:  # noqa: BLE001 - a peer that rejects the grammar is reported
                print(f"| {name} | {engine} | rejects the grammar: {str(exc).splitlines()[0][:70]} | | | | | | |")
                continue
            make = (lambda f=compile_fn: f().matcher()) if args.cold else compiled.matcher
            times, ok = _run(make, seqs, width, eos)
            p50 = _pct(times, 50)
            if engine == "constrain":
                base_p50 = p50
            ratio = p50 / base_p50 if base_p50 else float("nan")
            print(
                f"| {name} | {engine} | {compile_ms:.1f} | {ok}/{len(seqs)} | {len(times)} | {p50:.0f} | "
                f"{_pct(times, 99):.0f} | {_pct(times, 100):.0f} | {ratio:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
