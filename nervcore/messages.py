"""One line on standard error for what nervc did that the user did not ask for.

``nervc: note: ...`` names a conversion (10-bit stored as 8-bit, audio not stored, a rotation
applied, an odd-sized .mp4 padded); ``nervc: warning: ...`` one that changes what the video
is (its timing). Never on standard output: that may be the video itself (y4m on a pipe).
"""
from __future__ import annotations

import sys

LEVELS = ("note", "warning")


def say(level: str, text: str) -> None:
    """Print ``nervc: LEVEL: TEXT`` on standard error, as one line."""
    if level not in LEVELS:
        raise ValueError(f"unknown message level {level!r}")
    print(f"nervc: {level}: {' '.join(text.split())}", file=sys.stderr, flush=True)


def note(text: str) -> None:
    say("note", text)


def warning(text: str) -> None:
    say("warning", text)
