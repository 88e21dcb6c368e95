"""Between a trained run and the metrics: "give me this run's codes".

* :mod:`~dislab.representation.table`: :class:`CodeTable`, the codes of grid points that every
  metric looks up (full or lazily filled), saved as ``.npz``;
* :mod:`~dislab.representation.encode`: a torch model's codes of grid points, fast, on its
  device (:func:`encode_rows`, :func:`encode_grid`, :func:`model_representation`);
* :mod:`~dislab.representation.cache`: a run's ``codes.npz`` and the key that ties it to the
  weights and the data set (:func:`codes_key`);
* :mod:`~dislab.representation.runs`: :func:`open_run` loads a run's model and the data set
  it is scored on (:func:`run_data`) and gives its codes through that cache.

This layer sits on data, nets, models and train; metrics, studies and figures build on it.
"""

from dislab.representation.cache import codes_key, file_sha256, load_or_encode, open_code_table
from dislab.representation.encode import encode_grid, encode_rows, model_representation
from dislab.representation.runs import TrainedRun, open_run, run_data
from dislab.representation.table import CodeTable, RowEncoder, check_codes

__all__ = [
    "CodeTable",
    "RowEncoder",
    "TrainedRun",
    "check_codes",
    "codes_key",
    "encode_grid",
    "encode_rows",
    "file_sha256",
    "load_or_encode",
    "model_representation",
    "open_code_table",
    "open_run",
    "run_data",
]
