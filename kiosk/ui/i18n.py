"""The screen's words: one JSON catalogue per language (kiosk/ui/i18n/en.json, zh.json), looked up by key.

Code passes keys and parameters (``guide.move_closer``, ``{"time": "08:57"}``); only the catalogues
hold sentences. The page fetches a whole catalogue; the terminal uses ``translate``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

LANGUAGES = ("en", "zh")
CATALOGUE_DIR = Path(__file__).resolve().parent / "i18n"


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """Every key -> sentence of one language (``lang`` must be one of LANGUAGES)."""
    if lang not in LANGUAGES:
        raise ValueError(f"no catalogue for language {lang!r}; known: {', '.join(LANGUAGES)}")
    return json.loads((CATALOGUE_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def translate(lang: str, key: str, **params: object) -> str:
    """The sentence for ``key`` with ``{name}`` placeholders filled; the key itself if unknown."""
    text = catalogue(lang).get(key, key)
    for name, value in params.items():
        text = text.replace("{" + name + "}", str(value))
    return text
