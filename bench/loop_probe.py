"""Where a decode step's time goes on a device: our loop against the bare forward pass and
transformers' ``generate``, unconstrained, same prompts, same model.

For each batch size the variants below decode ``--max-new-tokens`` greedily, interleaved
repetition by repetition, and report wall ms per step (the prompt step included; best and median
of ``--reps``):

* ``forward``: the batch's KV-cached single-token forward passes, next token by argmax on the
  device, no host synchronization per step (the floor any loop can reach);
* ``forward-sync``: the same with the chosen tokens copied to the host every step (one
  synchronization per step, as every loop that looks at its tokens has);
* ``generate``: transformers' ``model.generate`` (greedy, exactly ``--max-new-tokens`` tokens);
* ``ours``: :func:`constrain.decode.decode_batch` with every token allowed (the ``none`` engine of
  ``bench/device_decode.py``); ``ours-serial``: the same with ``overlap=False``; ``ours-pool2``:
  with a two-thread mask pool instead of one thread per core;
* ``ours-ref``: ``decode_batch`` of another copy of ``constrain/decode.py`` (``--ref-decode``,
  e.g. the previous commit's, for an A/B in one process).

``--sync-debug`` also decodes one batch of ``ours`` under ``torch.cuda.set_sync_debug_mode`` and
prints where the loop synchronizes with the device (innermost frames of constrain and
transformers, counted per step). Run it under a sampling profiler for the rest
(``py-spy record --idle --format raw -- python bench/loop_probe.py --only ours ...``).

    python bench/loop_probe.py --random-weights .gpu/smollm2 --device cuda --batch-sizes 8,32
    OMP_NUM_THREADS=1 .venv/bin/python bench/loop_probe.py --device cpu --batch-sizes 8 --max-new-tokens 16
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import constrain  # noqa: E402
import constrain.batch  # noqa: E402
from constrain.decode import DecodeOptions, decode_batch  # noqa: E402
from constrain.generate import encode_prompt  # noqa: E402

VARIANTS = ("forward", "forward-sync", "generate", "ours", "ours-serial", "ours-percore", "ours-ref")


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_forward(model, prompts, steps: int, device: str, host_tokens: bool) -> None:
    """The prompt step and ``steps`` single-token steps; ``host_tokens``: copy tokens to the host each step."""
    import torch

    from constrain.decode import BatchForward, prompt_step_inputs

    ids, att, pos = prompt_step_inputs(prompts, 0)
    forward = BatchForward(model)
    ids, att = ids.to(device), att.to(device)
    logits = forward(ids, att, pos.to(device), last_only=True)
    token = logits[:, -1].argmax(-1)
    next_pos = att.sum(-1)
    ones = torch.ones((att.shape[0], 1), dtype=att.dtype, device=device)
    for _ in range(steps - 1):
        if host_tokens:
            token.tolist()
        att = torch.cat([att, ones], 1)
        logits = forward(token[:, None], att, next_pos[:, None], last_only=True)
        token = logits[:, -1].argmax(-1)
        next_pos = next_pos + 1
    token.tolist()


def run_generate(model, prompts, steps: int, device: str, pad: int) -> None:
    from constrain.decode import prompt_step_inputs

    ids, att, _ = prompt_step_inputs(prompts, pad)
    model.generate(input_ids=ids.to(device), attention_mask=att.to(device), max_new_tokens=steps,
                   min_new_tokens=steps, do_sample=False, pad_token_id=pad, eos_token_id=None)


def run_ours(decode, model, vocab, prompts, steps: int, overlap: bool = True) -> int:
    from generation import AllowAll

    options = DecodeOptions(max_new_tokens=steps, allow_incomplete=True, overlap=overlap)
    results = decode(model, prompts, [AllowAll(vocab.size) for _ in prompts], vocab, options,
                     pad_token_id=vocab.eos_token_ids[0])
    return sum(len(r.token_ids) for r in results)


def load_ref_decode(path: Path):
    spec = importlib.util.spec_from_file_location("constrain_decode_ref", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.decode_batch


def sync_points(model, vocab, prompts, steps: int) -> list[tuple[str, int]]:
    """Where one ``ours`` batch synchronizes with the device: (frames, count) pairs."""
    import torch

    seen: collections.Counter = collections.Counter()
    original = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        frames = [f for f in traceback.extract_stack()[:-1]
                  if "/constrain/" in f.filename or "/transformers/" in f.filename]
        seen[" <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames[-3:]))] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run_ours(decode_batch, model, vocab, prompts, steps)
        finally:
            torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = original
    return seen.most_common()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-sizes", default="8,32")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: bfloat16 on cuda)")
    ap.add_argument("--random-weights", type=Path, default=None, help="a saved config + tokenizer folder")
    ap.add_argument("--variants", default=",".join(v for v in VARIANTS if v != "ours-ref"))
    ap.add_argument("--only", default=None, help="run just this variant (for a profiler), no table")
    ap.add_argument("--ref-decode", type=Path, default=None, help="another decode.py for ours-ref")
    ap.add_argument("--sync-debug", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import torch

    from device_decode import load_model
    from generation import PROMPT

    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    args.peers = False
    model, tokenizer = load_model(args)
    vocab = constrain.Vocabulary.from_tokenizer(tokenizer, model.config.vocab_size)
    schemas = [json.loads(p.read_text()) for p in sorted((ROOT / "schemas").glob("*.json"))
               if not p.name.endswith(".examples.json")]
    prompts = [encode_prompt(tokenizer, PROMPT.format(schema=json.dumps(s))) for s in schemas]
    pad = vocab.eos_token_ids[0]
    ref = load_ref_decode(args.ref_decode) if args.ref_decode else None
    variants = [args.only] if args.only else [v for v in args.variants.split(",") if v]
    if "ours-ref" in variants and ref is None:
        raise SystemExit("ours-ref needs --ref-decode")
    default_pool = constrain.batch.mask_pool()
    from concurrent.futures import ThreadPoolExecutor

    percore = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="probe-mask")
    steps = args.max_new_tokens

    def one(variant: str, batch_prompts) -> float:
        sync(args.device)
        t0 = time.perf_counter()
        with torch.no_grad():
            if variant in ("forward", "forward-sync"):
                run_forward(model, batch_prompts, steps, args.device, variant == "forward-sync")
            elif variant == "generate":
                run_generate(model, batch_prompts, steps, args.device, pad)
            elif variant == "ours-percore":
                constrain.batch._POOL, min_rows = percore, constrain.batch.MIN_ROWS_PER_CHUNK
                constrain.batch.MIN_ROWS_PER_CHUNK = 1
                try:
                    run_ours(decode_batch, model, vocab, batch_prompts, steps)
                finally:
                    constrain.batch._POOL, constrain.batch.MIN_ROWS_PER_CHUNK = default_pool, min_rows
            else:
                decode = ref if variant == "ours-ref" else decode_batch
                run_ours(decode, model, vocab, batch_prompts, steps, overlap=variant != "ours-serial")
        sync(args.device)
        return 1e3 * (time.perf_counter() - t0) / steps

    report = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
              "dtype": args.dtype, "max_new_tokens": steps, "batch": {}}
    for size in [int(x) for x in args.batch_sizes.split(",") if x]:
        batch_prompts = [prompts[b % len(prompts)] for b in range(size)]
        for v in variants:  # warm-up: shapes, kernels, numba
            one(v, batch_prompts[:1])
            one(v, batch_prompts)
        times = {v: [] for v in variants}
        for _ in range(args.reps):
            for v in variants:
                times[v].append(one(v, batch_prompts))
        if args.only:
            continue
        floor = min(times["forward"]) if "forward" in times else None
        print(f"\nbatch {size}, {steps} steps, ms per step (prompt step included), {args.reps} reps:\n")
        print("| variant | best | median | best over forward |")
        print("|---|---:|---:|---:|")
        for v in variants:
            over = f"{min(times[v]) - floor:+.2f}" if floor is not None else ""
            print(f"| {v} | {min(times[v]):.2f} | {statistics.median(times[v]):.2f} | {over} |")
        report["batch"][size] = times
        if args.sync_debug and args.device.startswith("cuda"):
            points = sync_points(model, vocab, batch_prompts, steps)
            print(f"\nsynchronizations of one `ours` batch of {size} ({steps} steps), per step:")
            for where, n in points:
                print(f"  {n / steps:6.2f}  {where}")
        sys.stdout.flush()
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
