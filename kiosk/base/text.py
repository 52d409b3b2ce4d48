"""The rule for text and numbers that enter from outside: one place for every path (hub API, screen, CLI, CSV).

Refused everywhere: control characters (C0, DEL, C1 — NUL included: PostgreSQL cannot store it),
bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069: they make "E1" display as
another id) and lone surrogates (not UTF-8: no database can store them). ``check_text`` names the
field; ``check_name`` is the one rule for a person's name; ``csv_cell`` makes a value safe for a
spreadsheet; ``DB_INT_MAX`` bounds every integer to what both databases hold (signed 64 bits).
"""

from __future__ import annotations

from typing import Any

from kiosk.base.errors import InvalidInput

DB_INT_MAX = 2**63 - 1
BRANCH = r"^[A-Za-z0-9_.-]{1,32}$"
"""A branch code: 1-32 letters, digits, _ . - (the wire protocol, the hub's config and its branch list)."""
NAME_MAX_CHARS = 100
BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
# A cell starting with one of these is read as a formula by spreadsheet programs (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def unsafe_char(text: str) -> str | None:
    """What is wrong with ``text`` (naming the first bad character), or None when it may be stored."""
    for pos, char in enumerate(text):
        kind = _kind(char)
        if kind:
            return f"holds {kind} U+{ord(char):04X} at position {pos + 1}"
    return None


def _kind(char: str) -> str | None:
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return "the control character"
    if char in BIDI_CONTROLS:
        return "the bidirectional override"
    if 0xD800 <= code <= 0xDFFF:
        return "the unpaired surrogate"
    return None


def escaped(text: str) -> str:
    """``text`` with each refused character written as an escape (\\x00, \\u202e): safe to store and show."""
    return "".join(char.encode("unicode_escape", "backslashreplace").decode("ascii") if _kind(char) else char
                   for char in text)


def check_text(value: str, field: str) -> str:
    """``value`` unchanged, or InvalidInput naming ``field`` and the character to remove."""
    problem = unsafe_char(value)
    if problem:
        raise InvalidInput(f"{field} {problem}",
                           fix="Remove control characters and text-direction overrides (type plain text).")
    return value


def check_texts(value: Any, field: str) -> Any:
    """``check_text`` on every string inside ``value`` (lists, tuples and dict keys and values too)."""
    if isinstance(value, str):
        return check_text(value, field)
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_texts(item, f"{field}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_texts(key, f"{field} key")
            check_texts(item, f"{field}.{key}")
    return value


def check_name(name: str, field: str = "name") -> str:
    """The one rule for a person's name, wherever it comes from: trimmed, 1-100 printable characters."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput(f"the {field} is empty", fix="Give the name as it should appear on screen.")
    if len(name) > NAME_MAX_CHARS:
        raise InvalidInput(f"the {field} has {len(name)} characters; at most {NAME_MAX_CHARS} are allowed",
                           fix=f"Use at most {NAME_MAX_CHARS} characters.")
    return check_text(name, field)


def csv_cell(value: Any) -> Any:
    """A value for a CSV file: text a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def check_db_int(value: int, field: str, minimum: int = 0) -> int:
    """``value`` when it fits a database integer column (and is at least ``minimum``), else InvalidInput."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= DB_INT_MAX:
        raise InvalidInput(f"{field} must be a whole number from {minimum} to {DB_INT_MAX}",
                           fix=f"Send {field} as the hub gave it.")
    return value
