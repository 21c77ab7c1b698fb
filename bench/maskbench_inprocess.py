"""constrain alone on a slice of the MaskBench sample, in this process: a quick before/after check.

Not a comparison with the peers (that is ``bench/maskbench.py``, all engines in one run): this
measures constrain's own TTFM and TBM on every ``--every``-th file with test instances of the
same stratified sample, without worker processes or time limits, so an optimisation can be
checked in seconds. Run it on two checkouts (``PYTHONPATH=<checkout>``) for a before/after pair
(``--cold`` empties the compile caches before each schema: what a schema costs in a process that
has compiled nothing before, numba's JIT aside)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/maskbench_inprocess.py ../shared/data/maskbench --every 4
    OMP_NUM_THREADS=1 .venv/bin/python bench/maskbench_inprocess.py ../shared/data/maskbench --every 4 --any

``--all --ttfm-only`` compiles every file with tests in the folder (no sample, no instances: about
three minutes) and reports the TTFM percentiles and how many schemas take over 50/100/200 ms,
the compile tail without the peers' noise; ``--json`` keeps the per-file times. ``--untested`` adds the files without test instances, which
the whole-folder bench compiles as well (its TTFM percentiles count them; they hold much of the tail).

``--files bench/lists/<name>.txt`` runs a fixed list instead of the sample (the lists there are
the files with the most slow masks of one kind, from a whole-folder run; see their first lines),
``--over`` sets the threshold ``--by-lexer`` counts (e.g. 167, llguidance's p99 in that run).
``--gc-stats`` counts the garbage collections that land inside fills and how many fills over
``--over`` ran one (session 20: 14% of the sample's slow fills; a young collection ~130 µs).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

import maskbench as mb  # noqa: E402

from constrain.benchmarks.sampling import list_files, sample_files  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", nargs="?", type=Path, default=mb.DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=300, help="stratified sample size (default 300, seed 0)")
    ap.add_argument("--every", type=int, default=None, help="every k-th file with tests (default 4; 1 with --all)")
    ap.add_argument("--any", action="store_true", help='property_order="any"')
    ap.add_argument("--cold", action="store_true",
                    help="empty the process-wide compile caches before each schema (TTFM of a fresh process, JIT aside)")
    ap.add_argument("--counters", action="store_true",
                    help="count the grammar engine's lazy-lexer expansions and table syncs (deterministic)")
    ap.add_argument("--all", action="store_true", help="every file with tests in the folder (no sample)")
    ap.add_argument("--ttfm-only", action="store_true", help="compile and fill the first mask only (no instances)")
    ap.add_argument("--untested", action="store_true",
                    help="with --ttfm-only: also the files without test instances (bench/maskbench.py compiles "
                         "them too, so its TTFM percentiles include them)")
    ap.add_argument("--json", type=Path, help="write {file: TTFM ms} here")
    ap.add_argument("--gc-off", action="store_true",
                    help="cyclic garbage collector off while masks are timed (one full collection between schemas): "
                         "the masks' own cost, without the collections the bench's long-lived workers run into")
    ap.add_argument("--by-lexer", action="store_true",
                    help="also split TBM by the grammar's lexer (eager / lazy): total fill time, p99, fills over 200 us")
    ap.add_argument("--files", type=Path,
                    help="a text file of MaskBench file names, one per line (instead of the sample; e.g. bench/lists/)")
    ap.add_argument("--over", type=float, default=200.0, help="the TBM threshold counted by --by-lexer, in us (default 200)")
    ap.add_argument("--slow-json", type=Path,
                    help="write per file {lexer, masks, over: fills over --over, over_ms: their time} here "
                         "(where the slow fills are; the lexer is eager / lazy / other as with --by-lexer)")
    ap.add_argument("--gc-stats", action="store_true",
                    help="count the garbage collections that run inside mask fills (per generation, with their time) "
                         "and how many fills over --over ran one (adds a wrapper call to every fill)")
    opts = ap.parse_args(argv)
    counts = _install_counters() if opts.counters else None
    gc_stats = _install_gc_stats(opts.over) if opts.gc_stats else None

    from constrain.integrations.transformers import load_default_tokenizer

    tok = load_default_tokenizer()
    engine = mb.ConstrainEngine(tok, **({"property_order": "any"} if opts.any else {}))
    mb._warmup(engine)
    lexer_of: dict[str, str] = {}
    if opts.by_lexer or opts.slow_json is not None:
        compile_schema = engine.compile_json_schema

        def compile_and_note(schema, _compile=compile_schema):
            compiled = _compile(schema)
            lazy = getattr(compiled, "_lazy", None)
            lexer_of["last"] = "other" if lazy is None else ("lazy" if lazy else "eager")
            return compiled

        engine.compile_json_schema = compile_and_note
    gc_was_on = gc.isenabled()
    if opts.files is not None:
        files = [ln.strip() for ln in opts.files.read_text(encoding="utf-8").splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        missing = [f for f in files if not (opts.data_dir / f).is_file()]
        if missing:
            ap.error(f"--files: {len(missing)} not in {opts.data_dir}, e.g. {missing[0]}")
    elif opts.all:
        files = list_files(opts.data_dir)
    else:
        files = sample_files(list_files(opts.data_dir), opts.limit, "stratified", 0)
    if opts.untested and not opts.ttfm_only:
        ap.error("--untested needs --ttfm-only (files without instances have no masks to time)")
    with_tests = files if opts.untested else [
        f for f in files if json.loads((opts.data_dir / f).read_text(encoding="utf-8")).get("tests")]
    chosen = with_tests[:: opts.every or (1 if opts.all or opts.files is not None else 4)]
    ttfm: list[float] = []
    tbm: list[int] = []
    tbm_by: dict[str, list[int]] = {}
    per_file: dict[str, float] = {}
    slow_of: dict[str, dict] = {}
    statuses: dict[str, int] = {}
    t0 = time.time()
    if opts.gc_off:
        gc.disable()
    try:
        for f in tqdm(chosen, desc="schemas", unit="schema", disable=not sys.stderr.isatty()):
            if opts.ttfm_only:  # the schema alone: no instance is tokenized
                doc = json.loads((opts.data_dir / f).read_text(encoding="utf-8"))
                task = {"file": f, "schema": doc["schema"], "instances": []}
            else:
                task = mb.load_task(opts.data_dir, f, tok)
            if opts.cold:
                from constrain._cache import clear_compile_caches

                clear_compile_caches()
            lexer_of.pop("last", None)
            res = mb.run_schema(engine, task)
            statuses[res["status"]] = statuses.get(res["status"], 0) + 1
            if "ttfm_ms" in res:
                ttfm.append(res["ttfm_ms"])
                per_file[f] = res["ttfm_ms"]
                tbm.extend(res["tbm_ns"])
                tbm_by.setdefault(lexer_of.get("last", "other"), []).extend(res["tbm_ns"])
                slow = [t for t in res["tbm_ns"] if t > opts.over * 1e3]
                slow_of[f] = {"lexer": lexer_of.get("last", "other"), "masks": len(res["tbm_ns"]),
                              "over": len(slow), "over_ms": round(sum(slow) / 1e6, 3)}
            if opts.gc_off:
                gc.collect()
    finally:
        if gc_was_on:
            gc.enable()
        if gc_stats is not None:
            gc_stats["uninstall"]()
    us = np.asarray(tbm, dtype=np.float64) / 1e3

    def pct(xs, qs):
        return [round(float(np.percentile(xs, q)), 1) for q in qs] if len(xs) else []

    print(f"{len(chosen)} files ({statuses}), {len(us)} masks, {time.time() - t0:.0f} s")
    print("TTFM ms p25/p50/p75/p90/p99:", pct(ttfm, (25, 50, 75, 90, 99)))
    print("TBM us p50/p75/p90/p95/p99/p99.9:", pct(us, (50, 75, 90, 95, 99, 99.9)))
    print("schemas over 50/100/200 ms TTFM:", [sum(v > b for v in ttfm) for b in (50, 100, 200)])
    if len(us) and not opts.ttfm_only:
        parts = [("all", us)] + [(k, np.asarray(v, dtype=np.float64) / 1e3) for k, v in sorted(tbm_by.items())
                                 if opts.by_lexer]
        for name, xs in parts:
            if len(xs):
                over = opts.over
                print(f"TBM {name}: {len(xs)} masks, {xs.sum() / 1e3:.0f} ms in all, p99 {np.percentile(xs, 99):.1f} us, "
                      f"{int((xs > over).sum())} over {over:g} us ({xs[xs > over].sum() / 1e3:.0f} ms)")
    if opts.json is not None:
        opts.json.write_text(json.dumps(per_file, indent=0), encoding="utf-8")
    if opts.slow_json is not None:
        opts.slow_json.write_text(json.dumps(slow_of, indent=0), encoding="utf-8")
    if counts is not None:
        print("calls:", dict(sorted(counts.items())))
    if gc_stats is not None:
        per_gen = {g: f"{n} ({gc_stats['ns'][g] / n / 1e3:.0f} us each)" for g, n in sorted(gc_stats["collections"].items())}
        print(f"collections inside fills by generation: {per_gen or 'none'}; fills over {opts.over:g} us: "
              f"{gc_stats['slow']}, of which {gc_stats['slow_with']} ran a collection")
    return 0


def _install_gc_stats(over_us: float) -> dict:
    """Count the cyclic collections that run while a matcher fills a mask (``gc.callbacks`` plus a
    wrapper around :meth:`constrain.matcher.Matcher.fill_bitmask`, the one fill every compiled
    constraint's matcher uses): per generation how many and their time, and how many fills over
    ``over_us`` ran one. ``stats["uninstall"]()`` restores both."""
    from collections import Counter

    from constrain.matcher import Matcher

    stats: dict = {"collections": Counter(), "ns": Counter(), "slow": 0, "slow_with": 0}
    now = time.perf_counter_ns
    cur = {"in_fill": False, "t0": 0, "gen": 0, "ran": False}

    def on_gc(phase: str, info: dict) -> None:
        if not cur["in_fill"]:
            return
        if phase == "start":
            cur["t0"], cur["gen"] = now(), info["generation"]
        else:
            stats["collections"][cur["gen"]] += 1
            stats["ns"][cur["gen"]] += now() - cur["t0"]
            cur["ran"] = True

    inner = Matcher.fill_bitmask

    def fill_bitmask(self, *args, **kwargs):
        cur["in_fill"], cur["ran"] = True, False
        t0 = now()
        try:
            return inner(self, *args, **kwargs)
        finally:
            cur["in_fill"] = False
            if now() - t0 > over_us * 1e3:
                stats["slow"] += 1
                stats["slow_with"] += cur["ran"]

    def uninstall() -> None:
        Matcher.fill_bitmask = inner
        gc.callbacks.remove(on_gc)

    gc.callbacks.append(on_gc)
    Matcher.fill_bitmask = fill_bitmask
    stats["uninstall"] = uninstall
    return stats


def _install_counters() -> dict[str, int]:
    """Wrap the grammar engine's first-visit steps with call counters (a deterministic measure of
    how often a mask had to stop and build something, free of this machine's timing noise)."""
    from constrain.grammar.compile import GrammarConstraint

    counts: dict[str, int] = {}
    for name in ("compute_token_bits", "_lazy_expand_rows", "_lazy_sync", "_safe_depth", "_serve_kernel_requests"):
        inner = getattr(GrammarConstraint, name)

        def counted(*args, _inner=inner, _name=name, **kwargs):
            counts[_name] = counts.get(_name, 0) + 1
            return _inner(*args, **kwargs)

        setattr(GrammarConstraint, name, counted)
    return counts


if __name__ == "__main__":
    raise SystemExit(main())
