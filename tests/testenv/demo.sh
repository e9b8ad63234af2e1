#!/usr/bin/env bash
# `make demo`: the cross-account workflow end to end on the local environment. Starts
# the control plane and the AWS emulator, runs the operator, applies examples/ 01-03,
# prints what happened, shows drift repair, `kubectl crosskey why` naming a missing
# role grant, and a rejected alias ARN, and cleans up.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="$root/target/demo"
operator_pid=""

cleanup() {
  [[ -n "$operator_pid" ]] && kill "$operator_pid" 2>/dev/null && wait "$operator_pid" 2>/dev/null || true
  "$root/tests/testenv/testenv.sh" down --dir "$dir"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
  local seconds="$1" what="$2"; shift 2
  local deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) > deadline )); then
      echo "timed out waiting for $what; operator log: $dir/logs/operator.log" >&2
      tail -n 20 "$dir/logs/operator.log" >&2
      return 1
    fi
    sleep 0.5
  done
}

say "Building crosskey and starting the local control plane and AWS emulator"
cargo build --quiet --bin crosskey
"$root/tests/testenv/testenv.sh" up --dir "$dir" >/dev/null
# shellcheck disable=SC1091
source "$dir/env.sh"
aws() { "$root/.venv/bin/python" "$root/tests/testenv/demo_aws.py" "$@"; }

say "Setting up account A (owner) and account B (vault), in one organization"
aws setup "$CROSSKEY_TESTENV_AWS_ADMIN"

say "Running the operator and applying examples/01-03"
# As in production, the operator is a session of its own role (deploy/iam/), not root.
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_CONFIG_FILE="$CROSSKEY_TESTENV_OPERATOR_AWS_CONFIG" \
  AWS_PROFILE="$CROSSKEY_TESTENV_OPERATOR_AWS_PROFILE" AWS_SHARED_CREDENTIALS_FILE="$dir/no-credentials" \
  "$root/target/debug/crosskey" run --max-retry-interval 5s --metrics-addr 127.0.0.1:0 > "$dir/logs/operator.log" 2>&1 &
operator_pid=$!
kubectl create namespace platform-security >/dev/null
kubectl create namespace team-backup >/dev/null
kubectl apply -f "$root/examples/01-awsaccounts.yaml" -f "$root/examples/02-sharedkey.yaml" \
  -f "$root/examples/03-crossaccountvault.yaml"
kubectl wait --for=condition=Ready --timeout=90s awsaccount/security awsaccount/workload >/dev/null
kubectl wait --for=condition=Ready --timeout=90s -n platform-security sharedkey/backup-key crossaccountvault/central-backups >/dev/null

say "kubectl get awsacct,sk,xav -A"
kubectl get awsacct
kubectl get sk,xav -A
key_id=$(kubectl get sk backup-key -n platform-security -o jsonpath='{.status.keyId}')
key_arn=$(kubectl get sk backup-key -n platform-security -o jsonpath='{.status.keyArn}')
policy_name=crosskey-platform-security-central-backups

say "The key policy in A (rendered by crosskey; step 1)"
aws key-policy "$key_id"
say "The IAM policy on B's backup role (step 2)"
aws role-policy "$policy_name"
say "The vault in B, encrypted with A's key ARN (step 3)"
aws vault central-backups "$key_arn"
say "B uses A's key (step 4: both sides allow)"
aws use-key "$key_arn"

say "Drift: an out-of-band edit of the key policy, and its repair"
# The tampered policy makes B's preflight fail until the repair: a denial the demo provokes.
curl -sf -XPOST "$CROSSKEY_TESTENV_AWS_ADMIN/authz/expected" \
  -d "{\"action\": \"kms:DescribeKey\", \"resource\": \"$key_arn\"}" >/dev/null
aws tamper "$key_id"
# Ask for an immediate check instead of waiting for the 5m drift interval.
kubectl annotate sk backup-key -n platform-security --overwrite demo.crosskey.dev/check-now="$(date +%s)" >/dev/null
wait_for 60 "the key policy to be repaired" aws shares-with-b "$key_id"
kubectl get sk backup-key -n platform-security \
  -o jsonpath='  Drifted={.status.conditions[?(@.type=="Drifted")].reason}: {.status.conditions[?(@.type=="Drifted")].message}{"\n"}  drift count={.status.drift.detectedCount}{"\n"}'
echo "  A's key policy shares with B again"

say "kubectl crosskey why: a vault in B whose role grant is missing, and the fix"
# The plugin is the crosskey binary under the name kubectl-crosskey (README "kubectl
# crosskey"); kubectl finds it on PATH. It reads the objects with the kubeconfig only.
mkdir -p "$dir/plugin"
ln -sf "$root/target/debug/crosskey" "$dir/plugin/kubectl-crosskey"
plugin() { env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL PATH="$dir/plugin:$PATH" kubectl crosskey "$@"; }
reason_is() { # reason_is OBJECT NAMESPACE CONDITION REASON
  [[ "$(kubectl get "$1" -n "$2" -o jsonpath="{.status.conditions[?(@.type==\"$3\")].reason}")" == "$4" ]]
}
# RestoreRole is not among the workload account's grantableRoles: B's IAM gets no grant.
kubectl apply -f - >/dev/null <<YAML
apiVersion: crosskey.dev/v1alpha1
kind: CrossAccountVault
metadata: {name: restore-vault, namespace: team-backup}
spec:
  accountRef: {name: workload}
  encryptionKey: {sharedKeyRef: {name: backup-key, namespace: platform-security}}
  grantKeyUseToRoles: [AWSBackupDefaultServiceRole, RestoreRole]
YAML
wait_for 60 "restore-vault to report RoleNotAllowed" reason_is xav/restore-vault team-backup RoleGrantsSynced RoleNotAllowed
echo "  \$ kubectl crosskey status -n team-backup"
plugin status -n team-backup | sed 's/^/  /'
echo "  \$ kubectl crosskey why xav/restore-vault -n team-backup"
code=0
plugin why xav/restore-vault -n team-backup > "$dir/why.txt" || code=$?
sed 's/^/  /' "$dir/why.txt"
if [[ $code != 1 ]] || ! tail -n 1 "$dir/why.txt" | grep -q "^Missing: the AwsAccount's allow-lists — B's IAM gets no grant for role(s) RestoreRole in account 222222222222: .*spec.grantableRoles"; then
  echo "expected kubectl crosskey why to exit 1 naming B's missing role grant (exit $code)" >&2
  exit 1
fi
# The fix the sentence suggests: grant only a role the account allows.
kubectl patch xav restore-vault -n team-backup --type merge -p '{"spec": {"grantKeyUseToRoles": ["AWSBackupDefaultServiceRole"]}}' >/dev/null
kubectl wait --for=condition=Ready --timeout=90s -n team-backup xav/restore-vault >/dev/null
echo "  after removing RestoreRole from grantKeyUseToRoles:"
plugin why xav/restore-vault -n team-backup | tail -n 1 | sed 's/^/  /'

say "A backup plan in A that copies to B's vault (examples/05), its copy path verified"
kubectl apply -f "$root/examples/05-backup-plan.yaml" >/dev/null
kubectl wait --for=condition=Ready --timeout=90s -n platform-security xav/local-backups xabp/daily >/dev/null
wait_for 60 "the copy path to be verified" reason_is xabp/daily platform-security CopyPathVerified Verified
kubectl get xabp -n platform-security
kubectl get xabp daily -n platform-security \
  -o jsonpath='{range .status.copyPaths[*]}  rule {.rule} -> {.destination} ({.destinationVaultArn}): verified={.verified}{"\n"}{end}'
destination=$(kubectl get xav central-backups -n platform-security -o jsonpath='{.status.vaultArn}')
aws copy "$CROSSKEY_TESTENV_AWS_ADMIN" "$key_arn" "$destination"

say "A vault with an alias ARN is rejected by the API server"
if kubectl apply -f - 2>"$dir/alias.err" <<YAML; then
apiVersion: crosskey.dev/v1alpha1
kind: CrossAccountVault
metadata: {name: alias-vault, namespace: platform-security}
spec:
  accountRef: {name: workload}
  encryptionKey: {keyArn: "arn:aws:kms:eu-central-1:111111111111:alias/backup-shared"}
YAML
  echo "expected a rejection" >&2
  exit 1
fi
sed 's/^/  /' "$dir/alias.err"

say "Done: the workflow ran end to end. Cleaning up."
