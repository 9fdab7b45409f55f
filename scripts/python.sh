#!/usr/bin/env bash
# Print the newest Python that iotvideo supports (3.11 to 3.13) found on this machine:
# on PATH, or installed by pyenv. Exit 1 with the packages to install when there is none.
set -u
candidates=(python3.13 python3.12 python3.11 python3)
if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root 2>/dev/null)
    for dir in $(ls -d "$root"/versions/3.1[123]* 2>/dev/null | sort -rV); do
        candidates+=("$dir/bin/python3")
    done
fi
best="" best_minor=0
for c in "${candidates[@]}"; do
    minor=$("$c" -c 'import sys, venv, ensurepip; v = sys.version_info; print(v.minor if v[:2] >= (3, 11) and v[:2] < (3, 14) else 0)' 2>/dev/null) || continue
    if [[ -n $minor && $minor -gt $best_minor ]]; then
        best=$(command -v "$c" 2>/dev/null || echo "$c") best_minor=$minor
        [[ $best == */shims/* ]] && best=$("$c" -c 'import sys; print(sys.executable)')
    fi
done
if [[ -z $best ]]; then
    echo "iotvideo needs Python 3.11, 3.12 or 3.13 with venv: apt-get install python3 python3-venv" >&2
    exit 1
fi
echo "$best"
