"""Constrained decoding on the model's device: the host mask path vs lazily filled device tables.

Per batch size, the same prompts (one JSON schema per row, cycling over ``schemas/``) decode
greedily for ``--max-new-tokens`` under each engine, interleaved round by round:

* ``none``: unconstrained, our loop (``decode_batch`` with every token allowed);
* ``constrain``: our loop, masks filled on the host (numba, overlapped with the forward pass),
  copied to the device and applied there for the whole batch at once;
* ``constrain-device``: ``decode_batch_on_device`` on fresh :class:`DeviceTables` (cold: every
  state's bitmask and every transition is computed on the host on first visit);
* ``constrain-device-warm``: the same prompts again on the tables the cold run filled (steady state);
* with ``--peers``: transformers' ``generate`` with no processor (``none-hf``), with
  ``constrain.ConstrainLogitsProcessor`` (``constrain-hf``), XGrammar's and llguidance's processors.

It reports tokens/s, wall ms per decode step, the step time over ``none`` (the constraint's cost on
the critical path), host mask ms per step, host resolves per step (device tables), and the forward
pass alone (``forward``: the same batch's KV-cached single-token steps, synchronized).

    # here (CPU, SmolLM2-135M-Instruct from the GGUF file):
    OMP_NUM_THREADS=1 .venv/bin/python bench/device_decode.py --batch-sizes 1,8 --max-new-tokens 24
    # for a machine without the model file, save SmolLM2's config and tokenizer once here ...
    .venv/bin/python bench/device_decode.py --save-model-config /tmp/smollm2_config
    # ... and run there with the same architecture and tokenizer, random weights:
    python bench/device_decode.py --random-weights /tmp/smollm2_config --device cuda --peers

Random weights keep every cost of a step (same shapes, same vocabulary, same masks for the same
states) but not the model's choices: outputs are not JSON a schema accepts unless the constraint
makes them so, and rows seldom end before ``--max-new-tokens``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import constrain  # noqa: E402
from constrain.decode import BatchForward, DecodeOptions, decode_batch, decode_batch_on_device  # noqa: E402
from constrain.generate import encode_prompt  # noqa: E402
from constrain.integrations.device_tables import DeviceTables  # noqa: E402

OURS = ("none", "constrain", "constrain-device", "constrain-device-warm")
PEERS = ("none-hf", "constrain-hf", "xgrammar-hf", "llguidance-hf")


def load_model(args):
    """``(model, tokenizer)`` on ``args.device``: SmolLM2 from its GGUF file, or its architecture
    with random weights from a saved config (``--random-weights``)."""
    import torch

    if args.random_weights:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        config = AutoConfig.from_pretrained(args.random_weights)
        tokenizer = AutoTokenizer.from_pretrained(args.random_weights)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
    else:
        model, tokenizer = constrain.load_default_model()
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    model = model.to(device=args.device, dtype=dtype).eval()
    return model, tokenizer


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def forward_ms_per_step(model, prompts, steps: int, device: str) -> float:
    """Wall ms of one single-token, KV-cached forward pass of the batch ``prompts`` (synchronized)."""
    import torch

    from constrain.decode import prompt_step_inputs

    ids, att, pos = prompt_step_inputs(prompts, 0)
    forward = BatchForward(model)
    with torch.no_grad():
        logits = forward(ids.to(device), att.to(device), pos.to(device), last_only=True)
        token = logits[:, -1].argmax(-1)
        next_pos = att.sum(-1).to(device)
        att = att.to(device)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            att = torch.cat([att, torch.ones((att.shape[0], 1), dtype=att.dtype, device=device)], 1)
            logits = forward(token[:, None], att, next_pos[:, None], last_only=True)
            token = logits[:, -1].argmax(-1)
            next_pos = next_pos + 1
        sync(device)
    return 1e3 * (time.perf_counter() - t0) / steps


def run_ours(name, model, vocab, prompts, constraints, tables, args) -> dict:
    """One batch under engine ``name``; ``tables`` (device engines) is reused by the warm engine."""
    options = DecodeOptions(max_new_tokens=args.max_new_tokens, allow_incomplete=True)
    pad = vocab.eos_token_ids[0]
    sync(args.device)
    t0 = time.perf_counter()
    resolves0 = tables.host_resolves if tables is not None else 0
    if name.startswith("constrain-device"):
        index = {id(c): i for i, c in enumerate(tables.constraints)}
        results = decode_batch_on_device(model, prompts, tables, options, pad_token_id=pad,
                                         constraint_of_row=[index[id(c)] for c in constraints])
    else:
        from generation import AllowAll  # every token allowed: the "none" engine

        matchers = [AllowAll(vocab.size) if name == "none" else c.matcher() for c in constraints]
        results = decode_batch(model, prompts, matchers, vocab, options, pad_token_id=pad)
    sync(args.device)
    wall = time.perf_counter() - t0
    r0 = results[0]
    return {
        "wall_s": wall, "tokens": sum(len(r.token_ids) for r in results), "steps": r0.steps,
        "mask_s": r0.mask_seconds, "mask_wait_s": r0.mask_wait_seconds,
        "resolves": (tables.host_resolves - resolves0) if tables is not None else 0,
        "texts": [r.text for r in results],
    }


def run_peer(name, engines, prompts, compiled, args) -> dict:
    import generation

    sync(args.device)
    r = generation.run_hf(engines, name, prompts, compiled, args.max_new_tokens)
    sync(args.device)
    return {"wall_s": r["wall_s"], "tokens": sum(r["tokens"]), "steps": r["steps"], "mask_s": r["mask_s"],
            "mask_wait_s": r["mask_wait_s"], "resolves": 0, "texts": r["texts"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="rounds per batch size (engines interleaved)")
    ap.add_argument("--warmup-rounds", type=int, default=1, help="rounds per batch size run first, not counted")
    ap.add_argument("--device", default="cuda" if _cuda() else "cpu")
    ap.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bfloat16 on cuda)")
    ap.add_argument("--random-weights", type=Path, default=None, help="a saved config + tokenizer folder")
    ap.add_argument("--save-model-config", type=Path, default=None)
    ap.add_argument("--peers", action="store_true", help="also transformers' generate with the peers' processors")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "device_decode.json")
    args = ap.parse_args()
    import torch

    if args.save_model_config:
        model, tokenizer = constrain.load_default_model()
        model.config.save_pretrained(args.save_model_config)
        tokenizer.save_pretrained(args.save_model_config)
        print(f"saved config and tokenizer to {args.save_model_config}")
        return
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    if args.device == "cpu" and len(os.sched_getaffinity(0)) <= 2:
        torch.set_num_threads(1)
    t_load = time.perf_counter()
    model, tokenizer = load_model(args)
    vocab = constrain.Vocabulary.from_tokenizer(tokenizer, model.config.vocab_size)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"model on {args.device} ({device_name}, {args.dtype}, "
          f"{'random weights' if args.random_weights else 'SmolLM2 weights'}); loaded in "
          f"{time.perf_counter() - t_load:.1f} s", flush=True)
    schemas = [(p.name, json.loads(p.read_text())) for p in sorted((ROOT / "schemas").glob("*.json"))
               if not p.name.endswith(".examples.json")]
    from generation import PROMPT

    names = list(OURS)
    engines = None
    if args.peers:
        import generation

        engines = generation.Engines(PEERS, model, tokenizer, vocab)
        names += list(PEERS)
        kept = []
        for sname, schema in schemas:  # the schemas every peer compiles
            try:
                for n in ("xgrammar-hf", "llguidance-hf"):
                    engines.compile(n, schema)
            except Exception as exc:  # noqa: BLE001 - a peer's refusal, reported
                print(f"{sname}: left out ({type(exc).__name__}: {str(exc)[:80]})")
                continue
            kept.append((sname, schema))
        schemas = kept
    prompts = [encode_prompt(tokenizer, PROMPT.format(schema=json.dumps(s))) for _, s in schemas]

    def compile_all(name, rows):
        if name == "none":
            return [None] * len(rows)
        if name.startswith("constrain"):
            return [constrain.compile_json_schema(schemas[b % len(schemas)][1], vocab) for b in rows]
        return [engines.compile(name, schemas[b % len(schemas)][1])[0] for b in rows]

    # Warm-up outside the timings (CUDA context, kernels, numba JIT).
    for name in names:
        if name == "constrain-device-warm":
            continue
        cs = compile_all(name, [0])
        tables = DeviceTables(cs, args.device) if name == "constrain-device" else None
        if name in OURS:
            run_ours(name, model, vocab, prompts[:1], cs, tables, _short(args))
        else:
            run_peer(name, engines, prompts[:1], cs, _short(args))

    report = {"device": device_name, "dtype": args.dtype, "random_weights": bool(args.random_weights),
              "max_new_tokens": args.max_new_tokens, "schemas": [n for n, _ in schemas], "batch": {}}
    for size in [int(x) for x in args.batch_sizes.split(",") if x]:
        rows = list(range(size))
        batch_prompts = [prompts[b % len(prompts)] for b in rows]
        runs = {n: [] for n in names}
        for rnd in range(args.warmup_rounds + args.rounds):
            counted = rnd >= args.warmup_rounds  # a first round per batch size warms its shapes up
            tables = None
            cold: list = []  # the cold device run's constraints, reused by the warm one
            for name in names:
                cs = cold if name == "constrain-device-warm" else compile_all(name, rows)
                if name == "constrain-device":
                    cold = cs
                    distinct = list({id(c): c for c in cs}.values())
                    tables = DeviceTables(distinct, args.device)
                if name in OURS:
                    r = run_ours(name, model, vocab, batch_prompts, cs,
                                 tables if name.startswith("constrain-device") else None, args)
                else:
                    r = run_peer(name, engines, batch_prompts, cs, args)
                if counted:
                    runs[name].append(r)
                else:
                    runs.setdefault("_warmup", {})[name] = r
            if not counted:
                print(f"batch {size} warm-up round: " + ", ".join(
                    f"{n} {r['tokens'] / r['wall_s']:.0f} tok/s" for n, r in runs.pop("_warmup").items()), flush=True)
                continue
            print(f"batch {size} round {rnd + 1 - args.warmup_rounds}: " + ", ".join(
                f"{n} {r[-1]['tokens'] / r[-1]['wall_s']:.0f} tok/s" for n, r in runs.items()), flush=True)
        fwd = forward_ms_per_step(model, batch_prompts, args.max_new_tokens, args.device)
        table = {}
        for name in names:
            rs = runs[name]
            steps = sum(r["steps"] for r in rs)
            table[name] = {
                "tokens_per_s": sum(r["tokens"] for r in rs) / sum(r["wall_s"] for r in rs),
                # wall per generated position of the batch (rows x wall / tokens): engines count
                # forward passes differently (prefills, HF's generate), so this is the comparable step
                "ms_per_step": 1e3 * sum(len(r["texts"]) * r["wall_s"] for r in rs) / max(1, sum(r["tokens"] for r in rs)),
                "host_mask_ms_per_step": 1e3 * sum(r["mask_s"] for r in rs) / steps,  # per forward pass
                "mask_wait_ms_per_step": 1e3 * sum(r["mask_wait_s"] for r in rs) / steps,
                "resolves_per_step": sum(r["resolves"] for r in rs) / steps,
                "steps": steps, "tokens": sum(r["tokens"] for r in rs),
                "valid": sum(_valid(t, schemas[b % len(schemas)][1]) for r in rs for b, t in enumerate(r["texts"])),
                "rows": sum(len(r["texts"]) for r in rs),
            }
        base = table["none"]["ms_per_step"]
        for name in names:
            table[name]["over_none_ms_per_step"] = table[name]["ms_per_step"] - base
        report["batch"][size] = {"forward_ms_per_step": fwd, "engines": table}
        print_table(size, fwd, table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


def print_table(size: int, fwd: float, table: dict) -> None:
    print(f"\nbatch {size}: forward pass alone {fwd:.2f} ms/step\n")
    print("| engine | tokens/s | ms/step (rows x wall / tokens) | over none ms/step | over none / forward "
          "| host mask ms/pass | mask wait ms/pass | host resolves/pass | valid |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in table.items():
        print(f"| {name} | {s['tokens_per_s']:.1f} | {s['ms_per_step']:.2f} | {s['over_none_ms_per_step']:+.2f} | "
              f"{100 * s['over_none_ms_per_step'] / fwd:+.1f}% | {s['host_mask_ms_per_step']:.2f} | "
              f"{s['mask_wait_ms_per_step']:.2f} | {s['resolves_per_step']:.2f} | {s['valid']}/{s['rows']} |")
    print(flush=True)


def _valid(text: str, schema: dict) -> bool:
    import generation

    return generation.is_valid(text, schema)


def _short(args):
    return argparse.Namespace(**{**vars(args), "max_new_tokens": 2})


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


if __name__ == "__main__":
    main()
