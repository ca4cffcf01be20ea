"""Message catalogues (Spanish by default, English) and the choice of language for a request."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

SUPPORTED = ("es", "en")
_LOCALES = Path(__file__).parent / "locales"


@cache
def catalogue(locale: str) -> dict[str, str]:
    return dict(json.loads((_LOCALES / f"{locale}.json").read_text(encoding="utf-8")))


def translate(locale: str, key: str, **values: object) -> str:
    text = catalogue(locale).get(key) or catalogue("en").get(key) or key
    return text.format(**values) if values else text


def choose_locale(ui_locales: str | None, accept_language: str | None, default: str) -> str:
    """ui_locales (OIDC Core §3.1.2.1) first, then Accept-Language by quality, then the default."""
    for tag in (ui_locales or "").split():
        primary = tag.split("-")[0].lower()
        if primary in SUPPORTED:
            return primary
    ranked: list[tuple[float, str]] = []
    for part in (accept_language or "").split(",")[:20]:
        pieces = part.strip().split(";")
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((quality, pieces[0].strip().split("-")[0].lower()))
    for quality, primary in sorted(ranked, key=lambda item: -item[0]):
        if quality > 0 and primary in SUPPORTED:
            return primary
    return default
