"""Strict reading of admin API JSON bodies: every problem reported at once, by field, nothing guessed."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from authserver.errors import AdminError as AdminError  # noqa: PLC0414 - re-exported: admin modules import it from here

# Control characters (NUL among them, which PostgreSQL refuses in text) never reach the database.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def has_control_characters(value: str) -> bool:
    return CONTROL_CHARACTERS.search(value) is not None


def invalid(message: str, errors: list[dict[str, str]] | None = None) -> AdminError:
    return AdminError(400, "invalid_request", message, errors)


def not_found(what: str) -> AdminError:
    return AdminError(404, "not_found", f"No such {what}.")


def conflict(message: str) -> AdminError:
    return AdminError(409, "conflict", message)


_MISSING = object()


class Body:
    """Reads typed fields from a JSON object, collecting errors; ``done()`` raises them together."""

    def __init__(self, data: Any, *, allowed: set[str]) -> None:
        self.errors: list[dict[str, str]] = []
        if not isinstance(data, dict):
            raise invalid("The request body must be a JSON object.")
        self.data: dict[str, Any] = data
        for name in sorted(set(data) - allowed):
            self.error(name, "unknown field")

    def error(self, name: str, message: str) -> None:
        self.errors.append({"field": name, "message": message})

    def has(self, name: str) -> bool:
        return name in self.data

    def string(
        self, name: str, *, required: bool = False, max_length: int = 200, pattern: re.Pattern[str] | None = None,
        nullable: bool = False, choices: tuple[str, ...] | None = None,
    ) -> Any:
        value = self.data.get(name, _MISSING)
        if value is _MISSING:
            if required:
                self.error(name, "required")
            return None
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            self.error(name, "must be a string")
            return None
        if not value.strip() or len(value) > max_length:
            self.error(name, f"must have 1-{max_length} characters")
            return None
        if has_control_characters(value):
            self.error(name, "must not contain control characters")
            return None
        if choices is not None and value not in choices:
            self.error(name, f"must be one of {', '.join(choices)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.error(name, "has characters that are not allowed")
            return None
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.data.get(name, _MISSING)
        if value is _MISSING:
            return None
        if not isinstance(value, bool):
            self.error(name, "must be true or false")
            return None
        return value

    def integer(self, name: str, *, minimum: int, maximum: int, nullable: bool = False) -> Any:
        value = self.data.get(name, _MISSING)
        if value is _MISSING or (value is None and nullable):
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            self.error(name, f"must be an integer between {minimum} and {maximum}")
            return None
        return value

    def strings(
        self, name: str, *, max_items: int = 20, max_length: int = 2000,
        check: Callable[[str], str | None] | None = None, required: bool = False,
    ) -> list[str] | None:
        value = self.data.get(name, _MISSING)
        if value is _MISSING:
            if required:
                self.error(name, "required")
            return None
        if not isinstance(value, list) or len(value) > max_items:
            self.error(name, f"must be a list of at most {max_items} strings")
            return None
        result: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item or len(item) > max_length:
                self.error(f"{name}[{index}]", f"must be a string of 1-{max_length} characters")
                continue
            problem = check(item) if check else None
            if problem:
                self.error(f"{name}[{index}]", problem)
                continue
            if item not in result:
                result.append(item)
        return result

    def done(self) -> None:
        if self.errors:
            raise invalid("The request has invalid fields.", self.errors)


def page(params: Mapping[str, str], *, allowed: set[str]) -> tuple[int, int]:
    """``limit`` (1-200, default 50) and ``offset`` (0-1,000,000) of a list request."""
    errors: list[dict[str, str]] = [{"field": k, "message": "unknown parameter"} for k in sorted(set(params) - allowed - {"limit", "offset"})]
    limit, offset = 50, 0
    for name, low, high in (("limit", 1, 200), ("offset", 0, 1_000_000)):
        raw = params.get(name)
        if raw is None:
            continue
        if not raw.isdigit() or not low <= int(raw) <= high:
            errors.append({"field": name, "message": f"must be an integer between {low} and {high}"})
        elif name == "limit":
            limit = int(raw)
        else:
            offset = int(raw)
    if errors:
        raise invalid("The request has invalid parameters.", errors)
    return limit, offset


def timestamp(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00")) if len(raw) <= 40 else None
    except ValueError:
        value = None
    if value is None:
        raise invalid("The request has invalid parameters.", [{"field": name, "message": "must be an ISO 8601 date-time"}])
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise invalid("The request has invalid parameters.", [{"field": name, "message": "out of range"}]) from None


def iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None
