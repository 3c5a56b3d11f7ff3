// Command charter is the CLI of charter: it edits the declared state
// (deploy, redeploy, uninstall), reads what the cluster recorded (status,
// get-values, manifest get, deployment list), works with charts (template,
// list-params, gen-params, create, lint) and runs the reconciler (reconcile,
// daemon run).
//
// Commands that change things only edit the declared state; by default they
// then wait until the cluster has converged, reconciling in-process when no
// daemon serves the state.
package main
