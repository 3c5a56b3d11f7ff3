package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/charter-sh/charter/internal/testenv"
)

// cluster is the control plane of a run and the harness's own clients.
// Every request of those clients is counted (watches aside, see
// countingTransport), so windows can leave them out.
type cluster struct {
	env     *testenv.Env
	cfg     *rest.Config
	kube    kubernetes.Interface
	meta    metadata.Interface
	harness *atomic.Int64
}

func newCluster(env *testenv.Env) (*cluster, error) {
	var n atomic.Int64
	cfg := env.RESTConfig()
	cfg.UserAgent = "charter-bench"
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{rt: rt, n: &n} }
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create metadata client: %w", err)
	}
	return &cluster{env: env, cfg: cfg, kube: kube, meta: meta, harness: &n}, nil
}

// countingTransport counts the harness's requests, watches excepted: a
// watch opened before a window and closed after it is counted by the API
// server in neither reading, so it must not be subtracted either.
type countingTransport struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Query().Get("watch") != "true" {
		t.n.Add(1)
	}
	return t.rt.RoundTrip(r)
}

// createNamespace creates ns (fresh: an existing one is an error, so runs
// never mix).
func (c *cluster) createNamespace(ctx context.Context, ns string) error {
	_, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// apiCost is what the API server served in a window, without the harness's
// own requests and the /metrics scrapes.
type apiCost struct {
	Total   float64            `json:"total"`
	Reads   float64            `json:"reads"`
	Writes  float64            `json:"writes"`
	DryRuns float64            `json:"dryRuns"`
	Harness float64            `json:"harness"`                    // the harness's own requests, subtracted
	ByVerb  map[string]float64 `json:"byVerb,omitempty"`           // e.g. "APPLY secrets", "LIST secrets", "APPLY deployments (dry run)"
	Writers map[string]float64 `json:"writesByResource,omitempty"` // writes by resource
}

// window measures API requests between begin and end.
type window struct {
	c       *cluster
	start   time.Time
	before  testenv.RequestCounts
	harness int64
}

func (c *cluster) begin(ctx context.Context) (*window, error) {
	before, err := c.env.RequestCounts(ctx)
	if err != nil {
		return nil, err
	}
	return &window{c: c, start: time.Now(), before: before, harness: c.harness.Load()}, nil
}

// end scrapes again and returns the window's requests.
func (w *window) end(ctx context.Context) (apiCost, time.Duration, error) {
	elapsed := time.Since(w.start)
	own := float64(w.c.harness.Load() - w.harness)
	after, err := w.c.env.RequestCounts(ctx)
	if err != nil {
		return apiCost{}, elapsed, err
	}
	return costOf(after.Sub(w.before), own), elapsed, nil
}

// costOf sums a window's request counts, leaving out the /metrics scrapes
// and subtracting the harness's own requests (all reads) from the reads.
func costOf(d testenv.RequestCounts, harness float64) apiCost {
	c := apiCost{Harness: harness, ByVerb: map[string]float64{}, Writers: map[string]float64{}}
	for _, s := range d {
		if s.Resource == "" && s.Subresource == "/metrics" {
			continue
		}
		c.Total += s.Count
		what := s.Resource
		if what == "" {
			what = "(non-resource)"
		} else if s.Subresource != "" {
			what += "/" + s.Subresource
		}
		key := s.Verb + " " + what
		switch {
		case s.DryRun:
			c.DryRuns += s.Count
			key += " (dry run)"
		case s.Write():
			c.Writes += s.Count
			c.Writers[what] += s.Count
		default:
			c.Reads += s.Count
		}
		c.ByVerb[key] += s.Count
	}
	c.Total = max(0, c.Total-harness)
	c.Reads = max(0, c.Reads-harness)
	return c
}

// minus subtracts a background cost scaled by factor (e.g. a baseline
// measured over a shorter window), never going below zero.
func (c apiCost) minus(bg apiCost, factor float64) apiCost {
	out := apiCost{Harness: c.Harness, ByVerb: map[string]float64{}, Writers: map[string]float64{}}
	out.Total = max(0, c.Total-bg.Total*factor)
	out.Reads = max(0, c.Reads-bg.Reads*factor)
	out.Writes = max(0, c.Writes-bg.Writes*factor)
	out.DryRuns = max(0, c.DryRuns-bg.DryRuns*factor)
	for k, v := range c.ByVerb {
		if v -= bg.ByVerb[k] * factor; v > 0.5 {
			out.ByVerb[k] = v
		}
	}
	for k, v := range c.Writers {
		if v -= bg.Writers[k] * factor; v > 0.5 {
			out.Writers[k] = v
		}
	}
	return out
}

// topVerbs lists the largest entries of ByVerb, for notes.
func (c apiCost) topVerbs(n int) string {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range c.ByVerb {
		all = append(all, kv{k, v})
	}
	for i := range all { // small n: selection sort keeps it dependency-free
		for j := i + 1; j < len(all); j++ {
			if all[j].v > all[i].v || all[j].v == all[i].v && all[j].k < all[i].k {
				all[i], all[j] = all[j], all[i]
			}
		}
	}
	var parts []string
	for i := 0; i < len(all) && i < n; i++ {
		parts = append(parts, fmt.Sprintf("%s %.0f", all[i].k, all[i].v))
	}
	return strings.Join(parts, ", ")
}

// errNotReady is returned by waits that time out.
var errNotReady = errors.New("not converged in time")
