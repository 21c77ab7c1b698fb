"""End-to-end constrained generation with SmolLM2 on this CPU: constrain vs unconstrained vs peers.

Two decoding loops, each with its own unconstrained baseline:

* our loop (``constrain.decode.decode_batch``): ``none`` (every token allowed), ``constrain``,
  ``constrain-ff`` (fast-forward "bytes") and ``constrain-ffs`` (fast-forward "singleton");
* transformers' ``model.generate`` (greedy): ``none-hf`` (no processor), ``constrain-hf``
  (``constrain.ConstrainLogitsProcessor``); at batch 8 also ``constrain-ff-wide`` (every forced
  token fed in the next step, however ragged the batch: the loop before ``ragged_fill``), ``xgrammar-hf`` (``xgrammar.contrib.hf.LogitsProcessor``)
  and ``llguidance-hf`` (``llguidance.hf.from_tokenizer`` + ``llguidance.torch``
  ``fill_next_token_bitmask`` / ``apply_token_bitmask_inplace`` inside a LogitsProcessor).

Every engine decodes the same chat-template prompts greedily with the same ``max_new_tokens``.
Engines are interleaved prompt by prompt (all engines on prompt 1, then prompt 2, ...) so that
changes in the machine's load hit every engine alike. Each engine compiles its own constraint
for each run (no mask cache is shared between engines or between batch sizes).

Batch 1 reports, per engine: tokens/s (forced tokens included), wall per prompt, time to first
token, compile time, forced share, mean output tokens, outputs valid under the schema
(jsonschema) and, for ``constrain-ffs``, outputs identical to ``constrain``. Batch 8 reports
throughput (all output tokens / wall) over the prompts in batches of 8. Mask vs forward pass per
batch step at batch 1 / 8 (from those runs) and 32 (the first 32 prompts, serial and overlapped).

    OMP_NUM_THREADS=1 .venv/bin/python bench/generation.py                 # the full run
    OMP_NUM_THREADS=1 .venv/bin/python bench/generation.py --schemas 4 --max-new-tokens 16 \
        --batch-sizes 1,8 --mask-batch 8                                   # a smoke run

Schemas: ``schemas/*.json`` first, then MaskBench files (``../shared/data/maskbench`` or
--maskbench) in name order, keeping those that every engine compiles.
"""

from __future__ import annotations

import argparse
import json
import os
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
OUR_ENGINES = ("none", "constrain", "constrain-ff", "constrain-ffs", "constrain-ff-wide", "none-matched",
               "none-static", "constrain-ff-static", "constrain-ff-narrow", "constrain-ff-half")
# none-matched: unconstrained, each row stopped at the number of tokens constrain-ff gave that row in
# the same run (needs constrain-ff before it): the same work per row, so the batch is as ragged.
HF_ENGINES = ("none-hf", "constrain-hf", "xgrammar-hf", "llguidance-hf")
FAST_FORWARD = {"constrain-ff": "bytes", "constrain-ffs": "singleton", "constrain-ff-wide": "bytes",
                "constrain-ff-static": "bytes", "constrain-ff-narrow": "bytes", "constrain-ff-half": "bytes"}
# At batch sizes above 1, our loop decodes every prompt in one call with continuous batching
# (max_batch_size = the batch size: a waiting prompt joins as soon as a row finishes); the -static
# engines (and transformers' generate) decode the prompts in fixed chunks of the batch size instead.
STATIC = {"none-static", "constrain-ff-static"}
# constrain-ff-wide: the loop before ragged steps were capped, every forced token fed at once.
RAGGED_FILL = {"constrain-ff-wide": 0.0, "constrain-ff-narrow": 1.0, "constrain-ff-half": 0.5}
# constrain-ff-narrow: a step is only wider than one token when every row has that many queued;
# constrain-ff-half: the fixed-batch default (0.5) with continuous batching; others: the default


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


# --------------------------------------------------------------------------- #
# transformers LogitsProcessors
# --------------------------------------------------------------------------- #


def llguidance_processor_class():
    import llguidance
    import llguidance.torch as llt
    import torch
    from transformers import LogitsProcessor

    class LLGuidanceLogitsProcessor(LogitsProcessor):
        """llguidance in ``model.generate``: one ``LLMatcher`` per row, masks through ``llguidance.torch``."""

        def __init__(self, tokenizer, grammars: list[str]):
            self.tokenizer = tokenizer
            self.grammars = grammars
            self.matchers = None
            self.bitmask = None

        def __call__(self, input_ids, scores):
            batch = int(input_ids.shape[0])
            if self.matchers is None:
                grammars = self.grammars if len(self.grammars) == batch else self.grammars * batch
                self.matchers = [llguidance.LLMatcher(self.tokenizer, g) for g in grammars]
                self.bitmask = llt.allocate_token_bitmask(batch, self.tokenizer.vocab_size)
            else:
                for m, tok in zip(self.matchers, input_ids[:, -1].tolist()):
                    if not m.is_stopped():
                        if not m.consume_token(tok):
                            raise RuntimeError(f"llguidance rejected token {tok}: {m.get_error()}")
            for i, m in enumerate(self.matchers):
                llt.fill_next_token_bitmask(m, self.bitmask, i)
            llt.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device))
            return scores

    return LLGuidanceLogitsProcessor, torch


class Timed:
    """Wraps a LogitsProcessor and adds up the time spent in it (mask + apply)."""

    def __init__(self, inner):
        self.inner = inner
        self.seconds = 0.0

    def __call__(self, input_ids, scores):
        t0 = time.perf_counter()
        out = self.inner(input_ids, scores)
        self.seconds += time.perf_counter() - t0
        return out


class FirstTokenTimer:
    """A generate() streamer that only records when the first new token arrives (TTFT)."""

    def __init__(self):
        self.calls = 0
        self.first = None

    def put(self, value):
        self.calls += 1
        if self.calls == 2 and self.first is None:  # call 1 is the prompt
            self.first = time.perf_counter()

    def end(self):
        pass


# --------------------------------------------------------------------------- #
# Engines: each `prepare(schema)` compiles (timed) and returns a per-run object
# --------------------------------------------------------------------------- #


class Engines:
    def __init__(self, names, model, tokenizer, vocab):
        self.names = names
        self.model = model
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.xgr = self.xgr_compiler = self.llg_tok = None
        if any(n.startswith("xgrammar") for n in names) or True:  # schemas are filtered by every peer
            import xgrammar

            self.xgr = xgrammar
            info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab.size)
            self.xgr_compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)
        import llguidance
        import llguidance.hf

        self.llg = llguidance
        self.llg_tok = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab.size)
        self.LLGProc, _ = llguidance_processor_class()

    def compile(self, name: str, schema: dict):
        """``(compiled object, seconds)``: the engine's own compile of ``schema`` (first mask included)."""
        t0 = time.perf_counter()
        if name in ("none", "none-hf", "none-matched", "none-static"):
            obj = None
        elif name.startswith("constrain"):
            from constrain.schema import compile_json_schema

            obj = compile_json_schema(schema, self.vocab)
            obj.matcher().fill_bitmask(constrain.allocate_bitmask(1, self.vocab.size), 0)
        elif name.startswith("xgrammar"):
            obj = self.xgr_compiler.compile_json_schema(json.dumps(schema))
            m = self.xgr.GrammarMatcher(obj)
            import torch

            m.fill_next_token_bitmask(torch.from_numpy(constrain.allocate_bitmask(1, self.vocab.size)), 0)
        elif name.startswith("llguidance"):
            obj = self.llg.LLMatcher.grammar_from_json_schema(json.dumps(schema))
            m = self.llg.LLMatcher(self.llg_tok, obj)
            if m.is_error():
                raise ValueError(m.get_error())
            m.compute_bitmask()
        else:
            raise ValueError(f"unknown engine {name}")
        return obj, time.perf_counter() - t0

    def processor(self, name: str, compiled: list):
        if name == "none-hf":
            return None
        if name == "constrain-hf":
            return constrain.ConstrainLogitsProcessor(list(compiled))
        if name == "xgrammar-hf":
            import xgrammar.contrib.hf

            return xgrammar.contrib.hf.LogitsProcessor(list(compiled))
        if name == "llguidance-hf":
            return self.LLGProc(self.llg_tok, list(compiled))
        raise ValueError(name)


def run_ours(engines: Engines, name, prompts, compiled, max_new_tokens, overlap=True, row_budgets=None,
             max_batch_size=None):
    vocab = engines.vocab
    matchers = [AllowAll(vocab.size) if c is None else c.matcher() for c in compiled]
    options = DecodeOptions(max_new_tokens=max_new_tokens, fast_forward=FAST_FORWARD.get(name, False),
                            allow_incomplete=True, overlap=overlap, ragged_fill=RAGGED_FILL.get(name),
                            max_batch_size=max_batch_size)
    t0 = time.perf_counter()
    results = decode_batch(engines.model, prompts, matchers, vocab, options, pad_token_id=vocab.eos_token_ids[0],
                           row_max_new_tokens=row_budgets)
    wall = time.perf_counter() - t0
    r0 = results[0]
    return {
        "wall_s": wall, "tokens": [len(r.token_ids) for r in results], "texts": [r.text for r in results],
        "token_ids": [r.token_ids for r in results], "forced": sum(r.forced_tokens for r in results),
        # Per row, from the start of its prompt's forward pass (its admission) to its first token.
        "ttft_s": (statistics.median(r.step_seconds[0] for r in results if r.step_seconds)
                   if any(r.step_seconds for r in results) else wall),
        "mask_s": r0.mask_seconds, "mask_wait_s": r0.mask_wait_seconds, "forward_s": r0.forward_seconds,
        "steps": r0.steps,
    }


def run_hf(engines: Engines, name, prompts, compiled, max_new_tokens):
    import torch
    from transformers import LogitsProcessorList

    vocab = engines.vocab
    pad = vocab.eos_token_ids[0]
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    att = torch.zeros((len(prompts), width), dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, width - len(p):] = torch.tensor(p)
        att[b, width - len(p):] = 1
    proc = engines.processor(name, compiled)
    timed = Timed(proc) if proc is not None else None
    timer = FirstTokenTimer()
    t0 = time.perf_counter()
    device = next(engines.model.parameters()).device
    with torch.no_grad():
        out = engines.model.generate(
            input_ids=ids.to(device), attention_mask=att.to(device), max_new_tokens=max_new_tokens, do_sample=False,
            logits_processor=LogitsProcessorList([timed] if timed else []), streamer=timer,
            pad_token_id=pad, eos_token_id=list(vocab.eos_token_ids), temperature=None, top_p=None, top_k=None,
        )
    wall = time.perf_counter() - t0
    texts, tokens, token_ids = [], [], []
    for row in out[:, width:].cpu().tolist():
        row_ids = []
        for t in row:
            if vocab.is_eos(t):
                break
            row_ids.append(t)
        token_ids.append(row_ids)
        tokens.append(len(row_ids))
        texts.append(vocab.decode(row_ids).decode("utf-8", errors="replace"))
    steps = out.shape[1] - width
    return {
        "wall_s": wall, "tokens": tokens, "texts": texts, "token_ids": token_ids, "forced": 0,
        "ttft_s": (timer.first - t0) if timer.first else wall,
        "mask_s": timed.seconds if timed else 0.0, "mask_wait_s": timed.seconds if timed else 0.0,
        "forward_s": float("nan"), "steps": steps,
    }


def run(engines, name, prompts, compiled, max_new_tokens, overlap=True, row_budgets=None, max_batch_size=None):
    if name in OUR_ENGINES:
        return run_ours(engines, name, prompts, compiled, max_new_tokens, overlap, row_budgets, max_batch_size)
    return run_hf(engines, name, prompts, compiled, max_new_tokens)


# --------------------------------------------------------------------------- #
# Schemas, validity
# --------------------------------------------------------------------------- #


def candidate_schemas(maskbench: Path | None, limit: int) -> list[tuple[str, dict]]:
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


def is_valid(text: str, schema: dict) -> bool:
    import jsonschema

    try:
        value = json.loads(text)
    except ValueError:
        return False
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls(schema, format_checker=None).validate(value)
    except jsonschema.ValidationError:
        return False
    except Exception:  # a schema jsonschema itself cannot handle: count as invalid
        return False
    return True


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #


def summarize(runs, schemas):
    tokens = sum(sum(r["tokens"]) for r in runs)
    wall = sum(r["wall_s"] for r in runs)
    n = sum(len(r["tokens"]) for r in runs)
    texts = [t for r in runs for t in r["texts"]]
    steps = sum(r["steps"] for r in runs)
    fwd = sum(r["forward_s"] for r in runs)
    return {
        "tokens_per_s": tokens / wall if wall else float("nan"),
        "wall_per_prompt_s": wall / n,
        "ttft_ms_p50": 1e3 * statistics.median(r["ttft_s"] for r in runs),
        "forced_share": sum(r["forced"] for r in runs) / tokens if tokens else 0.0,
        "mean_tokens": tokens / n,
        "valid": sum(is_valid(t, s) for t, s in zip(texts, schemas)),
        "n": n,
        "tokens": tokens,
        "wall_s": wall,
        "steps": steps,
        "mask_ms_per_step": 1e3 * sum(r["mask_s"] for r in runs) / steps if steps else 0.0,
        "mask_wait_ms_per_step": 1e3 * sum(r["mask_wait_s"] for r in runs) / steps if steps else 0.0,
        "forward_ms_per_step": 1e3 * fwd / steps if steps else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schemas", type=int, default=50)
    ap.add_argument("--engines", default=",".join(OUR_ENGINES[:4] + HF_ENGINES))
    ap.add_argument("--batch8-engines", default="none,constrain,constrain-ff,none-matched,none-static,constrain-ff-static,"
                    "none-hf,constrain-hf,xgrammar-hf,llguidance-hf")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--maskbench", type=Path, default=ROOT.parent / "shared" / "data" / "maskbench")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--mask-batch", type=int, default=32, help="batch of the serial/overlapped mask table (0: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "generation.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1) if len(os.sched_getaffinity(0)) <= 2 else None
    print("uptime:", os.popen("uptime").read().strip(), flush=True)
    started = time.perf_counter()
    model, tokenizer = constrain.load_default_model()
    vocab = constrain.Vocabulary.from_tokenizer(tokenizer, model.config.vocab_size)
    names = args.engines.split(",")
    b8_names = [n for n in args.batch8_engines.split(",") if n]
    engines = Engines(sorted(set(names) | set(b8_names)), model, tokenizer, vocab)

    # Keep the schemas every engine (constrain, XGrammar, llguidance) compiles.
    chosen = []
    for sname, schema in candidate_schemas(args.maskbench, args.schemas):
        try:
            for n in ("constrain", "xgrammar-hf", "llguidance-hf"):
                engines.compile(n, schema)
        except Exception:
            continue
        chosen.append((sname, schema))
        if len(chosen) >= args.schemas:
            break
    schemas = [s for _, s in chosen]
    prompts = [encode_prompt(tokenizer, PROMPT.format(schema=json.dumps(s)[:1500])) for s in schemas]
    print(f"{len(chosen)} schemas compiled by every engine; prompts {min(map(len, prompts))}-"
          f"{max(map(len, prompts))} tokens", flush=True)
    # Warm-ups outside the timings: torch.compile of llguidance's apply kernel, first forward passes.
    for n in set(names) | set(b8_names):
        c, _ = engines.compile(n, schemas[0])
        run(engines, n, prompts[:1], [c], 2)

    results = {"uptime_start": os.popen("uptime").read().strip(), "max_new_tokens": args.max_new_tokens,
               "schemas": [n for n, _ in chosen], "batch": {}}
    sizes = [int(x) for x in args.batch_sizes.split(",") if x]
    for size in sizes:
        batch_names = names if size == 1 else b8_names
        runs = {n: [] for n in batch_names}
        compile_s = {n: [] for n in batch_names}
        continuous = [n for n in batch_names if size > 1 and n in OUR_ENGINES and n not in STATIC]
        chunked = [n for n in batch_names if n not in continuous]

        def run_part(n, part, max_batch_size=None):
            compiled = []
            for s in schemas[part]:
                c, secs = engines.compile(n, s)
                compiled.append(c)
                compile_s[n].append(secs)
            budgets = None
            if n == "none-matched":
                if not runs.get("constrain-ff"):
                    raise SystemExit("none-matched needs constrain-ff earlier in the engine list")
                budgets = [max(1, t) for r in runs["constrain-ff"] for t in r["tokens"]][part]
            runs[n].append(run(engines, n, prompts[part], compiled, args.max_new_tokens, row_budgets=budgets,
                               max_batch_size=max_batch_size))

        def progress(label):
            done = ", ".join(f"{n} {sum(sum(r['tokens']) for r in runs[n]) / sum(r['wall_s'] for r in runs[n]):.1f}"
                             for n in batch_names if runs[n])
            print(f"batch {size}: {label}; tok/s {done}", flush=True)

        if chunked:
            for start in range(0, len(prompts), size):
                for n in chunked:
                    run_part(n, slice(start, start + size))
                progress(f"{min(start + size, len(prompts))}/{len(prompts)} prompts in chunks")
        for n in continuous:
            run_part(n, slice(0, len(prompts)), max_batch_size=size)
            progress(f"{n} over {len(prompts)} prompts, continuous batching")
        table = {}
        for n in batch_names:
            s = summarize(runs[n], schemas)
            s["compile_ms_p50"] = 1e3 * statistics.median(compile_s[n])
            s["compile_ms_max"] = 1e3 * max(compile_s[n])
            if n == "constrain-ffs" and "constrain" in runs:
                a = [t for r in runs["constrain"] for t in r["token_ids"]]
                b = [t for r in runs[n] for t in r["token_ids"]]
                s["identical_to_constrain"] = sum(x == y for x, y in zip(a, b))
            table[n] = s
        results["batch"][size] = {"summary": table, "runs": runs}
        print_table(size, table, flush=True)

    if args.mask_batch:
        size = args.mask_batch
        mask = {}
        for overlap in (False, True):
            compiled = [engines.compile("constrain", s)[0] for s in schemas[:size]]
            compiled = [compiled[i % len(compiled)] for i in range(size)]
            r = run_ours(engines, "constrain", [prompts[i % len(prompts)] for i in range(size)], compiled,
                         args.max_new_tokens, overlap=overlap)
            mask["overlap" if overlap else "serial"] = r
            print(f"mask batch {size} overlap={overlap}: steps {r['steps']}, mask {1e3 * r['mask_s'] / r['steps']:.1f} "
                  f"ms/step, wait {1e3 * r['mask_wait_s'] / r['steps']:.1f} ms/step, forward "
                  f"{1e3 * r['forward_s'] / r['steps']:.1f} ms/step", flush=True)
        results["mask_batch"] = {"batch": size, **mask}

    results["uptime_end"] = os.popen("uptime").read().strip()
    results["wall_s"] = time.perf_counter() - started
    print(f"\nuptime at the end: {results['uptime_end']}; bench wall {results['wall_s'] / 60:.1f} min")
    print_mask_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nwrote {args.out}")


def print_table(size, table, flush=False):
    print(f"\n### batch {size}\n")
    print("| engine | tokens/s | wall/prompt s | TTFT p50 ms | compile p50 ms | compile max ms | forced share | "
          "mean tokens | valid | mask ms/step | mask wait ms/step | forward ms/step |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, s in table.items():
        ident = f" (identical to constrain: {s['identical_to_constrain']}/{s['n']})" if "identical_to_constrain" in s else ""
        print(f"| {n} | {s['tokens_per_s']:.1f} | {s['wall_per_prompt_s']:.2f} | {s['ttft_ms_p50']:.0f} | "
              f"{s['compile_ms_p50']:.1f} | {s['compile_ms_max']:.1f} | {s['forced_share']:.2f} | "
              f"{s['mean_tokens']:.1f} | {s['valid']}/{s['n']}{ident} | {s['mask_ms_per_step']:.2f} | "
              f"{s['mask_wait_ms_per_step']:.2f} | {s['forward_ms_per_step']:.1f} |", flush=flush)


def print_mask_table(results):
    print("\n### mask time per batch step vs forward pass (constrain, our loop)\n")
    print("| batch | mode | steps | mask ms/step | on critical path ms/step | forward ms/step | critical / forward |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for size, b in results["batch"].items():
        s = b["summary"].get("constrain")
        if s:
            print(f"| {size} | overlapped | {s['steps']} | {s['mask_ms_per_step']:.2f} | {s['mask_wait_ms_per_step']:.2f} | "
                  f"{s['forward_ms_per_step']:.1f} | {100 * s['mask_wait_ms_per_step'] / s['forward_ms_per_step']:.1f}% |")
    mb = results.get("mask_batch")
    if mb:
        for mode in ("serial", "overlap"):
            r = mb[mode]
            print(f"| {mb['batch']} | {'overlapped' if mode == 'overlap' else 'serial'} | {r['steps']} | "
                  f"{1e3 * r['mask_s'] / r['steps']:.2f} | {1e3 * r['mask_wait_s'] / r['steps']:.2f} | "
                  f"{1e3 * r['forward_s'] / r['steps']:.1f} | {100 * r['mask_wait_s'] / r['forward_s']:.1f}% |")


if __name__ == "__main__":
    main()
