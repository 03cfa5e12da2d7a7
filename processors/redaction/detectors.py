"""PII and secret detectors, and the scanner that masks what they find.

A match is replaced by `[REDACTED:<kind>]`. The placeholder holds no quote, backslash or
digit, so it keeps a JSON string valid and no detector matches it again (a second pass, e.g.
the writer after the sidecar, changes nothing).

Speed. CPython's `re` scans slowly for a pattern that starts with a character class
(~10 ns a character here) or with an alternation (all detectors as one pattern: ~250 µs
for 700 characters of chat). So nothing scans a value with a regex until a cheap test says
a detector may match:
- each key detector has *gate* substrings its every match contains (`sk-`, `AKIA`,
  `eyJ`...), behind a one-character test (`'-' in s` is a memchr);
- email needs `@` and a domain after it; its pattern, the gate's too, starts at the `@`
  (a literal: fast);
- SSNs, cards and phones have digit shapes that dates, versions and model names lack:
  `bytes.translate` maps digits to `0` and substring tests look for the shapes
  (`000-00-0000`, `000-0000`, 13 zeros...); when one is there, `find(b"00")` locates the
  digit runs and the regexes run only in windows around them.

Strict and loose. In a JSON text an escape sits right before a token (`"\\nsk-..."`: the
`n` of `\\n`), so the left-boundary checks would miss it there. `loose=True` drops them:
the processor uses it to decide whether a raw JSON message attribute is worth parsing, then
masks the decoded string leaves strictly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

PLACEHOLDER = "[REDACTED:{}]"

# Shortest value any detector can match ("a@b.co"); shorter values are never scanned.
MIN_LENGTH = 6


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_ok(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19:
        return False
    # Issuer ranges of the card networks (Visa 4, Mastercard 51-55 / 2221-2720, Amex 34/37,
    # Discover/UnionPay 6, Diners/JCB 30/36/38/35): long numbers outside them (epoch
    # nanoseconds start with 1) are ids, not cards, even when the Luhn sum happens to hold.
    first = digits[0]
    if first == "2":
        if not 2221 <= int(digits[:4]) <= 2720:
            return False
    elif first not in "3456":
        return False
    return luhn_ok(digits)


def _phone_ok(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    if text.startswith("+"):
        return 8 <= digits <= 15  # E.164: at most 15 digits with the country code
    return digits == 10 or (digits == 11 and text.lstrip("(").startswith("1"))


@dataclass(frozen=True, slots=True)
class Detector:
    """One kind of secret or PII.

    `gate`: (character, substrings): every match contains the character (a memchr test)
    and one of the substrings (email: the domain's pattern instead). `strict` /
    `loose` are the patterns with and without left-boundary checks. `digits`: gated by
    `digits_gate` and run in the digit windows instead.
    """

    kind: str
    description: str
    strict: re.Pattern[str]
    loose: re.Pattern[str]
    gate: tuple[str, tuple[str, ...]] = ("", ())
    valid: Callable[[str], bool] | None = None
    digits: bool = False
    email: bool = False


def _keyed(kind: str, description: str, variants: Sequence[tuple[str, str]], guard: str, after: str = "",
           gate: tuple[str, tuple[str, ...]] = ("", ())) -> Detector:
    """A token that starts with a fixed-width prefix. The left-boundary check comes after
    the prefix (`sk-(?<![A-Za-z0-9_-]sk-)...`), so the pattern still starts with a literal
    and `re` finds candidates with its fast prefix search."""
    strict = "|".join(f"{prefix}(?<!{guard}{prefix}){body}{after}" for prefix, body in variants)
    loose = "|".join(f"{prefix}{body}{after}" for prefix, body in variants)
    return Detector(kind, description, re.compile(strict), re.compile(loose), gate=gate)


def _numeric(kind: str, description: str, pattern: str, before: str, after: str,
             valid: Callable[[str], bool] | None = None) -> Detector:
    return Detector(kind, description, re.compile(f"{before}(?:{pattern}){after}"),
                    re.compile(f"(?:{pattern}){after}"), valid=valid, digits=True)


_KEY_CHARS = "[A-Za-z0-9_-]"
_NOT_WORD_AFTER = "(?![0-9A-Za-z_])"
_NOT_WORD_BEFORE = "(?<![0-9A-Za-z_])"

DETECTORS: tuple[Detector, ...] = (
    Detector(
        "email", "email addresses (local@domain.tld)",
        # Starts at the `@` (a literal); the local part is found by walking left (`_email`).
        # The gate is the domain's pattern itself, not a bare `@`: an `@` without a domain
        # (a handle, a decorator, a length byte in a structured value's wire form) then
        # costs no parse of the value it is in.
        re.compile(r"@(?:[\w-]+\.)+[A-Za-z]{2,}(?![\w-])"),
        re.compile(r"@(?:[\w-]+\.)+[A-Za-z]{2,}(?![\w-])"),
        gate=("@", ()), email=True),
    _numeric(
        "phone", "phone numbers: +country code (8-15 digits), or North American (555) 123-4567 / 555-123-4567",
        r"\+[1-9][0-9]{0,3}(?:[ .-]?\(?[0-9]{1,4}\)?){2,5}"
        r"|(?:1[ .-]?)?(?:\([2-9][0-9]{2}\)[ .-]?|[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}",
        "(?<![0-9A-Za-z_+])", _NOT_WORD_AFTER, _phone_ok),
    _numeric(
        "credit_card", "payment card numbers (13-19 digits, plain or in groups) that pass the Luhn check",
        r"[0-9]{13,19}|[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,7}|[0-9]{4}([ -])[0-9]{6}\2[0-9]{4,5}",
        _NOT_WORD_BEFORE, _NOT_WORD_AFTER, _card_ok),
    _numeric(
        "us_ssn", "US social security numbers (123-45-6789; never 000, 666 or 9xx areas)",
        r"(?!000|666|9[0-9]{2})[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}",
        "(?<![0-9A-Za-z_-])", "(?![0-9A-Za-z_-])"),
    _keyed("anthropic_api_key", "Anthropic API keys (sk-ant-...)", [("sk-ant-", f"{_KEY_CHARS}{{20,}}")],
           _KEY_CHARS, gate=("-", ("sk-",))),
    _keyed("openai_api_key", "OpenAI API keys (sk-..., sk-proj-..., sk-svcacct-...) and other sk- keys",
           [("sk-", f"(?!ant-){_KEY_CHARS}{{20,}}")], _KEY_CHARS, gate=("-", ("sk-",))),
    _keyed("stripe_key", "Stripe secret and restricted keys (sk_live_, rk_live_, sk_test_...)",
           [("[rs]k_(?:live|test)_", "[A-Za-z0-9]{16,}")], "[A-Za-z0-9_]", gate=("_", ("k_live_", "k_test_"))),
    _keyed("aws_access_key", "AWS access key ids (AKIA..., ASIA...)",
           [("A(?:KIA|SIA|BIA|CCA)", "[A-Z0-9]{16}")], "[A-Za-z0-9]", "(?![A-Za-z0-9])",
           gate=("A", ("AKIA", "ASIA", "ABIA", "ACCA"))),
    _keyed("google_api_key", "Google API keys (AIza...)", [("AIza", f"{_KEY_CHARS}{{35}}")], _KEY_CHARS,
           f"(?!{_KEY_CHARS})", gate=("A", ("AIza",))),
    _keyed("github_token", "GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)",
           [("gh[pousr]_", "[A-Za-z0-9]{36,}"), ("github_pat_", "[A-Za-z0-9_]{22,}")], "[A-Za-z0-9_]",
           gate=("_", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"))),
    _keyed("slack_token", "Slack tokens (xoxb-, xoxp-, xoxa-...)", [("xox[abposr]-", "[A-Za-z0-9-]{10,}")],
           "[A-Za-z0-9_-]", gate=("-", ("xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"))),
    _keyed("jwt", "JSON Web Tokens (eyJ... three base64url parts)",
           [("eyJ", f"{_KEY_CHARS}{{10,}}\\.{_KEY_CHARS}{{10,}}\\.{_KEY_CHARS}*")], _KEY_CHARS,
           gate=("J", ("eyJ",))),
    _keyed("private_key", "PEM private keys (-----BEGIN ... PRIVATE KEY----- to its END line, or to the end "
           "of a truncated value)",
           [("-----BEGIN ", r"(?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END "
             r"(?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\]*)")], "-",
           gate=("-", ("-----BEGIN ",))),
)

DETECTOR_KINDS: tuple[str, ...] = tuple(d.kind for d in DETECTORS)
_BY_KIND = {d.kind: d for d in DETECTORS}

# The email gate: an `@` and a domain after it (an `@` alone is a handle, a decorator...).
_EMAIL_GATE = re.compile(r"@(?:[\w-]+\.)+[A-Za-z]{2,}")
_LOCAL_PART = re.compile(r"[\w.%+-]{1,64}")  # matched on the reversed text before the `@`; \w: Unicode letters
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_DIGITS_TO_ZERO_STR = str.maketrans("123456789", "000000000")
_ZEROS = re.compile(b"0*")
_ZEROS_STR = re.compile("0*")
# How far a digit detector's match reaches before its first and after its last digit pair
# ("+1 (555..." starts 4 characters before "55"; a card's last group may be one digit).
_BEFORE_PAIR, _AFTER_RUN = 8, 40


# What a digit detector's match looks like with its digits as 0: an SSN (000-00-0000), a
# North American phone's last seven digits (000-0000, 000.0000, 000 0000), a card (13 digits,
# or groups of four / Amex 4-6-5), an international phone (+0). Dates, versions, ids and
# model names ("2024-08-06", "gpt-4o-2024-08-06") contain none of these.
# One pattern with the literal prefix "000" (a fast search) for all but "+0".
_DIGIT_SHAPES = "000(?:[-. ]0000|0{10}|0[ -]0000[ -]0000|0[ -]000000[ -]0000|-00-0000)"
_DIGIT_SHAPES_BYTES = re.compile(_DIGIT_SHAPES.encode())
_DIGIT_SHAPES_STR = re.compile(_DIGIT_SHAPES)


def _contains_any(substrings: tuple[str, ...]) -> Callable[[str], bool]:
    if len(substrings) == 1:
        [only] = substrings
        return lambda s: only in s
    return lambda s: any(sub in s for sub in substrings)


def digits_gate(s: str) -> bool:
    """False when no digit detector can match `s`."""
    if s.isascii():
        t = s.encode("ascii").translate(_DIGITS_TO_ZERO)
        return b"+0" in t or _DIGIT_SHAPES_BYTES.search(t) is not None
    u = s.translate(_DIGITS_TO_ZERO_STR)
    return "+0" in u or _DIGIT_SHAPES_STR.search(u) is not None


def digit_windows(s: str) -> list[tuple[int, int]]:
    """[start, end) ranges around every run of two or more digits, merged; [] without one."""
    n = len(s)
    if s.isascii():
        t: bytes | str = s.encode("ascii").translate(_DIGITS_TO_ZERO)
        pair: bytes | str = b"00"
        zeros: re.Pattern[bytes] | re.Pattern[str] = _ZEROS
    else:
        t, pair, zeros = s.translate(_DIGITS_TO_ZERO_STR), "00", _ZEROS_STR
    windows: list[tuple[int, int]] = []
    pos = t.find(pair)  # type: ignore[arg-type]
    while pos >= 0:
        end = zeros.match(t, pos).end()  # type: ignore[arg-type, union-attr]
        lo, hi = max(0, pos - _BEFORE_PAIR), min(n, end + _AFTER_RUN)
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], hi)
        else:
            windows.append((lo, hi))
        pos = t.find(pair, end)  # type: ignore[arg-type]
    return windows


class Scanner:
    """The enabled detectors, with their gates grouped by character."""

    def __init__(self, kinds: Iterable[str]):
        chosen = [_BY_KIND[k] for k in kinds]
        self.kinds = tuple(d.kind for d in chosen)
        self._digit = tuple(d for d in chosen if d.digits)
        # character -> [(gate test, detector)], in declaration order.
        gates: dict[str, list[tuple[Callable[[str], object], Detector]]] = {}
        for d in chosen:
            if not d.digits:
                ch, substrings = d.gate
                gates.setdefault(ch, []).append((_EMAIL_GATE.search if d.email else _contains_any(substrings), d))
        self._gates = tuple((ch, tuple(entries)) for ch, entries in gates.items())
        # The same gate for the C module's gate_units: (substrings, email, digits).
        self.wire_gate = (tuple(sub.encode() for d in chosen for sub in d.gate[1]),
                          any(d.email for d in chosen), bool(self._digit))

    @property
    def enabled(self) -> bool:
        return bool(self.kinds)

    def may_match(self, s: str) -> bool:
        """False when no enabled detector can match `s` (loose); cheap, a gate only."""
        for ch, entries in self._gates:
            if ch in s:
                for gate, _ in entries:
                    if gate(s):
                        return True
        return bool(self._digit) and digits_gate(s)

    def find(self, s: str, loose: bool = False) -> list[tuple[int, int, str]]:
        """Non-overlapping (start, end, kind) matches in `s`, in order."""
        found: list[tuple[int, int, str]] = []
        for ch, entries in self._gates:
            if ch not in s:
                continue
            for gate, d in entries:
                if not gate(s):
                    continue
                if d.email:
                    found.extend(_emails(s, d))
                else:
                    pattern = d.loose if loose else d.strict
                    found.extend((m.start(), m.end(), d.kind) for m in pattern.finditer(s))
        if self._digit and digits_gate(s):
            for lo, hi in digit_windows(s):
                for d in self._digit:
                    pattern = d.loose if loose else d.strict
                    for m in pattern.finditer(s, lo, hi):
                        if d.valid is None or d.valid(m.group()):
                            found.append((m.start(), m.end(), d.kind))
        if len(found) > 1:
            found.sort(key=lambda f: (f[0], f[0] - f[1]))  # by start, the longest first
            kept = [found[0]]
            for f in found[1:]:
                if f[0] >= kept[-1][1]:
                    kept.append(f)
            found = kept
        return found

    def mask(self, s: str, counts: dict[str, int]) -> str:
        """`s` with every match replaced by its placeholder; `s` itself (the same object)
        when nothing matched. Adds one count per match to `counts[kind]`."""
        if len(s) < MIN_LENGTH:
            return s
        found = self.find(s)
        if not found:
            return s
        parts: list[str] = []
        last = 0
        for start, end, kind in found:
            parts.append(s[last:start])
            parts.append(PLACEHOLDER.format(kind))
            counts[kind] = counts.get(kind, 0) + 1
            last = end
        parts.append(s[last:])
        return "".join(parts)


def _emails(s: str, d: Detector) -> Iterable[tuple[int, int, str]]:
    for m in d.strict.finditer(s):
        at = m.start()
        local = _LOCAL_PART.match(s[max(0, at - 64):at][::-1])
        if local is not None:
            yield at - local.end(), m.end(), d.kind
