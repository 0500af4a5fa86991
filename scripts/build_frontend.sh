#!/usr/bin/env bash
# Builds the browser code: the web chat widget and the agent workspace (htmx 2, Alpine CSP build).
# Installs the pinned npm packages (package-lock.json) when needed, then bundles with esbuild into
# src/caredesk/web/static/widget/ and src/caredesk/ui/static/dist/ (both gitignored).
set -euo pipefail
cd "$(dirname "$0")/../widget"
if [ ! -x node_modules/.bin/esbuild ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi
node build.mjs
