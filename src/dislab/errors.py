"""The one error type users see: its message names the problem and the fix."""


class DislabError(ValueError):
    """Bad input (file, name, shape, config, NaN loss...); the message says what to do.

    The CLI prints the message without a traceback and exits with status 2.
    """


class DataError(DislabError):
    """A data set file, name, option or factor value is wrong; the message says how to fix it.

    Exported as ``dislab.data.DataError``; defined here, below every data module, so that
    the data modules share it without importing each other."""


class MetricError(DislabError):
    """A metric, or the codes it reads, cannot work with the given input; the message says
    why and what to do. (Raised by :mod:`dislab.metrics` and :mod:`dislab.representation`.)"""
