package reconcile

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/source"
	sourcegit "github.com/charter-sh/charter/source/git"
	"github.com/charter-sh/charter/source/git/gittest"
)

// gitState is a repository holding the example chart and one release.
func gitState(t testing.TB, ns, release, message string) (*gittest.Repo, string) {
	root := t.TempDir()
	repo := gittest.NewRepo(t, root, "state")
	files := map[string][]byte{
		"charter.yaml":                  []byte("apiVersion: charter.sh/v1\nkind: State\n"),
		"releases/" + release + ".yaml": []byte("name: " + release + "\nnamespace: " + ns + "\nchart: charts/hello\nvalues:\n  message: " + message + "\n"),
	}
	for _, f := range []string{"Chart.yaml", "values.yaml", "values.schema.json", "templates/_helpers.tpl", "templates/configmap.yaml", "templates/deployment.yaml", "templates/service.yaml"} {
		b, err := os.ReadFile("../examples/state/charts/hello/" + f)
		if err != nil {
			t.Fatal(err)
		}
		files["charts/hello/"+f] = b
	}
	repo.Commit(t, files, "seed")
	return repo, root
}

// A source that fails after having worked keeps its last good snapshot:
// its release stays applied, nothing is pruned, and the failure is
// reported without the credentials.
func TestFailingSourceKeepsItsLastGoodSnapshot(t *testing.T) {
	f := newFixture(t)
	repo, root := gitState(t, f.ns, "kept", "one")
	srv := gittest.ServeHTTP(t, root, "deploy", "s3cret-pass")
	loc := strings.Replace(srv.RepoURL(repo), "http://", "http://deploy:s3cret-pass@", 1)
	src, err := sourcegit.New(loc, source.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	set := NewSourceSet([]string{src.String()})
	f.recon.State = set
	d := &Daemon{Reconciler: f.recon, Set: set, Interval: 200 * time.Millisecond, Resync: time.Hour, Workers: 2,
		Sources: []Watched{{Source: src}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	f.eventually("kept deployed", 90*time.Second, func() bool { return f.deployedRevision("kept") == 1 })
	last, err := f.recs.Last(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(last.Source, "s3cret-pass") || !strings.HasPrefix(last.SourceRevision, "main@sha1:") {
		t.Errorf("record source %q revision %q: want the redacted URL and main@sha1:…", last.Source, last.SourceRevision)
	}

	// The repository goes away (a deleted repo, a wrong URL after a move).
	if err := os.Rename(repo.Bare, repo.Bare+".moved"); err != nil {
		t.Fatal(err)
	}
	f.eventually("the source reported failing", 30*time.Second, func() bool {
		st := d.Status()
		return len(st) == 1 && st[0].Error != ""
	})
	st := d.Status()[0]
	if strings.Contains(st.Error, "s3cret-pass") || strings.Contains(st.Source, "s3cret-pass") {
		t.Errorf("source status leaks the password: %+v", st)
	}
	if err := d.runPass(ctx, pass{full: true}, 2); err != nil {
		t.Fatal(err)
	}
	rev, err := f.recs.Last(ctx, "kept")
	if err != nil || rev.Status != record.StatusDeployed || rev.Revision != 1 {
		t.Errorf("after the source failed: %v %v; want revision 1 still deployed", rev, err)
	}
	if _, err := f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "kept-hello", metav1.GetOptions{}); err != nil {
		t.Errorf("objects pruned while the source failed: %v", err)
	}
}

// countingTransport counts requests to the API server.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// BenchmarkIdleGitPoll measures what a git poll costs when nothing was
// committed: ls-remotes, fetches and API server requests per poll (the
// issue's target: no fetch, no render, no write).
func BenchmarkIdleGitPoll(b *testing.B) {
	env := testenv.Get(b)
	ns := env.NewNamespace(b)
	var apiRequests atomic.Int64
	cfg := env.RESTConfig()
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, &apiRequests} })
	cl, err := NewCluster(cfg)
	if err != nil {
		b.Fatal(err)
	}
	repo, _ := gitState(b, ns, "idle", "one")
	src, err := sourcegit.New(repo.URL, source.Options{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	set := NewSourceSet([]string{src.String()})
	recs := record.NewStore(cl.Typed, ns, 0)
	r := &Reconciler{State: set, Records: recs, Cluster: cl, Timeout: time.Minute}
	d := &Daemon{Reconciler: r, Set: set, Sources: []Watched{{Source: src}}, Interval: time.Hour, Resync: time.Hour}
	ctx := context.Background()
	d.status = map[string]*SourceStatus{src.String(): {Source: src.String()}}
	if !d.fetch(ctx, d.Sources[0]) {
		b.Fatal("first fetch found nothing")
	}
	if err := d.runPass(ctx, pass{full: true}, 2); err != nil {
		b.Fatal(err)
	}
	before, api0 := src.Stats(), apiRequests.Load()
	b.ResetTimer()
	changed := 0
	for i := 0; i < b.N; i++ {
		// What the daemon does on each poll tick: fetch, and only on a
		// change signal a (change-driven) pass.
		if d.fetch(ctx, d.Sources[0]) {
			changed++
			if err := d.runPass(ctx, pass{}, 2); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	after := src.Stats()
	polls := float64(b.N)
	b.ReportMetric(float64(after.ListRemote-before.ListRemote)/polls, "ls-remote/poll")
	b.ReportMetric(float64(after.Fetches-before.Fetches)/polls, "fetch/poll")
	b.ReportMetric(float64(apiRequests.Load()-api0)/polls, "api-req/poll")
	b.ReportMetric(float64(changed)/polls, "passes/poll")
}
