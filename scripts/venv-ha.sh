#!/usr/bin/env bash
# scripts/venv-ha.sh PYTHON VENV: the Home Assistant tests' virtualenv. Home Assistant
# 2025.4 needs Python 3.13; its core and test harness are pinned in tests_ha/requirements.txt,
# and iotvideo (the integration's requirement: the app SDK) is installed editable beside them.
set -euo pipefail
python=$1 venv=$2
version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
if [[ $(version "$python") != 3.13 ]]; then
    echo "Home Assistant's tests need Python 3.13 (found $(version "$python")); set PYTHON=" >&2
    exit 1
fi
if [[ -x $venv/bin/python && $(version "$venv/bin/python") != $(version "$python") ]]; then
    rm -rf "$venv"
fi
[[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r tests_ha/requirements.txt -e .
