"""JSONSchemaBench end to end: prompt a model with each schema and generate with every engine.

``constrain bench jsonschemabench --data DIR`` runs, for each MaskBench schema file in ``DIR``
(``{"schema": ..., "tests": [...]}``; the tests are not used here) and each engine:

1. the prompt: system message :data:`INSTRUCTION`, user message the schema (``json.dumps``),
   wrapped in the model's chat template;
2. compile the schema with the engine (timed: ``compile_ms``);
3. ``model.generate`` with the engine's logits processor, greedy, the same ``max_new_tokens`` for
   every engine, stopping at EOS; a streamer stamps every new token (``ttft_ms``: ``generate`` call
   to first token; ``tpot_ms``: mean gap between later tokens);
4. check the output: ``json.loads`` of the whole text, then ``jsonschema`` validation (the
   validator the schema's ``$schema`` asks for, with format checking).

Per (schema, engine) status: ``valid``, ``invalid`` (finished, not valid JSON or not valid under
the schema), ``unfinished`` (``max_new_tokens`` reached without EOS), ``compile_error``,
``timeout`` (compile + generation over ``--timeout-s``), ``crash`` (an exception while
generating, or the worker died), ``prompt_too_long`` (prompt + ``max_new_tokens`` exceed the
model's context; every engine gets it), ``check_error`` (``jsonschema`` itself failed on the schema).

The model is loaded once in a worker process; a pair that runs past its time limit kills the worker
and the next pair starts a fresh one.  Results are appended per pair to ``results.jsonl`` in
``--out`` (``--resume`` skips pairs already there); at the end ``report.md``, ``results.json``,
``run.json`` and the plots (see :mod:`constrain.benchmarks.report`) are written.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from constrain.benchmarks.engines import ALL_ENGINES, EngineCompileError, build_engine, missing_engines
from constrain.benchmarks.sampling import list_files, sample_files, split_of

__all__ = [
    "INSTRUCTION",
    "STATUSES",
    "ModelLoader",
    "Options",
    "check_output",
    "run_jsonschemabench",
    "add_arguments",
    "main",
]

INSTRUCTION = "You need to generate a JSON object that matches the schema below."
STATUSES = ("valid", "invalid", "unfinished", "compile_error", "timeout", "crash", "prompt_too_long",
            "check_error")
DEFAULT_MAX_NEW_TOKENS = 512
DEFAULT_TIMEOUT_S = 180.0
# Compiled by every engine at worker start (with a 2-token generation), so numba JIT, torch.compile
# of the peers' mask kernels and lazy imports are not charged to the first schema.
WARMUP_SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}


@dataclass(frozen=True)
class ModelLoader:
    """Picklable ``() -> (model, tokenizer)``: ``"default"`` (SmolLM2-135M-Instruct) or a local
    folder with a ``transformers`` causal LM and its tokenizer."""

    name: str = "default"

    def __call__(self):
        if self.name == "default":
            from constrain.integrations.transformers import load_default_model

            return load_default_model()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.name)
        model = AutoModelForCausalLM.from_pretrained(self.name)
        model.eval()
        return model, tokenizer


# --------------------------------------------------------------------------- #
# Checking an output
# --------------------------------------------------------------------------- #


def check_output(text: str, schema: Any) -> tuple[str, str | None]:
    """``("valid", None)``, ``("invalid", why)`` or ``("check_error", why)`` for a finished output.

    The whole text (surrounding whitespace stripped) must be one JSON document valid under
    ``schema``; no JSON is extracted from prose or code fences.
    """
    import jsonschema

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        return "invalid", f"not JSON: {e}"
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        err = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    except Exception as e:  # an unresolvable $ref, a pattern `re` cannot compile, ...
        return "check_error", f"{type(e).__name__}: {e}"[:500]
    if err is None:
        return "valid", None
    where = "/" + "/".join(map(str, err.absolute_path))
    return "invalid", f"at {where}: {err.message}"[:500]


# --------------------------------------------------------------------------- #
# One (schema, engine) pair, inside the worker
# --------------------------------------------------------------------------- #


class _TokenClock:
    """A ``generate`` streamer that only stamps the time of every new token."""

    def __init__(self):
        self.prompt_seen = False
        self.stamps: list[float] = []

    def put(self, value) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


class _Session:
    """The model, its tokenizer and the engines, built once per worker."""

    def __init__(self, loader: Callable, engines: list[str], max_new_tokens: int):
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        from constrain.integrations.transformers import model_vocab_size

        self.model, self.tokenizer = loader()
        self.vocab_size = model_vocab_size(self.model, self.tokenizer)
        self.eos = int(self.tokenizer.eos_token_id)
        self.max_new_tokens = max_new_tokens
        self.context = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        self.engines = {
            n: build_engine(n, self.model, self.tokenizer, self.vocab_size, max_new_tokens=max_new_tokens)
            for n in engines
        }
        for eng in self.engines.values():  # warm-up: JIT and lazy imports
            self._generate(self.prompt_ids(WARMUP_SCHEMA), eng.logits_processor(eng.compile(WARMUP_SCHEMA)), 2)

    def prompt_ids(self, schema: Any) -> list[int]:
        from constrain.generate import encode_prompt

        return encode_prompt(self.tokenizer, json.dumps(schema, ensure_ascii=False), system=INSTRUCTION)

    def _generate(self, prompt_ids: list[int], processor, max_new_tokens: int):
        import torch
        from transformers import LogitsProcessorList

        ids = torch.tensor([prompt_ids], dtype=torch.long)
        clock = _TokenClock()
        t0 = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                temperature=None, top_p=None, top_k=None, num_beams=1,
                eos_token_id=self.eos, pad_token_id=self.eos, streamer=clock,
                logits_processor=LogitsProcessorList([processor]) if processor is not None else None,
            )
        return out[0, len(prompt_ids):].tolist(), t0, clock.stamps

    def run(self, task: dict, on_compiled: Callable[[dict], None]) -> dict:
        schema = task["schema"]
        eng = self.engines[task["engine"]]
        res: dict[str, Any] = {"file": task["file"], "split": task["split"], "engine": task["engine"]}
        t0 = time.perf_counter()
        try:
            compiled = eng.compile(schema)
        except EngineCompileError as e:
            res.update(status="compile_error", compiled=False, error_class=e.error_class,
                       error=e.message[:2000], compile_ms=(time.perf_counter() - t0) * 1e3)
            return res
        except Exception as e:  # noqa: BLE001 - an engine bug is a compile error of its own class
            res.update(status="compile_error", compiled=False, error_class=type(e).__name__,
                       error=f"{type(e).__name__}: {e}"[:2000], compile_ms=(time.perf_counter() - t0) * 1e3)
            return res
        res["compiled"] = True
        res["compile_ms"] = None if task["engine"] == "none" else (time.perf_counter() - t0) * 1e3
        on_compiled({"compiled": True, "compile_ms": res["compile_ms"]})
        prompt = self.prompt_ids(schema)
        res["prompt_tokens"] = len(prompt)
        if self.context and len(prompt) + self.max_new_tokens > self.context:
            res.update(status="prompt_too_long",
                       error=f"{len(prompt)} prompt tokens + {self.max_new_tokens} > context {self.context}")
            return res
        try:
            new, t_start, stamps = self._generate(prompt, eng.logits_processor(compiled), self.max_new_tokens)
        except Exception as e:  # noqa: BLE001 - recorded, the worker goes on
            res.update(status="crash", error=f"{type(e).__name__}: {e}"[:2000],
                       traceback=traceback.format_exc()[-3000:])
            return res
        finished = bool(new) and new[-1] == self.eos
        body = new[:-1] if finished else new
        res["output_tokens"] = len(body)
        res["ttft_ms"] = (stamps[0] - t_start) * 1e3 if stamps else None
        res["tpot_ms"] = (stamps[-1] - stamps[0]) * 1e3 / (len(stamps) - 1) if len(stamps) > 1 else None
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        res["output"] = text[:4000]
        if not finished:
            res.update(status="unfinished", error=f"no EOS within {self.max_new_tokens} tokens")
            return res
        status, why = check_output(text, schema)
        res["status"] = status
        if why:
            res["error"] = why
        return res


def _worker_main(conn, loader, engines: list[str], max_new_tokens: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        session = _Session(loader, engines, max_new_tokens)
        conn.send(("ready", None))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        conn.send(("startup_error", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}"))
        return
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        try:
            res = session.run(task, lambda info: conn.send(("compiled", info)))
        except BaseException as e:  # noqa: BLE001
            res = {"file": task["file"], "split": task["split"], "engine": task["engine"], "status": "crash",
                   "error": f"{type(e).__name__}: {e}"[:2000]}
        conn.send(("result", res))


class _Worker:
    """One worker process holding the model; restarted after a timeout or a crash."""

    def __init__(self, loader, engines: list[str], max_new_tokens: int, startup_timeout_s: float):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, loader, engines, max_new_tokens),
                                name="jsonschemabench-worker", daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(startup_timeout_s):
            self.kill()
            raise RuntimeError(f"the worker did not load the model in {startup_timeout_s:.0f} s")
        try:
            kind, payload = self.conn.recv()
        except EOFError:
            self.kill()
            raise RuntimeError(f"the worker died while starting (exit code {self.proc.exitcode})") from None
        if kind != "ready":
            self.kill()
            raise RuntimeError(f"the worker failed to start: {payload}")

    def run(self, task: dict, timeout_s: float) -> tuple[dict, bool]:
        """``(result, worker still usable)``; ``timeout_s`` bounds compile + generation."""
        deadline = time.monotonic() + timeout_s
        info: dict = {"compiled": False}
        self.conn.send(task)
        while True:
            left = deadline - time.monotonic()
            try:
                ready = left > 0 and self.conn.poll(left)
                if ready:
                    kind, payload = self.conn.recv()
            except (EOFError, OSError):
                ready, kind = True, "died"
            if not ready:
                self.kill()
                phase = "generation" if info.get("compiled") else "compile"
                return {**_base(task), **info, "status": "timeout",
                        "error": f"no result after {timeout_s:g} s (in the {phase} phase)"}, False
            if kind == "compiled":
                info.update(payload)
            elif kind == "result":
                return payload, True
            else:
                self.proc.join(1)
                self.kill()
                return {**_base(task), **info, "status": "crash",
                        "error": f"worker exited with code {self.proc.exitcode}"}, False

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
            self.proc.join(10)
        except (BrokenPipeError, OSError):
            pass
        self.kill()


def _base(task: dict) -> dict:
    return {"file": task["file"], "split": task["split"], "engine": task["engine"]}


class _InlineRunner:
    """Same contract as :class:`_Worker`, in this process and without time limits (tests, debugging)."""

    def __init__(self, loader, engines, max_new_tokens, startup_timeout_s):
        self.session = _Session(loader, engines, max_new_tokens)

    def run(self, task, timeout_s):
        return self.session.run(task, lambda info: None), True

    def stop(self):
        pass


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #


@dataclass
class Options:
    data_dir: Path
    out: Path
    engines: list[str] = field(default_factory=lambda: list(ALL_ENGINES))
    loader: Callable = field(default_factory=ModelLoader)
    limit: int | None = None
    sample: str = "stratified"
    seed: int = 0
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    timeout_s: float = DEFAULT_TIMEOUT_S
    startup_timeout_s: float = 900.0
    resume: bool = False
    isolate: bool = True
    progress: bool = True
    plots: bool = True
    files: list[str] | None = None  # explicit file list (overrides limit / sample)
    report_only: bool = False  # no generation: report the schemas every engine has a result for
    shard: tuple[int, int] | None = None  # (k, n): run only the files at positions i with i % n == k


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N``; :class:`ValueError` with the reason otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"--shard wants K/N (e.g. 0/2), got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard {text}: K must be in 0..N-1 and N at least 1")
    return k, n


def _append_line(path: Path, record: dict) -> None:
    """Append one JSON line with a single ``write`` on an ``O_APPEND`` descriptor, so that shards of
    one run writing the same ``results.jsonl`` from separate processes never interleave lines."""
    data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def load_results(path: Path) -> list[dict]:
    """The records of a ``results.jsonl`` (a line cut short by a kill is skipped)."""
    out = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def run_jsonschemabench(opts: Options, log: Callable[[str], None] | None = None) -> tuple[list[dict], str]:
    """Run every (file, engine) pair not done yet; ``(records of the selected files, report)``.

    Writes ``results.jsonl`` (appended per pair), ``results.json``, ``report.md``, ``run.json`` and,
    with ``opts.plots``, the PNG plots into ``opts.out``.
    """
    from constrain.benchmarks import report

    if opts.plots and importlib.util.find_spec("matplotlib") is None:  # fail before hours of generation
        raise ImportError("the plots need matplotlib: pip install 'constrain[bench]' (or pass --no-plots)")
    log = log or (lambda msg: print(f"[jsonschemabench] {msg}", file=sys.stderr, flush=True))
    data_dir = Path(opts.data_dir)
    files = opts.files if opts.files is not None else sample_files(list_files(data_dir), opts.limit,
                                                                     opts.sample, opts.seed)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "results.jsonl"
    wanted = set(files)
    done: dict[tuple[str, str], dict] = {}
    if opts.resume or opts.report_only:
        for r in load_results(jsonl):
            if r.get("file") in wanted and r.get("engine") in opts.engines:
                done[(r["file"], r["engine"])] = r
    if opts.report_only:  # a partial run: only the schemas every engine was run on
        files = [f for f in files if all((f, e) in done for e in opts.engines)]
    todo = [] if opts.report_only else [(f, e) for f in files for e in opts.engines if (f, e) not in done]
    if opts.shard is not None:
        k, n = opts.shard
        position = {f: i for i, f in enumerate(files)}
        todo = [(f, e) for f, e in todo if position[f] % n == k]
    log(f"{len(files)} schemas x {len(opts.engines)} engines: {len(done)} pairs done, {len(todo)} to run")

    bar = None
    if opts.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(done) + len(todo), initial=len(done), unit="pair",
                   desc="jsonschemabench", dynamic_ncols=True, file=sys.stderr)
    t_start = time.time()
    runner = None
    if not (opts.resume or opts.report_only):
        jsonl.write_text("", encoding="utf-8")
    cached: dict[str, Any] = {}
    try:
        for f, e in todo:
            if f not in cached:
                cached.clear()
                cached[f] = json.loads((data_dir / f).read_text(encoding="utf-8"))["schema"]
            task = {"file": f, "split": split_of(f), "engine": e, "schema": cached[f]}
            if runner is None:
                t0 = time.time()
                cls = _Worker if opts.isolate else _InlineRunner
                runner = cls(opts.loader, list(opts.engines), opts.max_new_tokens, opts.startup_timeout_s)
                log(f"model and engines ready in {time.time() - t0:.1f} s")
            t0 = time.perf_counter()
            res, alive = runner.run(task, opts.timeout_s)
            res["wall_s"] = time.perf_counter() - t0
            if not alive:
                runner = None
            done[(f, e)] = res
            _append_line(jsonl, res)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(" ".join(
                    f"{n}:{sum(1 for (_, en), r in done.items() if en == n and r['status'] == 'valid')}"
                    for n in opts.engines))
    finally:
        if bar is not None:
            bar.close()
        if runner is not None:
            runner.stop()
    if opts.shard is not None:  # the other shards' pairs too: the last shard to end reports them all
        for r in load_results(jsonl):
            if r.get("file") in wanted and r.get("engine") in opts.engines:
                done.setdefault((r["file"], r["engine"]), r)
    records = [done[(f, e)] for f in files for e in opts.engines if (f, e) in done]
    meta = {"data_dir": str(data_dir), "schemas": len(files),
            "sample": (f"{opts.sample} {opts.limit}, seed {opts.seed}" if opts.limit else "all files")
            + (f"; report only: the {len(files)} schemas every engine has run" if opts.report_only else ""),
            "model": getattr(opts.loader, "name", repr(opts.loader)), "engines": list(opts.engines),
            "max_new_tokens": opts.max_new_tokens, "timeout_s": opts.timeout_s,
            "elapsed_s": time.time() - t_start, "pairs_run": len(todo),
            **({"shard": f"{opts.shard[0]}/{opts.shard[1]}"} if opts.shard else {})}
    text = report.write_report(records, out, meta, engines=list(opts.engines), plots=opts.plots)
    (out / "run.json").write_text(json.dumps({**meta, "file_list": files}, indent=1), encoding="utf-8")
    return records, text


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of ``constrain bench jsonschemabench`` (also used by :func:`main`)."""
    ap.add_argument("--data", type=Path, required=True, metavar="DIR",
                    help="folder of MaskBench schema files (*.json with a 'schema' key)")
    ap.add_argument("--model", default="default",
                    help="'default' (SmolLM2-135M-Instruct) or a local transformers model folder")
    ap.add_argument("--engines", default=",".join(ALL_ENGINES),
                    help=f"comma-separated among {', '.join(ALL_ENGINES)} (default: all; missing "
                         "packages are skipped with a message)")
    ap.add_argument("--limit", type=int, default=None, help="run on this many schema files (default: all)")
    ap.add_argument("--sample", choices=("stratified", "first"), default="stratified",
                    help="which files --limit keeps: stratified by split (default) or the first ones")
    ap.add_argument("--seed", type=int, default=0, help="seed of the stratified sample (default 0)")
    ap.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS,
                    help=f"generation budget per schema, the same for every engine (default {DEFAULT_MAX_NEW_TOKENS})")
    ap.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S,
                    help=f"time limit per schema and engine, compile + generation (default {DEFAULT_TIMEOUT_S:g})")
    ap.add_argument("--out", type=Path, default=Path("jsonschemabench-results"),
                    help="output folder (default ./jsonschemabench-results)")
    ap.add_argument("--resume", action="store_true", help="skip (schema, engine) pairs already in --out")
    ap.add_argument("--shard", default=None, metavar="K/N",
                    help="run only every N-th schema of the sample, starting at the K-th (0-based), appending "
                         "to the same --out; run K=0..N-1 side by side (one per core) with --resume, the "
                         "last one to end writes the report of all (or use --report-only)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    ap.add_argument("--report-only", action="store_true",
                    help="generate nothing: write the report of --out's results for the schemas of the "
                         "sample that every engine has a result for (a partial or interrupted run)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run from parsed :func:`add_arguments` options; the exit status."""
    if not args.data.is_dir():
        print(f"error: --data {args.data} is not a folder", file=sys.stderr)
        return 2
    if not list_files(args.data):
        print(f"error: --data {args.data} has no *.json files", file=sys.stderr)
        return 2
    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        skipped = missing_engines(names)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for n, why in skipped.items():
        print(f"[jsonschemabench] skipping {n}: {why}", file=sys.stderr)
    names = [n for n in names if n not in skipped]
    if not names:
        print("error: no engine available", file=sys.stderr)
        return 2
    opts = Options(data_dir=args.data, out=args.out, engines=names, loader=ModelLoader(args.model),
                   limit=args.limit, sample=args.sample, seed=args.seed, max_new_tokens=args.max_new_tokens,
                   timeout_s=args.timeout_s, resume=args.resume, progress=not args.no_progress,
                   plots=not args.no_plots, report_only=args.report_only, shard=shard)
    _, text = run_jsonschemabench(opts)
    print(text)
    print(f"[jsonschemabench] wrote {args.out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m constrain.benchmarks.jsonschemabench",
                                 description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    return run_from_args(ap.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
