#!/usr/bin/env bash
# Creates (or updates) every Kubernetes Secret the manifests in deploy/
# reference, with ONE caller token shared by all callers of the function.
# Nothing secret is written to disk or committed.
#
#   deploy/secrets/create-secrets.sh [--rollouts [NS]] [--argocd [NS]] [--atlassian] [--nats] [--backstage [NS]]
#
# Always:
#   rollback-incident/rollback-incident    auth-token    = T          (func AUTH_TOKEN)
#   argo-events/rollback-incident-caller   authorization = "Bearer T" (Sensor secureHeaders)
#   argo-events/rollouts-webhook-auth      token         = W          (webhook EventSource authSecret)
# --rollouts [NS=argo-rollouts]: keys added to argo-rollouts-notification-secret
#   rollback-incident-token = T (direct variant), rollouts-webhook-token = W (via Argo Events)
# --argocd [NS=argocd]: key rollback-incident-token = T added to argocd-notifications-secret
#   (OpenShift GitOps: --argocd openshift-gitops)
# --atlassian: atlassian-email / atlassian-api-token from $ATLASSIAN_EMAIL /
#   $ATLASSIAN_API_TOKEN into rollback-incident (for
#   components/atlassian-from-kubernetes-secret; not needed with Secrets Manager)
# --nats: copies the Argo Events EventBus client credentials and CA into
#   rollback-incident/rollback-incident-nats (components/eventbus-nats, which
#   `kubectl apply -k deploy/` applies: the function keeps its idempotency
#   records and its custody of rollbacks there). The EventBus must run first:
#   kubectl apply -k deploy/argo-events
#   kubectl -n argo-events wait --for=condition=Deployed eventbus/default
# --backstage [NS=backstage]: the Backstage notifications; needs $BACKSTAGE_URL,
#   the Backstage backend's base URL as the function reaches it:
#   rollback-incident/rollback-incident-backstage  url = $BACKSTAGE_URL, token = B
#     (components/backstage: BACKSTAGE_URL, BACKSTAGE_TOKEN)
#   with --argocd: key backstage-token = A added to argocd-notifications-secret
#   NS/backstage-notifications-tokens  ROLLBACK_INCIDENT_TOKEN = B [, ARGOCD_NOTIFICATIONS_TOKEN = A]
#     for Backstage's app-config.yaml (backend.auth.externalAccess), when
#     Backstage runs in this cluster in NS; else copy B and A from the two
#     Secrets above into Backstage's configuration.
#
# T is $AUTH_TOKEN if set, else the existing auth-token of
# rollback-incident/rollback-incident, else a new random token; W likewise
# ($WEBHOOK_TOKEN, the existing one, or new), and so are B ($BACKSTAGE_TOKEN)
# and A ($BACKSTAGE_ARGOCD_TOKEN). Re-running keeps the tokens.
# $KUBECTL overrides the kubectl binary (the deploy tests use it).
set -euo pipefail

KUBECTL=${KUBECTL:-kubectl}
FN_NS=rollback-incident
EVENTS_NS=argo-events
rollouts_ns="" argocd_ns="" atlassian=false nats=false backstage_ns=""

while [ $# -gt 0 ]; do
  case "$1" in
  --rollouts)
    rollouts_ns=argo-rollouts
    if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then rollouts_ns=$2; shift; fi ;;
  --argocd)
    argocd_ns=argocd
    if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then argocd_ns=$2; shift; fi ;;
  --atlassian) atlassian=true ;;
  --nats) nats=true ;;
  --backstage)
    backstage_ns=backstage
    if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then backstage_ns=$2; shift; fi ;;
  -h | --help) sed -n '2,39p' "$0"; exit 0 ;;
  *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# existing NS SECRET KEY: prints the decoded value of a key, or nothing.
existing() {
  local v
  v=$("$KUBECTL" -n "$1" get secret "$2" -o "jsonpath={.data.$3}" 2>/dev/null) || return 0
  [ -n "$v" ] && printf '%s' "$v" | base64 -d
  return 0
}

random_token() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# apply_secret NS NAME KEY=VALUE...: creates or replaces a Secret we own.
apply_secret() {
  local ns=$1 name=$2
  shift 2
  local args=()
  for kv in "$@"; do args+=("--from-literal=$kv"); done
  "$KUBECTL" -n "$ns" create secret generic "$name" "${args[@]}" --dry-run=client -o yaml |
    "$KUBECTL" apply -f -
}

# merge_keys NS NAME KEY VALUE...: adds keys to a Secret shared with other
# tools (the notification secrets), keeping its other keys.
merge_keys() {
  local ns=$1 name=$2
  shift 2
  local data="" sep=""
  while [ $# -gt 1 ]; do
    data+="$sep\"$1\":\"$2\""
    sep=","
    shift 2
  done
  if ! "$KUBECTL" -n "$ns" get secret "$name" >/dev/null 2>&1; then
    "$KUBECTL" -n "$ns" create secret generic "$name"
  fi
  "$KUBECTL" -n "$ns" patch secret "$name" --type merge -p "{\"stringData\":{$data}}"
}

token=${AUTH_TOKEN:-$(existing "$FN_NS" rollback-incident auth-token)}
token=${token:-$(random_token)}
webhook_token=${WEBHOOK_TOKEN:-$(existing "$EVENTS_NS" rollouts-webhook-auth token)}
webhook_token=${webhook_token:-$(random_token)}
bs_token="" bs_argocd_token=""
if [ -n "$backstage_ns" ]; then
  : "${BACKSTAGE_URL:?--backstage needs BACKSTAGE_URL, the Backstage backend base URL, e.g. http://backstage.backstage.svc.cluster.local:7007}"
  case "$BACKSTAGE_URL" in
  http://* | https://*) ;;
  *) echo "BACKSTAGE_URL must start with http:// or https://" >&2; exit 2 ;;
  esac
  bs_token=${BACKSTAGE_TOKEN:-$(existing "$FN_NS" rollback-incident-backstage token)}
  bs_token=${bs_token:-$(random_token)}
  if [ -n "$argocd_ns" ]; then
    bs_argocd_token=${BACKSTAGE_ARGOCD_TOKEN:-$(existing "$argocd_ns" argocd-notifications-secret backstage-token)}
    bs_argocd_token=${bs_argocd_token:-$(random_token)}
  fi
  # Backstage refuses static tokens under 8 characters.
  for t in "$bs_token" ${bs_argocd_token:+"$bs_argocd_token"}; do
    [ ${#t} -ge 8 ] || { echo "Backstage tokens need at least 8 characters" >&2; exit 2; }
  done
fi
case "$token$webhook_token$bs_token$bs_argocd_token" in
*[!A-Za-z0-9._~+/=-]*) echo "tokens may only use the characters A-Za-z0-9._~+/=-" >&2; exit 2 ;;
esac

fn_keys=("auth-token=$token")
if $atlassian; then
  : "${ATLASSIAN_EMAIL:?--atlassian needs ATLASSIAN_EMAIL}" "${ATLASSIAN_API_TOKEN:?--atlassian needs ATLASSIAN_API_TOKEN}"
  fn_keys+=("atlassian-email=$ATLASSIAN_EMAIL" "atlassian-api-token=$ATLASSIAN_API_TOKEN")
fi
"$KUBECTL" get namespace "$FN_NS" >/dev/null 2>&1 || "$KUBECTL" create namespace "$FN_NS"
apply_secret "$FN_NS" rollback-incident "${fn_keys[@]}"
apply_secret "$EVENTS_NS" rollback-incident-caller "authorization=Bearer $token"
apply_secret "$EVENTS_NS" rollouts-webhook-auth "token=$webhook_token"

if [ -n "$rollouts_ns" ]; then
  merge_keys "$rollouts_ns" argo-rollouts-notification-secret \
    rollback-incident-token "$token" rollouts-webhook-token "$webhook_token"
fi
if [ -n "$argocd_ns" ]; then
  merge_keys "$argocd_ns" argocd-notifications-secret rollback-incident-token "$token"
fi
if [ -n "$backstage_ns" ]; then
  apply_secret "$FN_NS" rollback-incident-backstage "url=${BACKSTAGE_URL%/}" "token=$bs_token"
  bs_keys=("ROLLBACK_INCIDENT_TOKEN=$bs_token")
  if [ -n "$argocd_ns" ]; then
    merge_keys "$argocd_ns" argocd-notifications-secret backstage-token "$bs_argocd_token"
    bs_keys+=("ARGOCD_NOTIFICATIONS_TOKEN=$bs_argocd_token")
  fi
  if "$KUBECTL" get namespace "$backstage_ns" >/dev/null 2>&1; then
    apply_secret "$backstage_ns" backstage-notifications-tokens "${bs_keys[@]}"
  else
    echo "namespace $backstage_ns not found: give Backstage the token of $FN_NS/rollback-incident-backstage" \
      "${argocd_ns:+and the backstage-token of $argocd_ns/argocd-notifications-secret }(see deploy/README.md)" >&2
  fi
fi
if $nats; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  existing "$EVENTS_NS" eventbus-default-js-client-auth client-auth >"$dir/client-auth"
  existing "$EVENTS_NS" eventbus-default-js-server ca-cert >"$dir/ca-cert"
  for f in client-auth ca-cert; do
    [ -s "$dir/$f" ] || {
      echo "EventBus secret key $f not found in $EVENTS_NS: is the JetStream EventBus 'default' running?" >&2
      echo "  kubectl apply -k deploy/argo-events && kubectl -n $EVENTS_NS wait --for=condition=Deployed eventbus/default" >&2
      exit 1
    }
  done
  "$KUBECTL" -n "$FN_NS" create secret generic rollback-incident-nats \
    --from-file=client-auth="$dir/client-auth" --from-file=ca-cert="$dir/ca-cert" --dry-run=client -o yaml |
    "$KUBECTL" apply -f -
fi
echo "secrets in place; callers send: Authorization: Bearer <auth-token of $FN_NS/rollback-incident>"
