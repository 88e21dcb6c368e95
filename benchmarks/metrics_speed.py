"""Speed of dislab's evaluation on dSprites: encoding, every default metric, DCI's booster.

Prints
* encoding images/s of a plain eval-mode PyTorch loop (batch 64, float images, ``no_grad``)
  and of :func:`dislab.representation.encode_rows` over the same images, and their ratio (a
  second call: the first, also printed, pays the once-per-process tracing and threading choice);
* the time to encode the full grid (737,280 images) into a code table;
* the time of each default metric on the cached table, and the total;
* DCI with the compiled booster vs scikit-learn's ``GradientBoostingClassifier`` (the
  reference) on the same codes: both results, the largest absolute gap, both times;
* a two-metric evaluation (``--lazy-metrics``, default ``mig,sap``) through a lazy code table,
  which encodes only the grid points those metrics look at, against the full suite (full-grid
  encoding plus every metric) and against the full-grid encoding alone, with its values next to
  the full table's for the same seed (with ``--run``, also ``evaluate_run`` on the run folder,
  model loading and ``codes.npz`` included).

The encoder is a randomly initialised study conv encoder (``dislab.models.create("beta_vae",
(1, 64, 64))``), or a trained run's (``--run RUN_DIR``); the data set is procedural dSprites
(``dislab.data.load("dsprites")``) unless ``--path`` gives the official file.

    .venv/bin/python benchmarks/metrics_speed.py                 # everything (~10 min, 2 cores)
    .venv/bin/python benchmarks/metrics_speed.py --no-reference  # skip sklearn's slow DCI
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def _plain_loop(model: torch.nn.Module, data, index: np.ndarray, batch: int = 64) -> float:
    """images/s of the straightforward loop a user would write (codes copied back)."""
    model.eval()
    device = next(model.parameters()).device
    t = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(index), batch):
            x = torch.from_numpy(data.images_from_index(index[s:s + batch])).to(device)
            model.encode(x)[0].cpu()
    return len(index) / (time.perf_counter() - t)


def _synthetic_table(data) -> object:
    """Codes like a partly disentangled VAE's: 5 informative (one mixed) + 5 collapsed dims."""
    from dislab.metrics import CodeTable

    rng = np.random.default_rng(0)
    f = data.factors(np.arange(len(data))).astype(np.float32)
    f = f / (np.asarray(data.factor_sizes, np.float32) - 1) * 2 - 1
    informative = np.tanh(1.5 * f) + 0.15 * rng.standard_normal(f.shape).astype(np.float32)
    informative[:, 1] += 0.5 * informative[:, 2]
    collapsed = 0.02 * rng.standard_normal((len(f), 5)).astype(np.float32)
    mean = np.concatenate([informative, collapsed], axis=1).astype(np.float32)
    logvar = np.concatenate([np.full_like(informative, -3.0), np.full_like(collapsed, -0.01)],
                            axis=1)
    return CodeTable(mean, logvar)


def _lazy_section(out: dict, model, data, table, names: list[str], args) -> None:
    """Time ``names`` on a lazy table (encoding included) against the full-grid figures."""
    from dislab.metrics import CodeTable
    from dislab.metrics.suite import run_metrics
    from dislab.representation import encode_rows

    full = run_metrics(table, data, names, seed=args.seed)
    t = time.perf_counter()
    lazy = CodeTable.lazy(data, lambda idx: encode_rows(model, data, idx, progress=False),
                          first=128)
    res = run_metrics(lazy, data, names, seed=args.seed)
    seconds = time.perf_counter() - t
    values = {k: r["values"] for k, r in res["results"].items()}
    want = {k: r["values"] for k, r in full["results"].items()}
    gap = float(np.abs(lazy.mean - table.mean[lazy.index]).max())
    key = ",".join(names)
    out["lazy"] = {"metrics": key, "seconds": seconds, "rows_encoded": int(lazy.encoded),
                   "values": values, "full_table_values": want, "equal": values == want,
                   "max_abs_code_gap": gap,
                   "ratio_to_full_grid_encoding": seconds / out["encode_full_seconds"],
                   "ratio_to_full_suite": seconds / out["suite_total_seconds"]}
    print(f"{key} through a lazy table: {seconds:.1f}s, {lazy.encoded:,} of {len(data):,} "
          f"images encoded; {seconds / out['encode_full_seconds']:.3f}x the full-grid "
          f"encoding ({out['encode_full_seconds']:.1f}s), "
          f"{seconds / out['suite_total_seconds']:.3f}x the full suite "
          f"({out['suite_total_seconds']:.1f}s)")
    print(f"  values {'EQUAL' if values == want else 'DIFFER'} to the full table's "
          f"(largest code gap {gap:.2g}): {json.dumps(values)}", flush=True)
    if args.run:
        from dislab.metrics import evaluate_run

        t = time.perf_counter()
        rec = evaluate_run(args.run, metrics=key, seed=args.seed, device=args.device,
                           reencode=True, progress=False)
        run_seconds = time.perf_counter() - t
        got = {k: rec["metrics"][k]["values"] for k in names if k in rec["metrics"]}
        out["lazy"].update(evaluate_run_seconds=run_seconds, evaluate_run_values=got,
                           evaluate_run_equal=got == want,
                           evaluate_run_ratio_to_full_grid_encoding=(
                               run_seconds / out["encode_full_seconds"]))
        print(f"  evaluate_run {args.run} --metrics {key} (fresh codes.npz): "
              f"{run_seconds:.1f}s, {run_seconds / out['encode_full_seconds']:.3f}x the "
              f"full-grid encoding; values {'EQUAL' if got == want else 'DIFFER'}",
              flush=True)


def main() -> None:
    import dislab
    from dislab import data as dd
    from dislab import models
    from dislab.metrics import CodeTable, default_metrics
    from dislab.metrics.dci import dci
    from dislab.metrics.suite import metric_rng, run_metrics
    from dislab.representation import encode_grid, encode_rows

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--path", default=None, help="official dSprites .npz (default: procedural)")
    p.add_argument("--images", type=int, default=16384,
                   help="images for the plain-vs-dislab encoding ratio (default 16384)")
    p.add_argument("--codes", default=None,
                   help="reuse a code table (.npz) instead of encoding the full grid")
    p.add_argument("--synthetic", action="store_true",
                   help="skip the full-grid encoding: time the metrics on a synthetic table "
                   "(noisy, partly mixed functions of the factors) and extrapolate the encoding "
                   "time from the measured rate")
    p.add_argument("--save-codes", default=None, help="write the encoded table here")
    p.add_argument("--metrics", default=None, help="metrics to time (default: default suite)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip DCI with sklearn's GradientBoostingClassifier (minutes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="the encoder's device (cpu, cuda)")
    p.add_argument("--json", default=None, help="also write the figures as JSON here")
    p.add_argument("--run", default=None, metavar="RUN_DIR",
                   help="a dSprites training run: its encoder instead of a random one, and "
                   "evaluate_run timed on it (rewrites its codes.npz and metrics.json)")
    p.add_argument("--lazy-metrics", default="mig,sap",
                   help="metrics of the lazy-table evaluation (default mig,sap)")
    args = p.parse_args()

    torch.manual_seed(0)
    data = dd.load("dsprites", path=args.path)
    if args.run:
        from dislab.train import load_run

        model, _ = load_run(args.run, device=args.device)
        model.eval()
    else:
        model = models.create("beta_vae", data.observation_shape).eval().to(args.device)
    out: dict = {"dislab_version": dislab.__version__, "torch_threads": torch.get_num_threads(),
                 "num_images": len(data), "device": args.device}
    print(f"data {data!r}, torch threads {torch.get_num_threads()}", flush=True)

    # -- encoding ratio (same images, same encoder; plain first, then dislab, then plain) ---
    index = np.random.default_rng(0).integers(0, len(data), args.images)
    # first call: pays the once-per-process costs (tracing, the timed choice of threading,
    # the allocator, the renderer's sprite cache); reported, then the steady state is compared
    t = time.perf_counter()
    encode_rows(model, data, index, progress=False)
    first = args.images / (time.perf_counter() - t)
    plain1 = _plain_loop(model, data, index)
    t = time.perf_counter()
    encode_rows(model, data, index, progress=False)
    ours = args.images / (time.perf_counter() - t)
    plain2 = _plain_loop(model, data, index)
    plain = (plain1 + plain2) / 2
    out.update(plain_images_per_s=plain, dislab_images_per_s=ours, encode_ratio=ours / plain,
               dislab_first_call_images_per_s=first)
    print(f"encoding: plain loop {plain:,.0f} img/s (runs {plain1:,.0f}, {plain2:,.0f}); "
          f"dislab {ours:,.0f} img/s; ratio {ours / plain:.2f}x (first call, with tracing and "
          f"the threading choice: {first:,.0f} img/s, {first / plain:.2f}x)", flush=True)

    # -- the full grid -----------------------------------------------------------------
    if args.codes:
        table = CodeTable.load(args.codes)
        out["encode_full_seconds"] = None
        print(f"code table loaded from {args.codes}")
    elif args.synthetic:
        table = _synthetic_table(data)
        out["encode_full_seconds"] = None
        out["encode_full_seconds_extrapolated"] = len(data) / ours
        print(f"synthetic code table; encoding all {len(data):,} images at the measured rate "
              f"would take {len(data) / ours:.0f}s")
    else:
        t = time.perf_counter()
        table = encode_grid(model, data, progress=True)
        out["encode_full_seconds"] = time.perf_counter() - t
        print(f"encoded all {len(data):,} images in {out['encode_full_seconds']:.1f}s "
              f"({len(data) / out['encode_full_seconds']:,.0f} img/s)")
        if args.save_codes:
            table.save(args.save_codes)

    # -- every default metric on the cached table --------------------------------------
    names = args.metrics.split(",") if args.metrics else default_metrics()
    print("per-metric seconds on the cached table:", flush=True)
    out["metric_seconds"], out["skipped"] = {}, {}
    total = 0.0
    for name in names:
        res = run_metrics(table, data, [name], seed=args.seed, progress=False)
        out["skipped"].update(res["skipped"])
        for k, r in res["results"].items():
            out["metric_seconds"][k] = r["seconds"]
            total += r["seconds"]
            print(f"  {k:34s} {r['seconds']:7.2f}s", flush=True)
    out["metrics_total_seconds"] = total
    print(f"all metrics: {total:.1f}s")
    if out["encode_full_seconds"] is not None:
        out["suite_total_seconds"] = out["encode_full_seconds"] + total
        print(f"whole suite (encoding + metrics): {out['suite_total_seconds']:.1f}s")

    # -- the chosen metrics through a lazy table: only the rows they look at are encoded ---
    lazy_names = [m for m in args.lazy_metrics.split(",") if m]
    if out["encode_full_seconds"] is not None:
        _lazy_section(out, model, data, table, lazy_names, args)

    # -- DCI: compiled booster vs the sklearn reference on the same codes ----------------
    from dislab.metrics import boosting

    boosting._MEMO.clear()  # time real fits, not the suite's memoised ones
    t = time.perf_counter()
    fast = dci(data, table, metric_rng(args.seed, "dci"), booster="fast")
    t_fast = time.perf_counter() - t
    out.update(dci_fast=fast, dci_fast_seconds=t_fast)
    print(f"DCI fast      {t_fast:7.1f}s  {json.dumps({k: round(v, 4) for k, v in fast.items()})}")
    if not args.no_reference:
        t = time.perf_counter()
        ref = dci(data, table, metric_rng(args.seed, "dci"), booster="reference")
        t_ref = time.perf_counter() - t
        gap = max(abs(fast[k] - ref[k]) for k in ref)
        out.update(dci_reference=ref, dci_reference_seconds=t_ref, dci_max_abs_gap=gap)
        print(f"DCI reference {t_ref:7.1f}s  "
              f"{json.dumps({k: round(v, 4) for k, v in ref.items()})}")
        print(f"DCI largest |fast - reference| = {gap:.4f} (speed-up {t_ref / t_fast:.1f}x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=float)


if __name__ == "__main__":
    main()
