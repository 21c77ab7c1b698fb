"""Integer and decimal range regexes against exact Decimal comparison."""

from __future__ import annotations

import re

import pytest
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from constrain.schema import numbers as nm

BOUNDS = st.one_of(
    st.none(),
    st.integers(-1200, 1200).map(Decimal),
    st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("0"), Decimal("0.5"), Decimal("-0.5"), Decimal("0.05"), Decimal("99.99"), Decimal("1e-7"),
                     Decimal("123456789012345678901234567890")]),
)
VALUES = st.one_of(
    st.decimals(min_value=-2000, max_value=2000, places=4, allow_nan=False, allow_infinity=False),
    st.integers(-2000, 2000).map(Decimal),
    st.sampled_from([Decimal("0"), Decimal("0.05"), Decimal("0.0500"), Decimal("-0.05"), Decimal("1e-7"), Decimal("1.1e-7"),
                     Decimal("123456789012345678901234567890"), Decimal("123456789012345678901234567891")]),
)


def _text(d: Decimal) -> str:
    s = format(d, "f")
    return s[1:] if s.startswith("-") and d == 0 else s  # no "-0"


def _near(bounds) -> list[Decimal]:
    """Values next to each bound: its digit prefixes (0.5 for 0.57), +-tiny steps, extra digits."""
    out = []
    for b in bounds:
        if b is None:
            continue
        text = format(b, "f")
        for k in range(1, len(text) + 1):
            try:
                out.append(Decimal(text[:k].rstrip(".-") or "0"))
            except Exception:
                pass
        for step in (Decimal("1e-4"), Decimal("1e-9"), Decimal(1)):
            out += [b + step, b - step]
        out += [Decimal(text + ("1" if "." in text else ".01"))]
    return out


def _in(v, lo, ls, hi, hs) -> bool:
    if lo is not None and (v < lo or (ls and v == lo)):
        return False
    if hi is not None and (v > hi or (hs and v == hi)):
        return False
    return True


def _lark_greedy(rx: str, text: str) -> bool:
    """Python's first match of the terminal (what lark's dynamic lexer extends) is the whole number."""
    m = re.match(rx, text + ",")
    return m is not None and m.end() == len(text)


@settings(max_examples=400)
@given(BOUNDS, st.booleans(), BOUNDS, st.booleans(), st.lists(VALUES, min_size=1, max_size=10))
def test_decimal_range(lo, ls, hi, hs, values):
    rx = nm.decimal_range(lo, ls, hi, hs)
    for v in values + [x for x in (lo, hi) if x is not None] + _near([lo, hi]):
        text = _text(v)
        expected = _in(v, lo, ls, hi, hs)
        got = rx is not None and re.fullmatch(rx, text) is not None
        assert got == expected, (lo, ls, hi, hs, text, rx)
        if expected:
            assert _lark_greedy(rx, text), (rx, text)


@settings(max_examples=300)
@given(BOUNDS, st.booleans(), BOUNDS, st.booleans(), st.integers(1, 3), st.lists(VALUES, min_size=1, max_size=10))
def test_decimal_range_with_fraction_digits(lo, ls, hi, hs, maxd, values):
    rx = nm.decimal_range(lo, ls, hi, hs, maxd)
    for v in values + _near([lo, hi]):
        text = _text(v)
        frac = text.split(".")[1] if "." in text else ""
        expected = _in(v, lo, ls, hi, hs) and len(frac) <= maxd
        assert (rx is not None and re.fullmatch(rx, text) is not None) == expected, (lo, hi, maxd, text)


@settings(max_examples=400)
@given(st.one_of(st.none(), st.integers(-10**6, 10**6)), st.one_of(st.none(), st.integers(-10**6, 10**6)),
       st.lists(st.integers(-2 * 10**6, 2 * 10**6), min_size=1, max_size=20))
def test_int_range(lo, hi, values):
    rx = nm.int_range(lo, hi)
    for v in values + [x + d for x in (lo, hi) if x is not None for d in (-1, 0, 1)]:
        expected = (lo is None or v >= lo) and (hi is None or v <= hi)
        got = rx is not None and re.fullmatch(rx, str(v)) is not None
        assert got == expected, (lo, hi, v, rx)
        if expected:
            assert _lark_greedy(rx, str(v))


def test_huge_integer_bounds():
    lo, hi = -(10**30) - 7, 10**40 + 3
    rx = re.compile(nm.int_range(lo, hi))
    for v in (lo, hi, 0, -1, lo + 1, hi - 1, 10**39):
        assert rx.fullmatch(str(v))
    for v in (lo - 1, hi + 1, -(10**31)):
        assert not rx.fullmatch(str(v))


@given(st.integers(-10**5, 10**5))
def test_any_number_and_integer_regex(v):
    assert re.fullmatch(nm.INTEGER_ANY, str(v)) and re.fullmatch(nm.INTEGER_ANY, f"{v}.00")
    assert re.fullmatch(nm.NUMBER_ANY, repr(v / 7)) and re.fullmatch(nm.NUMBER_ANY, "1e-07")
    assume(v != 0)
    assert not re.fullmatch(nm.INTEGER_ANY, f"{v}.5")


@settings(max_examples=300)
@given(BOUNDS, st.booleans(), BOUNDS, st.booleans(), st.lists(VALUES, min_size=1, max_size=10))
def test_decimal_range_non_integers(lo, ls, hi, hs, values):
    rx = nm.decimal_range(lo, ls, hi, hs, nonint=True)
    for v in values + _near([lo, hi]):
        text = _text(v)
        expected = _in(v, lo, ls, hi, hs) and v != v.to_integral_value()
        assert (rx is not None and re.fullmatch(rx, text) is not None) == expected, (lo, hi, text, rx)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(-500, 500)), st.integers(0, 300)), min_size=1, max_size=4),
       st.lists(st.integers(-2000, 2000), min_size=1, max_size=20))
def test_int_ranges_union(raw, values):
    segs, prev = [], None
    for lo, width in sorted(raw, key=lambda t: (t[0] is not None, t[0] or 0)):
        if lo is None:
            if segs:
                continue
            segs.append((None, -1000 + width))
            prev = -1000 + width
            continue
        lo = lo if prev is None else max(lo, prev + 2)
        segs.append((lo, lo + width))
        prev = lo + width
    rx = nm.int_ranges(segs)
    for v in values + [b for s in segs for b in s if b is not None]:
        expected = any((a is None or v >= a) and (b is None or v <= b) for a, b in segs)
        assert (rx is not None and re.fullmatch(rx, str(v)) is not None) == expected, (segs, v)
        if expected:
            assert _lark_greedy(rx, str(v)), (segs, v, rx)


@settings(max_examples=300)
@given(BOUNDS, BOUNDS, st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=10))
def test_exponent_forms_lie_inside_bounds(lo, hi, values):
    forms = nm.exponent_forms(lo, hi)
    rx = re.compile("|".join(f"(?:{f})" for f in forms)) if forms else None
    for v in values + [1e-5, -3e-7, 2.5e-169, 1e16, -1.5e20, 9.99e15]:
        text = repr(v)
        if rx is not None and rx.fullmatch(text):
            d = Decimal(text)
            assert (lo is None or d > lo) and (hi is None or d < hi), (lo, hi, text)
            assert _lark_greedy("|".join(f"(?:{f})" for f in forms), text)
        elif "e" in text and rx is not None:
            d = Decimal(text)
            in_double_range = Decimal("1e-323") <= abs(d) < Decimal("1e308")
            if in_double_range and (lo is None or d > lo + 1) and (hi is None or d < hi - 1) and (abs(d) < Decimal("1e-4") or abs(d) >= Decimal("1e16")):
                if (d > 0 and abs(d) < 1) or (d > 0 and hi is None) or (d < 0 and abs(d) < 1) or (d < 0 and lo is None):
                    assert rx.fullmatch(text), (lo, hi, text)


@settings(max_examples=60)
@given(st.one_of(st.none(), st.sampled_from([-10, -2.5, 0, 3])), st.one_of(st.none(), st.sampled_from([-1, 0, 4.5, 100])),
       st.lists(st.integers(-12, 12), min_size=1, max_size=3),
       st.lists(st.one_of(st.integers(-15, 120), st.floats(-20, 200, allow_nan=False)), min_size=1, max_size=8))
def test_numbers_without_integers_through_lark(lo, hi, holes, values):
    import json

    from ._util import grammar, lark_accepts, oracle_valid

    schema = {"type": "number", "not": {"enum": holes}}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["exclusiveMaximum"] = hi
    try:
        text = grammar(schema)
    except Exception as exc:  # empty ranges
        assume(type(exc).__name__ == "SchemaError")
        return
    for v in values + holes + [h + 0.5 for h in holes] + [float(h) for h in holes]:
        assert lark_accepts(text, json.dumps(v)) == oracle_valid(schema, v), (schema, v)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "number", "minimum": -10},
        {"type": "number", "not": {"enum": [1]}},
        {"type": "integer", "minimum": -5, "maximum": 5},
        {"type": "integer", "not": {"const": 3}},
        {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.01},
    ],
)
def test_negative_zero_is_zero(schema):
    # json.dumps(-0.0) == "-0.0": a valid instance wherever 0 is (found by hypothesis)
    import json

    import lark

    from constrain.schema import schema_to_lark

    parser = lark.Lark(schema_to_lark(schema), parser="earley", lexer="dynamic_complete")
    for text in (json.dumps(-0.0), "-0", "0"):  # "-0.0" is also the integer 0 (1.0-style integers)
        parser.parse(text)


@pytest.mark.parametrize(
    ("schema", "text", "ok"),
    [
        ({"type": "integer", "minimum": 0}, "4.8e16", True),
        ({"type": "integer", "minimum": 0}, "9.5e307", True),
        # json.loads reads these as inf / 0.0, which the oracle (rightly, for the value it sees) rejects
        ({"type": "integer", "minimum": 0}, "4.8e046548", False),
        # exponents stop below 1.79e308 (1.8e308 would be inf); larger values keep their plain digits
        ({"type": "integer", "minimum": 0}, "1e308", True),
        ({"type": "integer", "minimum": 0}, "1e+308", True),  # json.dumps(1e308)
        ({"type": "integer", "minimum": 0}, "1.8e308", False),
        # and from 2.5e-324 up (json.dumps(5e-324) is the smallest double; 2e-324 reads as 0.0)
        ({"type": "number", "exclusiveMinimum": 0}, "5e-324", True),
        ({"type": "number", "exclusiveMinimum": 0}, "2e-324", False),
        ({"type": "integer", "minimum": 0}, "1" + "0" * 308, True),
        ({"type": "number", "exclusiveMinimum": 0}, "1e-300", True),
        ({"type": "number", "exclusiveMinimum": 0}, "1e-400", False),
    ],
)
def test_exponent_spellings_stay_finite_and_nonzero_as_doubles(schema, text, ok):
    """Found by a random masked walk: ``4.8e046548`` passed an integer-with-minimum schema."""
    import json

    from ._util import grammar, lark_accepts, oracle_valid

    assert lark_accepts(grammar(schema), text) == ok
    if ok:
        assert oracle_valid(schema, json.loads(text))
