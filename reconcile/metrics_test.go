package reconcile

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientmetrics "k8s.io/client-go/tools/metrics"

	"github.com/charter-sh/charter/record"
)

func TestMetricsAreRegistered(t *testing.T) {
	m := NewMetrics("1.2.3")
	m.observeReconcile("installed", time.Second, nil)
	m.observeFetch("https://git.example.com/state.git", time.Second, errors.New("down"))
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
	}
	for _, name := range []string{
		"charter_reconcile_duration_seconds", "charter_reconciles_total", "charter_releases",
		"charter_source_fetch_duration_seconds", "charter_source_fetch_failures_total",
		"charter_drift_corrections_total", "charter_daemon_leader", "charter_build_info",
		"go_goroutines", "process_start_time_seconds",
	} {
		if !got[name] {
			t.Errorf("metric %s is not registered", name)
		}
	}
	if problems, err := testutil.GatherAndLint(m.Registry(), "charter_reconciles_total", "charter_releases", "charter_build_info"); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	// Two daemons in one process (tests) each get their own registry.
	NewMetrics("1.2.3")
}

func TestMetricsCountReconcilesAndStatuses(t *testing.T) {
	m := NewMetrics("dev")
	m.observeReconcile("installed", 2*time.Second, nil)
	m.observeReconcile("corrected", time.Second, nil)
	m.observeReconcile("failed", time.Second, errors.New("boom"))
	m.observeFetch("s3://bucket/state", time.Second, nil)
	m.observeFetch("s3://bucket/state", time.Second, errors.New("down"))
	m.setReleases(map[string]string{"a": ReleaseDeployed, "b": ReleaseDeployed, "c": ReleaseStalled})

	checks := map[string]struct {
		got, want float64
	}{
		"installed successes":      {testutil.ToFloat64(m.reconciles.WithLabelValues("installed", "success")), 1},
		"failures":                 {testutil.ToFloat64(m.reconciles.WithLabelValues("failed", "failure")), 1},
		"drift corrections":        {testutil.ToFloat64(m.driftCorrections), 1},
		"fetch failures":           {testutil.ToFloat64(m.fetchFailures.WithLabelValues("s3://bucket/state")), 1},
		"deployed releases":        {testutil.ToFloat64(m.releases.WithLabelValues(ReleaseDeployed)), 2},
		"stalled releases":         {testutil.ToFloat64(m.releases.WithLabelValues(ReleaseStalled)), 1},
		"failed releases are zero": {testutil.ToFloat64(m.releases.WithLabelValues(ReleaseFailed)), 0},
	}
	for name, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.fetchDuration); n != 1 {
		t.Errorf("fetch duration series = %d, want 1", n)
	}
	m.SetLeader(true)
	if v := testutil.ToFloat64(m.leader); v != 1 {
		t.Errorf("leader = %v, want 1", v)
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.observeReconcile("installed", time.Second, nil)
	m.observeFetch("x", time.Second, nil)
	m.setReleases(map[string]string{"a": ReleaseDeployed})
	m.SetLeader(true)
}

// client-go takes one request adapter per process, and controller-runtime
// takes it first: charter_api_requests_total must still count requests.
func TestAPIRequestsAreCounted(t *testing.T) {
	m := NewMetrics("dev")
	before := apiRequestCount(t, m, "429", "PATCH")
	clientmetrics.RequestResult.Increment(context.Background(), "429", "PATCH", "127.0.0.1:6443")
	clientmetrics.RequestResult.Increment(context.Background(), "429", "PATCH", "10.0.0.1:6443")
	if got := apiRequestCount(t, m, "429", "PATCH"); got != before+2 {
		t.Errorf("charter_api_requests_total{code=429,method=PATCH} = %v, want %v (summed over hosts)", got, before+2)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `charter_api_requests_total{code="429",method="PATCH"}`) {
		t.Errorf("/metrics lacks the API requests:\n%s", body)
	}
}

func apiRequestCount(t *testing.T, m *Metrics, code, method string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "charter_api_requests_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["code"] == code && labels["method"] == method {
				return mt.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestReleaseStatus(t *testing.T) {
	perm := &PermanentError{errors.New("bad chart")}
	tests := map[string]struct {
		res  *Result
		err  error
		want string
	}{
		"installed is deployed":          {res: &Result{Action: "installed"}, want: ReleaseDeployed},
		"unchanged is deployed":          {res: &Result{Action: "unchanged"}, want: ReleaseDeployed},
		"corrected is deployed":          {res: &Result{Action: "corrected"}, want: ReleaseDeployed},
		"a transient failure is failed":  {res: &Result{Action: "failed"}, err: errors.New("timeout"), want: ReleaseFailed},
		"a permanent failure is stalled": {res: &Result{Action: "failed"}, err: perm, want: ReleaseStalled},
		"a recorded permanent failure":   {res: &Result{Action: "failed"}, want: ReleaseStalled},
		"waiting on dependencies":        {res: &Result{Action: "waiting"}, err: errors.New("wait"), want: ReleasePending},
		"a failure without a result":     {err: errors.New("api down"), want: ReleaseFailed},
		"uninstalled is gone":            {res: &Result{Action: "uninstalled"}, want: "gone"},
		"skipped says nothing":           {res: &Result{Action: "skipped"}, want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := releaseStatus(tc.res, tc.err); got != tc.want {
				t.Errorf("releaseStatus = %q, want %q", got, tc.want)
			}
		})
	}
}

// scrape reads the daemon's /metrics as a Prometheus server would.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// After a reconcile /metrics says what happened, and the release's record
// carries Events: installed, then a permanent failure as a Warning.
func TestDaemonReportsMetricsAndEvents(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	d := f.daemon(t, 2*time.Second, false)
	d.Metrics = NewMetrics("test")
	d.Events = NewEventRecorder(f.kube, f.ns, nil)
	f.recon.Progress = d.Events.Emit
	f.declare("web", "  replicaCount: 1\n  message: one\n")
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	f.eventually("web deployed", 60*time.Second, func() bool { return f.deployedRevision("web") == 1 })
	src := d.Sources[0].Source.String()
	var body string
	f.eventually("metrics of the install", 10*time.Second, func() bool {
		body = scrape(t, d.Metrics)
		return strings.Contains(body, `charter_reconciles_total{action="installed",result="success"} 1`) &&
			strings.Contains(body, `charter_releases{status="deployed"} 1`)
	})
	for _, want := range []string{
		`charter_reconcile_duration_seconds_count{action="installed"} 1`,
		`charter_source_fetch_duration_seconds_count{source="` + src + `"}`,
		`charter_api_requests_total{code="200",method="GET"}`,
		`charter_build_info{version="test"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	f.eventually("the Installed event on the record", 20*time.Second, func() bool {
		return hasEvent(t, f, "web", "Installed", "charter.v1.web.v1")
	})

	// A chart that does not exist: a permanent failure, stalled.
	body2 := "apiVersion: charter.sh/v1\nkind: Release\nname: web\nnamespace: " + f.ns + "\nchart: charts/nowhere\n"
	if err := os.WriteFile(filepath.Join(f.dir.Root(), "releases", "web.yaml"), []byte(body2), 0o644); err != nil {
		t.Fatal(err)
	}
	f.eventually("the release counted stalled", 30*time.Second, func() bool {
		b := scrape(t, d.Metrics)
		return strings.Contains(b, `charter_releases{status="stalled"} 1`) && strings.Contains(b, `charter_releases{status="deployed"} 0`)
	})
	f.eventually("a ReconcileFailed warning", 20*time.Second, func() bool {
		return hasEvent(t, f, "web", "ReconcileFailed", "")
	})
}

// hasEvent reports whether the release has an Event with reason, on the
// record Secret named secret (any, when empty).
func hasEvent(t *testing.T, f *fixture, release, reason, secret string) bool {
	t.Helper()
	l, err := f.kube.CoreV1().Events(f.ns).List(context.Background(), metav1.ListOptions{LabelSelector: record.LabelRelease + "=" + release})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range l.Items {
		if e.Reason == reason && e.InvolvedObject.Kind == "Secret" && (secret == "" || e.InvolvedObject.Name == secret) {
			return true
		}
	}
	return false
}
