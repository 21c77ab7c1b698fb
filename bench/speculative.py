"""Constrained speculative decoding vs plain masked decoding on the default model (CPU, batch 1).

    .venv/bin/python bench/speculative.py            # 25 echo + 25 non-echo prompts (about 5 min)
    .venv/bin/python bench/speculative.py --n 4      # quick look

For every prompt: greedy masked decoding (``constrain.decode.decode_batch``) and greedy speculative
decoding with each drafter; tokens/s, speedup, mean accepted draft length per step, per-drafter
acceptance, and whether the speculative output is token-identical to the plain one (when it is
not, the top-2 masked logit margin at the first divergence is printed: float32 batched vs
sequential kernels can flip near-ties). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEOPLE = [
    ("Ada Lovelace", "1815-12-10", "London", "mathematician and writer"),
    ("Alan Turing", "1912-06-23", "Maida Vale", "computer scientist"),
    ("Grace Hopper", "1906-12-09", "New York City", "computer scientist and naval officer"),
    ("Marie Curie", "1867-11-07", "Warsaw", "physicist and chemist"),
    ("Carl Friedrich Gauss", "1777-04-30", "Brunswick", "mathematician and physicist"),
    ("Emmy Noether", "1882-03-23", "Erlangen", "mathematician"),
    ("Niels Bohr", "1885-10-07", "Copenhagen", "physicist"),
    ("Rosalind Franklin", "1920-07-25", "Notting Hill", "chemist and crystallographer"),
    ("John von Neumann", "1903-12-28", "Budapest", "mathematician and engineer"),
    ("Katherine Johnson", "1918-08-26", "White Sulphur Springs", "mathematician"),
    ("Srinivasa Ramanujan", "1887-12-22", "Erode", "mathematician"),
    ("Barbara Liskov", "1939-11-07", "Los Angeles", "computer scientist"),
    ("Edsger Dijkstra", "1930-05-11", "Rotterdam", "computer scientist"),
    ("Hedy Lamarr", "1914-11-09", "Vienna", "actress and inventor"),
    ("Nikola Tesla", "1856-07-10", "Smiljan", "inventor and electrical engineer"),
    ("Sofia Kovalevskaya", "1850-01-15", "Moscow", "mathematician"),
    ("Claude Shannon", "1916-04-30", "Petoskey", "mathematician and engineer"),
    ("Dorothy Hodgkin", "1910-05-12", "Cairo", "chemist"),
    ("Leonhard Euler", "1707-04-15", "Basel", "mathematician and physicist"),
    ("Mary Somerville", "1780-12-26", "Jedburgh", "scientist and writer"),
    ("Tim Berners-Lee", "1955-06-08", "London", "computer scientist"),
    ("Lise Meitner", "1878-11-07", "Vienna", "physicist"),
    ("Donald Knuth", "1938-01-10", "Milwaukee", "computer scientist"),
    ("Chien-Shiung Wu", "1912-05-31", "Liuhe", "physicist"),
    ("Alexander Fleming", "1881-08-06", "Darvel", "physician and microbiologist"),
]
TOPICS = [
    "a fictional pirate captain", "an imaginary astronaut", "a made-up medieval baker", "a famous chef you invent",
    "a fictional detective", "an invented jazz musician", "a made-up mountain climber", "an imaginary robot engineer",
    "a fictional school teacher", "an invented marine biologist", "a made-up fantasy wizard", "a fictional racing driver",
    "an imaginary painter", "a made-up librarian", "a fictional inventor of toys", "an invented opera singer",
    "a fictional football coach", "an imaginary gardener", "a made-up space pilot", "a fictional archaeologist",
    "an invented poet", "a made-up pharmacist", "a fictional sea captain", "an imaginary architect",
    "a fictional village doctor",
]
JSON_RE = (
    r'\{"name": "[A-Za-z .\-]{1,40}", "born": "[0-9]{4}-[0-9]{2}-[0-9]{2}", '
    r'"city": "[A-Za-z .\-]{1,30}", "occupation": "[a-z ]{1,48}"\}'
)


def echo_prompt(p) -> str:
    name, born, city, job = p
    return (f"Convert this record to JSON with keys name, born, city, occupation: name {name}; born {born}; "
            f"city {city}; occupation {job}.")


def topic_prompt(t) -> str:
    return f"Describe {t} as JSON with keys name, born (YYYY-MM-DD), city, occupation."


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
    ap.add_argument("--n", type=int, default=25, help="prompts per kind (echo, non-echo)")
    ap.add_argument("--layer-skip-n", type=int, default=4, help="prompts per kind for the layer-skip drafter")
    ap.add_argument("--draft-layers", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--temperature", type=float, default=0.0, help="> 0: sampling (seed = prompt index)")
    ap.add_argument("--json", type=str, default="")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from constrain.decode import DecodeOptions, decode_batch
    from constrain.dfa_constraint import compile_regex
    from constrain.generate import encode_prompt
    from constrain.integrations.transformers import load_default_model, model_vocab_size, vocabulary_for
    from constrain.speculative import Speculative, generate_speculative

    model, tok = load_default_model()
    vocab = vocabulary_for(tok, model_vocab_size(model, tok))
    constraint = compile_regex(JSON_RE, vocab)
    pad = tok.pad_token_id if tok.pad_token_id is not None else vocab.eos_token_ids[0]
    variants = {
        "forced+lookup": Speculative(),
        "forced": Speculative(drafter="forced"),
        f"layer_skip_{args.draft_layers}": Speculative(drafter="layer_skip", draft_layers=args.draft_layers),
    }
    kinds = {"echo": [echo_prompt(p) for p in PEOPLE[: args.n]],
             "non-echo": [topic_prompt(t) for t in TOPICS[: args.n]]}

    # warm-up (numba, masks of the DFA states, torch kernels)
    w = encode_prompt(tok, kinds["echo"][0])
    decode_batch(model, [w], [constraint.matcher()], vocab, DecodeOptions(max_new_tokens=args.max_new_tokens,
                                                                           allow_incomplete=True), pad_token_id=pad)
    generate_speculative(model, tok, kinds["echo"][0], constraint, Speculative(), max_new_tokens=args.max_new_tokens,
                         allow_incomplete=True)

    rows = []
    identity = {"checked": 0, "identical": 0, "diverged": []}
    for kind, prompts in kinds.items():
        for pi, prompt in enumerate(prompts):
            ids = encode_prompt(tok, prompt)
            opts = DecodeOptions(max_new_tokens=args.max_new_tokens, allow_incomplete=True,
                                 temperature=args.temperature, seed=pi)
            t0 = time.perf_counter()
            base = decode_batch(model, [ids], [constraint.matcher()], vocab, opts, pad_token_id=pad)[0]
            base_s = time.perf_counter() - t0
            rows.append(dict(kind=kind, variant="masked (no speculation)", tokens=len(base.token_ids),
                             seconds=base_s, forwards=len(base.step_seconds), mal=0.0, per={}))
            for name, spec in variants.items():
                if name.startswith("layer_skip") and pi >= args.layer_skip_n:
                    continue
                t0 = time.perf_counter()
                r = generate_speculative(model, tok, prompt, constraint, spec, max_new_tokens=args.max_new_tokens,
                                         allow_incomplete=True, temperature=args.temperature, seed=pi)
                s = time.perf_counter() - t0
                st = r.speculative
                rows.append(dict(kind=kind, variant=name, tokens=len(r.token_ids), seconds=s,
                                 forwards=st["forward_passes"], mal=st["mean_accepted_length"],
                                 per={k: (v["accepted"], v["steps"], v["judged"]) for k, v in st["per_drafter"].items()}))
                if args.temperature > 0:
                    continue  # sampled outputs differ from the baseline's by design (same distribution)
                identity["checked"] += 1
                if r.token_ids == base.token_ids:
                    identity["identical"] += 1
                else:
                    margin = first_divergence_margin(model, ids, base.token_ids, r.token_ids, constraint)
                    identity["diverged"].append((kind, pi, name, margin))
            if pi == 0:
                print(f"[{kind}] {base.text}", flush=True)

    print("\n| prompts | decoding | tokens | tok/s | speedup | forwards/token | mean accepted draft length |"
          " per-drafter accepted/step (acceptance) |")
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for kind in kinds:
        base_rows = [r for r in rows if r["kind"] == kind and r["variant"].startswith("masked")]
        names = ["masked (no speculation)"] + list(variants)
        for name in names:
            rs = [r for r in rows if r["kind"] == kind and r["variant"] == name]
            if not rs:
                continue
            n_prompts = len(rs)
            toks = sum(r["tokens"] for r in rs)
            secs = sum(r["seconds"] for r in rs)
            b_toks = sum(r["tokens"] for r in base_rows[:n_prompts])
            b_secs = sum(r["seconds"] for r in base_rows[:n_prompts])
            speed = (toks / secs) / (b_toks / b_secs)
            fw = sum(r["forwards"] for r in rs) / max(toks, 1)
            mal = float(np.mean([r["mal"] for r in rs]))
            per: dict[str, list[int]] = {}
            for r in rs:
                for k, (a, st, j) in r["per"].items():
                    acc = per.setdefault(k, [0, 0, 0])
                    acc[0] += a
                    acc[1] += st
                    acc[2] += j
            per_s = ", ".join(f"{k} {a / max(st, 1):.2f} ({a / max(j, 1):.0%})" for k, (a, st, j) in per.items()) or "-"
            print(f"| {kind} ({n_prompts}) | {name} | {toks} | {toks / secs:.1f} | {speed:.2f}x | {fw:.2f} | "
                  f"{mal:.2f} | {per_s} |")
            summary.append(dict(kind=kind, variant=name, prompts=n_prompts, tokens=toks, tok_s=toks / secs,
                                speedup=speed, forwards_per_token=fw, mean_accepted=mal, per=per))
    print(f"\ngreedy identity: {identity['identical']}/{identity['checked']} speculative runs token-identical "
          "to masked greedy")
    for kind, pi, name, margin in identity["diverged"]:
        print(f"  diverged: {kind} prompt {pi} {name}: top-2 masked margin at the first divergence {margin:.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(summary=summary, identity=identity), indent=1))


if __name__ == "__main__":
    main()
