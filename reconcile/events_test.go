package reconcile

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/charter-sh/charter/record"
)

func TestEventReason(t *testing.T) {
	tests := map[string]struct{ reason, typ string }{
		"installed":   {"Installed", corev1.EventTypeNormal},
		"upgraded":    {"Upgraded", corev1.EventTypeNormal},
		"corrected":   {"DriftCorrected", corev1.EventTypeNormal},
		"uninstalled": {"Uninstalled", corev1.EventTypeNormal},
		"waiting":     {"Waiting", corev1.EventTypeNormal},
		"failed":      {"ReconcileFailed", corev1.EventTypeWarning},
		"drifted":     {"DriftDetected", corev1.EventTypeWarning},
		"rolled-back": {"RolledBack", corev1.EventTypeWarning},
		"stalled":     {"Stalled", corev1.EventTypeWarning},
		"newly-added": {"NewlyAdded", corev1.EventTypeNormal},
	}
	for action, want := range tests {
		t.Run(action, func(t *testing.T) {
			reason, typ := eventReason(action)
			if reason != want.reason || typ != want.typ {
				t.Errorf("eventReason(%q) = %s, %s; want %s, %s", action, reason, typ, want.reason, want.typ)
			}
		})
	}
}

func TestResultEvent(t *testing.T) {
	changes := &ssa.ChangeSet{Entries: []ssa.ChangeSetEntry{
		{Subject: "Deployment/ns/web", Action: ssa.ConfiguredAction},
		{Subject: "Service/ns/web", Action: ssa.UnchangedAction},
	}}
	tests := map[string]struct {
		res  *Result
		want string // message; "" for no event
	}{
		"installed":               {res: &Result{Release: "web", Action: "installed", Revision: 1}, want: "installed revision 1"},
		"upgraded":                {res: &Result{Release: "web", Action: "upgraded", Revision: 2}, want: "upgraded to revision 2"},
		"corrected names objects": {res: &Result{Release: "web", Action: "corrected", Revision: 2, Changes: changes}, want: "corrected drift of revision 2: Deployment/ns/web"},
		"uninstalled":             {res: &Result{Release: "web", Action: "uninstalled", Changes: changes}, want: "uninstalled: deleted 1 object(s)"},
		"unchanged is no event":   {res: &Result{Release: "web", Action: "unchanged"}},
		"failures come from emit": {res: &Result{Release: "web", Action: "failed"}},
		"no result is no event":   {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e, ok := resultEvent(tc.res)
			if ok != (tc.want != "") || e.Message != tc.want {
				t.Errorf("resultEvent = %+v, %v; want message %q", e, ok, tc.want)
			}
		})
	}
}

// Events land on the release's newest record, credentials never show, and
// a repeat bumps the count instead of piling up.
func TestEventRecorderWritesEventsOnTheNewestRecord(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	for rev := 1; rev <= 2; rev++ {
		if err := f.recs.Create(ctx, &record.Revision{Release: "web", Namespace: f.ns, Revision: rev, Status: record.StatusDeployed}); err != nil {
			t.Fatal(err)
		}
	}
	rec := NewEventRecorder(f.kube, f.ns, nil)
	done := make(chan struct{})
	go func() { rec.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	rec.Emit(Event{Release: "web", Object: "Deployment/x/web", Action: "created"}) // per object: ignored
	rec.Emit(Event{Release: "web", Action: "failed", Message: "fetch https://bob:hunter2@git.example.com/state.git: 503"})
	rec.Emit(Event{Release: "web", Action: "failed", Message: "fetch https://bob:hunter2@git.example.com/state.git: 503"})
	rec.Emit(Event{Release: "web", Action: "upgraded", Message: "upgraded to revision 2"})

	var events []corev1.Event
	f.eventually("two events", 20*time.Second, func() bool {
		l, err := f.kube.CoreV1().Events(f.ns).List(ctx, metav1.ListOptions{LabelSelector: record.LabelRelease + "=web"})
		if err != nil {
			t.Fatal(err)
		}
		events = l.Items
		return len(events) == 2
	})
	byReason := map[string]corev1.Event{}
	for _, e := range events {
		byReason[e.Reason] = e
		if e.InvolvedObject.Kind != "Secret" || e.InvolvedObject.Name != "charter.v1.web.v2" || e.InvolvedObject.UID == "" {
			t.Errorf("%s event is on %+v, want the newest record Secret charter.v1.web.v2", e.Reason, e.InvolvedObject)
		}
		if e.Source.Component != EventComponent {
			t.Errorf("%s event source = %q", e.Reason, e.Source.Component)
		}
	}
	failed, ok := byReason["ReconcileFailed"]
	if !ok || failed.Type != corev1.EventTypeWarning || failed.Count != 2 {
		t.Errorf("ReconcileFailed event = %+v, want one Warning with count 2", failed)
	}
	if strings.Contains(failed.Message, "hunter2") || !strings.Contains(failed.Message, "git.example.com") {
		t.Errorf("ReconcileFailed message %q: want the location with its password redacted", failed.Message)
	}
	if up, ok := byReason["Upgraded"]; !ok || up.Type != corev1.EventTypeNormal || up.Message != "upgraded to revision 2" {
		t.Errorf("Upgraded event = %+v", up)
	}
}

// An uninstall deletes the records before its event is written: the
// daemon remembers the record beforehand.
func TestEventRecorderNamesARecordGoneWithTheRelease(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.recs.Create(ctx, &record.Revision{Release: "old", Namespace: f.ns, Revision: 3, Status: record.StatusDeployed}); err != nil {
		t.Fatal(err)
	}
	rec := NewEventRecorder(f.kube, f.ns, nil)
	rec.remember(ctx, "old")
	if err := f.recs.Delete(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { rec.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	rec.Emit(Event{Release: "old", Action: "uninstalled", Message: "uninstalled"})
	f.eventually("the Uninstalled event", 20*time.Second, func() bool {
		l, err := f.kube.CoreV1().Events(f.ns).List(ctx, metav1.ListOptions{LabelSelector: record.LabelRelease + "=old"})
		return err == nil && len(l.Items) == 1 && l.Items[0].Reason == "Uninstalled" && l.Items[0].InvolvedObject.Name == "charter.v1.old.v3"
	})
}

func TestEmitKeepsOneEventPerDriftCorrection(t *testing.T) {
	rec := NewEventRecorder(nil, "ns", nil)
	rec.Emit(Event{Release: "web", Action: "drifted", Message: "ConfigMap/ns/web: /data/x by kubectl; corrected"})
	rec.Emit(Event{Release: "web", Action: "corrected", Message: "corrected drift of revision 2"})
	rec.Emit(Event{Release: "db", Action: "corrected", Message: "corrected drift of revision 1"})
	var got []string
	for len(rec.queue) > 0 {
		e := <-rec.queue
		got = append(got, e.Release+" "+e.Action)
	}
	if want := "web drifted, db corrected"; strings.Join(got, ", ") != want {
		t.Errorf("queued %v, want %s", got, want)
	}
}
