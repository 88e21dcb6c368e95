"""Experiment tracking: TensorBoard, MLflow and Weights & Biases behind one small interface.

``TrainConfig.loggers`` names the back ends (default ``["tensorboard"]``; ``dislab train
--logger mlflow --logger wandb``). Each run of dislab is one tracked run; the runs of one study
share one MLflow experiment / one W&B group (the study's name). Every back end receives

* the config as parameters (flattened: ``hparams.beta``) and as ``config.json``;
* the training scalars every ``log_every`` steps (``train/loss``, ``speed/images_per_s``, ...);
* the reconstruction and traversal images (``images/`` of the run folder);
* the final training logs (``final/<name>``) and, for studies, the evaluation metrics
  (``metrics/<metric>/<value>``, see :func:`log_metrics`).

``TrainConfig.tracking`` holds the options (all optional):

* ``experiment``: MLflow experiment / W&B group (default ``"dislab"``; a study's name in studies);
* ``run_name``: the run's name (default: the run folder's name; the run id in studies);
* ``mlflow_uri``: tracking URI, e.g. ``http://127.0.0.1:5000``, ``file:./mlruns`` or
  ``sqlite:///mlflow.db`` (default: ``$MLFLOW_TRACKING_URI``, else MLflow's own default);
* ``wandb_project``, ``wandb_entity``: W&B project (default ``"dislab"``) and entity;
* ``wandb_mode``: ``"online"``, ``"offline"`` or ``"auto"`` (default: ``$WANDB_MODE``, else
  ``"auto"``: online only when an API key is configured and the W&B server answers within
  3 seconds, else offline with a message; a run is never held up waiting for the network).

The ids of the tracked runs are kept in ``RUN/tracking.json``, so a resumed run (``--resume``)
continues the same MLflow / W&B run. MLflow and W&B are optional extras:
``pip install "dislab[mlflow]"`` / ``"dislab[wandb]"``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from dislab.errors import DislabError

__all__ = [
    "LOGGERS",
    "TRACKING_OPTIONS",
    "Tracker",
    "MultiWriter",
    "open_writer",
    "with_tensorboard",
    "log_metrics",
    "study_config",
    "STUDY_ENV",
    "check_loggers",
    "add_arguments",
    "overrides_from_args",
]

#: Names accepted in ``TrainConfig.loggers``.
LOGGERS = ("tensorboard", "mlflow", "wandb")
#: Keys accepted in ``TrainConfig.tracking``.
TRACKING_OPTIONS = ("experiment", "run_name", "mlflow_uri", "wandb_project", "wandb_entity",
                    "wandb_mode")
_IDS_FILE = "tracking.json"
_EXTRA = {"mlflow": "mlflow", "wandb": "wandb"}


def check_loggers(loggers: Any, tracking: Any) -> None:
    """Raise a DislabError for an unknown logger name or tracking option."""
    if not isinstance(loggers, list) or not all(isinstance(x, str) for x in loggers):
        raise DislabError(f"Training config: loggers={loggers!r} must be a list of names "
                          f"from {list(LOGGERS)} (e.g. [\"tensorboard\", \"mlflow\"]).")
    unknown = [x for x in loggers if x not in LOGGERS]
    if unknown:
        raise DislabError(f"Unknown logger(s) {unknown}; choose from {list(LOGGERS)}.")
    if not isinstance(tracking, dict):
        raise DislabError(f"Training config: tracking={tracking!r} must be a JSON object with "
                          f"keys from {list(TRACKING_OPTIONS)}.")
    bad = sorted(k for k in tracking if k not in TRACKING_OPTIONS)
    if bad:
        raise DislabError(f"Unknown tracking option(s) {bad}; valid: {list(TRACKING_OPTIONS)}.")
    mode = tracking.get("wandb_mode")
    if mode is not None and mode not in ("online", "offline", "auto", "disabled"):
        raise DislabError(f"tracking.wandb_mode={mode!r} must be online, offline or auto.")


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _finite_floats(values: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in values.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if np.isfinite(f):
            out[str(k)] = f
    return out


def _as_uint8_hwc(image: Any, dataformats: str) -> np.ndarray:
    a = np.asarray(image)
    if dataformats == "CHW":
        a = np.transpose(a, (1, 2, 0))
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return a


def _read_ids(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / _IDS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_ids(run_dir: Path, ids: dict[str, Any]) -> None:
    from dislab.io import write_json

    write_json(run_dir / _IDS_FILE, ids, indent=2)


def _need(module: str, logger: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DislabError(
            f"--logger {logger} needs the {logger} package: pip install "
            f"\"dislab[{_EXTRA[logger]}]\" (or remove {logger!r} from the config's loggers)."
        ) from None


# -- the back ends ----------------------------------------------------------------------------
class Tracker:
    """One tracking back end. Subclasses override what they support."""

    name = "base"

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        """Log scalar ``values`` (tag -> number) at ``step``."""

    def log_image(self, key: str, image: np.ndarray, step: int) -> None:
        """Log a uint8 ``(H, W, 3)`` image under ``key`` at ``step``."""

    def log_final(self, values: dict[str, float]) -> None:
        """Log the run's final values (summary metrics)."""

    def close(self, status: str) -> None:
        """End the run with ``status`` ``"done"`` or ``"failed"``."""


class _TensorBoard(Tracker):
    name = "tensorboard"

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def log_image(self, key: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(key, image, step, dataformats="HWC")

    def log_final(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(f"final/{k}", v, 0)

    def close(self, status: str) -> None:
        self.writer.close()


def _client(uri: str | None) -> Any:
    """An ``MlflowClient`` for ``uri``. MLflow 3 refuses its file store (``file:`` URIs, plain
    folders) unless ``MLFLOW_ALLOW_FILE_STORE`` is set; naming one explicitly opts in."""
    from mlflow.tracking import MlflowClient

    if uri and (uri.startswith("file:") or "://" not in uri):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=uri)


class _MLflow(Tracker):
    """One MLflow run through ``MlflowClient`` (no global active run: safe in worker pools)."""

    name = "mlflow"

    def __init__(self, config: dict[str, Any], run_dir: Path, options: dict[str, Any],
                 run_id: str | None) -> None:
        _need("mlflow", "mlflow")
        uri = options.get("mlflow_uri") or os.environ.get("MLFLOW_TRACKING_URI") or None
        self.uri = uri
        try:
            if uri and uri.startswith(("http://", "https://")):
                # MLflow retries a dead server for minutes; find out in seconds instead
                parsed = urlparse(uri)
                port = parsed.port or (443 if parsed.scheme == "https" else 80)
                socket.create_connection((parsed.hostname, port), timeout=5).close()
            self.client = _client(uri)
            if run_id:
                self.run_id = run_id
                self.client.update_run(run_id, status="RUNNING")
            else:
                name = str(options.get("experiment") or "dislab")
                exp = self.client.get_experiment_by_name(name)
                exp_id = exp.experiment_id if exp else self.client.create_experiment(name)
                run = self.client.create_run(
                    exp_id, run_name=str(options.get("run_name") or run_dir.name),
                    tags={"dislab.run_dir": str(run_dir.resolve()),
                          "dislab.model": str(config.get("model")),
                          "dislab.data": str(config.get("data"))})
                self.run_id = run.info.run_id
                self._log_config(config)
        except Exception as e:  # noqa: BLE001 - connection errors come in many types
            raise DislabError(
                f"MLflow: cannot reach the tracking store {uri or '(MLflow default)'} ({e}). "
                "Start the server, fix --mlflow-uri / MLFLOW_TRACKING_URI, or drop "
                "--logger mlflow."
            ) from None

    def _log_config(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = _flatten(config)
        params = [Param(k, json.dumps(v) if not isinstance(v, str) else v)
                  for k, v in flat.items()]
        for i in range(0, len(params), 100):  # MLflow's batch limit
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        self.client.log_dict(self.run_id, config, "config.json")

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in _finite_floats(values).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_image(self, key: str, image: np.ndarray, step: int) -> None:
        self.client.log_image(self.run_id, image, key=key, step=step)

    def log_final(self, values: dict[str, float]) -> None:
        self.log_scalars({f"final/{k}": v for k, v in values.items()}, 0)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if status == "done" else "FAILED")


def _wandb_reachable(timeout: float = 3.0) -> bool:
    """True when an API key is configured and the W&B server accepts a TCP connection."""
    if not (os.environ.get("WANDB_API_KEY") or (Path.home() / ".netrc").exists()):
        return False
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    try:
        with socket.create_connection((host.hostname or "api.wandb.ai",
                                       host.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


class _WandB(Tracker):
    name = "wandb"

    def __init__(self, config: dict[str, Any], run_dir: Path, options: dict[str, Any],
                 run_id: str | None) -> None:
        wandb = _need("wandb", "wandb")
        mode = options.get("wandb_mode") or os.environ.get("WANDB_MODE") or "auto"
        if mode == "auto":
            mode = "online" if _wandb_reachable() else "offline"
            if mode == "offline":
                print(f"dislab: W&B runs offline (no API key or no network); its files go "
                      f"to {run_dir / 'wandb'}; upload them later with `wandb sync "
                      f"{run_dir / 'wandb'}/offline-run-*`.", file=sys.stderr)
        self.mode = mode
        settings = wandb.Settings(silent=True, init_timeout=30, x_disable_stats=True,
                                  console="off")
        try:
            self.run = wandb.init(
                project=str(options.get("wandb_project") or "dislab"),
                entity=options.get("wandb_entity"), group=str(options.get("experiment")
                                                              or "dislab"),
                name=str(options.get("run_name") or run_dir.name), id=run_id,
                resume="allow" if run_id else None, config=config, dir=str(run_dir),
                mode=mode, settings=settings, reinit="create_new")
        except Exception as e:  # noqa: BLE001
            raise DislabError(f"W&B: cannot start a run ({type(e).__name__}: {e}). Use "
                              "WANDB_MODE=offline, or drop --logger wandb.") from None
        self.run_id = self.run.id
        self._wandb = wandb

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(_finite_floats(values), step=step)

    def log_image(self, key: str, image: np.ndarray, step: int) -> None:
        self.run.log({key: self._wandb.Image(image)}, step=step)

    def log_final(self, values: dict[str, float]) -> None:
        for k, v in _finite_floats(values).items():
            self.run.summary[f"final/{k}"] = v

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "done" else 1)


# -- what the training loop sees ------------------------------------------------------------------
class MultiWriter:
    """SummaryWriter-like fan-out (``add_scalar``, ``add_image``, ``close``) to every tracker,
    plus :meth:`log_final`. A run that reaches :meth:`log_final` is closed as done, otherwise
    as failed. A back end that fails mid-run is warned about once and dropped: tracking never
    stops training."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers
        self._done = False

    def _each(self, method: str, *args: Any) -> None:
        for t in list(self.trackers):
            try:
                getattr(t, method)(*args)
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"{t.name} logging stopped: {type(e).__name__}: {e}",
                              stacklevel=3)
                self.trackers.remove(t)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._each("log_scalars", {tag: float(value)}, int(step))

    def add_scalars_dict(self, values: dict[str, float], step: int) -> None:
        self._each("log_scalars", dict(values), int(step))

    def add_image(self, tag: str, image: Any, step: int, dataformats: str = "CHW") -> None:
        self._each("log_image", tag, _as_uint8_hwc(image, dataformats), int(step))

    def log_final(self, values: dict[str, Any] | None) -> None:
        self._each("log_final", _finite_floats(values or {}))
        self._done = True

    def close(self) -> None:
        status = "done" if self._done else "failed"
        for t in self.trackers:
            try:
                t.close(status)
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"{t.name}: closing the run failed: {e}", stacklevel=2)
        self.trackers = []


def with_tensorboard(writer: MultiWriter | None, tensorboard: Any) -> Any:
    """``writer`` (from :func:`open_writer`) plus the TensorBoard ``SummaryWriter``
    ``tensorboard``; either may be ``None``."""
    if tensorboard is None:
        return writer
    if writer is None:
        return MultiWriter([_TensorBoard(tensorboard)])
    writer.trackers.insert(0, _TensorBoard(tensorboard))
    return writer


def open_writer(config: Any, run_dir: str | os.PathLike[str], tensorboard: Any = None
                ) -> MultiWriter | None:
    """The trackers of ``config.loggers`` for the run in ``run_dir``, behind one writer.

    ``tensorboard``: the run's ``SummaryWriter`` (or ``None``). Returns ``None`` when nothing
    is tracked. The MLflow / W&B run ids are stored in ``run_dir/tracking.json``; a run folder
    that already has them (a resumed run) continues the same runs.
    """
    run_dir = Path(run_dir)
    loggers = list(getattr(config, "loggers", None) or [])
    options = dict(getattr(config, "tracking", None) or {})
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    trackers: list[Tracker] = []
    if tensorboard is not None:
        trackers.append(_TensorBoard(tensorboard))
    ids = _read_ids(run_dir)
    for name, cls in (("mlflow", _MLflow), ("wandb", _WandB)):
        if name not in loggers:
            continue
        try:
            tracker = cls(cfg, run_dir, options, ids.get(name))
        except BaseException:
            for t in trackers:
                t.close("failed")
            raise
        trackers.append(tracker)
        if name == "mlflow":
            ids["mlflow"] = tracker.run_id
            ids["mlflow_uri"] = tracker.uri
        else:
            ids["wandb"] = tracker.run_id
            ids["wandb_mode"] = tracker.mode
        _write_ids(run_dir, ids)
    return MultiWriter(trackers) if trackers else None


def log_metrics(run_dir: str | os.PathLike[str], metrics: Mapping[str, Any],
                prefix: str = "metrics") -> None:
    """Add evaluation results (``{metric: {value name: number}}``) to the MLflow / W&B runs
    of the finished run in ``run_dir`` (as ``metrics/<metric>/<value>``); no-op when the run
    was not tracked. Failures are warnings: the results are already in the run folder."""
    run_dir = Path(run_dir)
    ids = _read_ids(run_dir)
    if not ids:
        return
    flat = _finite_floats({f"{prefix}/{k.replace('.', '/')}": v
                           for k, v in _flatten(dict(metrics)).items()})
    if not flat:
        return
    try:
        if ids.get("mlflow"):
            t = _MLflow.__new__(_MLflow)
            t.client, t.run_id = _client(ids.get("mlflow_uri")), ids["mlflow"]
            t.log_scalars(flat, 0)
        if ids.get("wandb"):
            cfg = json.loads((run_dir / "config.json").read_text())
            opts = {**(cfg.get("tracking") or {}), "wandb_mode": ids.get("wandb_mode")}
            w = _WandB(cfg, run_dir, opts, ids["wandb"])
            for k, v in flat.items():
                w.run.summary[k] = v
            w.close("done")
    except Exception as e:  # noqa: BLE001
        warnings.warn(f"Could not add the metrics to the tracked run: {e}", stacklevel=2)


#: Environment variable through which ``dislab study run --logger`` reaches the runs (JSON:
#: ``{"loggers": [...], "tracking": {...}}``); it does not change the runs' ids.
STUDY_ENV = "DISLAB_STUDY_TRACKING"


def study_config(config: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """The ``loggers`` / ``tracking`` fields of a study run's training config: the spec's
    ``train:`` values, plus ``dislab study run --logger`` (:data:`STUDY_ENV`), with the study's
    name as the experiment / group and the run id as the run's name unless the spec sets them."""
    extra = {}
    if os.environ.get(STUDY_ENV):
        try:
            extra = json.loads(os.environ[STUDY_ENV])
        except ValueError:
            extra = {}
    loggers = list(config.get("loggers") or ["tensorboard"])
    for name in extra.get("loggers") or []:
        if name not in loggers:
            loggers.append(name)
    tracking = {**(extra.get("tracking") or {}), **dict(config.get("tracking") or {})}
    tracking.setdefault("experiment", str(run.get("study") or "dislab"))
    tracking.setdefault("run_name", str(run.get("run_id") or ""))
    return {"loggers": loggers, "tracking": tracking}


# -- command line ---------------------------------------------------------------------------------
def add_arguments(parser: Any) -> None:
    """``--logger``, ``--experiment``, ``--mlflow-uri`` (for train and quickstart)."""
    parser.add_argument("--logger", dest="logger", action="append", choices=LOGGERS,
                        default=None, help="where to log scalars, images, the config and "
                        "the final values: tensorboard (default), mlflow, wandb; repeatable "
                        "(giving it replaces the default; mlflow/wandb need pip install "
                        "\"dislab[mlflow]\" / \"dislab[wandb]\"; W&B runs offline without "
                        "network)")
    parser.add_argument("--experiment", default=None,
                        help="MLflow experiment / W&B group (default dislab)")
    parser.add_argument("--mlflow-uri", default=None,
                        help="MLflow tracking URI: http://HOST:PORT, file:./mlruns, "
                        "sqlite:///mlflow.db (default $MLFLOW_TRACKING_URI, else MLflow's)")


def overrides_from_args(args: Any, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """TrainConfig fields set by :func:`add_arguments`'s flags (merged into ``base``'s
    ``tracking``)."""
    out: dict[str, Any] = {}
    if getattr(args, "logger", None):
        out["loggers"] = list(dict.fromkeys(args.logger))
    tracking = dict((base or {}).get("tracking") or {})
    if getattr(args, "experiment", None):
        tracking["experiment"] = args.experiment
    if getattr(args, "mlflow_uri", None):
        tracking["mlflow_uri"] = args.mlflow_uri
    if tracking:
        out["tracking"] = tracking
    return out
