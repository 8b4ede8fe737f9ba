"""Small network facts the commands need before they start work: a free local port, and whether a
server answers its health endpoint in seconds (its own client would retry for minutes)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_problem(url: str, timeout_s: float = 5.0) -> str | None:
    """Why ``url`` (a health endpoint) does not answer 200 within ``timeout_s``, or None when it does."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (OSError, ValueError) as error:
        return str(getattr(error, "reason", None) or error)
