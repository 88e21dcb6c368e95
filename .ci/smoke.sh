#!/usr/bin/env bash
# Smoke test of an installed (non-editable) dislab: run from a scratch folder with the
# package directory read-only, so a file missing from the wheel or a write into the
# installed package fails here. Usage: .ci/smoke.sh PYTHON (the fresh venv's python).
set -euo pipefail
PY=${1:?usage: .ci/smoke.sh PATH/TO/venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")  # absolute: the test runs elsewhere
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(dirname "$PY")
WORK=$(mktemp -d)
PKG=$(cd "$WORK" && "$PY" -c "import dislab, os; print(os.path.dirname(dislab.__file__))")
case "$PKG" in "$REPO"/src/*) echo "smoke: dislab was imported from the source tree ($PKG)"; exit 1;; esac
# Every file of src/dislab (modules, presets, templates) must be in the installed package.
"$PY" "$REPO/.ci/check_package_files.py" "$REPO/src/dislab" "$PKG"
chmod -R a-w "$PKG"
trap 'chmod -R u+w "$PKG"; rm -rf "$WORK"' EXIT
cd "$WORK"
touch "$WORK/.start"  # as root a read-only mode stops no write: the files' times are checked
"$BIN/dislab" --help > /dev/null
"$BIN/dislab" data list > /dev/null
"$BIN/dislab" study plan small_dsprites --no-measure > /dev/null  # a preset from the package
"$BIN/dislab" train --model beta_vae --steps 20 --batch-size 16 --log-every 5 \
    --checkpoint-every 20 --image-every 0 --threads 2 --compile off --quiet \
    --data-option 'subset={"orientation": 4, "posX": 8, "posY": 8}' --out run
# mig (histograms) and dci (the numba-compiled booster: its cache must not go to $PKG).
"$BIN/dislab" evaluate run --metrics mig,dci --param mig.num_train=500 \
    --param dci.num_train=500 --param dci.num_test=200 --quiet --device cpu
"$BIN/dislab" report run --quiet  # the HTML template comes from the package
test -s run/report/index.html
if [ -n "$(find "$PKG" -newer "$WORK/.start" -print -quit)" ]; then
    echo "smoke: something was written into the installed package:"
    find "$PKG" -newer "$WORK/.start"
    exit 1
fi
echo "smoke: ok ($PKG read-only)"
