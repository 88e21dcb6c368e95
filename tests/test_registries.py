"""Registration fails loudly: a module that does not import raises instead of vanishing, and
data sets, methods and metrics share one registry vocabulary (register, get, names)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dislab import data, metrics, models
from dislab.errors import DislabError

# In a fresh interpreter: make one module unimportable (``sys.modules[name] = None`` makes its
# import raise ModuleNotFoundError), import the package that registers it, report what happened.
_PROBE = textwrap.dedent("""
    import importlib, sys
    cases = [("dislab.data", "dislab.data.mpi3d"), ("dislab.models", "dislab.models.pcl"),
             ("dislab.metrics", "dislab.metrics.sap"), ("dislab.cli", "dislab.study.cli")]
    for package, broken in cases:
        for name in [m for m in sys.modules if m == "dislab" or m.startswith("dislab.")]:
            del sys.modules[name]
        sys.modules[broken] = None
        try:
            module = importlib.import_module(package)
            if package == "dislab.cli":
                module.build_parser()
            print(package, "silent")
        except ImportError as e:
            print(package, "raised", e.name)
        del sys.modules[broken]
""")


def test_a_module_that_fails_to_import_raises() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True, timeout=300).stdout.split("\n")
    assert out[:4] == ["dislab.data raised dislab.data.mpi3d",
                       "dislab.models raised dislab.models.pcl",
                       "dislab.metrics raised dislab.metrics.sap",
                       "dislab.cli raised dislab.study.cli"]


@pytest.mark.parametrize("registry, name", [(data, "dsprites"), (models, "beta_vae"),
                                            (metrics, "mig")])
def test_one_registry_vocabulary(registry: object, name: str) -> None:
    names = registry.names()
    assert names == sorted(names) and name in names
    assert callable(registry.register)
    entry = registry.get(name)
    assert entry is not None
    with pytest.raises(DislabError, match="Unknown|unknown"):
        registry.get("no_such_entry")


def test_every_package_module_is_registered() -> None:
    # every method / data / metric module ships at least one entry (nothing silently dropped)
    assert {c.__module__ for c in models.available().values()} >= {
        f"dislab.models.{m}" for m in ("beta_vae", "annealed_vae", "factor_vae", "dip_vae",
                                       "beta_tcvae", "aae", "slow_vae", "pcl", "ada_gvae")}
    assert {metrics.get(n).fn.__module__ for n in metrics.names()} >= {
        "dislab.metrics.sap", "dislab.metrics.mig", "dislab.metrics.dci"}
    assert {data.get(n).__module__ for n in data.names()} >= {
        f"dislab.data.{m}" for m in ("dsprites", "shapes3d", "mpi3d", "smallnorb", "cars3d",
                                     "perturbed", "images")}
