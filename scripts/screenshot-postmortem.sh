#!/usr/bin/env bash
# Opens the quick start's incident and postmortem in headless Chromium and
# saves screenshots, to check what a responder sees (issue view and
# postmortem page of the Atlassian emulator).
# Needs Debian's chromium (apt-get install -y chromium). Usage:
#   scripts/screenshot-postmortem.sh [OUTDIR]     (default: ./screenshots)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-screenshots}"
mkdir -p "$out"
log="$(mktemp)"
go run ./cmd/quickstart -listen 127.0.0.1:18080 -emulator 127.0.0.1:18081 >"$log" 2>/dev/null &
qs=$!
trap 'kill $qs 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 300); do grep -q "Confluence page:" "$log" && break; sleep 0.2; done
# Add news so the timeline shows an update.
curl -sS -X POST http://127.0.0.1:18080/ -H 'Content-Type: application/json' \
  --data-binary @testdata/fixtures/analysisrun-failed.json >/dev/null
page="$(awk '/Confluence page:/ {print $3}' "$log")"
issue="$(awk '/Jira issue:/ {print $4}' "$log")"
shot() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d)" --window-size=1280,2400 --screenshot="$1" "$2" 2>/dev/null
}
shot "$out/postmortem.png" "$page"
shot "$out/issue.png" "$issue"
echo "saved $out/postmortem.png ($page) and $out/issue.png ($issue)"
