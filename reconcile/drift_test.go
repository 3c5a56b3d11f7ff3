package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/charter-sh/charter/record"
)

// eventLog collects release-level events from concurrent reconciles.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	if e.Object != "" {
		return
	}
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) of(release, action string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		if e.Release == release && e.Action == action {
			out = append(out, e.Message)
		}
	}
	return out
}

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (f *fixture) lastDrift(name string) *record.Drift {
	rev, err := f.recs.LastDeployed(context.Background(), name)
	if err != nil {
		return nil
	}
	return rev.LastDrift
}

func (f *fixture) replicas(name string) int32 {
	f.t.Helper()
	d, err := f.kube.AppsV1().Deployments(f.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return *d.Spec.Replicas
}

// scaleByHand sets a Deployment's replicas the way `kubectl edit` does: an
// update under the field manager kubectl-edit.
func (f *fixture) scaleByHand(name string, n int32) {
	f.t.Helper()
	ctx := context.Background()
	d, err := f.kube.AppsV1().Deployments(f.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	d.Spec.Replicas = &n
	if _, err := f.kube.AppsV1().Deployments(f.ns).Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		f.t.Fatal(err)
	}
}

func TestDriftWatchCorrectsHandEditsWithinSeconds(t *testing.T) {
	f := newFixture(t).withAppChart()
	var log eventLog
	f.recon.Progress = log.add
	var logs lockedBuffer
	f.recon.Log = slog.New(slog.NewTextHandler(&logs, nil))
	// Sources and resyncs every hour: only the watch can explain a
	// correction within seconds.
	d := f.daemon(t, time.Hour, false)
	w, err := NewDriftWatcher(f.recon)
	if err != nil {
		t.Fatal(err)
	}
	d.Drift = w
	f.declareApp("web", "", "")
	f.declareApp("scaled", "drift:\n  ignore:\n    - paths: [/spec/replicas]\n      target: {kind: Deployment}\n", "")
	f.declareApp("annotated", "", "  ignore: /spec/replicas\n")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, n := range []string{"web", "scaled", "annotated"} {
		f.eventually(n+" deployed", 90*time.Second, func() bool { return f.deployedRevision(n) == 1 })
	}

	t.Run("a hand edit is corrected and reported", func(t *testing.T) {
		f.scaleByHand("web", 3)
		f.eventually("replicas corrected", 15*time.Second, func() bool { return f.replicas("web") == 1 })
		f.eventually("drift recorded", 10*time.Second, func() bool { return f.lastDrift("web") != nil })
		drift := f.lastDrift("web")
		want := record.DriftedObject{Object: "Deployment/" + f.ns + "/web", Fields: []string{"/spec/replicas"}, Managers: []string{"kubectl-edit"}}
		if drift.Action != record.DriftCorrected || len(drift.Objects) != 1 || !slices.Equal(drift.Objects[0].Fields, want.Fields) ||
			!slices.Equal(drift.Objects[0].Managers, want.Managers) || drift.Objects[0].Object != want.Object {
			t.Errorf("recorded drift = %+v, want %+v corrected", drift, want)
		}
		msgs := log.of("web", "drifted")
		if len(msgs) == 0 || msgs[0] != "Deployment/"+f.ns+"/web /spec/replicas changed by kubectl-edit; corrected" {
			t.Errorf("drifted events = %q", msgs)
		}
		if n := len(f.history("web")); n != 1 {
			t.Errorf("a drift correction wrote a revision: %d revisions", n)
		}
	})

	t.Run("a deleted object is recreated", func(t *testing.T) {
		if err := f.kube.CoreV1().ConfigMaps(f.ns).Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		f.eventually("configmap recreated", 15*time.Second, func() bool {
			_, err := f.kube.CoreV1().ConfigMaps(f.ns).Get(context.Background(), "web", metav1.GetOptions{})
			return err == nil
		})
		f.eventually("deletion recorded", 10*time.Second, func() bool {
			d := f.lastDrift("web")
			return d != nil && len(d.Objects) == 1 && d.Objects[0].Deleted
		})
	})

	t.Run("ignored fields are left alone and not reported", func(t *testing.T) {
		f.scaleByHand("scaled", 4)
		f.scaleByHand("annotated", 5)
		// A change nobody is meant to correct: give the watch the time it
		// takes to correct one (above) and check nothing happened.
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) {
			if f.replicas("scaled") != 4 || f.replicas("annotated") != 5 {
				t.Fatalf("an ignored field was reverted: scaled=%d annotated=%d", f.replicas("scaled"), f.replicas("annotated"))
			}
			time.Sleep(250 * time.Millisecond)
		}
		for _, n := range []string{"scaled", "annotated"} {
			if strings.Contains(logs.String(), `msg="drift detected" release=`+n) {
				t.Errorf("%s: an edit of an ignored field kicked a reconcile", n)
			}
			if msgs := log.of(n, "drifted"); len(msgs) > 0 {
				t.Errorf("%s: drift in an ignored field reported: %q", n, msgs)
			}
			// A full drift check keeps the live value and finds nothing.
			res, err := f.recon.Reconcile(context.Background(), n, Options{})
			if err != nil || res.Action != "unchanged" {
				t.Errorf("%s: full check = %v, %v; want unchanged", n, res, err)
			}
			if f.lastDrift(n) != nil {
				t.Errorf("%s: drift recorded for an ignored field: %+v", n, f.lastDrift(n))
			}
		}
		if got := f.replicas("scaled"); got != 4 {
			t.Errorf("scaled replicas = %d after a full check, want 4 kept", got)
		}
		if got := f.replicas("annotated"); got != 5 {
			t.Errorf("annotated replicas = %d after a full check, want 5 kept", got)
		}
	})

	t.Run("the watcher vouches for untouched releases", func(t *testing.T) {
		if w.Clean("nothing-like-it") {
			t.Error("an unknown release is clean")
		}
		// Observed twice with complete caches (install, then the
		// corrections above): resyncs may skip its dry-run.
		f.eventually("web clean", 10*time.Second, func() bool { return w.Clean("web") })
		f.scaleByHand("web", 2)
		f.eventually("replicas corrected again", 15*time.Second, func() bool { return f.replicas("web") == 1 })
		f.eventually("a third drift reported", 10*time.Second, func() bool { return len(log.of("web", "drifted")) == 3 })
		if msgs := log.of("web", "drifted"); !strings.HasSuffix(msgs[2], "/spec/replicas changed by kubectl-edit; corrected") {
			t.Errorf("third drifted event = %q", msgs[2])
		}
	})

	t.Run("objects of an uninstalled release going away is no drift", func(t *testing.T) {
		if err := os.Remove(filepath.Join(f.dir.Root(), "releases", "annotated.yaml")); err != nil {
			t.Fatal(err)
		}
		f.eventually("annotated uninstalled", 60*time.Second, func() bool {
			_, err := f.recs.History(context.Background(), "annotated")
			return errors.Is(err, record.ErrNotFound)
		})
		f.eventually("annotated objects gone", 30*time.Second, func() bool {
			_, err := f.kube.AppsV1().Deployments(f.ns).Get(context.Background(), "annotated", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
		time.Sleep(time.Second) // a kick would come within the 200ms debounce
		if strings.Contains(logs.String(), `msg="drift detected" release=annotated`) {
			t.Error("the uninstall of a release was taken for drift")
		}
		if w.Clean("annotated") {
			t.Error("an uninstalled release is still clean")
		}
	})
}
