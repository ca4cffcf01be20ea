"""The signal that a request body grew past ``server.max_body_bytes`` while it streamed (middleware/edge.py)."""

from __future__ import annotations


class BodyTooLarge(Exception):
    """Raised by the edge's ``receive``; endpoints let it through so the edge can answer 413."""
