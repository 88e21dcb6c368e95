"""The one error type users see: its message names the problem and the fix."""


class DislabError(ValueError):
    """Bad input (file, name, shape, config, NaN loss...); the message says what to do.

    The CLI prints the message without a traceback and exits with status 2.
    """
