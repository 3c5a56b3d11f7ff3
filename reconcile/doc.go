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
// Daemon watches a directory state, debounces changes, resyncs on an
// interval (which also corrects drift) and reconciles releases concurrently
// with a bounded worker pool.
package reconcile
