"""Measure ``schema_to_lark`` over a folder of MaskBench-style files.

Usage::

    python -m constrain.schema._coverage DIR [--limit N] [--property-order schema|any] [--timeout S]

Each file is ``{"schema": ..., "tests": [{"valid": bool, "data": ...}, ...]}``. For every file we
compile the schema and, when that works, parse each test instance (``json.dumps(data,
ensure_ascii=False)``) with ``lark.Lark(grammar, parser="earley", lexer="dynamic_complete")`` and
compare with its ``valid`` flag. Printed: compiled / UnsupportedFeatureError by feature / SchemaError
/ LimitExceededError / other exceptions / timeouts, and valid-rejected and invalid-accepted counts
with the first few files of each.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import signal
import sys
import time
from pathlib import Path

from constrain.errors import LimitExceededError, SchemaError, UnsupportedFeatureError
from constrain.schema.compile import schema_to_lark


class _Timeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise _Timeout()


def _feature(exc: UnsupportedFeatureError) -> str:
    m = re.match(r"(unknown keyword|format|non-local '\$ref')\s*'?([^']*)'?", exc.message)
    if m and m.group(1) == "format":
        return f"format {m.group(2)}"
    if m:
        return m.group(1)
    m = re.match(r"'([^']+)'", exc.message)
    if m:
        return m.group(1)
    return exc.message.split(" (")[0][:60]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--limit", type=int, default=None, help="first N files (sorted by name)")
    ap.add_argument("--property-order", default="schema", choices=["schema", "any"])
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per file")
    ap.add_argument("--show", type=int, default=5, help="files to list per failure kind")
    args = ap.parse_args(argv)
    import lark

    files = sorted(Path(args.dir).glob("*.json"))
    if args.limit:
        files = files[: args.limit]
    outcome = collections.Counter()
    unsupported = collections.Counter()
    schema_errors = collections.Counter()
    others = collections.Counter()
    examples = collections.defaultdict(list)
    instances = collections.Counter()
    signal.signal(signal.SIGALRM, _alarm)
    t0 = time.time()
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except Exception:
            outcome["unreadable"] += 1
            continue
        schema, tests = doc.get("schema"), doc.get("tests", [])
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            text = schema_to_lark(schema, property_order=args.property_order)
            parser = lark.Lark(text, parser="earley", lexer="dynamic_complete")
            outcome["compiled"] += 1
            bad_vr = bad_ia = 0
            for t in tests:
                s = json.dumps(t["data"], ensure_ascii=False)
                try:
                    parser.parse(s)
                    ok = True
                except lark.exceptions.LarkError:
                    ok = False
                if t["valid"] and ok:
                    instances["valid accepted"] += 1
                elif t["valid"]:
                    instances["valid rejected"] += 1
                    bad_vr += 1
                elif ok:
                    instances["INVALID ACCEPTED"] += 1
                    bad_ia += 1
                else:
                    instances["invalid rejected"] += 1
            if bad_vr:
                examples["valid rejected"].append(f.name)
            if bad_ia:
                examples["INVALID ACCEPTED"].append(f.name)
        except _Timeout:
            outcome["timeout"] += 1
            examples["timeout"].append(f.name)
        except UnsupportedFeatureError as exc:
            outcome["UnsupportedFeatureError"] += 1
            unsupported[_feature(exc)] += 1
        except SchemaError as exc:
            outcome["SchemaError"] += 1
            schema_errors[exc.message[:70]] += 1
            examples["SchemaError"].append(f"{f.name}: {exc}"[:160])
        except LimitExceededError as exc:
            outcome["LimitExceededError"] += 1
            examples["LimitExceededError"].append(f"{f.name}: {exc}"[:160])
        except Exception as exc:  # noqa: BLE001 - this tool reports every failure
            outcome["other exception"] += 1
            others[type(exc).__name__] += 1
            examples["other exception"].append(f"{f.name}: {type(exc).__name__}: {exc}"[:200])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    n = len(files)
    print(f"{n} files, {time.time() - t0:.0f}s, property_order={args.property_order}")
    for k, v in outcome.most_common():
        print(f"  {k:28s} {v:6d}  ({100 * v / max(n, 1):.1f}%)")
    print("UnsupportedFeatureError by feature:")
    for k, v in unsupported.most_common():
        print(f"  {v:6d}  {k}")
    if schema_errors:
        print("SchemaError by message:")
        for k, v in schema_errors.most_common(10):
            print(f"  {v:6d}  {k}")
    if others:
        print("other exceptions:", dict(others))
    print("instances of compiled schemas:")
    for k in ("valid accepted", "valid rejected", "invalid rejected", "INVALID ACCEPTED"):
        print(f"  {k:20s} {instances[k]:6d}")
    for kind, names in examples.items():
        print(f"{kind} ({len(names)} files), first {args.show}:")
        for name in names[: args.show]:
            print("   ", name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
