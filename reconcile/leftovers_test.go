package reconcile

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/render"
)

// A pending revision records what earlier revisions may have left in the
// cluster (old ∪ new) before it writes anything, so an object applied by a
// run that was killed is pruned even after the history limit deleted the
// record of that run.
func TestLeftoversOfAnInterruptedRunArePrunedAfterItsRecordIsGone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	recs := record.NewStore(f.kube, f.ns, 2) // a history of two revisions
	f.recon.Records = recs
	f.declare("web", "  message: one\n")
	if _, err := f.recon.Reconcile(ctx, "web", Options{}); err != nil {
		t.Fatal(err)
	}

	// Revision 2: a run of another desired state applied web-orphan, then
	// the daemon was killed.
	orphan := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web-orphan", Labels: map[string]string{
		render.LabelRelease: "web", render.LabelNamespace: f.ns}}}
	if _, err := f.kube.CoreV1().ConfigMaps(f.ns).Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	killed := &record.Revision{Release: "web", Namespace: f.ns, Status: record.StatusPendingUpgrade, DesiredDigest: "sha256:another",
		Inventory: []record.ObjectRef{{APIVersion: "v1", Kind: "ConfigMap", Namespace: f.ns, Name: "web-orphan"}}}
	if err := recs.Create(ctx, killed); err != nil {
		t.Fatal(err)
	}

	// Revision 3 is interrupted before it prunes; creating it pushed
	// revision 2 out of the history.
	f.declare("web", "  message: two\n")
	cctx, cancel := context.WithCancel(ctx)
	f.recon.Progress = func(e Event) {
		if e.Action == "configured" || e.Action == "created" {
			cancel()
		}
	}
	if _, err := f.recon.Reconcile(cctx, "web", Options{}); err == nil {
		t.Fatal("the interrupted reconcile succeeded")
	}
	f.recon.Progress = nil
	h, err := recs.History(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range h {
		if rev.Revision == killed.Revision {
			t.Fatalf("revision %d is still recorded: the test needs it gone", killed.Revision)
		}
	}
	if _, err := f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "web-orphan", metav1.GetOptions{}); err != nil {
		t.Fatalf("web-orphan went before the interrupted run was finished: %v", err)
	}

	// The next run picks revision 3 up, finishes it, and prunes the object
	// only the deleted record of revision 2 named.
	res, err := f.recon.Reconcile(ctx, "web", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "upgraded" || res.Revision != 3 {
		t.Errorf("finished as %s revision %d, want upgraded revision 3", res.Action, res.Revision)
	}
	_, err = f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "web-orphan", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("web-orphan, applied by a killed run whose record is gone, was not pruned: %v", err)
	}
	last, err := recs.Last(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if last.Status != record.StatusDeployed || len(last.Leftovers) != 0 {
		t.Errorf("newest revision %s with %d leftovers, want deployed with none", last.Status, len(last.Leftovers))
	}
}
