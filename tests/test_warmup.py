"""``constrain.warm_up`` compiles the mask kernels before the first real mask: in a fresh
interpreter, after it, the kernels of the table growth, the in-kernel parser scans, the lazy lexer
and the runtime checks have a compiled signature, and a real schema's masks then compile nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import constrain
from constrain.warmup import WARMUP_CASES

_PROBE = r"""
import json, numba
import constrain
took = constrain.warm_up()
from constrain.grammar import _kernels as gk, _earley_kernels as ek
from constrain.regex import _lazy_kernels as lk
kernels = {
    "fork": gk.grammar_fork_jobs_kernel, "walk": gk.grammar_walk_kernel, "depth": gk.safe_depth_kernel,
    "assign_pid": gk.assign_pid_kernel, "eset_rehash": gk.eset_rehash_kernel, "close": ek.earley_close_kernel,
    "intern": ek.chart_intern_kernel, "chart_rehash": ek.chart_rehash_kernel, "union": ek.earley_union_kernel,
    "lazy_rows": gk.lazy_state_rows_kernel,
}
before = {k: len(f.signatures) for k, f in kernels.items()}
# a schema of the same kinds over another vocabulary: nothing new to compile
from constrain.vocab.vocabulary import Vocabulary
vocab = Vocabulary.from_tokens([None] + [bytes([b]) for b in range(256)] + [b'": "', b'abc', b'"}'], eos_token_ids=[0])
schema = {"type": "object", "properties": {f"q{i}": {"type": "string"} for i in range(80)}}
m = constrain.compile_json_schema(schema, vocab).matcher()
bm = constrain.allocate_bitmask(1, vocab.size)
for b in json.dumps({f"q{i}": "abc" for i in range(80)}).encode():
    m.fill_bitmask(bm, 0)
    assert m.accept_token(b + 1)
after = {k: len(f.signatures) for k, f in kernels.items()}
print(json.dumps({"took": took, "before": before, "after": after}))
"""


def test_warm_up_compiles_the_mask_kernels():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    missing = [k for k, n in res["before"].items() if n == 0]
    assert not missing, f"warm_up compiled none of: {missing}"
    assert res["after"] == res["before"], "a real schema's masks compiled kernels warm_up did not"


def test_warm_up_cases_are_valid_and_walked():
    """Every warm-up instance is valid for its schema (jsonschema), and warm_up walks them all
    (it raises if one is refused)."""
    import jsonschema

    for schema, instance in WARMUP_CASES:
        jsonschema.validate(instance, schema)
    assert constrain.warm_up(any_order=False) > 0
