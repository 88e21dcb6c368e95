"""``dislab data list | render | show``: the data sets from the command line."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from typing import Any

import numpy as np

from dislab import tiny
from dislab.cli import parse_assignments
from dislab.data.base import _REGISTRY, DataError, GroundTruthData, available, load

__all__ = ["register"]


def _parse_options(items: list[str] | None) -> dict[str, Any]:
    """The ``--option KEY=VALUE`` items (:func:`dislab.cli.parse_assignments`)."""
    return parse_assignments(items, "--option")


def _evenly(size: int, n: int) -> list[int]:
    if not 1 <= n <= size:
        raise DataError(f"cannot keep {n} of {size} values; use 1..{size}.")
    return sorted({int(round(x)) for x in np.linspace(0, size - 1, n)})


def _parse_subset(keep: list[str] | None, subset: list[str] | None,
                  data: GroundTruthData) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for item, explicit in [(k, False) for k in keep or []] + [(s, True) for s in subset or []]:
        if "=" not in item:
            raise DataError(f"expected FACTOR=..., got {item!r}.")
        name, val = item.split("=", 1)
        size = data.factor_sizes[data.factor_index(name)]
        try:
            ints = [int(v) for v in val.split(",") if v.strip() != ""]
        except ValueError:
            raise DataError(f"bad value in {item!r}; use integers.") from None
        if explicit:
            out[name] = ints
        elif len(ints) == 1:
            out[name] = _evenly(size, ints[0])
        else:
            raise DataError(f"--keep {item!r}: give one count, e.g. {name}=4.")
    return out


def _cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for name, desc in available().items():
        info: dict[str, Any] = {"name": name, "description": desc}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                d = load(name)
            info.update(d.describe())
            info["name"] = name
            info["source"] = "procedural (or the official file with --path)"
        except DataError:
            info["source"] = ("folder (needs --path DIR)" if name in ("images", "folder")
                              else "file (needs --path: the official file)")
        info.pop("factor_values", None)
        rows.append(info)
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    for r in rows:
        print(f"{r['name']}")
        print(f"    {r['description']}")
        if "factor_names" in r:
            facs = ", ".join(f"{n} {s}" for n, s in zip(r["factor_names"], r["factor_sizes"]))
            shape = "x".join(str(s) for s in r["observation_shape"])
            print(f"    factors: {facs}   observation {shape}   {r['num_images']:,} images")
        print(f"    source: {r['source']}")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    key = args.name.lower().replace("-", "_")
    data = load(args.name, **_parse_options(args.option))  # validates the name and options
    module = importlib.import_module(_REGISTRY[key].__module__)
    writer = getattr(module, "render_to_file", None)
    if writer is None or data.source != "procedural":
        raise DataError(
            f"{args.name} has no renderer that writes files; it is read from the official "
            "files only (see `dislab data list`)."
        )
    subset = _parse_subset(args.keep, args.subset, data)
    subset = tiny.render_subset(data.factor_names, data.factor_sizes, subset)  # DISLAB_TINY
    if key not in ("dsprites", "dsprites_full", "shapes3d") and "dsprites" in key:
        print(f"note: writing the dSprites grid; {args.name} is computed from it at load time "
              f"(dislab.data.load({args.name!r}, path=...)).", file=sys.stderr)
    path = writer(args.out, subset=subset or None, progress=not args.quiet, overwrite=args.force,
                  **_parse_options(args.option))
    print(path)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from dislab.data.show import show_grid

    data = load(args.name, path=args.path, **_parse_options(args.option))
    path = show_grid(data, args.out, samples=args.samples, steps=args.steps, seed=args.seed)
    print(path)
    return 0


def register(subparsers: Any) -> None:
    """Add ``dislab data ...`` to the top-level parser."""
    p = subparsers.add_parser(
        "data", help="list, render and look at the ground-truth data sets",
        description="Ground-truth data sets: list them, render procedural ones into the "
        "official file formats, draw samples and factor sweeps.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])

    pl = sub.add_parser("list", help="data sets with their factors, sizes and source",
                        description="Every registered data set: factors and sizes, observation "
                        "shape, and whether it is rendered procedurally or read from a file.")
    pl.add_argument("--json", action="store_true", help="print JSON instead of text")
    pl.set_defaults(func=_cmd_list)

    pr = sub.add_parser(
        "render", help="render a procedural data set into its official file format",
        description="Render a procedural data set and write it in the official format "
        "(dsprites -> .npz like dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz, "
        "shapes3d -> .h5 like 3dshapes.h5). The full grid by default; --keep/--subset write "
        "a smaller grid (e.g. for tests). The loaders read these files with path=FILE.",
        epilog="example: dislab data render dsprites --out dsprites.npz\n"
        "         dislab data render dsprites --out small.npz --keep posX=4 --keep posY=4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pr.add_argument("name", help="data set name (see `dislab data list`)")
    pr.add_argument("--out", required=True, help="file to write (refuses to overwrite)")
    pr.add_argument("--keep", action="append", metavar="FACTOR=N",
                    help="keep N evenly spaced values of FACTOR (repeatable)")
    pr.add_argument("--subset", action="append", metavar="FACTOR=i,j,...",
                    help="keep these value indices of FACTOR (repeatable)")
    pr.add_argument("--option", action="append", metavar="KEY=VALUE",
                    help="data set option passed to the renderer (repeatable)")
    pr.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_cmd_render)

    ps = sub.add_parser(
        "show", help="save a PNG of random samples and one sweep per factor",
        description="Draw random samples and, for every factor, a row sweeping that factor "
        "with the others fixed (labelled with the factor names and values).",
        epilog="example: dislab data show dsprites --out dsprites.png\n"
        "         dislab data show dsprites --path dsprites_ndarray_co1sh3sc6or40x32y32_64x64"
        ".npz --out real.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ps.add_argument("name", help="data set name (see `dislab data list`)")
    ps.add_argument("--path", default=None,
                    help="the official file (default: render procedurally where possible)")
    ps.add_argument("--out", required=True, help="PNG file to write")
    ps.add_argument("--samples", type=int, default=16, help="random samples (default 16)")
    ps.add_argument("--steps", type=int, default=10, help="values per factor sweep (default 10)")
    ps.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ps.add_argument("--option", action="append", metavar="KEY=VALUE",
                    help="data set option, e.g. scream_path=scream.jpg (repeatable)")
    ps.set_defaults(func=_cmd_show)

    from dislab.data import fetch  # `dislab data fetch NAME`

    fetch.register(sub)
