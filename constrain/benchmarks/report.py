"""Tables and plots for :mod:`constrain.benchmarks.jsonschemabench` results.

:func:`summarize` turns per-(schema, engine) records into metrics per split and engine,
:func:`render_markdown` prints them as tables, :func:`write_plots` draws the PNGs and
:func:`write_report` does all of it into an output folder.  Metrics (bench/README.md explains each):

schemas, compiled (declared coverage = compiled / schemas), valid, empirical coverage
(valid / schemas), compliance (valid / compiled), invalid, unfinished, other (timeout, crash,
prompt_too_long, check_error), compile-time p50/p90 (ms), TTFT p50 (ms), TPOT p50/p90 (ms),
output tokens mean.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["summarize", "render_markdown", "write_plots", "write_report", "PLOT_FILES"]

PLOT_FILES = ("coverage.png", "tpot.png", "compile_time.png")
ALL_SPLITS = "all"


def _pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), q)) if xs else None


def _metrics(rs: list[dict]) -> dict[str, Any]:
    n = len(rs)
    status = defaultdict(int)
    for r in rs:
        status[r["status"]] += 1
    compiled = sum(1 for r in rs if r.get("compiled"))
    valid = status["valid"]
    ct = [r["compile_ms"] for r in rs if r.get("compiled") and r.get("compile_ms") is not None]
    ttft = [r["ttft_ms"] for r in rs if r.get("ttft_ms") is not None]
    tpot = [r["tpot_ms"] for r in rs if r.get("tpot_ms") is not None]
    toks = [r["output_tokens"] for r in rs if r.get("output_tokens") is not None]
    return {
        "schemas": n,
        "compiled": compiled,
        "declared_coverage": compiled / n if n else None,
        "valid": valid,
        "empirical_coverage": valid / n if n else None,
        "compliance": valid / compiled if compiled else None,
        "invalid": status["invalid"],
        "unfinished": status["unfinished"],
        "compile_error": status["compile_error"],
        "timeout": status["timeout"],
        "crash": status["crash"],
        "prompt_too_long": status["prompt_too_long"],
        "check_error": status["check_error"],
        "compile_ms_p50": _pct(ct, 50),
        "compile_ms_p90": _pct(ct, 90),
        "ttft_ms_p50": _pct(ttft, 50),
        "tpot_ms_p50": _pct(tpot, 50),
        "tpot_ms_p90": _pct(tpot, 90),
        "output_tokens_mean": float(np.mean(toks)) if toks else None,
    }


def summarize(records: Iterable[dict], engines: list[str] | None = None) -> dict[str, dict[str, dict]]:
    """``{split: {engine: metrics}}`` with the split ``"all"`` first; engines in ``engines`` order."""
    records = list(records)
    engines = engines or list(dict.fromkeys(r["engine"] for r in records))
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        by[(ALL_SPLITS, r["engine"])].append(r)
        by[(r["split"], r["engine"])].append(r)
    splits = [ALL_SPLITS] + sorted({r["split"] for r in records})
    return {s: {e: _metrics(by[(s, e)]) for e in engines if by[(s, e)]} for s in splits}


def _f(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:,.{digits}f}"


def _pc(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


_HEAD = ["engine", "schemas", "compiled", "declared cov.", "valid", "empirical cov.", "compliance", "invalid",
         "unfinished", "other", "compile p50 ms", "compile p90 ms", "TTFT p50 ms", "TPOT p50 ms", "TPOT p90 ms",
         "out tokens mean"]


def _row(label: list[str], m: dict) -> str:
    other = m["timeout"] + m["crash"] + m["prompt_too_long"] + m["check_error"]
    cells = label + [str(m["schemas"]), str(m["compiled"]), _pc(m["declared_coverage"]), str(m["valid"]),
                     _pc(m["empirical_coverage"]), _pc(m["compliance"]), str(m["invalid"]), str(m["unfinished"]),
                     str(other), _f(m["compile_ms_p50"], 2), _f(m["compile_ms_p90"], 2), _f(m["ttft_ms_p50"], 0),
                     _f(m["tpot_ms_p50"], 1), _f(m["tpot_ms_p90"], 1), _f(m["output_tokens_mean"], 1)]
    return "| " + " | ".join(cells) + " |"


def render_markdown(summary: dict[str, dict[str, dict]], records: list[dict] | None = None,
                    meta: dict | None = None, focus: str = "constrain") -> str:
    """The report: one table for all schemas, one per split, then every ``focus`` pair that was not
    ``valid`` with its reason."""
    lines: list[str] = []
    if meta:
        lines.append(f"JSONSchemaBench: {meta.get('schemas')} schemas from `{meta.get('data_dir')}` "
                     f"({meta.get('sample')}), model {meta.get('model')}, greedy, max_new_tokens "
                     f"{meta.get('max_new_tokens')}, time limit {meta.get('timeout_s')} s per schema and engine.")
        lines.append("")
    sep = "|" + "---|" + "---:|" * (len(_HEAD) - 1)
    for split, per_engine in summary.items():
        lines += [f"### {'All schemas' if split == ALL_SPLITS else split}", "", "| " + " | ".join(_HEAD) + " |", sep]
        lines += [_row([e], m) for e, m in per_engine.items()]
        lines.append("")
    lines.append("`other` = timeout + crash + prompt_too_long + check_error.  Coverage: declared = compiled / "
                 "schemas, empirical = valid / schemas; compliance = valid / compiled.  TTFT and TPOT in ms per "
                 "schema (p50 over schemas); compile time over compiled schemas.")
    if records is not None:
        bad = [r for r in records if r["engine"] == focus and r["status"] != "valid"]
        if bad:
            lines += ["", f"### {focus}: schemas without a valid output ({len(bad)})", ""]
            for r in sorted(bad, key=lambda r: (r["status"], r["file"])):
                why = (r.get("error") or "").splitlines()[0][:240] if r.get("error") else ""
                lines.append(f"- `{r['file']}`: **{r['status']}**" + (f" ({r.get('error_class')})"
                             if r.get("error_class") else "") + (f": {why}" if why else ""))
    return "\n".join(lines) + "\n"


def write_plots(summary: dict[str, dict[str, dict]], records: list[dict], out: Path) -> list[Path]:
    """``coverage.png`` (empirical and declared coverage per split and engine), ``tpot.png`` and
    ``compile_time.png`` (per-schema distributions per engine); returns the paths.

    Raises
    ------
    ImportError
        matplotlib is not installed (it comes with the ``bench`` extra).
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("the plots need matplotlib: pip install 'constrain[bench]' (or pass --no-plots)") from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    engines = list(summary.get(ALL_SPLITS, {}))
    splits = list(summary)
    paths = []

    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(splits) * max(1, len(engines)) / 2), 4.8))
    width = 0.8 / max(1, len(engines))
    x = np.arange(len(splits))
    for i, e in enumerate(engines):
        emp = [100 * (summary[s][e]["empirical_coverage"] or 0) if e in summary[s] else 0 for s in splits]
        dec = [100 * (summary[s][e]["declared_coverage"] or 0) if e in summary[s] else 0 for s in splits]
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, dec, width, color=f"C{i}", alpha=0.3)
        ax.bar(pos, emp, width, color=f"C{i}", label=e)
    ax.set_xticks(x, splits, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("% of schemas")
    ax.set_ylim(0, 105)
    ax.set_title("Empirical coverage (solid: valid outputs) and declared coverage (light: compiled)")
    ax.legend(fontsize=8, ncol=min(5, len(engines)))
    fig.tight_layout()
    paths.append(out / "coverage.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    for key, fname, label, log in (("tpot_ms", "tpot.png", "time per output token (ms), per schema", False),
                                   ("compile_ms", "compile_time.png", "compile time (ms), per schema", True)):
        data = {e: [r[key] for r in records if r["engine"] == e and r.get(key) is not None] for e in engines}
        data = {e: v for e, v in data.items() if v}
        fig, ax = plt.subplots(figsize=(7, 4.2))
        if data:
            ax.boxplot(list(data.values()), showfliers=True)
            ax.set_xticks(range(1, len(data) + 1), list(data))
            if log and all(min(v) > 0 for v in data.values()):
                ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylabel(label)
        ax.set_title(label[0].upper() + label[1:])
        fig.tight_layout()
        paths.append(out / fname)
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def write_report(records: list[dict], out: Path, meta: dict | None = None, engines: list[str] | None = None,
                 plots: bool = True) -> str:
    """Write ``report.md``, ``results.json`` and (with ``plots``) the PNGs to ``out``; the markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(records, engines)
    text = render_markdown(summary, records, meta)
    if plots and records:
        files = [p.name for p in write_plots(summary, records, out)]
        text += "\nPlots: " + ", ".join(f"`{f}`" for f in files) + "\n"
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "results.json").write_text(json.dumps({"meta": meta or {}, "summary": summary, "records": records},
                                                 indent=1, ensure_ascii=False), encoding="utf-8")
    return text
