// Package reconcile converges a cluster towards the declared state.
//
// For one release, Reconcile runs an ordered list of steps and stops at the
// first error: load the declaration and its chart, render (pure, see package
// render), plan and apply with server-side apply under the fixed field
// manager "charter" (CRDs and Namespaces first; every object is dry-run
// before anything is written, and only objects that drifted are written),
// prune objects of the previous inventory that are no longer rendered (only
// objects that carry this release's ownership labels; never anything outside
// the inventory), wait until every object is healthy according to kstatus,
// and record the revision in the cluster (package record).
//
// A declaration that disappears uninstalls its release: the inventory is
// deleted, then the records. A failed step marks the revision failed with the
// reason; the previous good revision stays recorded.
//
// A declaration may opt into more: remediation (an upgrade that never
// becomes healthy rolls back to the last deployed revision, retried a
// bounded number of times before the release is stalled), force (an object
// whose immutable fields changed is deleted and created again), adopt
// (existing objects no release owns are taken over; objects of another
// release never are) and drift ignore rules (JSON pointers whose live
// values are kept).
//
// Daemon follows sources (package source), reconciles the releases whose
// declarations changed, and resyncs on an interval, with a bounded worker
// pool and releases in dependency waves. A drift watcher (metadata
// informers over the kinds of every inventory) reconciles a release as soon
// as someone else's write takes a field from charter's managed fields or
// deletes an object, and lets resyncs skip releases it vouches for, so an
// idle cluster costs no requests. Around it: Prometheus metrics, Kubernetes
// Events on the release records, leader election on a Lease, sharding by a
// stable hash of release names, and a heartbeat Lease the CLI reads.
package reconcile
