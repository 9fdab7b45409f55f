#!/usr/bin/env bash
# scripts/venv.sh PYTHON VENV EXTRAS: make VENV with PYTHON (anew when it holds another
# Python version) and install iotvideo in it, editable, with EXTRAS.
set -euo pipefail
python=$1 venv=$2 extras=$3
version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
if [[ -x $venv/bin/python && $(version "$venv/bin/python") != $(version "$python") ]]; then
    echo "$venv holds Python $(version "$venv/bin/python"); making it anew with $(version "$python")" >&2
    rm -rf "$venv"
fi
[[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
