// Package testenv runs a real, local Kubernetes control plane for charter's
// tests and demo: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok, started from binaries in the tools cache (see
// ToolsDir; `make tools` builds them).
//
// What it guarantees once Start returns without error:
//   - the API server answers /readyz on a free 127.0.0.1 port, over TLS with
//     certificates generated for this environment only;
//   - Env.Kubeconfig names an admin kubeconfig (client certificate in group
//     system:masters) and Env.RESTConfig returns the same credentials;
//   - the default namespace and its default ServiceAccount exist, so pods can
//     be created immediately;
//   - one fake Node (FakeNodeName) is Ready and schedulable; kwok marks pods
//     bound to it Running and Ready and deletes them when they are deleted, so
//     Deployments become Available and Services get endpoints, but no
//     container ever runs.
//
// Every component writes its output to logs/<component>.log in the
// environment's folder; a start failure reports the tail of the log of the
// component that failed. Stop kills every process and removes the folder.
//
// Tests use Main in TestMain and Get in each end-to-end test: the control
// plane is started once per test binary, on first use. When the tools are
// missing, Get skips the test, unless CHARTER_E2E=1, in which case the
// whole test binary fails.
//
// Detached mode (Options.Detach) starts the processes in their own sessions
// so they outlive the caller; their PIDs are recorded in the folder and
// Shutdown stops them later. cmd/controlplane uses it for `make
// controlplane-up` and `make controlplane-down`.
package testenv
