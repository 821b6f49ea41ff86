#!/usr/bin/env bash
# The local profile: `func run --builder=host` against the Atlassian emulator,
# so that `func invoke` opens incidents you can read at http://127.0.0.1:8081/.
#
#   LOCAL RUNS ONLY. The profile turns caller authentication off
#   (ALLOW_UNAUTHENTICATED=true, no AUTH_TOKEN), because `func invoke` cannot
#   send an Authorization header: anyone who can reach the port can open
#   incidents. Never deploy with these settings.
#
# Usage, from anywhere (needs the func CLI v0.49 or later, Go, and bash):
#   scripts/func-run-local.sh [more `func run` flags, e.g. --address 127.0.0.1:8090]
# then, in another terminal, from the repository root:
#   func invoke --file testdata/fixtures/rollout-notification-webhook.json
#
# Without EMULATOR_URL it starts the emulator (go run ./cmd/atlassian-emulator)
# on 127.0.0.1:8081 and stops it when func run ends (Ctrl-C); with
# EMULATOR_URL=http://host:port it uses the emulator already running there.
#
# What the profile changes in func.yaml's run.envs, and why:
#   JIRA_URL=<emulator>          instead of {{ env:JIRA_URL }}
#   ATLASSIAN_SECRET_ID-         no AWS Secrets Manager: credentials from the environment
#   AWS_REGION-                  not needed then ({{ env:AWS_REGION }} would fail if unset)
#   ATLASSIAN_EMAIL, ATLASSIAN_API_TOKEN   the emulator's fixed credentials
#   AUTH_TOKEN-                  func run would pass '{{ secret:… }}' literally as the token
#   ALLOW_UNAUTHENTICATED=true   see above
set -euo pipefail
set +m # background jobs stay in this script's process group (spawn relies on it)
cd "$(dirname "$0")/.."
func="${FUNC:-func}"

fail() { echo "func-run-local: $*" >&2; exit 1; }
command -v "$func" >/dev/null || fail "the func CLI ($func) is not on PATH: install func v0.49 or later"

emulator_pgid=""
stop_emulator() {
  [ -n "$emulator_pgid" ] || return 0
  kill -TERM -- "-$emulator_pgid" 2>/dev/null || true
  wait "$emulator_pgid" 2>/dev/null || true
}
trap stop_emulator EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

emulator="${EMULATOR_URL:-}"
if [ -z "$emulator" ]; then
  emulator=http://127.0.0.1:8081
  if (exec 3<>/dev/tcp/127.0.0.1/8081) 2>/dev/null; then
    fail "127.0.0.1:8081 is in use (an emulator or a quick start already running?): stop it, or set EMULATOR_URL to use it"
  fi
  echo "func-run-local: starting the Atlassian emulator on $emulator (go run compiles it first: minutes on empty Go caches)"
  # In its own process group, so that stopping it also stops the binary go run started.
  setsid go run ./cmd/atlassian-emulator -listen 127.0.0.1:8081 &
  emulator_pgid=$!
  until (exec 3<>/dev/tcp/127.0.0.1/8081) 2>/dev/null; do
    kill -0 "$emulator_pgid" 2>/dev/null || fail "the emulator exited (its reason is above)"
    sleep 0.2
  done
fi

echo "func-run-local: func run with the local profile (unauthenticated, emulator at $emulator)"
"$func" run --builder=host \
  -e "JIRA_URL=$emulator" \
  -e ATLASSIAN_SECRET_ID- \
  -e AWS_REGION- \
  -e ATLASSIAN_EMAIL=bot@example.com \
  -e ATLASSIAN_API_TOKEN=emulator-token \
  -e AUTH_TOKEN- \
  -e ALLOW_UNAUTHENTICATED=true \
  "$@"
