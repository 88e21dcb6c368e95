"""``dislab train`` and ``dislab models``.

Every hyper-parameter of every registered method is a flag (``--beta``, ``--gamma``,
``--c-max`` ...), built from the methods' ``hparams`` tables, so a new method gets its flags
without touching this file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dislab.cli import parse_assignments, parse_value
from dislab.errors import DislabError
from dislab.io import as_float

__all__ = ["register", "hparam_table", "config_from_args"]

# TrainConfig fields set by dedicated flags: (flag, dest/field, type, help)
_CORE_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--model", "model", str, "method name (see `dislab models`), e.g. beta_vae"),
    ("--data", "data", str, "data set name (see `dislab data list`); default dsprites"),
    ("--data-path", "data_path", str,
     "the official data file (default: render the data set procedurally)"),
    ("--latent-dim", "latent_dim", int, "number of latent dimensions (default 10, the study's)"),
    ("--arch", "arch", str, "architecture: conv (default, the study's) or mlp"),
    ("--reconstruction", "reconstruction", str, "bernoulli (default) or gaussian"),
    ("--steps", "steps", int, "optimiser updates (default 300000, the study's)"),
    ("--batch-size", "batch_size", int, "batch size (default 64, the study's)"),
    ("--lr", "lr", float, "Adam learning rate (default 1e-4, the study's)"),
    ("--beta1", "beta1", float, "Adam beta1 (default 0.9)"),
    ("--beta2", "beta2", float, "Adam beta2 (default 0.999)"),
    ("--eps", "eps", float, "Adam epsilon (default 1e-8)"),
    ("--seed", "seed", int, "random seed of torch, numpy and the data sampler (default 0)"),
    ("--device", "device", str, "auto (default: CUDA if available, else CPU), cpu, cuda, cuda:N"),
    ("--out", "out", str, "run folder (default runs/run)"),
    ("--checkpoint-every", "checkpoint_every", int, "steps between checkpoints (default 5000)"),
    ("--log-every", "log_every", int, "steps between logged scalars (default 100)"),
    ("--image-every", "image_every", int,
     "steps between reconstruction/traversal images (default 10000; 0: only at the end)"),
    ("--threads", "threads", int, "CPU threads for PyTorch (default: PyTorch's choice)"),
]
_CORE_DESTS = {d for _, d, _, _ in _CORE_FLAGS} | {"config", "resume", "compile", "quiet",
                                                   "print_config", "data_option",
                                                   "pair_option",
                                                   "channels_last", "no_tensorboard",
                                                   "no_prefetch", "deterministic", "hparam"}


def hparam_table() -> dict[str, list[tuple[str, Any]]]:
    """``{hparam name: [(method name, HParam), ...]}`` over all registered methods."""
    from dislab import models

    table: dict[str, list[tuple[str, Any]]] = {}
    for name, cls in models.available().items():
        for hp_name, hp in cls.hparams.items():
            table.setdefault(hp_name, []).append((name, hp))
    return table


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(subparsers: Any) -> None:
    """Add ``train`` and ``models`` to the ``dislab`` command line."""
    p = subparsers.add_parser(
        "train",
        help="train a method (β-VAE, FactorVAE, β-TCVAE, ...) and write a run folder",
        description="Train a disentanglement method. Defaults are the large-scale study's "
        "(Adam 1e-4, batch 64, 300000 steps, 10 latents, conv nets). Flags override the values "
        "of --config. The run folder holds config.json, model.safetensors, checkpoint/, "
        "history.jsonl, images/, tb/ and status.json.",
        epilog="examples:\n"
        "  dislab train --model beta_tcvae --data dsprites --beta 6 --steps 20000 --out runs/x\n"
        "  dislab train --out runs/x --resume      # continue runs/x from its checkpoint\n"
        "  dislab train --config runs/x/config.json --seed 1 --out runs/y   # same, another seed\n"
        "  dislab models            # methods, their hyper-parameters and defaults",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="a JSON training config (TrainConfig fields); "
                   "flags given on the command line override it")
    for flag, dest, typ, help_ in _CORE_FLAGS:
        p.add_argument(flag, dest=dest, type=typ, default=None, help=help_)
    p.add_argument("--data-option", dest="data_option", action="append", default=[],
                   metavar="KEY=VALUE", help="data set loader option (repeatable)")
    p.add_argument("--pair-option", dest="pair_option", action="append", default=[],
                   metavar="KEY=VALUE", help="pair sampler option for methods trained on pairs "
                   "(slow_vae, pcl, ada_gvae): rate, edge, fixed_factors, changes (e.g. "
                   "changes=1: pairs differ in one factor), dynamics=locatello with k (Locatello "
                   "et al. 2020's pairs, ada_gvae's default); repeatable")
    p.add_argument("--compile", choices=["auto", "on", "off"], default=None,
                   help="torch.compile the objective (default auto)")
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default=None,
                   help="channels-last memory format for image models (default auto)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write tb/")
    from dislab.train import tracking

    tracking.add_arguments(p)
    p.add_argument("--no-prefetch", action="store_true",
                   help="prepare batches in the training thread (no background thread)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels only: bit-identical reruns and resumes on CUDA "
                   "(may be slower; CPU runs are deterministic anyway)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (exactly)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config as JSON and exit without training")
    p.add_argument("--hparam", action="append", default=[], metavar="NAME=VALUE",
                   help="any method hyper-parameter by name (same as its own flag)")
    group = p.add_argument_group(
        "method hyper-parameters",
        "each applies to the methods named in its help; `dislab models` lists all")
    for hp_name, owners in sorted(hparam_table().items()):
        if hp_name in _CORE_DESTS:
            continue
        desc = "; ".join(f"{m}: {hp.help} ({hp.valid_range()}; default {hp.default!r})"
                         for m, hp in owners)
        group.add_argument(_flag(hp_name), dest=f"hp__{hp_name}", type=parse_value,
                           default=None, metavar="V", help=desc)
    p.set_defaults(func=_train)

    m = subparsers.add_parser(
        "models", help="list the methods with their hyper-parameters, defaults and sources",
        description="List the registered methods: name, what it is, batch kind, and each "
        "hyper-parameter with its default and where the default comes from.")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(func=_models)


def config_from_args(args: argparse.Namespace) -> Any:
    """The TrainConfig described by ``--config`` plus the flags given on the command line."""
    from dislab.train.config import TrainConfig

    base: dict[str, Any] = {}
    if args.config:
        base = TrainConfig.from_json(args.config).to_dict()
        folder = Path(args.config).resolve().parent
        if args.resume and args.out is None and _is_run_folder(folder):
            # A run's own config.json: its folder is the run, wherever the command runs from
            # (the saved 'out' may be relative to another working directory).
            base["out"] = str(folder)
    elif args.resume:
        if args.out is None:
            raise DislabError("--resume needs the run folder: dislab train --out DIR --resume "
                              "(or --config DIR/config.json --resume).")
        saved = Path(args.out) / "config.json"
        if not saved.is_file():
            raise DislabError(
                f"Nothing to resume in {str(Path(args.out).resolve())!r}: it holds no run (no "
                "config.json). Check --out, or start a new run there with --model NAME "
                "(without --resume)."
            )
        base = TrainConfig.from_json(saved).to_dict()
    for _, dest, _, _ in _CORE_FLAGS:
        value = getattr(args, dest, None)
        if value is not None:
            base[dest] = value
    for items, key, flag in ((args.data_option, "data_options", "--data-option"),
                             (args.pair_option, "pair_options", "--pair-option")):
        if items:
            base[key] = {**(base.get(key) or {}), **parse_assignments(items, flag)}
    for name, flag in (("compile", args.compile), ("channels_last", args.channels_last)):
        if flag is not None:
            base[name] = {"auto": "auto", "on": True, "off": False}[flag]
    if args.no_tensorboard:
        base["tensorboard"] = False
    from dislab.train import tracking

    base.update(tracking.overrides_from_args(args, base))
    if args.no_prefetch:
        base["prefetch"] = False
    if args.deterministic:
        base["deterministic"] = True
    given = {k.replace("-", "_"): v
             for k, v in parse_assignments(args.hparam, "--hparam", "NAME=VALUE").items()}
    for key, value in vars(args).items():
        if key.startswith("hp__") and value is not None:
            given[key[4:]] = value
    if "model" not in base:
        raise DislabError("dislab train needs --model NAME (or --config FILE); "
                          "`dislab models` lists the methods.")
    if given:
        from dislab import models

        cls = models.get_class(base["model"])
        own = cls.hparams
        foreign = sorted(k for k in given if k not in own)
        if foreign:
            table = hparam_table()
            where = [f"{_flag(k)} belongs to "
                     f"{', '.join(m for m, _ in table.get(k, [])) or 'no method'}"
                     for k in foreign]
            valid = ", ".join(_flag(k) for k in own) or "none"
            raise DislabError(
                f"{', '.join(where)}; it is not a hyper-parameter of {cls.name!r} "
                f"(its hyper-parameters: {valid})."
            )
        hp = dict(base.get("hparams") or {})
        hp.update(given)
        base["hparams"] = hp
    return TrainConfig.from_dict(base)


def _is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` is a training run folder (config.json beside its status/checkpoint)."""
    return (folder / "config.json").is_file() and any(
        (folder / name).exists() for name in ("status.json", "checkpoint", "model.safetensors"))


def _train(args: argparse.Namespace) -> int:
    from dislab.train.loop import fit

    cfg = config_from_args(args)
    if args.print_config:
        from dislab import models

        cfg.hparams = models.get(cfg.model).resolve_hparams(dict(cfg.hparams))
        print(cfg.to_json())
        return 0
    run = fit(cfg, progress=not args.quiet, resume=args.resume)
    status = json.loads((run / "status.json").read_text())
    logs = status.get("final_logs") or {}
    summary = ", ".join(f"{k}={as_float(logs[k]):.4g}" for k in ("loss", "recon", "kl")
                        if k in logs)
    print(f"dislab: trained {cfg.model} for {status.get('step')} steps "
          f"({status.get('train_seconds', 0):.0f} s){'; ' + summary if summary else ''}. "
          f"Run folder: {run}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from dislab import models

    rows = []
    for name, cls in models.available().items():
        doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        rows.append({
            "name": name, "description": doc,
            "batch_kind": cls.batch_kind,
            "has_decoder": cls.has_decoder,
            "hparams": {k: {"default": hp.default, "help": hp.help, "source": hp.source,
                            "valid": hp.valid_range()}
                        for k, hp in cls.hparams.items()},
        })
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("No methods are registered.")
        return 0
    for r in rows:
        extra = "" if r["batch_kind"] == "single" else f"  [batches of {r['batch_kind']}]"
        print(f"{r['name']}: {r['description']}{extra}")
        if not r["hparams"]:
            print("    (no hyper-parameters)")
        for k, hp in r["hparams"].items():
            print(f"    {_flag(k):<22} {hp['default']!r:<10} {hp['help']} ({hp['valid']})")
            if hp["source"]:
                print(f"    {'':<33} source: {hp['source']}")
        print()
    print("Train one with: dislab train --model NAME [--HPARAM VALUE ...] --steps N --out DIR")
    return 0
