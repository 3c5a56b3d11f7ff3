package reconcile

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/state"
)

// go test ./reconcile/ -run '^$' -bench 'Plan|Unchanged|ParseManifest' -benchmem

// memRecords keeps one release's revisions in memory: enough for a
// reconcile that stops before writing.
type memRecords struct{ revs []*record.Revision }

func (m *memRecords) History(ctx context.Context, release string) ([]*record.Revision, error) {
	return m.revs, nil
}
func (m *memRecords) List(ctx context.Context) ([]*record.Revision, error) { return m.revs, nil }
func (m *memRecords) Create(ctx context.Context, rev *record.Revision) error {
	m.revs = append(m.revs, rev)
	return nil
}
func (m *memRecords) Update(ctx context.Context, rev *record.Revision) error { return nil }
func (m *memRecords) Delete(ctx context.Context, release string) error       { return nil }

var _ Records = (*memRecords)(nil)

// benchState is a state holding a copy of a shared chart and one release
// of it named web, in namespace ns.
func benchState(b *testing.B, chart, ns, values string) *state.Dir {
	b.Helper()
	dir, err := state.Init(filepath.Join(b.TempDir(), "state"))
	if err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(testenv.SharedCharts(b), chart)
	dst := filepath.Join(dir.Root(), "charts", chart)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		b.Fatal(err)
	}
	decl := "name: web\nnamespace: " + ns + "\nchart: charts/" + chart + "\nvalues:\n" + values
	if err := os.WriteFile(filepath.Join(dir.Root(), "releases", "web.yaml"), []byte(decl), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkUnchangedCheck is what a pass triggered by a change of the
// state costs for each release that did not change: load its chart and
// values, compute the desired digest, compare with the deployed record.
// With 1000 releases, one edit pays this 999 times (scenario P3 of
// hack/bench).
func BenchmarkUnchangedCheck(b *testing.B) {
	ctx := context.Background()
	dir := benchState(b, "podinfo", "shop", "  ui:\n    message: hello\n")
	decls := DirDeclarations{Dir: dir}
	d, err := decls.Lookup(ctx, "web")
	if err != nil {
		b.Fatal(err)
	}
	path, err := dir.ResolveChart(d.Release.Chart)
	if err != nil {
		b.Fatal(err)
	}
	ch, err := render.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	vals, err := dir.ValuesFor(ctx, d.Release)
	if err != nil {
		b.Fatal(err)
	}
	recs := &memRecords{revs: []*record.Revision{{
		Release: "web", Namespace: "shop", Revision: 1, Status: record.StatusDeployed,
		DesiredDigest: DesiredDigest(d.Release, ch.Digest, vals),
	}}}
	// An address nothing listens on: a reconcile that reached the cluster
	// would fail rather than pass unnoticed.
	cl, err := NewCluster(&rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	r := &Reconciler{State: decls, Records: recs, Cluster: cl}
	b.ReportAllocs()
	for b.Loop() {
		res, err := r.Reconcile(ctx, "web", Options{OnlyIfChanged: true})
		if err != nil {
			b.Fatal(err)
		}
		if res.Action != "unchanged" {
			b.Fatalf("action %q, want unchanged", res.Action)
		}
	}
}

// BenchmarkParseManifest parses the recorded manifest of a prometheus
// release, which a drift check of an unchanged release applies instead of
// rendering again.
func BenchmarkParseManifest(b *testing.B) {
	ch, err := render.Load(filepath.Join(testenv.SharedCharts(b), "prometheus"))
	if err != nil {
		b.Fatal(err)
	}
	res, err := render.Render(ch, nil, render.Options{ReleaseName: "web", Namespace: "shop"})
	if err != nil {
		b.Fatal(err)
	}
	manifest := manifestOf(res.Objects)
	b.SetBytes(int64(len(manifest)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseManifest(manifest); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlan is a full drift check of one converged podinfo release
// against the test control plane: the plan (a server-side apply dry run of
// every object) that finds nothing to write. It reports the API requests
// one check costs, read from the API server's own counters.
func BenchmarkPlan(b *testing.B) {
	env := testenv.Get(b)
	ns := env.NewNamespace(b)
	ctx := context.Background()
	dir := benchState(b, "podinfo", ns, "  ui:\n    message: hello\n")
	cl, err := NewCluster(env.RESTConfig())
	if err != nil {
		b.Fatal(err)
	}
	r := &Reconciler{State: DirDeclarations{Dir: dir}, Records: record.NewStore(cl.Typed, ns, 0), Cluster: cl, Timeout: time.Minute}
	if _, err := r.Reconcile(ctx, "web", Options{}); err != nil {
		b.Fatal(err)
	}
	before, err := env.APIRequests(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		res, err := r.Reconcile(ctx, "web", Options{})
		if err != nil {
			b.Fatal(err)
		}
		if res.Action != "unchanged" {
			b.Fatalf("action %q, want unchanged", res.Action)
		}
		n++
	}
	after, err := env.APIRequests(ctx)
	if err != nil {
		b.Fatal(err)
	}
	// One request of the difference is the first /metrics scrape itself.
	b.ReportMetric((after-before-1)/float64(n), "requests/op")
}
