"""The one error type users see: its message is printed as a single line by the CLI."""


class NervcError(Exception):
    """A user-facing failure (bad input, bad bitstream, unwritable output...)."""
