"""KL(empirical ‖ exact conditional) of ASAp vs masked sampling, on the toy setup and on SmolLM2-135M.

    .venv/bin/python bench/asap_kl.py            # both setups (~5-10 min on one CPU core)
    .venv/bin/python bench/asap_kl.py --toy      # toy only (seconds)

Writes bench/results/asap_kl.png (KL vs samples, both samplers, both setups) and asap_kl.json.

Exact distribution on the real model: the constrained distribution is over *token sequences*
(non-canonical tokenizations such as "re"+"d" are distinct outputs the matcher accepts). We
enumerate the accepted token sequences best-first by prefix probability with the model, until the
total probability of the unexpanded frontier (an upper bound on the mass of every sequence not yet
enumerated) is below ``--eps`` times the enumerated mass, or the forward budget runs out; the
bound is printed. Sequences the samplers draw outside the enumerated set are added with their
exact probabilities (products of the model's full-vocabulary conditionals recorded in the trie).
KL is reported over token sequences and over the text they spell (the marginal users see).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from constrain.dfa_constraint import compile_regex  # noqa: E402
from constrain.kernels.bitmask import allocate_bitmask, bitmask_to_bool  # noqa: E402
from constrain.sampling import AlignedSampler, MaskedSampler  # noqa: E402
from constrain.sampling.lm import log_softmax  # noqa: E402
from constrain.sampling.trie import logsumexp  # noqa: E402
from constrain.vocab.vocabulary import Vocabulary  # noqa: E402

RESULTS = ROOT / "bench" / "results"
COLOURS = ("red", "green", "blue", "yellow", "black", "white")
ANIMALS = ("cat", "dog", "fish", "bird", "horse", "mouse")
PATTERN = f"({'|'.join(COLOURS)}) ({'|'.join(ANIMALS)})"
PROMPT = "Name a colour and an animal, like 'pink pig'."
REPORT_AT = (100, 1000, 5000)


def kl(samples, q) -> float:
    counts = Counter(samples)
    n = len(samples)
    return sum(c / n * math.log(c / n / q[w]) for w, c in counts.items())


def checkpoints(n_max):
    pts = sorted({int(x) for x in np.geomspace(20, n_max, 25)} | {p for p in REPORT_AT if p <= n_max})
    return [p for p in pts if p <= n_max]


# ---------------------------------------------------------------------------- toy setup (spec §1f)
def toy(n_max: int, seeds: int):
    vocab = Vocabulary.from_tokens(["0", "1", None], eos_token_ids=[2])
    constraint = compile_regex("00000|1[01]{4}", vocab)
    early, late = np.log([0.55, 0.40, 0.05]), np.log([0.10, 0.10, 0.80])

    def lm(prefix):
        return early if len(prefix) < 5 else late

    lang = ["00000"] + ["1" + "".join(b) for b in itertools.product("01", repeat=4)]
    p = {w: math.prod(0.55 if ch == "0" else 0.40 for ch in w) * 0.8 for w in lang}
    z = sum(p.values())
    q = {w: v / z for w, v in p.items()}
    pts = checkpoints(n_max)
    curves = {}
    for cls in (AlignedSampler, MaskedSampler):
        runs = []
        for seed in range(seeds):
            out = cls(lm, vocab, constraint, seed=seed).sample(n_max)
            runs.append([kl(out[:n], q) for n in pts])
        curves[cls.kind] = np.median(np.array(runs), axis=0).tolist()
    return {"points": pts, "curves": curves, "support": len(q), "seeds": seeds}


# ---------------------------------------------------------------------------- real model
def enumerate_exact(sampler, budget: int, eps: float):
    """Best-first enumeration of accepted token sequences: {ids: log P(ids + EOS)}, frontier bound."""
    vocab, lm, t = sampler.vocab, sampler.lm, sampler.temperature
    bm = allocate_bitmask(1, vocab.size)
    done: dict[tuple[int, ...], float] = {}
    frontier = [(-0.0, ())]  # (-log P(prefix), prefix)
    frontier_mass = {(): 0.0}
    forwards = 0
    while frontier and forwards < budget:
        neg, prefix = heapq.heappop(frontier)
        del frontier_mass[prefix]
        m = sampler.constraint.matcher()
        for tok in prefix:
            m.accept_token(tok)
        m.fill_bitmask(bm, 0)
        allowed = np.flatnonzero(bitmask_to_bool(bm[0], vocab.size))
        if len(allowed) == 0:
            continue
        lp = log_softmax(lm.logprobs(list(prefix)), t)
        forwards += 1
        for tok in allowed:
            v = -neg + float(lp[tok])
            if vocab.is_eos(int(tok)):
                done[prefix] = np.logaddexp(done.get(prefix, -np.inf), v)
            elif len(prefix) + 1 < sampler.max_new_tokens:
                child = prefix + (int(tok),)
                heapq.heappush(frontier, (-v, child))
                frontier_mass[child] = v
        if forwards % 50 == 0:
            missing = logsumexp(np.array(list(frontier_mass.values()))) if frontier_mass else -np.inf
            if missing - logsumexp(np.array(list(done.values()))) < math.log(eps):
                break
    missing = logsumexp(np.array(list(frontier_mass.values()))) if frontier_mass else -np.inf
    return done, missing, forwards


def path_logp(sampler, ids) -> float:
    """log P(ids + EOS) from the probabilities the sampler's trie recorded on that path."""
    trie, node, total = sampler.trie, 0, 0.0
    eos = next(iter(sampler.vocab.eos_token_ids))
    for tok in list(ids) + [eos]:
        slot = trie.find_slot(node, tok)
        total += float(trie.dist_logp[slot])
        node = int(trie.dist_child[slot])
    return total


def real(n_max: int, budget: int, eps: float, seed: int):
    import torch

    torch.set_num_threads(1)
    from constrain.integrations.transformers import load_default_model

    t0 = time.perf_counter()
    model, tokenizer = load_default_model()
    print(f"model loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    kw = dict(seed=seed, max_new_tokens=12)
    asap = AlignedSampler(model, tokenizer, PATTERN, PROMPT, **kw)
    masked = MaskedSampler(model, tokenizer, PATTERN, PROMPT, **kw)
    probe = MaskedSampler(model, tokenizer, PATTERN, PROMPT, **kw)  # its own KV cache for enumeration
    t0 = time.perf_counter()
    exact, log_missing, forwards = enumerate_exact(probe, budget, eps)
    log_z = logsumexp(np.array(list(exact.values())))
    t_enum = time.perf_counter() - t0
    print(
        f"enumerated {len(exact)} accepted token sequences with {forwards} forward passes in {t_enum:.0f} s; "
        f"P(L) >= {math.exp(log_z):.4g}; unexplored frontier mass <= {math.exp(log_missing):.3g} "
        f"({math.exp(log_missing - log_z):.2%} of the enumerated mass)",
        flush=True,
    )
    samples, timing = {}, {}
    for s in (asap, masked):
        t0 = time.perf_counter()
        samples[s.kind] = [tuple(x) for x in s.sample_ids(n_max)]
        timing[s.kind] = time.perf_counter() - t0
        print(f"{s.kind}: {n_max} samples in {timing[s.kind]:.0f} s; {s.stats()}", flush=True)
    extra = 0
    for s in (asap, masked):
        for ids in set(samples[s.kind]) - set(exact):
            exact[ids] = path_logp(s, ids)
            extra += 1
    log_z = logsumexp(np.array(list(exact.values())))
    q = {ids: math.exp(v - log_z) for ids, v in exact.items()}
    decode = asap.decode
    q_text: dict[str, float] = {}
    for ids, v in q.items():
        q_text[decode(ids)] = q_text.get(decode(ids), 0.0) + v
    pts = checkpoints(n_max)
    curves = {
        kind: {
            "tokens": [kl(out[:n], q) for n in pts],
            "text": [kl([decode(x) for x in out[:n]], q_text) for n in pts],
            "tokens_window": [kl(out[n // 2 : n], q) for n in pts],
            "text_window": [kl([decode(x) for x in out[n // 2 : n]], q_text) for n in pts],
        }
        for kind, out in samples.items()
    }
    gcd_like = sorted(q_text.items(), key=lambda kv: -kv[1])[:5]
    emp = {k: Counter(decode(x) for x in v) for k, v in samples.items()}
    top = [(w, round(p, 4), emp["asap"][w] / n_max, emp["masked"][w] / n_max) for w, p in gcd_like]
    return {
        "points": pts,
        "curves": curves,
        "support_tokens": len(q),
        "support_text": len(q_text),
        "added_from_samples": extra,
        "log_z": log_z,
        "missing_bound_rel": math.exp(log_missing - log_z),
        "forwards_enumeration": forwards,
        "seconds": {"enumeration": t_enum, **timing},
        "asap_stats": asap.stats(),
        "masked_stats": masked.stats(),
        "top5_text_q_asap_masked": top,
        "root_efg_vs_enumerated": [math.exp(asap.log_efg_root), math.exp(log_z)],
    }


def at(points, values, n):
    return values[points.index(n)] if n in points else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--toy", action="store_true", help="toy setup only")
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--toy-seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=1500, help="forward passes for the exact enumeration")
    ap.add_argument("--eps", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"toy": toy(args.samples, args.toy_seeds)}
    tp = out["toy"]["points"]
    print(f"toy (G_sk, 17 strings; median of {args.toy_seeds} seeds) KL(empirical of first N ‖ Q):")
    print("  (exact Q: P(L)=0.3009, Q(00000)=0.134; masked sampling's exact KL(Q_GCD ‖ Q)=0.544)")
    for n in REPORT_AT:
        print(
            f"  N={n:5d}  asap {at(tp, out['toy']['curves']['asap'], n):.4f}  "
            f"masked {at(tp, out['toy']['curves']['masked'], n):.4f}  floor~(K-1)/2N={16 / (2 * n):.4f}"
        )
    if not args.toy:
        r = out["real"] = real(args.samples, args.budget, args.eps, args.seed)
        print(
            f"SmolLM2-135M, {PATTERN!r}: support {r['support_tokens']} token sequences "
            f"({r['added_from_samples']} added from samples), {r['support_text']} strings"
        )
        for key, what in (("", "first N"), ("_window", "samples N/2..N")):
            print(f" KL(empirical of {what} ‖ Q): token sequences / text")
            for n in REPORT_AT:
                a, m = r["curves"]["asap"], r["curves"]["masked"]
                ta, xa = at(r["points"], a["tokens" + key], n), at(r["points"], a["text" + key], n)
                tm, xm = at(r["points"], m["tokens" + key], n), at(r["points"], m["text" + key], n)
                print(f"  N={n:5d}  asap {ta:.4f} / {xa:.4f}   masked {tm:.4f} / {xm:.4f}")
        print("top-5 strings: (text, Q, ASAp freq, masked freq):", r["top5_text_q_asap_masked"])
    (RESULTS / "asap_kl.json").write_text(json.dumps(out, indent=1, default=str))
    plot(out)


def plot(out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("toy: G_sk, 17 strings, first N (median of seeds)", out["toy"]["points"], out["toy"]["curves"])]
    if "real" in out:
        r = out["real"]
        for key, what in (("tokens", "token sequences"), ("text", "text")):
            for suffix, rng in (("", "first N"), ("_window", "samples N/2..N")):
                panels.append((f"SmolLM2-135M: {what}, {rng}", r["points"],
                               {k: v[key + suffix] for k, v in r["curves"].items()}))
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, pts, curves) in zip(axes.flat, panels):
        for kind, style in (("asap", "o-"), ("masked", "s--")):
            ax.plot(pts, np.maximum(curves[kind], 1e-6), style, ms=3, label=kind)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("samples N")
        ax.set_ylabel("KL(empirical ‖ Q), nats")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "asap_kl.png", dpi=120)
    print(f"wrote {RESULTS / 'asap_kl.png'}")


if __name__ == "__main__":
    main()
