package reconcile

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Release statuses counted by the charter_releases gauge.
const (
	ReleaseDeployed = "deployed" // the last reconcile converged it
	ReleaseFailed   = "failed"   // the last reconcile failed; it is retried
	ReleasePending  = "pending"  // waiting for dependencies, or interrupted
	ReleaseStalled  = "stalled"  // failed permanently: waits for a change of declaration or chart
)

var releaseStatuses = []string{ReleaseDeployed, ReleaseFailed, ReleasePending, ReleaseStalled}

// Metrics are the daemon's Prometheus metrics, in a registry of their own
// (never the global one). A nil *Metrics records nothing, so callers need
// no checks.
type Metrics struct {
	registry          *prometheus.Registry
	reconcileDuration *prometheus.HistogramVec
	reconciles        *prometheus.CounterVec
	releases          *prometheus.GaugeVec
	fetchDuration     *prometheus.HistogramVec
	fetchFailures     *prometheus.CounterVec
	driftCorrections  prometheus.Counter
	leader            prometheus.Gauge
}

// NewMetrics registers charter's metrics, the Go runtime and process
// collectors, and charter_api_requests_total in a new registry.
func NewMetrics(version string) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		reconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "charter_reconcile_duration_seconds",
			Help:    "Duration of one release's reconcile, by what it did (installed, upgraded, unchanged, corrected, uninstalled, failed, waiting…).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"action"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "charter_reconciles_total",
			Help: "Reconciles of releases, by what they did and whether they succeeded.",
		}, []string{"action", "result"}),
		releases: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "charter_releases",
			Help: "Releases this daemon reconciles, by the status their last reconcile left them in (deployed, failed, pending, stalled).",
		}, []string{"status"}),
		fetchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "charter_source_fetch_duration_seconds",
			Help:    "Duration of one fetch of a source (location with credentials redacted).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"source"}),
		fetchFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "charter_source_fetch_failures_total",
			Help: "Failed fetches of a source; its last good snapshot stays in use.",
		}, []string{"source"}),
		driftCorrections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "charter_drift_corrections_total",
			Help: "Reconciles that found a release's live objects changed by someone else and corrected them.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "charter_daemon_leader",
			Help: "1 while this replica holds the leader Lease (or runs without leader election), else 0.",
		}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "charter_build_info",
		Help: "Always 1; the version label says which charter runs.",
	}, []string{"version"})
	build.WithLabelValues(version).Set(1)
	for _, s := range releaseStatuses {
		m.releases.WithLabelValues(s).Set(0)
	}
	m.registry.MustRegister(m.reconcileDuration, m.reconciles, m.releases, m.fetchDuration, m.fetchFailures,
		m.driftCorrections, m.leader, build, apiRequests{},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics are registered (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// SetLeader records whether this replica leads.
func (m *Metrics) SetLeader(leading bool) {
	if m == nil {
		return
	}
	if leading {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// observeReconcile counts one reconcile of a release.
func (m *Metrics) observeReconcile(action string, d time.Duration, err error) {
	if m == nil {
		return
	}
	if action == "" {
		action = "failed"
	}
	result := "success"
	if err != nil {
		result = "failure"
	}
	m.reconcileDuration.WithLabelValues(action).Observe(d.Seconds())
	m.reconciles.WithLabelValues(action, result).Inc()
	if err == nil && action == "corrected" {
		m.driftCorrections.Inc()
	}
}

// observeFetch counts one fetch of a source (its redacted location).
func (m *Metrics) observeFetch(source string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.fetchDuration.WithLabelValues(source).Observe(d.Seconds())
	if err != nil {
		m.fetchFailures.WithLabelValues(source).Inc()
	}
}

// setReleases sets the releases gauge from each release's status.
func (m *Metrics) setReleases(status map[string]string) {
	if m == nil {
		return
	}
	counts := map[string]int{}
	for _, s := range status {
		counts[s]++
	}
	for _, s := range releaseStatuses {
		m.releases.WithLabelValues(s).Set(float64(counts[s]))
	}
}

// releaseStatus is the status a reconcile left its release in; "" when it
// says nothing new (skipped, interrupted keeps the previous one) and
// "gone" once uninstalled.
func releaseStatus(res *Result, err error) string {
	action := ""
	if res != nil {
		action = res.Action
	}
	switch {
	case action == "uninstalled" && err == nil:
		return "gone"
	case action == "skipped":
		return ""
	case action == "interrupted":
		return ReleasePending
	case action == "waiting":
		return ReleasePending
	case action == "stalled":
		return ReleaseStalled
	case err != nil:
		var perm *PermanentError
		if errors.As(err, &perm) {
			return ReleaseStalled
		}
		return ReleaseFailed
	case action == "failed":
		// An unchanged desired state whose permanent failure is recorded.
		return ReleaseStalled
	}
	return ReleaseDeployed
}

// apiRequests exposes the process's Kubernetes API requests as
// charter_api_requests_total{code, method}.
//
// client-go takes one RequestResult adapter per process
// (k8s.io/client-go/tools/metrics.Register runs once), and
// controller-runtime, linked into charter, registers its own in an init
// function. So this reads controller-runtime's rest_client_requests_total at
// scrape time and sums it over hosts, rather than registering an adapter that
// client-go would silently ignore.
type apiRequests struct{}

var apiRequestsDesc = prometheus.NewDesc("charter_api_requests_total",
	"Requests to the Kubernetes API server, by HTTP status code and method.", []string{"code", "method"}, nil)

func (apiRequests) Describe(ch chan<- *prometheus.Desc) { ch <- apiRequestsDesc }

func (apiRequests) Collect(ch chan<- prometheus.Metric) {
	families, err := crmetrics.Registry.Gather()
	if err != nil && len(families) == 0 {
		return
	}
	type key struct{ code, method string }
	sums := map[key]float64{}
	for _, f := range families {
		if f.GetName() != "rest_client_requests_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			var k key
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "code":
					k.code = l.GetValue()
				case "method":
					k.method = l.GetValue()
				}
			}
			sums[k] += mt.GetCounter().GetValue()
		}
	}
	for k, v := range sums {
		ch <- prometheus.MustNewConstMetric(apiRequestsDesc, prometheus.CounterValue, v, k.code, k.method)
	}
}

// observe records one reconcile's outcome: its metrics and the status it
// left the release in. A reconcile cut short by shutdown says nothing.
func (d *Daemon) observe(ctx context.Context, name string, res *Result, err error, took time.Duration) {
	if ctx.Err() != nil || d.Metrics == nil {
		return
	}
	action := ""
	if res != nil {
		action = res.Action
	}
	d.Metrics.observeReconcile(action, took, err)
	st := releaseStatus(res, err)
	if st == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if st == "gone" {
		delete(d.released, name)
	} else {
		d.released[name] = st
	}
	d.Metrics.setReleases(d.released)
}

// forgetOthers drops from the release statuses every release no longer
// among names (removed, or another shard's).
func (d *Daemon) forgetOthers(names []string) {
	if d.Metrics == nil {
		return
	}
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for n := range d.released {
		if !keep[n] {
			delete(d.released, n)
		}
	}
	d.Metrics.setReleases(d.released)
}
