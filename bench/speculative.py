"""Constrained speculative decoding vs plain masked decoding: JSON schemas, default model, CPU.

    .venv/bin/python bench/speculative.py                       # 50 schemas (about 20 min on 2 shared cores)
    .venv/bin/python bench/speculative.py --schemas 6 --drafter-schemas 2 --batch-schemas 4   # quick look

Schemas: ``schemas/*.json`` first, then MaskBench files (``/work/shared/data/maskbench``) in name
order that compile with constrain within ``--compile-timeout`` seconds and carry a valid instance
(``schemas/*.examples.json`` "valid" / MaskBench "tests" with ``valid: true``). Two prompts per
schema:

- echo-heavy: "Convert this record to JSON: <key: value; ...>", the record written from the valid
  instance, so the output repeats the prompt's values;
- non-echo: "Describe <title> as a JSON object with the fields ...".

Greedy, batch 1: plain masked decoding (``constrain.decode.decode_batch``) and speculative decoding
run back to back per prompt, so load from other processes hits both; tok/s = generated tokens /
wall time (prompt forward included). Main table: every schema, the default ``Speculative()``
(forced bytes + prompt lookup). Per-drafter table: the first ``--drafter-schemas`` schemas, drafters
forced only, forced+lookup (= the default) and layer-skip self-draft. Batch table: the first
``--batch-schemas`` schemas in groups of 4 (each row its own schema), batched speculative
(``generate_speculative`` with a list) vs batched plain ``decode_batch``. Prints markdown tables
and the greedy-identity count (outputs that differ are allowed only at float near-ties; the top-2
masked margin at the first divergence is printed).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def flatten(value, prefix: str = "") -> list[tuple[str, object]]:
    """``[(dotted.key, scalar)]`` of a JSON value (list items as ``key[0]``)."""
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list):
        if not value:
            return [(prefix, "[]")]
        out = []
        for i, v in enumerate(value):
            out += flatten(v, f"{prefix}[{i}]")
        return out
    return [(prefix or "value", value)]


def record_text(instance, limit: int = 1200) -> str:
    parts = []
    for k, v in flatten(instance):
        parts.append(f"{k}: {json.dumps(v) if not isinstance(v, str) else v}")
    return "; ".join(parts)[:limit]


def describe_prompt(name: str, schema: dict) -> str:
    title = schema.get("title") or schema.get("description") or Path(name).stem.replace("_", " ")
    title = str(title).strip().split("\n")[0][:120]
    props = list((schema.get("properties") or {}).keys())[:12]
    fields = f" with the fields {', '.join(props)}" if props else ""
    return f"Invent an example of {title} and write it as a JSON object{fields}."


def load_schemas(maskbench: Path, limit: int, vocab, compile_timeout: float):
    """``[(name, schema, compiled, valid instance)]``: schemas/ first, then MaskBench in name order."""
    from constrain.schema import compile_json_schema

    cands = []
    for p in sorted((ROOT / "schemas").glob("*.json")):
        if p.name.endswith(".examples.json"):
            continue
        ex = p.with_name(p.stem + ".examples.json")
        valid = json.loads(ex.read_text()).get("valid", []) if ex.exists() else []
        cands.append((p.name, json.loads(p.read_text()), valid[0] if valid else None))
    out, skipped = [], []
    files = sorted(maskbench.glob("*.json")) if maskbench.is_dir() else []

    def more():
        yield from cands
        for p in files:
            try:
                d = json.loads(p.read_text())
            except ValueError:
                continue
            valid = [t["data"] for t in d.get("tests", []) if t.get("valid")]
            yield p.name, d.get("schema"), valid[0] if valid else None

    signal.signal(signal.SIGALRM, _alarm)
    for name, schema, instance in more():
        if len(out) >= limit:
            break
        if not isinstance(schema, dict) or instance is None:
            skipped.append((name, "no schema or no valid instance"))
            continue
        signal.setitimer(signal.ITIMER_REAL, compile_timeout)
        try:
            compiled = compile_json_schema(schema, vocab)
            compiled.matcher()
        except _Timeout:
            skipped.append((name, f"compile > {compile_timeout:g} s"))
            continue
        except Exception as exc:  # unsupported keyword, limit, bad schema
            skipped.append((name, type(exc).__name__))
            continue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        out.append((name, schema, compiled, instance))
    return out, skipped


def first_divergence_margin(model, prompt_ids, base, other, constraint) -> float:
    import torch

    i = next(i for i, (a, b) in enumerate(zip(base + [-1], other + [-2])) if a != b)
    m = constraint.matcher()
    m.accept_tokens(base[:i])
    allowed = m.allowed_token_ids()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + base[:i]])).logits[0, -1].float().numpy()
    top = np.sort(logits[allowed])[::-1]
    return float(top[0] - top[1]) if len(top) > 1 else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schemas", type=int, default=50, help="schemas in the main table")
    ap.add_argument("--drafter-schemas", type=int, default=8, help="schemas in the per-drafter table")
    ap.add_argument("--batch-schemas", type=int, default=8, help="schemas in the batch-4 table (multiple of 4)")
    ap.add_argument("--draft-layers", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--compile-timeout", type=float, default=5.0)
    ap.add_argument("--maskbench", type=Path, default=Path("/work/shared/data/maskbench"))
    ap.add_argument("--json", type=str, default="")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from constrain.decode import DecodeOptions, decode_batch
    from constrain.generate import encode_prompt
    from constrain.integrations.transformers import load_default_model, model_vocab_size, vocabulary_for
    from constrain.speculative import Speculative, generate_speculative

    model, tok = load_default_model()
    vocab = vocabulary_for(tok, model_vocab_size(model, tok))
    pad = tok.pad_token_id if tok.pad_token_id is not None else vocab.eos_token_ids[0]
    t0 = time.perf_counter()
    schemas, skipped = load_schemas(args.maskbench, args.schemas, vocab, args.compile_timeout)
    print(f"{len(schemas)} schemas ({time.perf_counter() - t0:.0f} s to compile; skipped {len(skipped)}: "
          f"{', '.join(f'{n} ({why})' for n, why in skipped[:12])}{' ...' if len(skipped) > 12 else ''})",
          flush=True)
    kinds = ("echo", "non-echo")
    prompts = {
        "echo": [f"Convert this record to JSON: {record_text(inst)}" for _, _, _, inst in schemas],
        "non-echo": [describe_prompt(name, schema) for name, schema, _, _ in schemas],
    }
    ids = {k: [encode_prompt(tok, p) for p in prompts[k]] for k in kinds}
    mnt = args.max_new_tokens
    opts = DecodeOptions(max_new_tokens=mnt, allow_incomplete=True)

    def plain(prompt_ids, compiled):
        t = time.perf_counter()
        res = decode_batch(model, prompt_ids, [c.matcher() for c in compiled], vocab, opts, pad_token_id=pad)
        return res, time.perf_counter() - t

    def spec(prompt_ids, compiled, s):
        t = time.perf_counter()
        one = len(prompt_ids) == 1
        res = generate_speculative(model, tok, prompt_ids[0] if one else prompt_ids,
                                   compiled[0] if one else compiled, s, max_new_tokens=mnt, allow_incomplete=True)
        return ([res] if one else res), time.perf_counter() - t

    # warm-up (numba, torch kernels)
    plain([ids["echo"][0]], [schemas[0][2]])
    spec([ids["echo"][0]], [schemas[0][2]], Speculative())

    rows, identity = [], {"checked": 0, "identical": 0, "diverged": []}

    def record(kind, variant, n, res, secs, group):
        toks = sum(len(r.token_ids) for r in res)
        st = [r.speculative for r in res if hasattr(r, "speculative")]
        rows.append(dict(kind=kind, variant=variant, group=group, n=n, tokens=toks, seconds=secs,
                         forwards=sum(s["forward_passes"] for s in st) if st else sum(len(r.step_seconds) for r in res),
                         steps=sum(s["steps"] for s in st), accepted=sum(sum(s["accepted_lengths"]) for s in st),
                         per=[s["per_drafter"] for s in st]))

    def check(kind, i, name, base, other, compiled):
        identity["checked"] += 1
        if base.token_ids == other.token_ids:
            identity["identical"] += 1
        else:
            margin = first_divergence_margin(model, ids[kind][i], base.token_ids, other.token_ids, compiled)
            identity["diverged"].append((kind, schemas[i][0], name, margin))

    from constrain.speculative.drafters import Chain, ForcedDrafter, PromptLookupDrafter

    variants = {
        "forced+lookup, no whitespace style": Speculative(
            drafter=Chain([ForcedDrafter(learn_whitespace=False), PromptLookupDrafter()])),
        "forced": Speculative(drafter="forced"),
        f"layer_skip_{args.draft_layers}": Speculative(drafter="layer_skip", draft_layers=args.draft_layers),
    }
    t_all = time.perf_counter()
    for i, (name, _, compiled, _) in enumerate(schemas):
        for kind in kinds:
            p = [ids[kind][i]]
            base, s_base = plain(p, [compiled])
            record(kind, "plain", 1, base, s_base, "main")
            res, s = spec(p, [compiled], Speculative())
            record(kind, "default", 1, res, s, "main")
            check(kind, i, "default", base[0], res[0], compiled)
            if i < args.drafter_schemas:
                record(kind, "plain", 1, base, s_base, "drafters")
                record(kind, "forced+lookup (default)", 1, res, s, "drafters")
                for vname, v in variants.items():
                    r2, s2 = spec(p, [compiled], v)
                    record(kind, vname, 1, r2, s2, "drafters")
                    check(kind, i, vname, base[0], r2[0], compiled)
        print(f"[{i + 1}/{len(schemas)} {time.perf_counter() - t_all:.0f} s] {name}: {res[0].text[:100]!r}",
              flush=True)

    nb = min(args.batch_schemas, len(schemas)) // 4 * 4
    for g in range(0, nb, 4):
        compiled = [c for _, _, c, _ in schemas[g : g + 4]]
        for kind in kinds:
            p = ids[kind][g : g + 4]
            base, s_base = plain(p, compiled)
            record(kind, "plain batch 4", 4, base, s_base, "batch")
            res, s = spec(p, compiled, Speculative())
            record(kind, "default batch 4", 4, res, s, "batch")
            for j in range(4):
                check(kind, g + j, "default batch 4", base[j], res[j], compiled[j])

    def table(group, title):
        print(f"\n{title}\n")
        print("| prompts | decoding | rows | tokens | tok/s | speedup | forwards/token | mean accepted draft length |"
              " per-drafter accepted/step (acceptance) |")
        print("|---|---|---|---|---|---|---|---|---|")
        out = []
        for kind in kinds:
            rs_kind = [r for r in rows if r["group"] == group and r["kind"] == kind]
            base_name = "plain batch 4" if group == "batch" else "plain"
            b = [r for r in rs_kind if r["variant"] == base_name]
            b_tps = sum(r["tokens"] for r in b) / max(sum(r["seconds"] for r in b), 1e-9)
            for variant in dict.fromkeys(r["variant"] for r in rs_kind):
                rs = [r for r in rs_kind if r["variant"] == variant]
                toks = sum(r["tokens"] for r in rs)
                secs = sum(r["seconds"] for r in rs)
                fw = sum(r["forwards"] for r in rs) / max(toks, 1)
                steps = sum(r["steps"] for r in rs)
                mal = sum(r["accepted"] for r in rs) / steps if steps else 0.0
                per: dict[str, list[int]] = {}
                for r in rs:
                    for pd in r["per"]:
                        for k, v in pd.items():
                            acc = per.setdefault(k, [0, 0, 0])
                            acc[0] += v["accepted"]
                            acc[1] += v["steps"]
                            acc[2] += v["judged"]
                per_s = ", ".join(f"{k} {a / max(s_, 1):.2f} ({a / max(j, 1):.0%})"
                                  for k, (a, s_, j) in per.items()) or "-"
                tps = toks / max(secs, 1e-9)
                n_prompts = sum(r["n"] for r in rs)
                print(f"| {kind} ({n_prompts}) | {variant} | {rs[0]['n']} | {toks} | {tps:.1f} | {tps / b_tps:.2f}x | "
                      f"{fw:.2f} | {mal:.2f} | {per_s} |")
                out.append(dict(kind=kind, variant=variant, prompts=n_prompts, tokens=toks, tok_s=tps,
                                speedup=tps / b_tps, forwards_per_token=fw, mean_accepted=mal, per=per))
        return out

    summary = {
        "main": table("main", f"Main: {len(schemas)} schemas, default Speculative() vs plain masked decoding"),
        "drafters": table("drafters", f"Per drafter: first {min(args.drafter_schemas, len(schemas))} schemas"),
        "batch": table("batch", f"Batch 4: first {nb} schemas, 4 rows per batch (one schema each)"),
    }
    print(f"\ngreedy identity: {identity['identical']}/{identity['checked']} speculative outputs token-identical "
          "to plain masked greedy (batch rows: to the same batch decoded plainly)")
    for kind, name, v, margin in identity["diverged"]:
        print(f"  diverged: {kind} {name} {v}: top-2 masked margin at the first divergence {margin:.2e}")
    print(f"total bench time {time.perf_counter() - t_all:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(summary=summary, identity=identity,
                                                   schemas=[s[0] for s in schemas], skipped=skipped), indent=1))


if __name__ == "__main__":
    main()
