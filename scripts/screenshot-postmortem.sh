#!/usr/bin/env bash
# Runs the quick start, adds news to its incident (a failed AnalysisRun), and
# saves headless-Chromium screenshots of what a responder sees: the Jira issue
# view and the postmortem page of the Atlassian emulator.
#
# Usage: scripts/screenshot-postmortem.sh [OUTDIR]   (default: screenshots/ in the repository)
# Needs: Go, curl, and Chromium (Debian: apt-get install chromium).
# The quick start listens on FUNCTION_ADDR (default 127.0.0.1:18080) and the
# emulator on EMULATOR_ADDR (default 127.0.0.1:18081), both free beforehand;
# with port 0 the system picks a free one, and the last line names both.
#
# Everything it starts runs in process groups of its own and is stopped when
# it exits, whether it succeeded, failed or was interrupted, so it can run
# again at once. On failure it says why on stderr and exits non-zero.
set -euo pipefail
out="${1:-}"
case "$out" in "" | /*) ;; *) out="$PWD/$out" ;; esac # relative to where it was called from
cd "$(dirname "$0")/.."
out="${out:-$PWD/screenshots}"
fn_addr="${FUNCTION_ADDR:-127.0.0.1:18080}"
emu_addr="${EMULATOR_ADDR:-127.0.0.1:18081}"

fail() { echo "screenshot-postmortem: $*" >&2; exit 1; }

chromium="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$chromium" ] || fail "Chromium not found: install it (Debian: apt-get install chromium)"
command -v curl >/dev/null || fail "curl not found: install it"
command -v setsid >/dev/null || fail "setsid not found (util-linux)"
for addr in "$fn_addr" "$emu_addr"; do
  [ "${addr##*:}" = 0 ] && continue # the system picks a free port
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
    fail "$addr is in use (a quick start still running?): stop it, or set FUNCTION_ADDR / EMULATOR_ADDR"
  fi
done

work="$(mktemp -d)"
groups=() # process groups started here; each is stopped on exit

# running PID: the process exists and is not a zombie.
running() {
  local state
  state="$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" && [ -n "$state" ] && [ "$state" != Z ]
}

# stop_group PGID: SIGTERM the group, give its leader 10 s to finish,
# SIGKILL whatever is left in the group, and reap the leader.
stop_group() {
  local g=$1 i
  kill -TERM -- "-$g" 2>/dev/null || true
  for i in $(seq 50); do running "$g" || break; sleep 0.2; done
  kill -KILL -- "-$g" 2>/dev/null || true
  wait "$g" 2>/dev/null || true
}

cleanup() {
  local status=$? g
  trap - EXIT INT TERM
  for g in ${groups[@]+"${groups[@]}"}; do stop_group "$g"; done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# spawn CMD...: runs CMD in the background as the leader of a new session
# and process group (setsid does not fork: a background job is no group
# leader), so stop_group reaches CMD and everything it starts.
spawn() {
  setsid "$@" &
  spawned=$!
  groups+=("$spawned")
}

echo "building the quick start (the first build on empty Go caches takes minutes)..."
go build -o "$work/quickstart" ./cmd/quickstart || fail "go build ./cmd/quickstart failed (see above)"

log="$work/quickstart.log"
spawn "$work/quickstart" -listen "$fn_addr" -emulator "$emu_addr" >"$log" 2>&1
qs=$spawned
for _ in $(seq 300); do
  grep -q "Confluence page:" "$log" && break
  if ! running "$qs"; then
    sed 's/^/  | /' "$log" >&2
    fail "the quick start exited before opening its incident (its output is above)"
  fi
  sleep 0.2
done
grep -q "Confluence page:" "$log" || { sed 's/^/  | /' "$log" >&2; fail "the quick start opened no incident within 60 s (its output is above)"; }
issue="$(sed -n 's|^ *Jira issue: *[^ ]* *\(http[^ ]*\).*|\1|p' "$log")"
page="$(sed -n 's|^ *Confluence page: *\(http[^ ]*\).*|\1|p' "$log")"
fn_url="$(sed -n 's|.*\] function listening on \(http[^ ]*\).*|\1|p' "$log" | head -n 1)"
emu_url="$(sed -n 's|.*\] Atlassian emulator (Jira and Confluence) listening on \(http[^ ]*\)/.*|\1|p' "$log" | head -n 1)"
[ -n "$issue" ] && [ -n "$page" ] && [ -n "$fn_url" ] && [ -n "$emu_url" ] || { sed 's/^/  | /' "$log" >&2; fail "could not read the URLs from the quick start's output (above)"; }

# News for the same rollback, so the comment and the timeline row show.
curl -fsS -o /dev/null -X POST "$fn_url/" -H 'Content-Type: application/json' \
  --data-binary @testdata/fixtures/analysisrun-failed.json || fail "the AnalysisRun news was not accepted (curl's reason above)"

mkdir -p "$out"
# shot FILE URL: one screenshot, in its own process group, bounded in time.
shot() {
  local file=$1 url=$2 err="$work/chromium.err"
  rm -f "$file"
  spawn timeout 90 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$work/chromium-profile" --window-size=1280,2400 --screenshot="$file" "$url" \
    >"$err" 2>&1
  local status=0
  wait "$spawned" || status=$?
  stop_group "$spawned" # helpers Chromium may leave in its group
  if [ "$status" -ne 0 ] || [ ! -s "$file" ]; then
    tail -n 20 "$err" | sed 's/^/  | /' >&2
    fail "Chromium saved no screenshot of $url (exit status $status; its last lines are above)"
  fi
}
shot "$out/postmortem.png" "$page"
shot "$out/issue.png" "$issue"
echo "saved $out/postmortem.png ($page) and $out/issue.png ($issue)"
echo "the function listened on $fn_url and the emulator on $emu_url"
