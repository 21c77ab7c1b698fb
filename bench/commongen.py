"""CommonGen-style keyword coverage: plain prompting vs hard constraints vs DeAL lookahead search.

For each concept set (``--sets``, default bench/data/commongen_sets.json: 100 sets of 3-5 everyday
concepts written for this benchmark; bench/data/commongen_concepts.json holds an older 100 sets of 3)
the default model (SmolLM2-135M-Instruct, chat template) gets the prompt
"Write one sentence using the words: dog, frisbee, catch." and each method decodes greedily:

  plain        greedy decoding, no constraint
  hard         greedy inside max_length(intersect(compile_keywords(include=concepts,
               case_sensitive=False), one-sentence regex "[A-Z][^.!?\\n]*[.!?]"),
               max_tokens=max_new_tokens - 1): the length bound ends the sentence gracefully, so an
               output is never cut by max_new_tokens (EOS is the max_new_tokens-th token)
  search       Lookahead(keyword_coverage(concepts), k, depth, weight), no constraint
  search+hard  the same search inside the hard constraint

``--search-limit N`` runs the search methods only on the first N sets (lookahead costs k*depth
extra forward passes per step); the table states each method's n.

Metrics: hard coverage (share of outputs where every concept starts a word, case-insensitive:
constrain.search.concept_present), soft coverage (mean share of concepts present), perplexity of
the outputs under the unconstrained model given the prompt (exp of the mean token NLL over all
output tokens of the method, EOS excluded), seconds per output (CPU, 1 thread unless --threads).

    OMP_NUM_THREADS=1 .venv/bin/python bench/commongen.py --limit 20   # table + bench/results/commongen.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
SENTENCE = r"[A-Z][^.!?\n]*[.!?]"
METHODS = ("plain", "hard", "search", "search+hard")


def hard_constraint(concepts, vocab, max_tokens):
    from constrain import compile_keywords, compile_regex, intersect, max_length

    kw = compile_keywords(include=concepts, case_sensitive=False, vocab=vocab)
    return max_length(intersect(kw, compile_regex(SENTENCE, vocab)), max_tokens=max_tokens)


def output_nll(model, prompt_ids, out_ids):
    """Σ −log P(out_i | prompt, out_<i) under the model, and the token count."""
    import torch

    if not out_ids:
        return 0.0, 0
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + out_ids])).logits[0].double()
    logp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], -1)
    return float(-logp[torch.arange(len(out_ids)), torch.tensor(out_ids)].sum()), len(out_ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--start", type=int, default=0, help="skip the first N sets (to finish a run in parts)")
    ap.add_argument("--merge", nargs="+", default=None, help="only summarize the rows of these result files")
    ap.add_argument("--sets", default=str(ROOT / "data" / "commongen_sets.json"))
    ap.add_argument("--methods", default="plain,hard,search")
    ap.add_argument("--search-limit", type=int, default=None, help="run search methods on the first N sets only")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--weight", type=float, default=4.0)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget-s", type=float, default=0.0, help="stop starting new concept sets after this many seconds")
    ap.add_argument("--out", default=str(ROOT / "results" / "commongen.json"))
    args = ap.parse_args()
    if args.merge:
        rows = [r for f in args.merge for r in json.loads(Path(f).read_text())["rows"]]
        methods = [m for m in args.methods.split(",") if m]
        report(rows, methods, args)
        return

    import torch

    torch.set_num_threads(args.threads)
    from constrain.decode import IncompleteGenerationError
    from constrain.generate import encode_prompt, generate_ids
    from constrain.integrations.transformers import load_default_model, model_vocab_size, vocabulary_for
    from constrain.search import Lookahead, concept_present, generate_with_search, keyword_coverage

    t_load = time.perf_counter()
    model, tok = load_default_model()
    vocab = vocabulary_for(tok, model_vocab_size(model, tok))
    print(f"model loaded in {time.perf_counter() - t_load:.1f}s")
    sets = json.loads(Path(args.sets).read_text())[args.start : args.limit]
    methods = [m for m in args.methods.split(",") if m]
    rows = []
    started = time.perf_counter()
    for i, concepts in enumerate(sets):
        if args.budget_s and time.perf_counter() - started > args.budget_s:
            print(f"budget reached after {i} sets")
            break
        prompt = f"Write one sentence using the words: {', '.join(concepts)}."
        prompt_ids = encode_prompt(tok, prompt)
        row = {"concepts": concepts, "outputs": {}}
        t0 = time.perf_counter()
        set_methods = [m for m in methods
                       if "search" not in m or args.search_limit is None or args.start + i < args.search_limit]
        constraint = (hard_constraint(concepts, vocab, args.max_new_tokens - 1)
                      if any("hard" in m for m in set_methods) else None)
        row["compile_seconds"] = time.perf_counter() - t0
        reward = keyword_coverage(concepts)
        for m in set_methods:
            t0 = time.perf_counter()
            failed = None
            try:
                if m == "plain":
                    r = generate_with_search(model, tok, prompt_ids, search=Lookahead(reward, k=1, weight=0.0),
                                             max_new_tokens=args.max_new_tokens, vocab=vocab, return_result=True)
                elif m == "hard":
                    r = generate_ids(model, tok, prompt, constraint=constraint, max_new_tokens=args.max_new_tokens)
                else:
                    la = Lookahead(reward, k=args.k, depth=args.depth, weight=args.weight)
                    r = generate_with_search(model, tok, prompt_ids, search=la,
                                             constraint=constraint if m == "search+hard" else None,
                                             max_new_tokens=args.max_new_tokens, vocab=vocab, return_result=True)
                text, ids = r.text, list(r.token_ids)
            except IncompleteGenerationError as e:  # the hard constraint could not finish in budget
                failed, text, ids = "incomplete", e.text, tok.encode(e.text, add_special_tokens=False)
            seconds = time.perf_counter() - t0
            nll, n = output_nll(model, prompt_ids, ids)
            present = [concept_present(c, text) for c in concepts]
            row["outputs"][m] = {"text": text, "seconds": seconds, "nll": nll, "tokens": n,
                                 "soft": sum(present) / len(present), "hard": all(present), "failed": failed}
        rows.append(row)
        print(f"[{args.start + i + 1}/{args.start + len(sets)}] {concepts} " + " | ".join(
            f"{m}: {'✓' if row['outputs'][m]['hard'] else '✗'} {row['outputs'][m]['seconds']:.1f}s" for m in set_methods), flush=True)
        for m in set_methods:
            print(f"    {m:12s} {row['outputs'][m]['text']!r}", flush=True)

    report(rows, methods, args)


def report(rows, methods, args) -> None:
    """Print the markdown table of ``rows`` and write them with the summary to ``args.out``."""
    summary = {}
    for m in methods:
        outs = [r["outputs"][m] for r in rows if m in r["outputs"]]
        if not outs:
            continue
        toks = sum(o["tokens"] for o in outs)
        summary[m] = {
            "n": len(outs),
            "hard_coverage": sum(o["hard"] for o in outs) / len(outs),
            "soft_coverage": sum(o["soft"] for o in outs) / len(outs),
            "concepts_present": sum(o["soft"] * len(r["concepts"]) for r in rows for mm, o in r["outputs"].items() if mm == m)
            / sum(len(r["concepts"]) for r in rows if m in r["outputs"]),
            "perplexity": math.exp(sum(o["nll"] for o in outs) / toks) if toks else float("nan"),
            "mean_tokens": toks / len(outs),
            "seconds_per_output": sum(o["seconds"] for o in outs) / len(outs),
            "incomplete": sum(o["failed"] is not None for o in outs),
        }
    print()
    print(f"CommonGen-style, {len(rows)} concept sets, SmolLM2-135M-Instruct, CPU {args.threads} thread(s), "
          f"search k={args.k} depth={args.depth} λ={args.weight}")
    print()
    print("| method | sets | sets fully covered | concepts present | mean soft coverage | perplexity | tokens/output | s/output | incomplete |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m, s in summary.items():
        print(f"| {m} | {s['n']} | {s['hard_coverage']:.2f} | {s['concepts_present']:.2f} | {s['soft_coverage']:.2f} | {s['perplexity']:.2f} | "
              f"{s['mean_tokens']:.1f} | {s['seconds_per_output']:.2f} | {s['incomplete']} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "summary": summary, "rows": rows}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
