"""Errors that carry a message meant for the user (printed as one line, exit code 2)."""


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and what to do."""


class UnavailableError(Exception):
    """A backend or device cannot run on this host; the message says why."""
