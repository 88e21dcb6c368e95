"""Check that every file of the source package (modules, presets, templates) is installed.

Usage: python check_package_files.py SRC_PACKAGE_DIR INSTALLED_PACKAGE_DIR
"""

import sys
from pathlib import Path

src, installed = Path(sys.argv[1]), Path(sys.argv[2])
wanted = sorted(p.relative_to(src) for p in src.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc",))
missing = [str(p) for p in wanted if not (installed / p).is_file()]
if missing:
    sys.exit(f"missing from the installed package: {', '.join(missing)}")
print(f"package files: all {len(wanted)} present in {installed}")
