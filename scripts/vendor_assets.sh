#!/usr/bin/env bash
# Refresh the vendored front-end assets in static/vendor/ from the npm packages pinned in package.json.
#
#   scripts/vendor_assets.sh            # npm ci (or npm install without a lock file), then copy
#   scripts/vendor_assets.sh --no-install   # copy from an existing node_modules/ only
#
# The page loads nothing from a CDN: everything it needs is served from static/ (CSP 'self').
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "${1:-}" != "--no-install" ]]; then
    if [[ -f package-lock.json ]]; then
        npm ci --no-audit --no-fund
    else
        npm install --no-audit --no-fund
    fi
fi

src=node_modules/jquery
dest=static/vendor
if [[ ! -f "$src/dist/jquery.min.js" ]]; then
    echo "vendor_assets: $src/dist/jquery.min.js not found; run npm install first" >&2
    exit 1
fi

mkdir -p "$dest"
cp "$src/dist/jquery.min.js" "$dest/jquery.min.js"
cp "$src/LICENSE.txt" "$dest/jquery.LICENSE.txt"

version=$(node -p "require('./$src/package.json').version")
echo "vendor_assets: jquery $version -> $dest/"
