"""``format`` values as full-match ECMA-262 patterns over the decoded string.

Each pattern is a transcription of the cited grammar. Where the grammar has a constraint a
regular language cannot say compactly, we accept a documented *subset* (never a superset), so no
invalid value is ever accepted:

* ``date``/``date-time``: calendar-exact (month lengths, leap years); year ``0000`` is excluded
  (Python's ``date.fromisoformat``, the ``jsonschema`` checker, rejects it).
* ``date-time``/``time``: leap seconds (``:60``) are excluded (valid only at 23:59:60 UTC,
  which depends on the offset).
* ``hostname``: at most 8 labels, the first up to 63 characters and the others up to 26, so the
  RFC 1123 total of 253 characters always holds.
* ``email``: the RFC 5321 section 4.1.2 ``Mailbox`` ABNF (which is what JSON Schema cites; the
  size limits of section 4.5.3.1 are not part of it), without ``General-address-literal``, and
  with RFC 3986 IPv6 text forms inside ``[IPv6:...]``.

Formats the specifications define but not listed here (:data:`KNOWN_FORMATS` minus
:data:`FORMATS`: ``regex``, ``uri-template``, ``iri``, ``idn-*``, ...) raise
``UnsupportedFeatureError``. Names no specification defines (``bar``, ``path``, ``ISO8601``) are
annotations under draft 2020-12's default format-annotation vocabulary ("unknown formats
[...] SHOULD [be] treat[ed] as an annotation", and validation succeeds; ``jsonschema`` agrees): the
compiler ignores them by default (``unknown_formats="ignore"``), or raises with ``"error"``.
"""

from __future__ import annotations

# -------------------------------------------------------------------------------- building blocks
_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_DEC_OCTET}\.{_DEC_OCTET}\.{_DEC_OCTET}\.{_DEC_OCTET}"  # RFC 2673 3.2 dotted-quad
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"


def _ipv6() -> str:
    """RFC 3986 section 3.2.2 ``IPv6address`` (same text forms as RFC 4291 section 2.2)."""
    h = _H16
    alts = [
        rf"(?:{h}:){{6}}{_LS32}",
        rf"::(?:{h}:){{5}}{_LS32}",
        rf"(?:{h})?::(?:{h}:){{4}}{_LS32}",
        rf"(?:(?:{h}:){{0,1}}{h})?::(?:{h}:){{3}}{_LS32}",
        rf"(?:(?:{h}:){{0,2}}{h})?::(?:{h}:){{2}}{_LS32}",
        rf"(?:(?:{h}:){{0,3}}{h})?::{h}:{_LS32}",
        rf"(?:(?:{h}:){{0,4}}{h})?::{_LS32}",
        rf"(?:(?:{h}:){{0,5}}{h})?::{h}",
        rf"(?:(?:{h}:){{0,6}}{h})?::",
    ]
    return "(?:" + "|".join(alts) + ")"


_IPV6 = _ipv6()

# RFC 3339 section 5.6 (full-date, full-time), calendar rules of section 5.7
_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"  # 0001-9999
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_FULL_DATE = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_PARTIAL_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
_OFFSET = r"(?:[Zz]|[+\-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_FULL_TIME = _PARTIAL_TIME + _OFFSET

# RFC 3339 Appendix A (ISO 8601 durations)
_DUR_SECOND = r"[0-9]+S"
_DUR_MINUTE = rf"[0-9]+M(?:{_DUR_SECOND})?"
_DUR_HOUR = rf"[0-9]+H(?:{_DUR_MINUTE})?"
_DUR_TIME = rf"T(?:{_DUR_HOUR}|{_DUR_MINUTE}|{_DUR_SECOND})"
_DUR_DAY = r"[0-9]+D"
_DUR_MONTH = rf"[0-9]+M(?:{_DUR_DAY})?"
_DUR_YEAR = rf"[0-9]+Y(?:{_DUR_MONTH})?"
_DUR_DATE = rf"(?:{_DUR_DAY}|{_DUR_MONTH}|{_DUR_YEAR})(?:{_DUR_TIME})?"
_DURATION = rf"P(?:{_DUR_DATE}|{_DUR_TIME}|[0-9]+W)"

# RFC 1123 section 2.1 / RFC 952 host names (length subset, see module docstring)
_LABEL63 = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_LABEL26 = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,24}[A-Za-z0-9])?"
_HOSTNAME = rf"{_LABEL63}(?:\.{_LABEL26}){{0,7}}"

# RFC 5321 section 4.1.2 Mailbox = Local-part "@" ( Domain / address-literal )
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_SUB_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_DOMAIN = rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*"
_ADDRESS_LITERAL = rf"\[(?:{_IPV4}|IPv6:{_IPV6})\]"
_EMAIL = rf"(?:{_DOT_STRING}|{_QUOTED_STRING})@(?:{_DOMAIN}|{_ADDRESS_LITERAL})"

# RFC 3986 Appendix A
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_PCHAR_NC = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}@]|{_PCT})"  # segment-nz-nc: no colon
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_IPVFUTURE = rf"[vV][0-9A-Fa-f]+\.[{_UNRESERVED}{_SUB_DELIMS}:]+"
_IP_LITERAL = rf"\[(?:{_IPV6}|{_IPVFUTURE})\]"
_REG_NAME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*"
_HOST = rf"(?:{_IP_LITERAL}|{_IPV4}|{_REG_NAME})"
_AUTHORITY = rf"(?:{_USERINFO}@)?{_HOST}(?::[0-9]*)?"
_PATH_ABEMPTY = rf"(?:/{_PCHAR}*)*"
_PATH_ABSOLUTE = rf"/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?"
_PATH_ROOTLESS = rf"{_PCHAR}+(?:/{_PCHAR}*)*"
_PATH_NOSCHEME = rf"{_PCHAR_NC}+(?:/{_PCHAR}*)*"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
_HIER_PART = rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_ROOTLESS}|)"
_URI = rf"{_SCHEME}:{_HIER_PART}(?:\?{_QUERY})?(?:#{_QUERY})?"
_RELATIVE_PART = rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_NOSCHEME}|)"
_RELATIVE_REF = rf"{_RELATIVE_PART}(?:\?{_QUERY})?(?:#{_QUERY})?"

# RFC 6901 section 3 / draft-handrews-relative-json-pointer-01
_JSON_POINTER = r"(?:/(?:[^~/]|~[01])*)*"

FORMATS: dict[str, str] = {
    "date-time": rf"{_FULL_DATE}[Tt]{_FULL_TIME}",
    "date": _FULL_DATE,
    "time": _FULL_TIME,
    "duration": _DURATION,
    "email": _EMAIL,
    "hostname": _HOSTNAME,
    "ipv4": _IPV4,
    "ipv6": _IPV6,
    "uuid": r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}",  # RFC 4122 3
    "uri": _URI,
    "uri-reference": rf"(?:{_URI}|{_RELATIVE_REF})",
    "json-pointer": _JSON_POINTER,
    "relative-json-pointer": rf"(?:0|[1-9][0-9]*)(?:#|{_JSON_POINTER})",
}
"""format name -> ECMA-262 pattern, matched against the whole decoded string."""


KNOWN_FORMATS: frozenset[str] = frozenset({
    # draft 2020-12 / 2019-09 (section 7.3 of the validation vocabulary)
    "date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname",
    "ipv4", "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template",
    "json-pointer", "relative-json-pointer", "regex",
    # draft 3/4 names
    "host-name", "ip-address", "color", "style", "phone", "utc-millisec",
})
"""Format names some JSON Schema draft defines: never ignored (enforced, or raised)."""
