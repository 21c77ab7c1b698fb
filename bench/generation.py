"""End-to-end constrained generation with SmolLM2 on this CPU: constrain vs unconstrained vs peers.

Same model, same prompts, same greedy decoding loop (``constrain.decode.decode_batch``) for every
engine: only the mask engine differs (constrain with and without fast-forward, llguidance and
XGrammar through the adapters in ``bench/peers.py``, and "none" = unconstrained). Reports
tokens/s (forced tokens included), time to first token, compile time and the share of forced
tokens; then, for batch sizes 1, 8 and 32, the mask time per batch step against the forward pass.

    OMP_NUM_THREADS=1 .venv/bin/python bench/generation.py --schemas 50
    OMP_NUM_THREADS=1 .venv/bin/python bench/generation.py --schemas 10 --engines none,constrain,constrain-ff

Schemas: ``schemas/*.json`` first, then MaskBench files (``../shared/data/maskbench`` or --maskbench)
in name order, keeping those every selected engine compiles.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import constrain  # noqa: E402
from constrain.decode import DecodeOptions, decode_batch  # noqa: E402
from constrain.generate import encode_prompt  # noqa: E402

PROMPT = "Generate a JSON object that matches the following JSON schema. Output only the JSON.\n{schema}"


class AllowAll:
    """The "none" engine: every token allowed, EOS any time (unconstrained decoding, same loop)."""

    def __init__(self, vocab_size: int):
        self._row = np.full(constrain.allocate_bitmask(1, vocab_size).shape[1], -1, dtype=np.int32)

    def fill_bitmask(self, bitmask, row=0):
        bitmask[row] = self._row

    def accept_token(self, token):
        return True

    def is_accepting(self):
        return True

    def is_token_allowed(self, token):
        return True


def load_schemas(maskbench: Path | None, limit: int) -> list[tuple[str, dict]]:
    out = [(p.name, json.loads(p.read_text())) for p in sorted((ROOT / "schemas").glob("*.json"))
           if not p.name.endswith(".examples.json")]
    if maskbench and maskbench.is_dir():
        for p in sorted(maskbench.glob("*.json")):
            try:
                out.append((p.name, json.loads(p.read_text())["schema"]))
            except (KeyError, ValueError):
                continue
            if len(out) >= limit * 4:
                break
    return out


def make_engines(names, tokenizer, vocab):
    engines = {}
    if "none" in names:
        engines["none"] = lambda schema: (lambda: AllowAll(vocab.size))
    if "constrain" in names or "constrain-ff" in names:
        from constrain.schema import compile_json_schema

        def build(schema):
            c = compile_json_schema(schema, vocab)
            return c.matcher

        for n in ("constrain", "constrain-ff"):
            if n in names:
                engines[n] = build
    peer_names = [n for n in names if n in ("llguidance", "xgrammar")]
    if peer_names:
        from peers import ENGINE_CLASSES

        for n in peer_names:
            eng = ENGINE_CLASSES[n](tokenizer, vocab.size)
            engines[n] = (lambda e: (lambda schema: e.compile_json_schema(schema).matcher))(eng)
    return engines


def run_engine(model, tokenizer, vocab, name, factory, prompts_ids, max_new_tokens):
    options = DecodeOptions(max_new_tokens=max_new_tokens, fast_forward=(name == "constrain-ff"), allow_incomplete=True)
    rows = []
    for (prompt_ids, make_matcher, compile_s) in prompts_ids:
        t0 = time.perf_counter()
        [r] = decode_batch(model, [prompt_ids], [make_matcher()], vocab, options,
                           pad_token_id=vocab.eos_token_ids[0])
        wall = time.perf_counter() - t0
        n = len(r.token_ids)
        rows.append({
            "tokens": n, "forced": r.forced_tokens, "seconds": wall, "compile_s": compile_s,
            "ttft_s": r.step_seconds[0] if r.step_seconds else wall, "mask_s": r.mask_seconds,
            "forward_s": r.forward_seconds, "text": r.text,
        })
    return rows


def summarize(rows):
    toks = sum(r["tokens"] for r in rows)
    secs = sum(r["seconds"] for r in rows)
    return {
        "tokens_per_s": toks / secs if secs else float("nan"),
        "ttft_ms_p50": 1e3 * statistics.median(r["ttft_s"] for r in rows),
        "compile_ms_p50": 1e3 * statistics.median(r["compile_s"] for r in rows),
        "compile_ms_max": 1e3 * max(r["compile_s"] for r in rows),
        "forced_share": sum(r["forced"] for r in rows) / toks if toks else 0.0,
        "mask_ms_per_token": 1e3 * sum(r["mask_s"] for r in rows) / toks if toks else 0.0,
        "tokens": toks,
    }


def batch_overhead(model, tokenizer, vocab, schemas, sizes, steps):
    from constrain.schema import compile_json_schema

    out = {}
    compiled = [compile_json_schema(s, vocab) for _, s in schemas]
    for size in sizes:
        picks = [compiled[i % len(compiled)] for i in range(size)]
        prompts = [encode_prompt(tokenizer, PROMPT.format(schema=json.dumps(schemas[i % len(schemas)][1])[:1500]))
                   for i in range(size)]
        for overlap in (False, True):
            options = DecodeOptions(max_new_tokens=steps, overlap=overlap, allow_incomplete=True)
            t0 = time.perf_counter()
            results = decode_batch(model, prompts, [c.matcher() for c in picks], vocab, options,
                                   pad_token_id=vocab.eos_token_ids[0])
            wall = time.perf_counter() - t0
            r = results[0]
            n_steps = max(len(x.step_seconds) for x in results)
            out[f"{size}-{'overlap' if overlap else 'serial'}"] = {
                "batch": size, "overlap": overlap, "steps": n_steps,
                "mask_ms_per_step": 1e3 * r.mask_seconds / n_steps,
                "mask_wait_ms_per_step": 1e3 * r.mask_wait_seconds / n_steps,
                "forward_ms_per_step": 1e3 * r.forward_seconds / n_steps,
                "mask_share_of_forward": r.mask_seconds / r.forward_seconds,
                "wall_s": wall,
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schemas", type=int, default=50)
    ap.add_argument("--engines", default="none,constrain,constrain-ff,llguidance,xgrammar")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--maskbench", type=Path, default=ROOT.parent / "shared" / "data" / "maskbench")
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--batch-steps", type=int, default=24)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "generation.json")
    args = ap.parse_args()
    from tqdm import tqdm

    import torch

    torch.set_num_threads(1) if len(__import__("os").sched_getaffinity(0)) <= 2 else None
    model, tokenizer = constrain.load_default_model()
    vocab = constrain.Vocabulary.from_tokenizer(tokenizer, model.config.vocab_size)
    names = args.engines.split(",")
    engines = make_engines(names, tokenizer, vocab)

    # Keep schemas every engine compiles; compile times are recorded per engine.
    chosen, compiled = [], {n: [] for n in engines}
    for name, schema in tqdm(load_schemas(args.maskbench, args.schemas), desc="compiling", leave=False):
        row = {}
        try:
            for n, factory in engines.items():
                t0 = time.perf_counter()
                make = factory(schema)
                make()  # first matcher (and first mask lazily): part of compile cost
                row[n] = (make, time.perf_counter() - t0)
        except Exception:  # an engine that cannot compile it: skip the schema for everyone
            continue
        chosen.append((name, schema))
        for n in engines:
            compiled[n].append(row[n])
        if len(chosen) >= args.schemas:
            break
    prompts = [encode_prompt(tokenizer, PROMPT.format(schema=json.dumps(s)[:1500])) for _, s in chosen]
    print(f"{len(chosen)} schemas compiled by every engine: {', '.join(engines)}")

    results = {"schemas": [n for n, _ in chosen], "engines": {}}
    for n in engines:
        work = [(p, make, cs) for p, (make, cs) in zip(prompts, compiled[n])]
        rows = []
        for item in tqdm(work, desc=n):
            rows += run_engine(model, tokenizer, vocab, n, None, [item], args.max_new_tokens)
        results["engines"][n] = {"summary": summarize(rows), "rows": rows}
    sizes = [int(x) for x in args.batch_sizes.split(",") if x]
    if "constrain" in engines and sizes:
        results["batch"] = batch_overhead(model, tokenizer, vocab, chosen, sizes, args.batch_steps)

    print("\n| engine | tokens/s | TTFT p50 ms | compile p50 ms | compile max ms | forced share | mask ms/token | tokens |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in results["engines"].items():
        s = r["summary"]
        print(f"| {n} | {s['tokens_per_s']:.1f} | {s['ttft_ms_p50']:.0f} | {s['compile_ms_p50']:.1f} | "
              f"{s['compile_ms_max']:.1f} | {s['forced_share']:.2f} | {s['mask_ms_per_token']:.3f} | {s['tokens']} |")
    if "batch" in results:
        print("\n| batch | overlap | mask ms/step | mask wait ms/step | forward ms/step | mask / forward |")
        print("|---:|---|---:|---:|---:|---:|")
        for r in results["batch"].values():
            print(f"| {r['batch']} | {r['overlap']} | {r['mask_ms_per_step']:.2f} | {r['mask_wait_ms_per_step']:.2f} | "
                  f"{r['forward_ms_per_step']:.1f} | {100 * r['mask_share_of_forward']:.1f}% |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
