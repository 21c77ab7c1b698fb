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
    llg = None
    if not args.no_peers:
        try:
            sys.path.insert(0, str(ROOT / "bench"))
            from peers import LLGuidanceEngine

            llg = LLGuidanceEngine(tok, vocab_size=vocab.size)
        except Exception as exc:  # noqa: BLE001 - peers are optional
            print(f"(llguidance unavailable: {exc})")

    header = f"{'grammar':<14}{'compile ms':>11}{'tokens':>8}{'ok':>6}{'p50 us':>9}{'p99 us':>9}{'max us':>10}"
    if llg:
        header += f"{'llg ok':>8}{'llg p50':>9}{'llg p99':>9}{'p50 ratio':>10}"
    print(header)
    for path in sorted((ROOT / "grammars").glob("*.lark")):
        name = path.stem
        if args.only and name not in args.only.split(","):
            continue
        text = path.read_text(encoding="utf-8")
        samples = json.loads((ROOT / "grammars" / f"{name}.samples.json").read_text(encoding="utf-8"))
        t0 = time.perf_counter()
        c = compile_grammar(text, vocab, start=samples["start"])
        compile_ms = (time.perf_counter() - t0) * 1e3
        seqs = [tok.encode(s, add_special_tokens=False) for s in samples["valid"]] * args.repeat
        if args.cold:
            def make(text=text, start=samples["start"]):
                return compile_grammar(text, vocab, start=start).matcher()
        else:
            make = c.matcher
        times, ok = _run(make, seqs, vocab.size, eos)
        line = f"{name:<14}{compile_ms:>11.1f}{len(times):>8}{ok:>5}/{len(seqs):<1}"
        line += f"{_pct(times, 50):>8.0f}{_pct(times, 99):>9.0f}{_pct(times, 100):>10.0f}"
        if llg:
            try:
                pc = llg.compile_lark(text)
                lmake = (lambda: llg.compile_lark(text).matcher()) if args.cold else pc.matcher
                lt, lok = _run(lmake, seqs, llg.vocab_size, eos)
                ratio = _pct(times, 50) / _pct(lt, 50)
                line += f"{lok:>5}/{len(seqs):<2}{_pct(lt, 50):>8.0f}{_pct(lt, 99):>9.0f}{ratio:>10.1f}"
            except Exception as exc:  # noqa: BLE001
                line += f"  llguidance: {str(exc).splitlines()[0][:60]}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
