"""Exact regexes for JSON numbers in a range (integers and decimals), and small ``multipleOf``.

Spellings
---------
* Unconstrained ``number``: the full JSON number grammar, exponents included.
* Unconstrained ``integer``: ``-?(0|[1-9][0-9]*)`` optionally followed by ``.0``, ``.00``, ...
  (JSON Schema counts ``1.0`` as an integer); no exponent form.
* Any bound (``minimum`` ...) or ``multipleOf``: plain decimal notation only (no exponent):
  every finite value has such a spelling, so this restricts spellings, never values. ``-0`` is
  accepted wherever 0 is (``json.dumps(-0.0)`` writes ``-0.0``).

Bounds are compared exactly as decimals (``Decimal(repr(float))`` for a float in the schema, i.e.
the shortest decimal that reads back as the same float), and the instance text is compared as the
exact decimal it spells. A validator that compares binary floats can disagree beyond the 17th
significant digit.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from constrain.schema.json_string import group

DIGITS = "[0-9]"
INT_CANON = "(?:0|[1-9][0-9]*)"
NUMBER_ANY = r"\-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][\+\-]?[0-9]+)?"
INTEGRAL_SUFFIX = r"(?:\.0+)?"
INTEGER_SPELLED = r"\-?(?:0|[1-9][0-9]*)"  # an integer as drafts 3/4 type it: no fraction, no exponent
INTEGER_ANY = INTEGER_SPELLED + INTEGRAL_SUFFIX
# a number that drafts 3/4 do not type "integer": spelled with a fraction or an exponent
NON_INTEGER_SPELLED = INTEGER_SPELLED + r"(?:\.[0-9]+(?:[eE][\+\-]?[0-9]+)?|[eE][\+\-]?[0-9]+)"


def _alt(parts: list[str]) -> str | None:
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else group("|".join(parts))


def _digit_class(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"[{lo}-{hi}]"


def _same_length(x: str, y: str) -> str:
    """Digit strings of len(x) between x and y (x <= y, same length, leading digit fixed by caller)."""
    n = len(x)
    if x == y:
        return x
    if n == 1:
        return _digit_class(int(x), int(y))
    if x[1:] == "0" * (n - 1) and y[1:] == "9" * (n - 1):
        return _digit_class(int(x[0]), int(y[0])) + (DIGITS if n == 2 else f"{DIGITS}{{{n - 1}}}")
    if x[0] == y[0]:
        return x[0] + _same_length(x[1:], y[1:])
    parts = [x[0] + _same_length(x[1:], "9" * (n - 1))]
    if int(y[0]) - int(x[0]) > 1:
        parts.append(_digit_class(int(x[0]) + 1, int(y[0]) - 1) + (DIGITS if n == 2 else f"{DIGITS}{{{n - 1}}}"))
    parts.append(y[0] + _same_length("0" * (n - 1), y[1:]))
    return group("|".join(parts))


def _nonneg_int_parts(a: int, b: int | None) -> list[tuple[float, str]]:
    """(digit count, regex) parts of the integers in ``[a, b]`` (``a >= 0``)."""
    if b is not None and a > b:
        return []
    parts = []
    la = len(str(a))
    top = la if b is None else len(str(b))
    for n in range(la, top + 1):
        lo = max(a, 0 if n == 1 else 10 ** (n - 1))
        hi = 10 ** n - 1 if b is None else min(b, 10 ** n - 1)
        if lo <= hi:
            parts.append((n, _same_length(str(lo), str(hi))))
    if b is None:
        parts.append((float("inf"), f"[1-9]{DIGITS}{{{la},}}"))
    return parts


def _longest_first(parts: list[tuple[float, str]]) -> str | None:
    # longest first: lark's dynamic lexer takes the first match of Python's re and only tries
    # its prefixes, so a shorter alternative listed first would hide longer numbers
    return _alt([rx for _n, rx in sorted(parts, key=lambda p: -p[0])])


def nonneg_int_range(a: int, b: int | None) -> str | None:
    """Canonical spellings of the integers in ``[a, b]`` (``a >= 0``; ``b`` None: unbounded)."""
    return _longest_first(_nonneg_int_parts(a, b))


def int_ranges(segments: list[tuple[int | None, int | None]]) -> str | None:
    """Integers in the union of disjoint ``[lo, hi]`` segments (None: unbounded); ``-0`` where 0 is."""
    pos: list = []
    neg: list = []
    minus_zero = False
    for lo, hi in segments:
        if lo is not None and hi is not None and lo > hi:
            continue
        if (lo is None or lo <= 0) and (hi is None or hi >= 0):
            minus_zero = True
        if hi is None or hi >= 0:
            pos += _nonneg_int_parts(max(lo, 0) if lo is not None else 0, hi)
        if lo is None or lo < 0:
            neg += _nonneg_int_parts(1 if hi is None or hi >= 0 else -hi, None if lo is None else -lo)
    parts = []
    if pos:
        parts.append(_longest_first(pos))
    if neg:
        parts.append(r"\-" + group(_longest_first(neg)) if len(neg) > 1 else r"\-" + neg[0][1])
    if minus_zero:
        parts.append(r"\-0")
    return _alt(parts)


def int_range(lo: int | None, hi: int | None) -> str | None:
    """Integers in ``[lo, hi]`` (None: unbounded), plain spelling (``-0`` where 0 is)."""
    return int_ranges([(lo, hi)])


# ---------------------------------------------------------------------------------------- decimals
def _split(d: Decimal) -> tuple[int, str]:
    """Non-negative decimal -> (integer part, fraction digits without trailing zeros)."""
    s = format(d, "f")
    if "." in s:
        i, f = s.split(".")
    else:
        i, f = s, ""
    return int(i), f.rstrip("0")


@lru_cache(maxsize=4096)
def _dig(lo: str | None, ls: bool, hi: str | None, hs: bool, maxd: int | None) -> str | None:
    """Non-empty digit strings t (at most ``maxd``) with ``0.t`` above ``0.lo`` and below ``0.hi``.

    ``ls``/``hs`` make the bound strict; ``lo``/``hi`` have no trailing zeros; None: no bound.
    """
    if maxd is not None and maxd <= 0:
        return None
    if lo == "" and not ls:
        lo = None
    if hi == "" and hs:
        return None  # 0.t < 0 never
    if maxd is None:
        if lo is None and hi is None:
            return DIGITS + "+"
        if hi == "":
            return "0+" if lo is None else None
        if lo == "" and hi is None:
            return f"0*[1-9]{DIGITS}*"
    elif lo is None and hi is None:
        return f"{DIGITS}{{1,{maxd}}}" if maxd > 1 else DIGITS
    by_suffix: dict[str, list[int]] = {}
    order: list[str] = []
    for d in range(10):
        rlo, rls = None, False
        if lo is not None:
            l0 = int(lo[0]) if lo else 0
            if d < l0:
                continue
            if d == l0:
                rlo, rls = lo[1:], ls
        rhi, rhs = None, False
        if hi is not None:
            h0 = int(hi[0]) if hi else 0
            if d > h0:
                continue
            if d == h0:
                rhi, rhs = hi[1:], hs
        empty_ok = (rlo is None or (rlo == "" and not rls)) and (rhi is None or not rhs or rhi != "")
        sub = _dig(rlo, rls, rhi, rhs, None if maxd is None else maxd - 1)
        if sub is None and not empty_ok:
            continue
        if sub is None:
            suffix = ""
        elif empty_ok:
            suffix = group(sub) + "?"
        else:
            suffix = sub
        if suffix not in by_suffix:
            by_suffix[suffix] = []
            order.append(suffix)
        by_suffix[suffix].append(d)
    parts = []
    for suffix in order:
        ds = by_suffix[suffix]
        if len(ds) == 1:
            cls = str(ds[0])
        elif ds == list(range(ds[0], ds[-1] + 1)):
            cls = f"[{ds[0]}-{ds[-1]}]"
        else:
            cls = "[" + "".join(map(str, ds)) + "]"
        parts.append(cls + suffix)
    return _alt(parts)


def _frac(lo, hi, maxd: int | None, nonint: bool = False) -> str | None:
    """Optional fraction part ``(\\.digits)?`` whose value satisfies the (string, strict) bounds.

    ``nonint``: the fraction must be non-zero (numbers that are not integers)."""
    if nonint and (lo is None or lo == ("", False)):
        lo = ("", True)
    none_ok = (lo is None or (lo[0] == "" and not lo[1])) and (hi is None or not hi[1] or hi[0] != "")
    if maxd == 0:
        return "" if none_ok else None
    d = _dig(lo[0] if lo else None, lo[1] if lo else False, hi[0] if hi else None, hi[1] if hi else False, maxd)
    if d is None:
        return "" if none_ok else None
    r = r"\." + d
    return group(r) + "?" if none_ok else r


def _nonneg_decimal(lo: Decimal, ls: bool, hi: Decimal | None, hs: bool, maxd: int | None,
                    nonint: bool = False) -> str | None:
    ia, fa = _split(lo)
    any_frac = _frac(None, None, maxd, nonint)
    if any_frac is None:
        return None
    if hi is None:
        f = _frac((fa, ls), None, maxd, nonint)
        # longer integer parts first (see nonneg_int_range)
        return _alt([nonneg_int_range(ia + 1, None) + any_frac, None if f is None else str(ia) + f])
    if hi < lo or (hi == lo and (ls or hs)):
        return None
    ib, fb = _split(hi)
    if ia == ib:
        f = _frac((fa, ls), (fb, hs), maxd, nonint)
        return None if f is None else str(ia) + f
    parts = []
    f = _frac((fa, ls), None, maxd, nonint)
    if f is not None:
        parts.append(str(ia) + f)
    mid = nonneg_int_range(ia + 1, ib - 1)
    if mid is not None:
        parts.append(mid + any_frac)
    f = _frac(None, (fb, hs), maxd, nonint)
    if f is not None:
        parts.append(str(ib) + f)
    return _alt(parts[::-1])  # longer integer parts first (see nonneg_int_range)


def decimal_range(
    lo: Decimal | None, lo_strict: bool, hi: Decimal | None, hi_strict: bool, max_frac_digits: int | None = None,
    nonint: bool = False,
) -> str | None:
    """Plain decimal spellings (``-?int(.digits)?``) of the numbers between the bounds.

    ``max_frac_digits`` caps the fraction digits (for ``multipleOf: 0.01``-style constraints);
    ``nonint`` keeps only numbers that are not integers.
    Returns None when no number satisfies the bounds.
    """
    parts = []
    zero = Decimal(0)
    # x >= 0 part
    if hi is None or hi > zero or (hi == zero and not hi_strict):
        if lo is None or lo < zero:
            plo, pls = zero, False
        else:
            plo, pls = lo, lo_strict
        parts.append(_nonneg_decimal(plo, pls, hi, hi_strict, max_frac_digits, nonint))
    # x < 0 part: y = -x > 0
    if lo is None or lo < zero:
        if hi is None or hi >= zero:
            ylo, yls = zero, True
        else:
            ylo, yls = -hi, hi_strict
        yhi, yhs = (None, False) if lo is None else (-lo, lo_strict)
        r = _nonneg_decimal(ylo, yls, yhi, yhs, max_frac_digits, nonint)
        if r is not None:
            parts.append(r"\-" + r)
    zero_inside = (lo is None or lo < zero or (lo == zero and not lo_strict)) and (
        hi is None or hi > zero or (hi == zero and not hi_strict)
    )
    if zero_inside and not nonint:
        # negative zero is zero: json.dumps(-0.0) writes "-0.0"
        zeros = "0" if max_frac_digits == 0 else ("0(?:\\.0+)?" if max_frac_digits is None else f"0(?:\\.0{{1,{max_frac_digits}}})?")
        parts.append(r"\-" + zeros)
    return _alt(parts)


def multiple_of_suffix(k: int) -> list[str] | None:
    """If ``k`` divides ``10**j`` (j <= 4), the j-digit suffixes of the multiples of k, else None."""
    for j in range(1, 5):
        if (10 ** j) % k == 0:
            return [f"{r:0{j}d}" for r in range(0, 10 ** j, k)]
    return None


# Exponents stay where an IEEE double reads the text back as a finite non-zero value: a validator
# that parses JSON numbers as floats (Python's json) reads 4e400 as inf (not an integer, above every
# bound) and 1e-400 as 0.0 (not > 0). Values out there keep their plain decimal spelling.
# Longest alternatives first: a regex engine's first match must be the whole exponent.
# At the edges a mantissa range keeps the value finite and non-zero: m e-324 reads as 4.9e-324 for
# m >= 2.5 (below about 2.47 it reads as 0.0), and m e308 stays finite for m < 1.79 (the largest
# double is 1.7976931348623157e308); json.dumps writes 5e-324 and 1e+308 so.
_SMALL_EXP = (r"(?:(?:[3-9](?:\.[0-9]+)?|2\.[5-9][0-9]*)[eE]\-0*324"
              r"|[1-9](?:\.[0-9]+)?[eE]\-0*(?:32[0-3]|3[01][0-9]|[12][0-9]{2}|[1-9][0-9]|[5-9]))")  # [2.5e-324, 1e-4)
_LARGE_EXP = (r"(?:1(?:\.(?:[0-6][0-9]*|7[0-8][0-9]*))?[eE]\+?0*308"
              r"|[1-9](?:\.[0-9]+)?[eE]\+?0*(?:30[0-7]|[12][0-9]{2}|[2-9][0-9]|1[6-9]))")  # [1e16, 1.79e308)
_TINY, _HUGE = Decimal("1e-4"), Decimal("1e16")


def exponent_forms(lo: Decimal | None, hi: Decimal | None, allow_large: bool = True,
                   allow_small: bool = True) -> list[str]:
    """Exponent spellings (as ``repr``/``json.dumps`` write floats below 1e-4 and from 1e16 on)
    that lie wholly inside the bounds: ``0 < |x| < 1e-4`` and ``|x| >= 1e16``. Strictness of the
    bounds never matters here (each class is open or far from the bound it is compared with)."""
    out = []
    if allow_small and (lo is None or lo <= 0) and (hi is None or hi >= _TINY):
        out.append(_SMALL_EXP)
    if allow_small and (lo is None or lo <= -_TINY) and (hi is None or hi >= 0):
        out.append(r"\-" + _SMALL_EXP)
    if allow_large and hi is None and (lo is None or lo < _HUGE):
        out.append(_LARGE_EXP)
    if allow_large and lo is None and (hi is None or hi > -_HUGE):
        out.append(r"\-" + _LARGE_EXP)
    return out
