#!/usr/bin/env bash
# scripts/vendor-hls.sh [VERSION]: refresh the console's copy of hls.js (the npm package's
# light ES-module build and its licence) in src/iotvideo/cloud/console/vendor/. The copy is
# committed, so neither the console nor its tests need the network or a build step; run
# this (it needs npm) only to move to another hls.js release, then run the console tests.
set -euo pipefail
version=${1:-1.7.4}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "hls.js@$version" >/dev/null && tar xzf hls.js-*.tgz)
dest=$here/src/iotvideo/cloud/console/vendor
sed '/^\/\/# sourceMappingURL=/d' "$work/package/dist/hls.light.min.mjs" >"$dest/hls.light.min.mjs"
cp "$work/package/LICENSE" "$dest/hls.js-LICENSE"
echo "hls.js $version -> $dest"
