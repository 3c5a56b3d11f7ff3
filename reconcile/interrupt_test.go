package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charter-sh/charter/record"
)

// writeStuckChart puts a chart whose Deployment can never be scheduled into
// the state: its health wait never ends on its own.
func (f *fixture) writeStuckChart() {
	f.t.Helper()
	dir := filepath.Join(f.dir.Root(), "charts", "stuck")
	files := map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: stuck\nversion: 0.1.0\n",
		"templates/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      nodeSelector: {no-such-node: "true"}
      containers: [{name: c, image: busybox}]
`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	body := "name: stuck\nnamespace: " + f.ns + "\nchart: charts/stuck\n"
	if err := os.WriteFile(filepath.Join(f.dir.Root(), "releases", "stuck.yaml"), []byte(body), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func TestInterruptedReconcileStaysPendingAndIsRetried(t *testing.T) {
	f := newFixture(t)
	f.writeStuckChart()

	ctx, cancel := context.WithCancel(context.Background())
	f.recon.Progress = func(e Event) {
		if e.Action == "waiting" || e.Action == "created" {
			cancel() // Ctrl-C while waiting for health
		}
	}
	res, err := f.recon.Reconcile(ctx, "stuck", Options{})
	if err == nil {
		t.Fatal("reconcile of an interrupted release succeeded")
	}
	if res.Action != "interrupted" {
		t.Errorf("action = %s, want interrupted", res.Action)
	}
	last, err := f.recs.Last(context.Background(), "stuck")
	if err != nil {
		t.Fatal(err)
	}
	if last.Status != record.StatusPendingInstall || !strings.HasPrefix(last.Message, "interrupted") {
		t.Errorf("after interruption: %s %q, want pending-install, interrupted", last.Status, last.Message)
	}

	// The next pass, even one that skips unchanged releases, picks the
	// pending revision up (no second revision for one desired state); this
	// time the health wait times out, which is recorded as a failure.
	f.recon.Progress = nil
	f.recon.Timeout = 2 * time.Second
	_, err = f.recon.Reconcile(context.Background(), "stuck", Options{OnlyIfChanged: true})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("retry: %v, want a health-wait timeout", err)
	}
	last, err = f.recs.Last(context.Background(), "stuck")
	if err != nil {
		t.Fatal(err)
	}
	if last.Revision != 1 || last.Status != record.StatusFailed || !strings.Contains(last.Message, "Deployment/"+f.ns+"/stuck") {
		t.Errorf("after retry: revision %d %s %q, want revision 1 failed naming the Deployment", last.Revision, last.Status, last.Message)
	}

	// A timed-out health wait may pass on its own: it is recorded as
	// retryable, and the next change-driven pass (the daemon's backoff
	// retry) tries again.
	if !last.Retryable {
		t.Error("a health-wait timeout was recorded as permanent")
	}
	if _, err := f.recon.Reconcile(context.Background(), "stuck", Options{OnlyIfChanged: true}); err == nil {
		t.Fatal("retry of a stuck release succeeded")
	}
	if last, _ = f.recs.Last(context.Background(), "stuck"); last.Revision != 2 {
		t.Errorf("retryable failure not retried: last revision %d, want 2", last.Revision)
	}

	// A permanent failure (the API server rejects the object) is not
	// retried by change-driven passes (no hot loop).
	tpl := filepath.Join(f.dir.Root(), "charts", "stuck", "templates", "deploy.yaml")
	b, err := os.ReadFile(tpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tpl, []byte(strings.Replace(string(b), "image: busybox}", "image: busybox, imagePullPolicy: Bogus}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.recon.Reconcile(context.Background(), "stuck", Options{OnlyIfChanged: true}); err == nil {
		t.Fatal("an object the API server rejects was applied")
	}
	last, _ = f.recs.Last(context.Background(), "stuck")
	if last.Retryable || last.Status != record.StatusFailed {
		t.Fatalf("rejected object: %s retryable=%v, want a permanent failure", last.Status, last.Retryable)
	}
	res, err = f.recon.Reconcile(context.Background(), "stuck", Options{OnlyIfChanged: true})
	if err != nil || res.Action != "failed" {
		t.Errorf("change-driven pass over a permanent failure: %v, %v; want skipped as failed", res.Action, err)
	}
	if again, _ := f.recs.Last(context.Background(), "stuck"); again.Revision != last.Revision {
		t.Errorf("a skipped pass wrote revision %d", again.Revision)
	}
}
