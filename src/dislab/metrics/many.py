"""Score many training runs at once: one vectorised encoding pass, metric suites in parallel.

:func:`evaluate_runs` is ``dislab evaluate RUN_DIR RUN_DIR ...``:

1. **encode** (:func:`dislab.representation.many.encode_runs`): each run's full grid is
   encoded, up to ``pack`` runs of one data set and architecture per vectorised pass, into
   its ``codes.npz`` under the key :func:`evaluate_run` checks, so the next step encodes
   nothing;
2. **score**: each run's metric suite is :func:`dislab.metrics.evaluate_run` in its own host
   process (a spawned process pool of ``workers``), which reads the run's codes from disk,
   never its model on the device. ``metrics.json`` is written as for a single run.

A run whose grid is larger than :data:`dislab.metrics.suite.AUTO_CACHE_MAX` points, or whose
vectorised codes disagree with its own encoder on a first batch (a model whose ``encode``
cannot be vmapped faithfully), is scored as :func:`evaluate_run` scores it alone, in this
process.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from dislab import tiny
from dislab.errors import DislabError
from dislab.metrics.base import MetricError
from dislab.representation.many import encode_runs
from dislab.threads import usable_cores

__all__ = ["evaluate_runs"]

def _suite(kwargs: dict[str, Any]) -> dict[str, Any]:
    """One run's metric suite (in a worker process)."""
    from dislab.metrics.suite import evaluate_run

    return evaluate_run(**kwargs)


def _init_worker(threads: int) -> None:
    from dislab.threads import set_process_threads

    set_process_threads(threads)


def evaluate_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    metrics: str | Sequence[str] | None = None,
    seed: int = 0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    compat: str = "default",
    device: str = "auto",
    batch_size: int | None = None,
    pack: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    reencode: bool = False,
    settings: Sequence[Mapping[str, Any] | None] | None = None,
    errors: str = "raise",
    vectorise: bool | None = None,
) -> list[Any]:
    """Score several training runs; write each run's ``metrics.json`` (and ``codes.npz``).

    The result of each run is what :func:`dislab.metrics.evaluate_run` gives for it alone with
    the same arguments (the codes are the runs' own encoders' up to float rounding; see the
    module docstring for how they are made). ``settings``: one dict per run overriding
    ``metrics``, ``seed``, ``params`` or ``compat`` for that run. ``workers``: metric suites
    run at once in spawned processes (default: the usable cores, at most one per run; 1 runs
    them in this process), each with ``cores // workers`` threads. ``errors="raise"`` raises
    the first failure once every run is done (naming the run); ``"return"`` puts the
    exception in that run's place of the returned list. ``vectorise``: see
    :func:`encode_runs`. Returns the records in order.
    """
    if errors not in ("raise", "return"):
        raise MetricError(f"errors must be 'raise' or 'return', not {errors!r}.")
    if workers is not None and int(workers) < 1:
        raise MetricError(f"workers must be >= 1, got {workers}.")
    from dislab.metrics.compat import check_compat
    from dislab.metrics.suite import _check_params, resolve_metrics

    dirs = [str(d) for d in run_dirs]
    if not dirs:
        raise MetricError("no run folders given.")
    if len(set(dirs)) != len(dirs):
        raise MetricError("a run folder is given twice; each run is scored once.")
    if settings is not None and len(settings) != len(dirs):
        raise MetricError(f"settings has {len(settings)} entries for {len(dirs)} runs.")
    jobs: list[dict[str, Any]] = []
    for i, d in enumerate(dirs):
        job: dict[str, Any] = {"metrics": metrics, "seed": seed, "params": params,
                               "compat": compat}
        job.update(dict((settings or [None] * len(dirs))[i] or {}))
        unknown = set(job) - {"metrics", "seed", "params", "compat"}
        if unknown:
            raise MetricError(f"settings of {d}: unknown key(s) {sorted(unknown)}; use "
                              "metrics, seed, params, compat.")
        names = resolve_metrics(job["metrics"])
        check_compat(job["compat"])
        _check_params(names, job["params"])  # bad input fails before anything is encoded
        job.update(run_dir=d, metrics=names, progress=False, batch_size=128)
        jobs.append(job)
    results: list[Any] = [None] * len(dirs)
    from dislab.metrics.suite import AUTO_CACHE_MAX

    info = encode_runs(dirs, device=device, batch_size=batch_size, pack=pack,
                       progress=progress, reencode=reencode, vectorise=vectorise,
                       max_grid=AUTO_CACHE_MAX)
    pooled = [i for i, d in enumerate(dirs) if info[d]["ready"]]
    alone = [i for i, d in enumerate(dirs) if not info[d]["ready"]]
    cores = usable_cores()
    workers = int(workers) if workers else (1 if tiny.enabled() else cores)  # DISLAB_TINY
    workers = min(workers, max(1, len(pooled)))
    threads = max(1, cores // workers)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(dirs), desc="scoring runs", unit="run")

    def finish(i: int, fn: Any, kwargs: dict[str, Any]) -> None:
        try:
            results[i] = fn(kwargs)
        except Exception as e:  # noqa: BLE001 - recorded per run
            e.dislab_traceback = traceback.format_exc()  # type: ignore[attr-defined]
            results[i] = e
        if bar is not None:
            bar.update(1)

    # the pre-encoded runs read their codes from disk: no model on the device is needed
    if workers > 1 and len(pooled) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_init_worker, initargs=(threads,)) as ex:
            futures = {i: ex.submit(_suite, {**jobs[i], "device": "cpu"}) for i in pooled}
            for i, future in futures.items():
                finish(i, lambda _kw, f=future: f.result(), {})
    else:
        for i in pooled:
            finish(i, _suite, {**jobs[i], "device": "cpu"})
    for i in alone:  # not pre-encoded (huge grid, no weights, ...): as evaluate_run alone
        finish(i, _suite, {**jobs[i], "device": device})
    if bar is not None:
        bar.close()
    if errors == "raise":
        for d, r in zip(dirs, results):
            if isinstance(r, BaseException):
                if isinstance(r, DislabError):
                    raise type(r)(f"{d}: {r}") from r
                raise DislabError(f"{d}: {type(r).__name__}: {r}") from r
    return results

