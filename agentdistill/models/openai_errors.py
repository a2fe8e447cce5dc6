"""Reading an OpenAI-compatible server's error responses: its message and how long it asks us to wait."""

from __future__ import annotations

import math

import openai


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header; an HTTP-date or junk falls back to our own backoff."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def server_message(exc: openai.APIStatusError) -> str:
    """The server's own error message from an error response body, shortened."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return str(message)[:300]
    return str(exc.message)[:300]
