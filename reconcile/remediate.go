package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/ssa"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/render"
)

// Automatic remediation (`remediation: rollback` in a declaration): an
// upgrade whose objects do not become healthy within the release's timeout
// is recorded failed, then the last deployed revision is applied again, what
// the failed revision added is pruned, and a new deployed revision records
// the rollback. The error stays retryable, so the daemon tries the upgrade
// again with backoff; after the declared number of failed attempts of the
// same desired state the release is stalled: it keeps the rolled back
// revision and is not retried until the declaration or chart changes.
// A first install is never rolled back (there is nothing to roll back to).

// remediation decides, for a failed health wait, whether to roll back:
// it returns the attempt number (0: no rollback) and err, made permanent
// when this attempt is the last one remediation allows.
func (r *Reconciler) remediation(ru *run, err error) (int, error) {
	if !ru.decl.Remediation.Rollback() || ru.deployed == nil || ru.rev == nil {
		return 0, err
	}
	attempt := 1
	if rb := ru.deployed.RolledBack; rb != nil && rb.DesiredDigest == ru.digest {
		attempt = rb.Attempts + 1
	}
	if attempt >= ru.decl.Remediation.Attempts() {
		var perm *PermanentError
		if !errors.As(err, &perm) {
			err = &PermanentError{err}
		}
	}
	return attempt, err
}

// isStalled reports whether remediation has given up on the desired state.
func (r *Reconciler) isStalled(ru *run) bool {
	if ru.deployed == nil || !ru.decl.Remediation.Rollback() {
		return false
	}
	rb := ru.deployed.RolledBack
	return rb != nil && rb.DesiredDigest == ru.digest && rb.Attempts >= ru.decl.Remediation.Attempts()
}

// stalledError says why a stalled release is not upgraded.
func (r *Reconciler) stalledError(ru *run) error {
	rb := ru.deployed.RolledBack
	reason := "it never became healthy"
	for _, h := range ru.history {
		if h.Revision == rb.Failed && h.Message != "" {
			reason = h.Message
		}
	}
	return &PermanentError{fmt.Errorf("release %s is stalled: the upgrade failed %d times and was rolled back to revision %d (last failure: %s); change the declaration or chart to try again",
		ru.name, rb.Attempts, rb.To, reason)}
}

// rollback re-applies the last deployed revision after the upgrade in ru
// failed with cause, prunes what the failed revision added, waits for
// health and records a new deployed revision. It returns the error the
// reconcile ends with: cause plus what the rollback did.
func (r *Reconciler) rollback(ctx context.Context, ru *run, cause error, attempt int) error {
	ctx = context.WithoutCancel(ctx) // a half-done rollback is worse than a late one
	failed, to := ru.rev, ru.deployed
	origin := to.Revision
	if to.RolledBack != nil {
		origin = to.RolledBack.To
	}
	r.log().Warn("upgrade failed; rolling back", "release", ru.name, "failed", failed.Revision, "to", origin, "attempt", attempt, "error", cause)
	if err := r.reapply(ctx, ru, failed, to); err != nil {
		msg := fmt.Sprintf("rollback to revision %d failed: %v", origin, err)
		rev := rollbackRevision(to, failed, ru.digest, attempt, origin)
		rev.Status, rev.Message, rev.Retryable = record.StatusFailed, msg, true
		if cerr := r.Records.Create(ctx, rev); cerr != nil {
			r.log().Error("record failed rollback", "release", ru.name, "error", cerr)
		}
		r.emit(Event{Release: ru.name, Action: "failed", Message: msg})
		ru.result.Action = "failed"
		return fmt.Errorf("%w; %s", cause, msg)
	}
	limit := ru.decl.Remediation.Attempts()
	rev := rollbackRevision(to, failed, ru.digest, attempt, origin)
	rev.Message = fmt.Sprintf("rolled back to revision %d: %s", origin, unwrapPermanent(cause).Error())
	if attempt >= limit {
		rev.Message += fmt.Sprintf(" (stalled after %d failed attempts: not retried until the declaration or chart changes)", attempt)
	}
	if err := r.Records.Create(ctx, rev); err != nil {
		return fmt.Errorf("%w; rolled back to revision %d but could not record it: %v", cause, origin, err)
	}
	to.Status = record.StatusSuperseded
	if err := r.Records.Update(ctx, to); err != nil {
		r.log().Error("mark revision superseded", "release", ru.name, "revision", to.Revision, "error", err)
	}
	r.emit(Event{Release: ru.name, Action: "rolled-back", Message: rev.Message})
	ru.result.Action, ru.result.Revision = "rolled-back", rev.Revision

	if attempt >= limit {
		msg := fmt.Sprintf("stalled after %d failed attempts: running revision %d (rolled back to revision %d) until the declaration or chart changes", attempt, rev.Revision, origin)
		r.emit(Event{Release: ru.name, Action: "stalled", Message: msg})
		r.log().Error("release stalled", "release", ru.name, "attempts", attempt, "revision", rev.Revision)
		ru.result.Action = "stalled"
		return &PermanentError{fmt.Errorf("%s; rolled back to revision %d; %s", unwrapPermanent(cause), origin, msg)}
	}
	return fmt.Errorf("%w; rolled back to revision %d (attempt %d of %d)", cause, origin, attempt, limit)
}

// reapply applies the manifest of revision to, deletes what failed added,
// and waits until to's objects are healthy.
func (r *Reconciler) reapply(ctx context.Context, ru *run, failed, to *record.Revision) error {
	objs, err := ParseManifest(to.Manifest)
	if err != nil {
		return err
	}
	if err := r.keepIgnoredFields(ctx, ru, objs); err != nil {
		return err
	}
	cs, err := r.applyObjects(ctx, ru, objs)
	if cs != nil {
		for _, e := range cs.Entries {
			r.emit(Event{Release: ru.name, Object: e.Subject, Action: string(e.Action)})
		}
	}
	if err != nil {
		return r.applyError(err)
	}
	keep := map[string]bool{}
	for _, ref := range to.Inventory {
		keep[refKey(ref)] = true
	}
	var added []*unstructured.Unstructured
	for _, ref := range failed.Inventory {
		if !keep[refKey(ref)] {
			added = append(added, ref.Object())
		}
	}
	if len(added) > 0 {
		dcs, err := r.Cluster.Manager.DeleteAll(ctx, added, ssa.DeleteOptions{
			PropagationPolicy: metav1.DeletePropagationBackground,
			Inclusions:        map[string]string{render.LabelRelease: ru.name, render.LabelNamespace: namespaceOf(ru.decl)},
		})
		if dcs != nil {
			for _, e := range dcs.Entries {
				if e.Action == ssa.DeletedAction {
					r.emit(Event{Release: ru.name, Object: e.Subject, Action: "deleted"})
				}
			}
		}
		if err != nil {
			return fmt.Errorf("prune: %w", ServerError(r.Cluster.Config.Host, err))
		}
	}
	return r.waitFor(ctx, ru, objs)
}

// rollbackRevision is a new deployed revision with the content of to.
func rollbackRevision(to, failed *record.Revision, digest string, attempt, origin int) *record.Revision {
	rev := *to
	rev.Revision = 0 // the next number
	rev.Status = record.StatusDeployed
	rev.Retryable = false
	rev.LastDeployed = time.Now().UTC()
	rev.LastDrift = nil
	rev.RolledBack = &record.Rollback{To: origin, Failed: failed.Revision, DesiredDigest: digest, Attempts: attempt}
	return &rev
}

func unwrapPermanent(err error) error {
	var perm *PermanentError
	if errors.As(err, &perm) {
		return perm.Err
	}
	return err
}
