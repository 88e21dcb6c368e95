"""Fast stand-in run functions: exercise the study machinery without training anything.

``dislab study run SPEC --out DIR --run-fn dislab.study.fake:fake_run`` goes through planning,
the backends, the run folders, the table and the report in seconds. The metric values are a
deterministic function of the run (method, hyper-parameters, seed, data), shaped like the real
metrics' output (``{metric: {key: value}}``) so that every report plot has something to draw.

Each call appends one line to ``run_dir/calls.log`` (how tests count how often a run was
executed) and keeps its progress in ``run_dir/fake_progress.json`` (4 chunks), so an
interrupted run resumes where it stopped, like training does from its checkpoint.
Environment: ``DISLAB_FAKE_SLEEP`` = seconds one run takes (default 0).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["fake_run", "fake_run_nan", "fake_run_crash_once", "fake_metrics"]

_CHUNKS = 4


def _unit(*parts: Any) -> float:
    """A deterministic pseudo-random number in [0, 1) from ``parts``."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def fake_metrics(run: dict[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Metric values and final logs for ``run``: a smooth function of the main hyper-parameter
    (its log) plus seed noise, so hyper-parameter and seed both explain part of the variance."""
    hp = run["hparams"]
    strength = math.log1p(float(next(iter(hp.values()), 1.0))) if hp else 0.5
    method_shift = _unit(run["method"]) * 0.3
    seed_noise = _unit(run["data"], run["method"], hp, run["seed"]) - 0.5
    d = min(1.0, max(0.0, 0.15 * strength + method_shift + 0.3 * seed_noise))

    def noisy(scale: float, *key: Any) -> float:
        return scale * (_unit(run["data"], run["method"], hp, run["seed"], *key) - 0.5)

    metrics = {
        "beta_vae": {"train_accuracy": 0.6 + 0.4 * d + noisy(0.05, "b"),
                     "eval_accuracy": 0.6 + 0.4 * d + noisy(0.05, "be")},
        "factor_vae": {"train_accuracy": 0.4 + 0.6 * d + noisy(0.1, "f"),
                       "eval_accuracy": 0.4 + 0.6 * d + noisy(0.1, "fe"),
                       "num_active_dims": 10.0},
        "mig": {"discrete_mig": 0.5 * d + noisy(0.05, "m")},
        "dci": {"disentanglement": 0.8 * d + noisy(0.1, "d"),
                "completeness": 0.7 * d + noisy(0.1, "c"),
                "informativeness_train": 0.9, "informativeness_test": 0.85 + noisy(0.05, "i")},
        "sap": {"SAP_score": 0.1 * d + noisy(0.02, "s")},
        "modularity": {"modularity_score": 0.85 + noisy(0.1, "mo"),
                       "explicitness_score_train": 0.9, "explicitness_score_test": 0.88},
        "unsupervised": {"gaussian_total_correlation": 2.0 * (1 - d) + noisy(0.3, "t"),
                         "gaussian_total_correlation_sampled": 0.5 * (1 - d) + noisy(0.1, "ts"),
                         "mutual_info_score": 0.2 * (1 - d) + noisy(0.05, "mi")},
        "elbo_decomposition": {"tc": 3.0 * (1 - d) + noisy(0.5, "tc"), "mi": 2.0,
                               "dimwise_kl": 10.0},
        "downstream_logistic_regression": {
            "100:mean_test_accuracy": 0.5 + 0.2 * d + noisy(0.1, "d100"),
            "10000:mean_test_accuracy": 0.9 + noisy(0.05, "d10k")},
    }
    final_logs = {"loss": 60.0 + 40.0 * d + noisy(5.0, "l"),
                  "recon": 40.0 + 50.0 * d + noisy(5.0, "r"),
                  "kl": 30.0 * (1 - d) + 5.0}
    return metrics, final_logs


def fake_run(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """A run function that trains nothing (see the module docstring)."""
    run_dir = Path(run_dir)
    progress_file = run_dir / "fake_progress.json"
    start = 0
    if progress_file.exists():
        start = int(json.loads(progress_file.read_text())["chunk"])
    with open(run_dir / "calls.log", "a") as f:
        f.write(f"pid={os.getpid()} start_chunk={start}\n")
    sleep = float(os.environ.get("DISLAB_FAKE_SLEEP", "0") or 0)
    for chunk in range(start, _CHUNKS):
        time.sleep(sleep / _CHUNKS)
        progress_file.write_text(json.dumps({"chunk": chunk + 1}))
    metrics, final_logs = fake_metrics(run)
    return {"metrics": metrics, "train_seconds": sleep, "eval_seconds": 0.0,
            "final_logs": final_logs}


def fake_run_nan(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Like :func:`fake_run`, but every run with seed 1 fails as a NaN loss would."""
    if int(run["seed"]) == 1:
        with open(Path(run_dir) / "calls.log", "a") as f:
            f.write(f"pid={os.getpid()} nan\n")
        raise FloatingPointError("loss is NaN at step 3 (forced by fake_run_nan)")
    return fake_run(run, run_dir)


def fake_run_crash_once(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Like :func:`fake_run`, but the first call of each run ends its process abruptly (as a
    lost node or an out-of-memory kill would) after half the work; later calls resume."""
    marker = Path(run_dir) / "crashed_once"
    if not marker.exists():
        progress = Path(run_dir) / "fake_progress.json"
        progress.write_text(json.dumps({"chunk": _CHUNKS // 2}))
        marker.write_text("")
        with open(Path(run_dir) / "calls.log", "a") as f:
            f.write(f"pid={os.getpid()} crash\n")
        os._exit(1)
    return fake_run(run, run_dir)
