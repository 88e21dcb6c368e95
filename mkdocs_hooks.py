"""mkdocs hook: the API reference pages (docs/api/<subpackage>.md) are generated at build time
from the package tree, so a new module is documented (and checked by --strict) without
editing the docs."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

SRC = Path(__file__).parent / "src" / "dislab"


def _page(package: str, modules: list[str]) -> str:
    lines = [f"# {package}", "", f"::: {package}", "    options:",
             "      show_submodules: false", ""]
    for module in modules:
        lines += [f"::: {module}", ""]
    return "\n".join(lines)


def on_files(files, config):  # noqa: ANN001, ANN201 - mkdocs' hook signature
    for pkg in sorted(p for p in SRC.iterdir() if (p / "__init__.py").exists()):
        modules = [f"dislab.{pkg.name}.{m.stem}" for m in sorted(pkg.glob("*.py"))
                   if m.stem != "__init__"]
        uri = f"api/{pkg.name}.md"
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, content=_page(f"dislab.{pkg.name}", modules)))
    top = [f"dislab.{m.stem}" for m in sorted(SRC.glob("*.py")) if m.stem != "__init__"]
    existing = files.get_file_from_path("api/dislab.md")
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, "api/dislab.md", content=_page("dislab", top)))
    return files
