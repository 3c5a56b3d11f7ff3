// Package record keeps the cluster-side record of what charter applied.
//
// Every attempt to converge a release produces a Revision: the chart (name,
// version, digest), the values, the rendered manifest, the inventory of every
// object applied, the status, timestamps and the declared-state revision it
// came from. Revisions are stored as Kubernetes Secrets (values can be
// sensitive) in one namespace, gzip-compressed, and labelled so that listing
// every release is a single request. The newest MaxHistory revisions of a
// release are kept; older ones are deleted when a new revision is written.
//
// The record is what `charter status`, `get-values` and `manifest get` read;
// the declared state says what should be, the record says what was applied.
package record
