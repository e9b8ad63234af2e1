#!/usr/bin/env bash
# The local test environment: etcd, kube-apiserver and the extended moto emulator on free
# 127.0.0.1 ports, with the crosskey CRDs installed.
#
#   testenv.sh up   [--dir DIR] [--owner-pid PID]   start; write DIR/env.sh
#   testenv.sh down [--dir DIR]                     stop what `up` started in DIR
#   testenv.sh restart-apiserver [--dir DIR]        restart kube-apiserver on its port
#
# DIR defaults to target/testenv. With --owner-pid the servers stop by themselves when
# that process exits (used by the Rust test-support module). Logs are in DIR/logs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cmd="${1:-}"; shift || true
dir="$root/target/testenv"
owner_pid=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --owner-pid) owner_pid="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

stop_all() {
  local d="$1"
  for name in watchdog kube-apiserver moto etcd; do
    local pidfile="$d/$name.pid"
    [[ -f "$pidfile" ]] || continue
    local pid; pid="$(cat "$pidfile")"
    # The watchdog runs (or, by bash's exec of a last command, becomes) this `down`:
    # it must not kill itself or wait for its own exit.
    if [[ "$pid" == "$$" || "$pid" == "$PPID" ]]; then rm -f "$pidfile"; continue; fi
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

# free_port: a port that binds on 127.0.0.1 now, drawn below the kernel's ephemeral range
# (ip_local_port_range), so that no outgoing connection can take it before the server
# binds; a clash with another test environment is still possible, and `launch` retries it.
free_port() {
  python3 - "$@" <<'PY'
import random, socket, sys
taken = {int(p) for p in sys.argv[1:]}
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except OSError:
    low = 32768
for _ in range(200):
    port = random.randrange(10000, max(low, 10001))
    if port in taken:
        continue
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
PY
}

# wait_for SERVER DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds, and
# fails early when SERVER has exited.
wait_for() {
  local name="$1" what="$2" seconds="$3"; shift 3
  local deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    if [[ -f "$dir/$name.pid" ]] && ! kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
      echo "$name exited while waiting for $what; last lines of $dir/logs/$name.log:" >&2
      tail -n 5 "$dir/logs/$name.log" >&2
      return 1
    fi
    if (( $(date +%s) > deadline )); then
      echo "timed out after ${seconds}s waiting for $what; logs are in $dir/logs" >&2
      return 1
    fi
    sleep 0.2
  done
}

# lost_port_race SERVER: whether SERVER exited because its port was taken meanwhile.
lost_port_race() {
  ! kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null \
    && grep -qiE "address already in use|port [0-9]+ is in use" "$dir/logs/$1.log"
}

# Starts kube-apiserver with the arguments saved in DIR/kube-apiserver.args.
start_apiserver() {
  mapfile -t args < "$dir/kube-apiserver.args"
  "$(cat "$dir/bin-dir")/kube-apiserver" "${args[@]}" >> "$dir/logs/kube-apiserver.log" 2>&1 &
  echo $! > "$dir/kube-apiserver.pid"
}

case "$cmd" in
  restart-apiserver)
    # Stops the API server, then starts it again on the same port; returns once it is
    # ready. etcd, the emulator and the data survive.
    # The restart's window goes to logs/apiserver-restarts.log: a freshly started API
    # server refuses requests (403) until its RBAC caches are filled, which
    # `rbac.py check` must not count as a gap in the chart's RBAC.
    restart_started="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
    pid="$(cat "$dir/kube-apiserver.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    start_apiserver
    token="$(cut -d, -f1 "$dir/certs/tokens.csv")"
    port="$(grep -- '--secure-port=' "$dir/kube-apiserver.args" | cut -d= -f2)"
    wait_for kube-apiserver "kube-apiserver /readyz after the restart" 120 \
      curl -sfk --max-time 5 -H "Authorization: Bearer $token" "https://127.0.0.1:$port/readyz"
    echo "$restart_started $(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" >> "$dir/logs/apiserver-restarts.log"
    exit 0
    ;;
  down)
    stop_all "$dir"
    exit 0
    ;;
  up) ;;
  *) echo "usage: $0 up|down|restart-apiserver [--dir DIR] [--owner-pid PID]" >&2; exit 2 ;;
esac

stop_all "$dir"
rm -rf "$dir/etcd-data" "$dir/certs" "$dir/authz-decisions.jsonl"
mkdir -p "$dir/logs" "$dir/certs"

bin_dir="$("$root/tests/testenv/k8s/build.sh")"
helm_dir="$("$root/tests/testenv/helm/build.sh")"
"$root/tests/testenv/venv.sh"

token="crosskey-admin-token"
openssl genrsa -out "$dir/certs/sa.key" 2048 2>/dev/null
echo "$token,admin,admin-uid,system:masters" > "$dir/certs/tokens.csv"
echo "$bin_dir" > "$dir/bin-dir"
# Every resource request, at Metadata level: tests/testenv/rbac.py reads what the
# operator (impersonating the chart's ServiceAccount) did, and what it was refused.
cat > "$dir/audit-policy.yaml" <<POLICY
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["system:apiserver", "system:kube-controller-manager", "system:kube-scheduler"]
- level: None
  nonResourceURLs: ["*"]
- level: Metadata
POLICY

start_etcd() {
  etcd_port="$(free_port)"; etcd_peer_port="$(free_port "$etcd_port")"
  rm -rf "$dir/etcd-data"
  "$bin_dir/etcd" --name testenv --data-dir "$dir/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "testenv=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level warn > "$dir/logs/etcd.log" 2>&1 &
  echo $! > "$dir/etcd.pid"
}
etcd_ready() { wait_for etcd "etcd on port $etcd_port" 60 curl -sf --max-time 5 "http://127.0.0.1:$etcd_port/health"; }

start_moto() {
  aws_port="$(free_port "$etcd_port" "$etcd_peer_port")"
  (cd "$root/tests/testenv/moto" && exec "$root/.venv/bin/python" -m crosskey_moto --host 127.0.0.1 --port "$aws_port" \
    --decision-log "$dir/authz-decisions.jsonl") \
    > "$dir/logs/moto.log" 2>&1 &
  echo $! > "$dir/moto.pid"
}
moto_ready() { wait_for moto "moto on port $aws_port" 60 curl -sf --max-time 5 "http://127.0.0.1:$aws_port/_crosskey/health"; }

# The API server's command line is kept, so that `restart-apiserver` can bring the same
# server back on the same port (for fault tests).
launch_apiserver() {
  api_port="$(free_port "$etcd_port" "$etcd_peer_port" "$aws_port")"
  cat > "$dir/kube-apiserver.args" <<ARGS
--etcd-servers=http://127.0.0.1:$etcd_port
--bind-address=127.0.0.1
--advertise-address=127.0.0.1
--secure-port=$api_port
--cert-dir=$dir/certs
--service-cluster-ip-range=10.0.0.0/24
--service-account-issuer=https://127.0.0.1:$api_port
--service-account-key-file=$dir/certs/sa.key
--service-account-signing-key-file=$dir/certs/sa.key
--token-auth-file=$dir/certs/tokens.csv
--authorization-mode=RBAC
--disable-admission-plugins=ServiceAccount
--endpoint-reconciler-type=none
--audit-policy-file=$dir/audit-policy.yaml
--audit-log-path=$dir/logs/audit.jsonl
--audit-log-format=json
--audit-log-maxsize=0
ARGS
  : > "$dir/logs/kube-apiserver.log"
  start_apiserver
}
apiserver_ready() {
  wait_for kube-apiserver "kube-apiserver /readyz on port $api_port" 120 \
    curl -sfk --max-time 5 -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/readyz"
}

# launch SERVER START READY: starts SERVER and waits until READY; when another process
# took its port between the choice and the bind, starts it again on a new port.
launch() {
  local name="$1" start="$2" ready="$3"
  for attempt in 1 2 3 4 5; do
    if "$ready"; then return 0; fi
    if ! lost_port_race "$name"; then return 1; fi
    echo "$name lost its port to another process (attempt $attempt); choosing another" >&2
    "$start"
  done
  return 1
}

start_etcd
start_moto
launch etcd start_etcd etcd_ready
launch_apiserver

if [[ -n "$owner_pid" ]]; then
  # Stops the servers when the owning process goes away, however it ends.
  (
    trap '' HUP
    while kill -0 "$owner_pid" 2>/dev/null; do sleep 1; done
    "$0" down --dir "$dir"
  ) > "$dir/logs/watchdog.log" 2>&1 < /dev/null &
  echo $! > "$dir/watchdog.pid"
fi

launch moto start_moto moto_ready
launch kube-apiserver launch_apiserver apiserver_ready

kubeconfig="$dir/kubeconfig"
cat > "$kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(base64 -w0 < "$dir/certs/apiserver.crt")
users:
- name: admin
  user:
    token: $token
contexts:
- name: testenv
  context: {cluster: testenv, user: admin, namespace: default}
current-context: testenv
KUBECONFIG

kubectl=("$bin_dir/kubectl" --kubeconfig "$kubeconfig")
wait_for kube-apiserver "the default namespace" 60 "${kubectl[@]}" get namespace default
"${kubectl[@]}" apply --server-side -f "$root/crds/" > "$dir/logs/crds.log"
"${kubectl[@]}" wait --for condition=established --timeout=60s -f "$root/crds/" >> "$dir/logs/crds.log"

# The operator runs as the chart's ServiceAccount with exactly the RBAC the chart renders
# (release "crosskey" in namespace "crosskey", default values, cluster scope): its
# kubeconfig impersonates that ServiceAccount.
"${kubectl[@]}" create namespace crosskey > "$dir/logs/rbac.log"
"$helm_dir/helm" template crosskey "$root/charts/crosskey" --namespace crosskey \
  | "$root/.venv/bin/python" "$root/tests/testenv/rbac.py" select > "$dir/operator-rbac.yaml"
"${kubectl[@]}" apply -f "$dir/operator-rbac.yaml" >> "$dir/logs/rbac.log"
sed -e 's/^- name: admin$/- name: operator/' \
    -e 's/^    token: .*$/&\n    as: system:serviceaccount:crosskey:crosskey/' \
    -e 's/user: admin, namespace/user: operator, namespace/' \
    "$kubeconfig" > "$dir/operator-kubeconfig"

# The operator runs as a session of the hub role from deploy/iam/ (see aws_roles.py), never
# with the default (root) credentials, which stay for setup and out-of-band test actions.
AWS_ENDPOINT_URL="http://127.0.0.1:$aws_port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing \
  AWS_SECRET_ACCESS_KEY=testing "$root/.venv/bin/python" "$root/tests/testenv/aws_roles.py" hub \
  > "$dir/logs/aws-roles.log" 2>&1
cat > "$dir/operator-aws-config" <<AWSCONFIG
[profile crosskey-operator]
role_arn = arn:aws:iam::123456789012:role/crosskey-operator
role_session_name = crosskey-operator
source_profile = hub-bootstrap
region = us-east-1

[profile hub-bootstrap]
aws_access_key_id = testing
aws_secret_access_key = testing
AWSCONFIG

cat > "$dir/env.sh" <<ENV
# Written by tests/testenv/testenv.sh: source it to use the local test environment.
export KUBECONFIG="$kubeconfig"
export AWS_ENDPOINT_URL="http://127.0.0.1:$aws_port"
export AWS_REGION="us-east-1"
export AWS_DEFAULT_REGION="us-east-1"
export AWS_ACCESS_KEY_ID="testing"
export AWS_SECRET_ACCESS_KEY="testing"
export CROSSKEY_TESTENV_AWS="http://127.0.0.1:$aws_port"
export CROSSKEY_TESTENV_AWS_ADMIN="http://127.0.0.1:$aws_port/_crosskey"
export CROSSKEY_TESTENV_DIR="$dir"
export CROSSKEY_TESTENV_BIN="$bin_dir"
export CROSSKEY_TESTENV_HELM="$helm_dir/helm"
# The operator's own AWS identity: run it with AWS_CONFIG_FILE and AWS_PROFILE set to
# these, and without AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (which take precedence).
export CROSSKEY_TESTENV_OPERATOR_AWS_CONFIG="$dir/operator-aws-config"
export CROSSKEY_TESTENV_OPERATOR_AWS_PROFILE="crosskey-operator"
# The operator's Kubernetes identity: the chart's ServiceAccount, impersonated.
export CROSSKEY_TESTENV_OPERATOR_KUBECONFIG="$dir/operator-kubeconfig"
export PATH="$bin_dir:$helm_dir:\$PATH"
ENV
echo "test environment up: source $dir/env.sh (stop it with: $0 down --dir $dir)"
