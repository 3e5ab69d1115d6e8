"""Errors that carry a message meant for the user (printed as one line, exit code 2)."""

from __future__ import annotations

from typing import Any


def one_line(text: str) -> str:
    """`text` with control characters (newlines, carriage returns, escapes) written as
    their escape sequences, so that user-given text inside a message (an argument, a
    path, a parser's complaint) can neither break it over lines nor drive the terminal."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and what to do. It is
    always one line: control characters in it are escaped."""

    def __init__(self, message: Any = "", *args: Any) -> None:
        super().__init__(one_line(str(message)), *args)


class UnavailableError(Exception):
    """A backend or device cannot run on this host; the message says why."""
