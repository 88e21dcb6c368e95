"""Moved to :mod:`dislab.representation` (the layer between a run and the metrics); these
names stay importable from here for code written against the old path."""

from dislab.representation.cache import file_sha256, load_or_encode, open_code_table
from dislab.representation.encode import encode_grid, encode_rows, model_representation

__all__ = ["encode_grid", "encode_rows", "model_representation", "file_sha256", "load_or_encode",
           "open_code_table"]
