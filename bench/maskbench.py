"""MaskBench: JSON-schema constraints on real-world schemas, constrain vs the peer engines.

Runs the MaskBench protocol (guidance-ai/jsonschemabench, ``maskbench/``) over a folder of
MaskBench files (``{"schema": ..., "tests": [{"valid": bool, "data": ...}]}``) for every engine in
one invocation, with the same files and the same tokenizer (SmolLM2)::

    .venv/bin/python bench/maskbench.py                       # all of ../shared/data/maskbench
    .venv/bin/python bench/maskbench.py DIR --limit 300 --sample stratified
    .venv/bin/python bench/maskbench.py --engines constrain,llguidance --resume

Per engine and schema file, in a long-lived worker process per engine (a hang or a segfault in
one engine is recorded as ``timeout`` / ``crash`` and the worker is restarted):

* TTFM (time to first mask) = compile + the first ``fill_bitmask``, in ms.
* Every test instance is serialised with ``json.dumps(data, indent=None, ensure_ascii=False)``
  and tokenized without special tokens (once, in the parent: every engine gets the same tokens);
  per token: ``fill_bitmask`` (timed with ``perf_counter_ns``: TBM), the token's bit must be set,
  ``accept_token`` must return True.  At the end a valid instance must be ``is_accepting()``; an
  invalid one must have been rejected somewhere or end non-accepting.
* Status per schema, as upstream: ``passing``, ``compile_error``, ``timeout``, ``crash``,
  ``validation_error`` (a valid instance rejected), ``invalidation_error`` (an invalid instance
  accepted).  A file without tests that compiles is ``untested`` (compile stats only).

``--timeout-s`` bounds each phase of one schema (compile + first mask; then all instances).

Output in ``--out`` (default ``bench/results/maskbench``): ``<engine>.json`` (per-schema
results and the summary), ``<engine>.jsonl`` (one line per finished schema, with the raw TBM
samples; ``--resume`` reuses it), ``report.md`` (the tables, also printed) and ``run.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import multiprocessing as mp
import os
import pickle
import sys
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import wait as mp_wait
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from constrain.benchmarks.sampling import list_files, sample_files, split_of  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "maskbench"
DEFAULT_OUT = ROOT / "bench" / "results" / "maskbench"

STATUSES = ("passing", "compile_error", "timeout", "crash", "validation_error",
            "invalidation_error", "untested")
TBM_PCTS = (25, 50, 75, 90, 95, 99, 99.9, 100)
TTFM_PCTS = (25, 50, 75, 90, 95, 99, 100)
# constrain-any: constrain with property_order="any" (declared properties in any order, each once;
# MaskBench's valid instances do not always follow the schema's property order)
ALL_ENGINES = ("constrain", "constrain-any", "llguidance", "xgrammar", "outlines-core")

# A schema every engine compiles, run once per worker before the first timed schema, so JIT
# compilation (numba in constrain) and lazy imports are not charged to the first file's TTFM.
WARMUP_SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                 "required": ["a"]}
WARMUP_TEXT = '{"a": "x y", "b": 12}'


# --------------------------------------------------------------------------- #
# Engines
# --------------------------------------------------------------------------- #


class CompileFailure(Exception):
    """What an engine adapter raises for a schema it cannot compile (normalised)."""

    def __init__(self, error_class: str, message: str, keyword: str | None = None,
                 pointer: str | None = None):
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.keyword = keyword
        self.pointer = pointer


def pointer_keyword(pointer: str | None) -> str | None:
    """The keyword a JSON Pointer points at: its last segment (``/properties/a/pattern`` ->
    ``pattern``); array indices are skipped (``/anyOf/3`` -> ``anyOf``)."""
    if pointer is None:
        return None
    segs = [s.replace("~1", "/").replace("~0", "~") for s in pointer.split("/")[1:]]
    while segs and segs[-1].isdigit():
        segs.pop()
    return segs[-1] if segs else "(root)"


class ConstrainEngine:
    """constrain's JSON Schema compiler behind the peer interface."""

    name = "constrain"

    def __init__(self, hf_tokenizer, **options):
        import constrain
        from constrain.schema import compile_json_schema

        self._constrain = constrain
        self._compile = compile_json_schema
        self.options = options
        self.vocab = constrain.Vocabulary.from_tokenizer(hf_tokenizer)
        self.vocab_size = self.vocab.size

    def allocate_bitmask(self, batch: int = 1) -> np.ndarray:
        return self._constrain.allocate_bitmask(batch, self.vocab.size)

    def warm_up(self) -> None:
        """Compile every mask kernel now (the peers are compiled code): see ``constrain.warm_up``."""
        self._constrain.warm_up()

    def compile_json_schema(self, schema):
        c = self._constrain
        try:
            return self._compile(schema, self.vocab, **self.options)
        except (c.UnsupportedFeatureError, c.SchemaError) as e:
            ptr = getattr(e, "pointer", None)
            raise CompileFailure(type(e).__name__, str(e), pointer_keyword(ptr), ptr) from e
        except c.LimitExceededError as e:
            raise CompileFailure(type(e).__name__, str(e), f"Limits.{e.field}") from e


def constrain_available() -> tuple[bool, str]:
    """Whether ``constrain.schema.compile_json_schema`` imports (it is being written)."""
    try:
        sys.path.insert(0, str(ROOT)) if str(ROOT) not in sys.path else None
        from constrain.schema import compile_json_schema  # noqa: F401
        return True, ""
    except Exception as e:  # ImportError, or a half-written module's SyntaxError
        return False, f"{type(e).__name__}: {e}"


_PEER_MODULES = {"llguidance": "llguidance", "xgrammar": "xgrammar", "outlines-core": "outlines_core"}


@dataclass(frozen=True)
class BuiltinFactory:
    """Picklable engine factory for the four real engines (built inside the worker)."""

    name: str

    def __call__(self, hf_tokenizer):
        if self.name == "constrain":
            return ConstrainEngine(hf_tokenizer)
        if self.name == "constrain-any":
            engine = ConstrainEngine(hf_tokenizer, property_order="any")
            engine.name = "constrain-any"
            return engine
        sys.path.insert(0, str(ROOT / "bench")) if str(ROOT / "bench") not in sys.path else None
        import peers

        return peers.ENGINE_CLASSES[self.name](hf_tokenizer)


def available_engine_names(requested: Iterable[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """(engines to run, {engine: why skipped}) among ``requested`` (default: all four)."""
    names = list(requested) if requested else list(ALL_ENGINES)
    run, skipped = [], {}
    for n in names:
        if n in ("constrain", "constrain-any"):
            ok, why = constrain_available()
        elif n in _PEER_MODULES:
            ok = importlib.util.find_spec(_PEER_MODULES[n]) is not None
            why = "" if ok else f"package {_PEER_MODULES[n]} is not installed"
        else:
            raise SystemExit(f"unknown engine {n!r}; known: {', '.join(ALL_ENGINES)}")
        (run.append(n) if ok else skipped.__setitem__(n, why))
    return run, skipped


def _compile(engine, schema):
    """engine.compile_json_schema, with the peers' exceptions normalised to CompileFailure."""
    try:
        return engine.compile_json_schema(schema)
    except CompileFailure:
        raise
    except Exception as e:
        cls = type(e).__name__
        if cls in ("PeerCompileError", "PeerUnsupported"):
            msg = getattr(e, "message", None) or str(e)
            raise CompileFailure(cls, msg) from e
        # Anything else is unexpected (a bug in the engine or its adapter); still a compile
        # error for the table, but the class says what it was.
        raise CompileFailure(cls, f"{cls}: {e}") from e


# --------------------------------------------------------------------------- #
# The per-schema protocol (runs inside the worker, or inline)
# --------------------------------------------------------------------------- #


def _bit(bm: np.ndarray, t: int) -> bool:
    return bool((int(bm[0, t >> 5]) >> (t & 31)) & 1)


def run_schema(engine, task: dict, on_compiled: Callable[[dict], None] | None = None) -> dict:
    """Compile ``task["schema"]`` and run its instances; a result dict (see ``STATUSES``).

    ``task``: ``{"file", "schema", "instances": [{"index", "valid", "tokens"}]}``.
    ``tbm_ns`` in the result holds every timed fill except the first (which is in TTFM).
    """
    pc = time.perf_counter_ns
    instances = task["instances"]
    res: dict[str, Any] = {"file": task["file"], "n_tests": len(instances)}
    bm = engine.allocate_bitmask(1)
    t0 = pc()
    try:
        compiled = _compile(engine, task["schema"])
        t1 = pc()
        m = compiled.matcher()
        t2 = pc()
        m.fill_bitmask(bm, 0)
        t3 = pc()
    except CompileFailure as e:
        res.update(status="compile_error", error_class=e.error_class, error=e.message[:2000],
                   keyword=e.keyword, pointer=e.pointer, compile_ms=(pc() - t0) / 1e6)
        return res
    res["compile_ms"] = (t1 - t0) / 1e6
    res["ttfm_ms"] = ((t1 - t0) + (t3 - t2)) / 1e6  # matcher construction not charged
    if on_compiled is not None:
        on_compiled({"compile_ms": res["compile_ms"], "ttfm_ms": res["ttfm_ms"]})
    tbm: list[int] = []
    fails: list[dict] = []
    first = True
    for inst in instances:
        if not first:
            m = compiled.matcher()
        verdict = None  # (reason, position, token)
        toks = inst["tokens"]
        for pos, t in enumerate(toks):
            if first:
                first = False  # the TTFM fill is this instance's first mask
            else:
                a = pc()
                m.fill_bitmask(bm, 0)
                tbm.append(pc() - a)
            if not _bit(bm, t):
                verdict = ("token not in mask", pos, t)
                break
            if not m.accept_token(t):
                verdict = ("accept_token returned False", pos, t)
                break
        if first:  # an empty token list: nothing consumed the first fill
            first = False
        if verdict is None and not m.is_accepting():
            verdict = ("not accepting at end", len(toks), None)
        if inst["valid"] and verdict is not None:
            fails.append({"index": inst["index"], "valid": True, "reason": verdict[0],
                          "position": verdict[1], "token": verdict[2], "n_tokens": len(toks)})
        elif not inst["valid"] and verdict is None:
            fails.append({"index": inst["index"], "valid": False, "reason": "accepted",
                          "position": len(toks), "token": None, "n_tokens": len(toks)})
    res["tbm_ns"] = tbm
    if not instances:
        res["status"] = "untested"
    elif any(f["valid"] for f in fails):
        res["status"] = "validation_error"
    elif fails:
        res["status"] = "invalidation_error"
    else:
        res["status"] = "passing"
    res["failures"] = fails
    return res


def _warmup(engine) -> None:
    if hasattr(engine, "warm_up"):
        engine.warm_up()
    bm = engine.allocate_bitmask(1)
    try:
        m = _compile(engine, WARMUP_SCHEMA).matcher()
    except CompileFailure:
        return  # best effort: an engine that rejects it is simply not warmed
    # Byte-wise walk needs a tokenizer; filling masks in the start state is enough to JIT.
    for _ in range(3):
        m.fill_bitmask(bm, 0)


def _worker_main(conn, factory, tok_bytes: bytes) -> None:
    """Worker loop: build the engine, say ready, then run tasks until ``None``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        tokenizer = pickle.loads(tok_bytes) if tok_bytes is not None else None
        engine = factory(tokenizer)
        _warmup(engine)
        conn.send(("ready", getattr(engine, "version", None)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        conn.send(("startup_error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
        return
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        try:
            res = run_schema(engine, task, lambda info: conn.send(("compiled", info)))
        except BaseException as e:  # noqa: BLE001 - an exception while matching: engine failure
            res = {"file": task["file"], "n_tests": len(task["instances"]), "status": "crash",
                   "error_class": type(e).__name__, "error": f"{e}"[:2000],
                   "traceback": traceback.format_exc()[-4000:]}
        conn.send(("result", res))


# --------------------------------------------------------------------------- #
# Worker pool (one long-lived process per engine and slot)
# --------------------------------------------------------------------------- #


class _Worker:
    def __init__(self, ctx, engine: str, factory, tok_bytes, startup_timeout_s: float):
        self.engine = engine
        parent, child = ctx.Pipe()
        self.conn = parent
        self.proc = ctx.Process(target=_worker_main, args=(child, factory, tok_bytes),
                                name=f"maskbench-{engine}", daemon=True)
        self.proc.start()
        child.close()
        self.task: dict | None = None
        self.deadline = math.inf
        self.phase = ""
        self.compiled_info: dict | None = None
        self.version = None
        if not self.conn.poll(startup_timeout_s):
            self.kill()
            raise RuntimeError(f"{engine} worker did not start in {startup_timeout_s:.0f} s")
        try:
            kind, payload = self.conn.recv()
        except EOFError:
            self.kill()
            raise RuntimeError(f"{engine} worker died during startup (exit code {self.proc.exitcode})")
        if kind != "ready":
            self.kill()
            raise RuntimeError(f"{engine} worker failed to start: {payload}")
        self.version = payload

    def send(self, task: dict, timeout_s: float) -> None:
        self.task = task
        self.phase = "compile"
        self.compiled_info = None
        self.deadline = time.monotonic() + timeout_s
        self.conn.send(task)

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(5)
        self.kill()


def _failed_result(task: dict, status: str, phase: str, info: dict | None, detail: str) -> dict:
    res = {"file": task["file"], "n_tests": len(task["instances"]), "status": status,
           "phase": phase, "error": detail}
    if info:
        res.update(info)
    return res


def run_tasks(engines: dict[str, Callable], tasks: Iterable[dict], *, tokenizer=None,
              timeout_s: float = 30.0, jobs: int = 1, isolate: bool = True,
              startup_timeout_s: float = 600.0,
              on_result: Callable[[str, dict], None] | None = None) -> dict[str, dict[str, dict]]:
    """Run every task on every engine; ``{engine: {file: result}}``.

    ``engines``: ``{name: factory}``, where ``factory(hf_tokenizer)`` builds an engine with
    ``allocate_bitmask(1)`` and ``compile_json_schema(schema) -> constraint`` whose ``matcher()``
    has ``fill_bitmask`` / ``accept_token`` / ``is_accepting``.  ``tasks`` is consumed lazily;
    a task may carry ``"engines"`` (names) to run on a subset.  With ``isolate`` each engine runs
    in long-lived worker processes (the factory and ``tokenizer`` must pickle), with
    ``timeout_s`` per phase; a killed or crashed worker is restarted for the next task.
    ``isolate=False`` runs in this process with no time limit (debugging, fast tests).
    """
    results: dict[str, dict[str, dict]] = {e: {} for e in engines}

    def done(engine: str, res: dict) -> None:
        results[engine][res["file"]] = res
        if on_result is not None:
            on_result(engine, res)

    def items():
        for task in tasks:  # file-major: the engines take turns, so machine noise is shared
            for name in task.get("engines") or engines:
                yield task, name

    if not isolate:
        built = {}
        for task, name in items():
            if name not in built:
                built[name] = engines[name](tokenizer)
                _warmup(built[name])
            try:
                res = run_schema(built[name], task)
            except Exception as e:  # noqa: BLE001
                res = _failed_result(task, "crash", "match", None, f"{type(e).__name__}: {e}")
            done(name, res)
        return results

    ctx = mp.get_context("spawn")
    tok_bytes = pickle.dumps(tokenizer) if tokenizer is not None else None
    queue = items()
    pending = None
    exhausted = False
    idle: dict[str, list[_Worker]] = defaultdict(list)
    busy: list[_Worker] = []
    dead_engines: dict[str, str] = {}
    try:
        while True:
            # Dispatch while there is capacity.
            while not exhausted and len(busy) < jobs:
                if pending is None:
                    pending = next(queue, None)
                    if pending is None:
                        exhausted = True
                        break
                task, name = pending
                pending = None
                if name in dead_engines:
                    done(name, _failed_result(task, "crash", "startup", None, dead_engines[name]))
                    continue
                if idle[name]:
                    w = idle[name].pop()
                else:
                    if sum(map(len, idle.values())) + len(busy) >= jobs * len(engines):
                        # Too many live workers: retire an idle one of another engine.
                        for ws in idle.values():
                            if ws:
                                ws.pop().stop()
                                break
                    try:
                        w = _Worker(ctx, name, engines[name], tok_bytes, startup_timeout_s)
                    except RuntimeError as e:
                        dead_engines[name] = str(e)
                        print(f"[maskbench] {e}", file=sys.stderr)
                        done(name, _failed_result(task, "crash", "startup", None, str(e)))
                        continue
                w.send(task, timeout_s)
                busy.append(w)
            if not busy:
                if exhausted:
                    break
                continue
            now = time.monotonic()
            wait_s = max(0.0, min(w.deadline for w in busy) - now)
            ready = mp_wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=wait_s)
            now = time.monotonic()
            for w in list(busy):
                finished: dict | None = None
                if w.conn in ready or w.proc.sentinel in ready:
                    try:
                        while w.conn.poll():
                            kind, payload = w.conn.recv()
                            if kind == "compiled":
                                w.compiled_info = payload
                                w.phase = "match"
                                w.deadline = time.monotonic() + timeout_s
                            elif kind == "result":
                                finished = payload
                                break
                    except (EOFError, OSError):
                        pass
                    if finished is None and not w.proc.is_alive():
                        w.proc.join(1)
                        code = w.proc.exitcode
                        why = f"worker exited with code {code}"
                        if code is not None and code < 0:
                            why += f" (signal {-code})"
                        finished = _failed_result(w.task, "crash", w.phase, w.compiled_info, why)
                        w.kill()
                        busy.remove(w)
                        done(w.engine, finished)
                        continue
                if finished is None and now >= w.deadline:
                    w.kill()
                    finished = _failed_result(w.task, "timeout", w.phase, w.compiled_info,
                                              f"no result after {timeout_s:g} s in the {w.phase} phase")
                    busy.remove(w)
                    done(w.engine, finished)
                    continue
                if finished is not None:
                    busy.remove(w)
                    idle[w.engine].append(w)
                    done(w.engine, finished)
    finally:
        for w in busy:
            w.kill()
        for ws in idle.values():
            for w in ws:
                w.stop()
    return results


# --------------------------------------------------------------------------- #
# Files, sampling, tokenization
# --------------------------------------------------------------------------- #


# split_of, list_files and sample_files live in constrain.benchmarks.sampling (shared with
# `constrain bench jsonschemabench`); imported at the top of this module.


def instance_text(data: Any) -> str:
    return json.dumps(data, indent=None, ensure_ascii=False)


def load_task(data_dir: Path, filename: str, tokenizer) -> dict:
    doc = json.loads((Path(data_dir) / filename).read_text(encoding="utf-8"))
    instances = []
    for i, t in enumerate(doc.get("tests") or []):
        toks = tokenizer.encode(instance_text(t["data"]), add_special_tokens=False)
        instances.append({"index": i, "valid": bool(t["valid"]), "tokens": list(map(int, toks))})
    return {"file": filename, "schema": doc["schema"], "instances": instances}


# --------------------------------------------------------------------------- #
# Summaries and the report
# --------------------------------------------------------------------------- #


def _pcts(xs, qs) -> list[float | None]:
    if len(xs) == 0:
        return [None] * len(qs)
    a = np.asarray(xs, dtype=np.float64)
    return [float(v) for v in np.percentile(a, qs)]


def _q_label(q) -> str:
    return "max" if q == 100 else f"p{q:g}"


def tbm_summary(tbm_ns: list[int]) -> dict:
    if not tbm_ns:
        return {"n": 0}
    a = np.asarray(tbm_ns, dtype=np.float64) / 1e3
    return {"n": int(a.size), "mean_us": float(a.mean()), "p50_us": float(np.percentile(a, 50)),
            "p99_us": float(np.percentile(a, 99)), "max_us": float(a.max())}


def engine_summary(per_file: dict[str, dict]) -> dict:
    counts = Counter(r["status"] for r in per_file.values())
    tbm = [x for r in per_file.values() for x in r.get("tbm_ns", ())]
    ttfm = [r["ttfm_ms"] for r in per_file.values() if r.get("ttfm_ms") is not None]
    return {
        "schemas": len(per_file),
        "with_tests": sum(1 for r in per_file.values() if r.get("n_tests")),
        **{s: counts.get(s, 0) for s in STATUSES},
        "tbm_us": dict(zip(map(_q_label, TBM_PCTS), [v / 1e3 if v is not None else None
                                                     for v in _pcts(tbm, TBM_PCTS)])),
        "tbm_count": len(tbm),
        "ttfm_ms": dict(zip(map(_q_label, TTFM_PCTS), _pcts(ttfm, TTFM_PCTS))),
        "ttfm_count": len(ttfm),
    }


def _fmt(v, digits=0) -> str:
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}" if abs(v) >= 10 else f"{v:.1f}"
    return f"{v:.{digits}f}"


def _public(res: dict) -> dict:
    """A per-schema result for ``<engine>.json``: the raw TBM list replaced by its summary."""
    out = {k: v for k, v in res.items() if k != "tbm_ns"}
    if "tbm_ns" in res:
        out["tbm"] = tbm_summary(res["tbm_ns"])
    fails = out.pop("failures", None) or []
    out["first_failure"] = fails[0] if fails else None
    out["n_failures"] = len(fails)
    return out


def render_report(results: dict[str, dict[str, dict]], meta: dict | None = None) -> str:
    """The markdown report: the upstream-style table, then constrain's error breakdown."""
    lines = []
    if meta:
        lines.append(f"MaskBench: {meta.get('files', '?')} files from `{meta.get('data_dir', '?')}` "
                     f"({meta.get('sample', '?')}), tokenizer {meta.get('tokenizer', '?')}, "
                     f"timeout {meta.get('timeout_s', '?')} s per phase.\n")
    head = ["engine", "schemas", "passing", "compile error", "timeout", "crash", "validation error",
            "invalidation error", "untested"]
    head += [f"TBM {_q_label(q)} µs" for q in TBM_PCTS] + [f"TTFM {_q_label(q)} ms" for q in TTFM_PCTS]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---|" + "---:|" * (len(head) - 1))
    for eng, per_file in results.items():
        s = engine_summary(per_file)
        row = [eng, str(s["schemas"])] + [str(s[k]) for k in STATUSES]
        row += [_fmt(v) for v in s["tbm_us"].values()] + [_fmt(v) for v in s["ttfm_ms"].values()]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("`passing` etc. count schemas with tests; `untested` are files without tests that "
                 "compiled (they count for TTFM only). TBM: every `fill_bitmask` after the first, "
                 "over all tokens of all instances; TTFM: compile + first fill, per compiled schema.")
    for eng, per_file in results.items():
        if not eng.startswith("constrain"):
            continue
        errs = [r for r in per_file.values() if r["status"] == "compile_error"]
        if errs:
            groups: dict[tuple, list[dict]] = defaultdict(list)
            for r in errs:
                groups[(r.get("keyword") or f"<{r.get('error_class')}>", r.get("error_class"))].append(r)
            lines += ["", f"### {eng}: compile errors by keyword", "",
                      "| keyword | error class | schemas | example file | example message |",
                      "|---|---|---:|---|---|"]
            for (kw, cls), rs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
                msg = (rs[0].get("error") or "").splitlines()[0][:160].replace("|", "\\|")
                lines.append(f"| {kw} | {cls} | {len(rs)} | {rs[0]['file']} | {msg} |")
        for status in ("validation_error", "invalidation_error", "timeout", "crash"):
            rs = sorted((r for r in per_file.values() if r["status"] == status), key=lambda r: r["file"])
            if not rs:
                continue
            lines += ["", f"### {eng}: {status.replace('_', ' ')} ({len(rs)})", ""]
            for r in rs:
                f = (r.get("failures") or [None])[0]
                if f:
                    detail = (f"instance {f['index']} ({'valid' if f['valid'] else 'invalid'}): "
                              f"{f['reason']} at token {f['position']}/{f['n_tokens']}")
                    if f.get("context"):
                        detail += f" after `{f['context']}`"
                else:
                    detail = (r.get("error") or "").splitlines()[0][:200] if r.get("error") else ""
                lines.append(f"- {r['file']}: {detail}")
    return "\n".join(lines) + "\n"


def _add_context(res: dict, task: dict, tokenizer) -> None:
    """Decode the text before a failing token (for the report)."""
    if tokenizer is None:
        return
    by_index = {i["index"]: i for i in task["instances"]}
    for f in res.get("failures") or []:
        toks = by_index[f["index"]]["tokens"]
        pos = f["position"]
        before = tokenizer.decode(toks[max(0, pos - 12):pos])
        at = tokenizer.decode(toks[pos:pos + 1]) if pos < len(toks) else "<end>"
        f["context"] = (before + "⟨" + at + "⟩").replace("`", "'").replace("\n", "\\n")[-100:]


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #


@dataclass
class Options:
    data_dir: Path
    out: Path | None = DEFAULT_OUT
    engines: dict[str, Callable] = field(default_factory=dict)
    limit: int | None = None
    sample: str = "stratified"
    seed: int = 0
    timeout_s: float = 30.0
    jobs: int = 1
    resume: bool = False
    isolate: bool = True
    progress: bool = True
    files: list[str] | None = None  # explicit file list (overrides limit/sample)


def run_maskbench(opts: Options, tokenizer) -> tuple[dict[str, dict[str, dict]], str]:
    """Run the benchmark; ``(results {engine: {file: result}}, markdown report)``.  Writes the
    output files when ``opts.out`` is set."""
    all_files = list_files(opts.data_dir)
    files = opts.files if opts.files is not None else sample_files(all_files, opts.limit, opts.sample, opts.seed)
    results: dict[str, dict[str, dict]] = {e: {} for e in opts.engines}
    out = Path(opts.out) if opts.out else None
    jsonl = {}
    if out:
        out.mkdir(parents=True, exist_ok=True)
        for e in opts.engines:
            p = out / f"{e}.jsonl"
            if opts.resume and p.exists():
                wanted = set(files)
                for line in p.read_text(encoding="utf-8").splitlines():
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a kill
                    if r.get("file") in wanted:
                        results[e][r["file"]] = r
            jsonl[e] = p.open("a" if opts.resume else "w", encoding="utf-8")
    todo = [f for f in files if any(f not in results[e] for e in opts.engines)]
    t_start = time.time()

    tasks_by_file: dict[str, dict] = {}
    remaining: dict[str, int] = {}
    bar = None
    if opts.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), initial=len(files) - len(todo), unit="schema", desc="maskbench",
                   dynamic_ncols=True, file=sys.stderr)

    def on_result(engine: str, res: dict) -> None:
        task = tasks_by_file[res["file"]]
        _add_context(res, task, tokenizer)
        results[engine][res["file"]] = res
        if engine in jsonl:
            jsonl[engine].write(json.dumps(res, ensure_ascii=False) + "\n")
            jsonl[engine].flush()
        remaining[res["file"]] -= 1
        if remaining[res["file"]] == 0:
            tasks_by_file.pop(res["file"], None)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(" ".join(
                    f"{e}:{sum(r['status'] == 'passing' for r in results[e].values())}" for e in opts.engines))

    def gen_tasks():  # loaded and tokenized lazily, as the workers ask for them
        for f in todo:
            task = load_task(opts.data_dir, f, tokenizer)
            task["engines"] = [e for e in opts.engines if f not in results[e]]
            tasks_by_file[f] = task
            remaining[f] = len(task["engines"])
            yield task

    try:
        run_tasks(opts.engines, gen_tasks(), tokenizer=tokenizer, timeout_s=opts.timeout_s,
                  jobs=opts.jobs, isolate=opts.isolate, on_result=on_result)
    finally:
        if bar is not None:
            bar.close()
        for fh in jsonl.values():
            fh.close()
    elapsed = time.time() - t_start
    results = {e: {f: results[e][f] for f in files if f in results[e]} for e in opts.engines}
    meta = {"data_dir": str(opts.data_dir), "files": len(files),
            "sample": f"{opts.sample} {opts.limit}, seed {opts.seed}" if opts.limit else "all",
            "tokenizer": getattr(tokenizer, "name_or_path", None) and "SmolLM2 (GGUF)" or "?",
            "timeout_s": opts.timeout_s}
    report = render_report(results, meta)
    if out:
        for e, per_file in results.items():
            doc = {"engine": e, "summary": engine_summary(per_file),
                   "schemas": {f: _public(r) for f, r in per_file.items()}}
            (out / f"{e}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
        (out / "report.md").write_text(report, encoding="utf-8")
        (out / "run.json").write_text(json.dumps({
            **meta, "engines": list(opts.engines), "jobs": opts.jobs, "elapsed_s": elapsed,
            "file_list": files, "python": sys.version.split()[0],
        }, indent=1), encoding="utf-8")
    return results, report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", nargs="?", type=Path,
                    help=f"MaskBench folder (default: {DEFAULT_DATA} when present)")
    ap.add_argument("--engines", default=",".join(ALL_ENGINES),
                    help="comma-separated (default: all four; missing ones are skipped)")
    ap.add_argument("--limit", type=int, default=None, help="run on this many files")
    ap.add_argument("--sample", choices=("stratified", "first"), default="stratified")
    ap.add_argument("--seed", type=int, default=0, help="seed of the stratified sample (default 0)")
    ap.add_argument("--timeout-s", type=float, default=30.0,
                    help="per schema and phase (compile; instances), seconds (default 30)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--jobs", type=int, default=1, help="schemas in flight at once (default 1)")
    ap.add_argument("--resume", action="store_true", help="reuse per-schema results in --out")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    data_dir = args.data_dir
    if data_dir is None:
        if not DEFAULT_DATA.is_dir():
            ap.error(f"no MaskBench folder given and the default {DEFAULT_DATA} does not exist; "
                     "pass DIR (a folder of MaskBench *.json files)")
        data_dir = DEFAULT_DATA
    if not data_dir.is_dir():
        ap.error(f"{data_dir} is not a folder")
    if not list_files(data_dir):
        ap.error(f"{data_dir} has no *.json files")

    names, skipped = available_engine_names([e.strip() for e in args.engines.split(",") if e.strip()])
    for n, why in skipped.items():
        print(f"[maskbench] skipping {n}: {why}", file=sys.stderr)
    if not names:
        ap.error("no engine available")
    sys.path.insert(0, str(ROOT))
    from constrain.integrations.transformers import load_default_tokenizer

    t0 = time.time()
    tokenizer = load_default_tokenizer()
    print(f"[maskbench] tokenizer loaded in {time.time() - t0:.1f} s; engines: {', '.join(names)}",
          file=sys.stderr)
    opts = Options(data_dir=data_dir, out=args.out, engines={n: BuiltinFactory(n) for n in names},
                   limit=args.limit, sample=args.sample, seed=args.seed, timeout_s=args.timeout_s,
                   jobs=max(1, args.jobs), resume=args.resume, progress=not args.no_progress)
    t0 = time.time()
    _, report = run_maskbench(opts, tokenizer)
    print(report)
    print(f"[maskbench] {time.time() - t0:.0f} s; wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
