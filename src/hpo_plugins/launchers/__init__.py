"""How trials are run: in this process, or in parallel workers (see the launcher issue)."""

from __future__ import annotations

__all__: list[str] = []
