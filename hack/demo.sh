#!/usr/bin/env bash
# make demo: a local control plane, the daemon watching a copy of
# examples/state, and the example chart deployed by the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
CHARTER="$PWD/bin/charter"
KUBECONFIG_PATH="$PWD/.controlplane/kubeconfig"

step() { printf '\n==> %s\n' "$*"; }

step "Starting a local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
if [ -f .demo/daemon.pid ]; then kill "$(cat .demo/daemon.pid)" 2>/dev/null || true; fi
make --no-print-directory controlplane-down >/dev/null
make --no-print-directory controlplane-up
export KUBECONFIG="$KUBECONFIG_PATH"

step "Copying examples/state to .demo/state (the declared state the daemon watches)"
rm -rf .demo && mkdir -p .demo
cp -r examples/state .demo/state

step "Starting the daemon: charter daemon run --state .demo/state (log: .demo/daemon.log)"
"$CHARTER" daemon run --state .demo/state --interval 30s >.demo/daemon.log 2>&1 &
echo $! > .demo/daemon.pid

step "Waiting for the daemon to converge the declared release 'hello'"
for i in $(seq 1 120); do
  if "$CHARTER" --state .demo/state status hello -o json 2>/dev/null | grep -q '"status": "deployed"'; then break; fi
  sleep 1
done
"$CHARTER" --state .demo/state status hello

step "Deploying the example chart from the CLI: charter deploy -n web --set replicaCount=2 ./examples/state/charts/hello"
"$CHARTER" --state .demo/state deploy -n web --set replicaCount=2 ./examples/state/charts/hello

step "charter status web"
"$CHARTER" --state .demo/state status web

step "charter deployment list"
"$CHARTER" --state .demo/state deployment list

cat <<MSG

The daemon keeps running (pid $(cat .demo/daemon.pid)); edit .demo/state/releases/*.yaml and watch
it converge (tail -f .demo/daemon.log). Try:
  export KUBECONFIG=$KUBECONFIG_PATH
  bin/charter --state .demo/state redeploy --set replicaCount=3 web
  bin/charter --state .demo/state uninstall web
Stop everything with: make demo-down
MSG
