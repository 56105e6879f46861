"""What every check shares: a confirmation line and an assertion that teaches."""
from __future__ import annotations


def _ok(msg: str) -> None:
    print(f"\u2714 correct: {msg}")


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)
