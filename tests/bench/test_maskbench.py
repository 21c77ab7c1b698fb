"""bench/maskbench.py: classification of schemas per engine (with fake engines that are wrong on
purpose, hang or crash, in worker processes), the stratified sampler, the output files, and a
small real run of the peers (and constrain, when its JSON Schema compiler imports) on a
MaskBench-format folder built here."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bench.maskbench as mb  # noqa: E402

# --------------------------------------------------------------------------- #
# A tiny MaskBench folder
# --------------------------------------------------------------------------- #

FILES = {
    "Github_easy---o1.json": {
        "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
                   "additionalProperties": False},
        "tests": [{"valid": True, "data": {"a": 12}}, {"valid": True, "data": {"a": -3}},
                  {"valid": False, "data": {"a": "12"}}, {"valid": False, "data": {}}],
    },
    "Github_easy---o2.json": {
        "schema": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5},
                                                    "ok": {"type": "boolean"}},
                   "required": ["name"], "additionalProperties": False},
        "tests": [{"valid": True, "data": {"name": "héllo", "ok": True}},
                  {"valid": False, "data": {"name": "too long"}}],
    },
    "Kubernetes---k1.json": {  # no tests: compile stats only
        "schema": {"type": "array", "items": {"type": "number"}},
        "tests": [],
    },
    "BFCL_simple_7.json": {  # uniqueItems: llguidance reports "Unimplemented keys"
        "schema": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
        "tests": [{"valid": True, "data": [1, 2]}, {"valid": False, "data": [1, 1]}],
    },
}


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "maskbench"
    d.mkdir()
    for name, doc in FILES.items():
        (d / name).write_text(json.dumps({"description": name, "meta": {}, **doc}), encoding="utf-8")
    return d


# --------------------------------------------------------------------------- #
# Fake engines (top level, so they pickle into the spawned workers)
# --------------------------------------------------------------------------- #


class ByteTokenizer:
    """One token per UTF-8 byte; enough for the fake engines."""

    name_or_path = "bytes"

    def encode(self, s, add_special_tokens=False):
        return list(s.encode("utf-8"))

    def decode(self, ids):
        return bytes(ids).decode("utf-8", "replace")


class _FakeMatcher:
    def __init__(self, allow: bool):
        self.allow = allow

    def fill_bitmask(self, bm, row=0):
        bm[row, :] = -1 if self.allow else 0

    def accept_token(self, t):
        return self.allow

    def is_accepting(self):
        return True


class _FakeConstraint:
    def __init__(self, allow: bool):
        self.allow = allow

    def matcher(self):
        return _FakeMatcher(self.allow)


class FakeEngine:
    """``mode``: "accept_all" (allows everything: invalid instances get accepted),
    "reject_all" (valid instances get rejected), "hang" / "segfault" / "raise" on schemas
    whose ``title`` is "trigger" (others behave like accept_all), "compile_fail"."""

    def __init__(self, mode: str):
        self.mode = mode

    def allocate_bitmask(self, batch=1):
        return np.zeros((batch, 8), dtype=np.int32)

    def compile_json_schema(self, schema):
        trigger = isinstance(schema, dict) and schema.get("title") == "trigger"
        if self.mode == "compile_fail":
            raise mb.CompileFailure("FakeError", "fake engine rejects it", "items", "/items")
        if trigger and self.mode == "hang":
            time.sleep(600)
        if trigger and self.mode == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if trigger and self.mode == "raise":
            raise KeyError("boom")  # an unexpected exception: still a compile error, class kept
        return _FakeConstraint(self.mode != "reject_all")


class FakeFactory:
    def __init__(self, mode: str):
        self.mode = mode

    def __call__(self, tokenizer):
        return FakeEngine(self.mode)


def _tasks(data_dir, tokenizer, titles=()):
    tasks = []
    for f in sorted(FILES):
        t = mb.load_task(data_dir, f, tokenizer)
        if f in titles:
            t["schema"] = {**t["schema"], "title": "trigger"}
        tasks.append(t)
    return tasks


# --------------------------------------------------------------------------- #
# Classification with fakes
# --------------------------------------------------------------------------- #


def test_fake_engines_inline_classification(data_dir):
    tasks = _tasks(data_dir, ByteTokenizer())
    res = mb.run_tasks({"acc": FakeFactory("accept_all"), "rej": FakeFactory("reject_all"),
                        "bad": FakeFactory("compile_fail")}, tasks, isolate=False)
    acc, rej, bad = res["acc"], res["rej"], res["bad"]
    assert acc["Github_easy---o1.json"]["status"] == "invalidation_error"
    first = acc["Github_easy---o1.json"]["failures"][0]
    assert first["valid"] is False and first["reason"] == "accepted" and first["index"] == 2
    assert acc["Kubernetes---k1.json"]["status"] == "untested"
    assert acc["Kubernetes---k1.json"]["tbm_ns"] == []
    assert rej["Github_easy---o2.json"]["status"] == "validation_error"
    assert rej["Github_easy---o2.json"]["failures"][0]["reason"] == "token not in mask"
    assert rej["Github_easy---o2.json"]["failures"][0]["position"] == 0
    for r in bad.values():
        assert r["status"] == "compile_error" and r["keyword"] == "items" and r["error_class"] == "FakeError"
    # TBM: one per token of every instance, except the first fill (charged to TTFM).
    n_tokens = sum(len(i["tokens"]) for i in tasks[1]["instances"])
    assert len(acc[tasks[1]["file"]]["tbm_ns"]) == n_tokens - 1
    assert all(r["ttfm_ms"] >= r["compile_ms"] >= 0 for r in acc.values())


def test_worker_timeout_crash_and_restart(data_dir):
    """A hang and a segfault are recorded as timeout / crash; the worker is restarted, and
    later schemas of the same engine still run."""
    trig = ("BFCL_simple_7.json", "Github_easy---o2.json")
    tasks = _tasks(data_dir, ByteTokenizer(), titles=trig)
    t0 = time.monotonic()
    res = mb.run_tasks({"hang": FakeFactory("hang"), "segv": FakeFactory("segfault"),
                        "raise": FakeFactory("raise")},
                       tasks, tokenizer=ByteTokenizer(), timeout_s=1.5, jobs=2)
    assert time.monotonic() - t0 < 30
    for f in trig:
        assert res["hang"][f]["status"] == "timeout"
        assert res["hang"][f]["phase"] == "compile"
        assert res["segv"][f]["status"] == "crash"
        assert "signal" in res["segv"][f]["error"]
        assert res["raise"][f]["status"] == "compile_error"
        assert res["raise"][f]["error_class"] == "KeyError"
    for eng in ("hang", "segv", "raise"):
        assert res[eng]["Github_easy---o1.json"]["status"] == "invalidation_error"
        assert res[eng]["Kubernetes---k1.json"]["status"] == "untested"


def test_pointer_keyword():
    assert mb.pointer_keyword("/properties/a/pattern") == "pattern"
    assert mb.pointer_keyword("/anyOf/3") == "anyOf"
    assert mb.pointer_keyword("/properties/a~1b") == "a/b"
    assert mb.pointer_keyword("") == "(root)"
    assert mb.pointer_keyword(None) is None


# --------------------------------------------------------------------------- #
# Sampling
# --------------------------------------------------------------------------- #


def test_split_of():
    assert mb.split_of("Github_easy---o10008.json") == "Github_easy"
    assert mb.split_of("BFCL_parallel_multiple_12.json") == "BFCL_parallel_multiple"
    assert mb.split_of("JME_3.json") == "JME"


def test_stratified_sample_is_deterministic_and_spread():
    files = ([f"Github_easy---o{i}.json" for i in range(500)] + [f"Kubernetes---k{i}.json" for i in range(300)]
             + [f"BFCL_simple_{i}.json" for i in range(150)] + [f"BFCL_sql_{i}.json" for i in range(3)]
             + ["JME_1.json"])
    a = mb.sample_files(files, 60, "stratified", seed=0)
    assert a == mb.sample_files(list(reversed(files)), 60, "stratified", seed=0)
    assert len(a) == len(set(a)) == 60 and a == sorted(a)
    counts = {s: sum(mb.split_of(f) == s for f in a) for s in map(mb.split_of, files)}
    assert all(c >= 1 for c in counts.values())  # every split represented
    assert counts["Github_easy"] > counts["Kubernetes"] > counts["BFCL_simple"] > counts["BFCL_sql"]
    assert mb.sample_files(files, 60, "stratified", seed=1) != a
    assert mb.sample_files(files, 3, "stratified", seed=0) == mb.sample_files(files, 3, "stratified", seed=0)
    assert len(mb.sample_files(files, 3, "stratified", seed=0)) == 3
    assert mb.sample_files(files, 5, "first") == sorted(files)[:5]
    assert mb.sample_files(files, None) == sorted(files)
    assert mb.sample_files(files, 10_000) == sorted(files)


# --------------------------------------------------------------------------- #
# Output files and the report
# --------------------------------------------------------------------------- #


def test_outputs_and_resume(data_dir, tmp_path):
    out = tmp_path / "out"
    opts = mb.Options(data_dir=data_dir, out=out, engines={"acc": FakeFactory("accept_all")},
                      isolate=False, progress=False)
    results, report = mb.run_maskbench(opts, ByteTokenizer())
    doc = json.loads((out / "acc.json").read_text())
    assert doc["engine"] == "acc"
    s = doc["summary"]
    assert s["schemas"] == 4 and s["with_tests"] == 3 and s["untested"] == 1
    assert s["invalidation_error"] == 3
    assert list(s["tbm_us"]) == ["p25", "p50", "p75", "p90", "p95", "p99", "p99.9", "max"]
    assert list(s["ttfm_ms"]) == ["p25", "p50", "p75", "p90", "p95", "p99", "max"]
    row = doc["schemas"]["Github_easy---o1.json"]
    assert row["status"] == "invalidation_error" and row["first_failure"]["index"] == 2
    assert row["first_failure"]["context"].endswith("⟨<end>⟩")
    assert row["tbm"]["n"] > 0 and "tbm_ns" not in row
    assert (out / "report.md").read_text() == report
    header = report.splitlines()[2]
    for col in ("engine", "schemas", "passing", "compile error", "timeout", "crash", "validation error",
                "invalidation error", "TBM p99.9 µs", "TBM max µs", "TTFM p50 ms"):
        assert f"| {col} |" in header
    assert "| acc | 4 | 0 | 0 | 0 | 0 | 0 | 3 | 1 |" in report
    assert len((out / "acc.jsonl").read_text().splitlines()) == 4
    run = json.loads((out / "run.json").read_text())
    assert run["files"] == 4 and run["file_list"] == sorted(FILES)

    # --resume: nothing is rerun (an engine that would now fail everything is not called).
    opts2 = mb.Options(data_dir=data_dir, out=out, engines={"acc": FakeFactory("compile_fail")},
                       isolate=False, progress=False, resume=True)
    results2, _ = mb.run_maskbench(opts2, ByteTokenizer())
    assert {f: r["status"] for f, r in results2["acc"].items()} == \
        {f: r["status"] for f, r in results["acc"].items()}


def test_constrain_error_tables_in_report():
    per_file = {
        "a.json": {"file": "a.json", "status": "compile_error", "error_class": "UnsupportedFeatureError",
                   "keyword": "uniqueItems", "error": "schema at /uniqueItems: not supported", "n_tests": 1},
        "b.json": {"file": "b.json", "status": "compile_error", "error_class": "UnsupportedFeatureError",
                   "keyword": "uniqueItems", "error": "schema at /x/uniqueItems: not supported", "n_tests": 1},
        "c.json": {"file": "c.json", "status": "validation_error", "n_tests": 1, "compile_ms": 1.0,
                   "ttfm_ms": 1.5, "tbm_ns": [1000, 2000],
                   "failures": [{"index": 0, "valid": True, "reason": "token not in mask", "position": 3,
                                 "token": 5, "n_tokens": 9}]},
        "d.json": {"file": "d.json", "status": "invalidation_error", "n_tests": 2, "compile_ms": 1.0,
                   "ttfm_ms": 2.0, "tbm_ns": [3000],
                   "failures": [{"index": 1, "valid": False, "reason": "accepted", "position": 4,
                                 "token": None, "n_tokens": 4}]},
    }
    report = mb.render_report({"constrain": per_file})
    assert "| uniqueItems | UnsupportedFeatureError | 2 | a.json |" in report
    assert "### constrain: validation error (1)" in report and "- c.json: instance 0 (valid)" in report
    assert "### constrain: invalidation error (1)" in report and "- d.json: instance 1 (invalid)" in report


def test_cli_requires_a_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(mb, "DEFAULT_DATA", tmp_path / "absent")
    with pytest.raises(SystemExit) as e:
        mb.main([])
    assert e.value.code == 2
    assert "pass DIR" in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# Real engines
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def real_engines():
    names, _ = mb.available_engine_names()
    if not names:
        pytest.skip("no engine installed")
    return names


@pytest.mark.peers
def test_real_engines_on_tiny_folder(data_dir, smollm2_tokenizer, real_engines):
    for mod in ("llguidance",):
        pytest.importorskip(mod)
    opts = mb.Options(data_dir=data_dir, out=None, isolate=False, progress=False,
                      engines={n: mb.BuiltinFactory(n) for n in real_engines})
    results, report = mb.run_maskbench(opts, smollm2_tokenizer)
    for eng, per_file in results.items():
        assert per_file["Github_easy---o1.json"]["status"] == "passing", (eng, per_file["Github_easy---o1.json"])
        assert per_file["Kubernetes---k1.json"]["status"] in ("untested", "compile_error"), eng
    llg = results["llguidance"]
    assert llg["Kubernetes---k1.json"]["status"] == "untested"
    assert llg["BFCL_simple_7.json"]["status"] == "compile_error"
    assert "uniqueItems" in llg["BFCL_simple_7.json"]["error"]
    assert llg["Github_easy---o2.json"]["status"] == "passing"
    if "constrain" in results:
        c = results["constrain"]
        assert c["Github_easy---o2.json"]["status"] == "passing"
        if c["BFCL_simple_7.json"]["status"] == "compile_error":
            assert c["BFCL_simple_7.json"]["keyword"] == "uniqueItems"
    assert "| llguidance | 4 |" in report


@pytest.mark.peers
def test_real_engine_in_worker_process(data_dir, smollm2_tokenizer):
    """The BuiltinFactory path: the tokenizer pickles into a spawned worker that builds the
    engine itself."""
    pytest.importorskip("llguidance")
    tasks = [mb.load_task(data_dir, f, smollm2_tokenizer) for f in ("Github_easy---o1.json", "BFCL_simple_7.json")]
    res = mb.run_tasks({"llguidance": mb.BuiltinFactory("llguidance")}, tasks,
                       tokenizer=smollm2_tokenizer, timeout_s=60)
    assert res["llguidance"]["Github_easy---o1.json"]["status"] == "passing"
    assert res["llguidance"]["BFCL_simple_7.json"]["status"] == "compile_error"


def test_constrain_any_order_engine_accepts_instances_out_of_schema_order(tmp_path, smollm2_tokenizer):
    """constrain keeps schema order (its default); constrain-any runs property_order="any", so a
    valid instance whose keys come in another order passes there and is a validation error in
    schema order. A repeated key stays invalid for both."""
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
              "required": ["a", "b"], "additionalProperties": False}
    tests = [{"valid": True, "data": {"b": "x", "a": 1}}, {"valid": True, "data": {"a": 2, "b": ""}},
             {"valid": False, "data": {"b": 1, "a": 1}}]
    (tmp_path / "Toy---order.json").write_text(json.dumps({"schema": schema, "tests": tests}))
    opts = mb.Options(data_dir=tmp_path, out=None, isolate=False, progress=False,
                      engines={n: mb.BuiltinFactory(n) for n in ("constrain", "constrain-any")})
    results, report = mb.run_maskbench(opts, smollm2_tokenizer)
    assert results["constrain"]["Toy---order.json"]["status"] == "validation_error"
    assert results["constrain-any"]["Toy---order.json"]["status"] == "passing"
    assert "| constrain-any | 1 |" in report


def test_inprocess_by_lexer_and_gc_off(data_dir, smollm2_tokenizer, capsys):
    """``bench/maskbench_inprocess.py --by-lexer --gc-off`` on the tiny folder: every timed mask
    counted once in "all" and once under its grammar's lexer, and the collector is back on after."""
    import gc

    import bench.maskbench_inprocess as mbi

    pytest.importorskip("constrain.schema")
    assert gc.isenabled()
    assert mbi.main([str(data_dir), "--every", "1", "--limit", "10", "--gc-off", "--by-lexer"]) == 0
    assert gc.isenabled()
    out = capsys.readouterr().out
    counts = {}
    for line in out.splitlines():
        if line.startswith("TBM ") and ":" in line and "masks" in line:
            name, rest = line[4:].split(":", 1)
            counts[name] = int(rest.split()[0])
    assert counts.get("all", 0) > 0, out
    assert sum(v for k, v in counts.items() if k != "all") == counts["all"], out
    assert set(counts) - {"all"} <= {"eager", "lazy", "other"} and "eager" in counts, out


def test_inprocess_gc_stats_counts_collections_inside_fills(data_dir, smollm2_tokenizer, capsys):
    """``--gc-stats`` counts the collections that run inside mask fills (here forced by a
    collection threshold of 1, so every fill that allocates runs one) and puts the matcher's fill
    and ``gc.callbacks`` back as they were."""
    import gc

    import bench.maskbench_inprocess as mbi
    from constrain.matcher import Matcher

    pytest.importorskip("constrain.schema")
    fill, callbacks, threshold = Matcher.fill_bitmask, list(gc.callbacks), gc.get_threshold()
    gc.set_threshold(1)
    try:
        assert mbi.main([str(data_dir), "--every", "1", "--limit", "10", "--gc-stats", "--over", "0"]) == 0
    finally:
        gc.set_threshold(*threshold)
    assert Matcher.fill_bitmask is fill and gc.callbacks == callbacks
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("collections inside fills"))
    assert "{0: '" in line, line  # young collections were seen inside fills
    slow, ran = (int(x) for x in line.split("fills over 0 us: ")[1].split(" ran")[0].split(", of which "))
    assert slow > 0 and 0 < ran <= slow, line


def test_inprocess_runs_a_file_list(data_dir, smollm2_tokenizer, capsys, tmp_path):
    """``--files`` runs exactly the listed files that have tests (comment lines skipped), and
    ``--over`` sets the threshold the per-lexer lines count; a listed file not in the folder is a
    clean usage error."""
    import bench.maskbench_inprocess as mbi

    pytest.importorskip("constrain.schema")
    listing = tmp_path / "list.txt"
    listing.write_text("# two files\nGithub_easy---o2.json\n\nKubernetes---k1.json\n", encoding="utf-8")
    assert mbi.main([str(data_dir), "--files", str(listing), "--by-lexer", "--over", "0"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("1 files ({'passing': 1})"), out  # k1 has no tests
    all_line = next(line for line in out.splitlines() if line.startswith("TBM all:"))
    n = int(all_line.split(":", 1)[1].split()[0])
    assert n > 0 and f"{n} over 0 us" in all_line, out  # every mask takes more than 0 us
    listing.write_text("Github_easy---o9.json\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        mbi.main([str(data_dir), "--files", str(listing)])
