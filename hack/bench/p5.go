package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"time"

	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/repo"
)

// p5Releases resolve from the generated index; p5IndexSize is its size.
const (
	p5Releases  = 50
	p5IndexSize = 30 << 20
)

// p5 serves a generated 30 MiB index.yaml (plus the real podinfo archive)
// over HTTP and resolves 50 releases from it: in process with charter's
// repository client (time and extra memory: the targets), with helm pull
// processes for comparison, and end to end with a daemon whose 50
// declarations name the repository chart.
func (b *bench) p5(ctx context.Context) error {
	dir := filepath.Join(b.work, "p5", "repo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	archive, err := b.packaged(ctx, "podinfo")
	if err != nil {
		return err
	}
	srv, version, err := serveIndex(dir, archive)
	if err != nil {
		return err
	}
	defer srv.Close()
	fi, err := os.Stat(filepath.Join(dir, "index.yaml"))
	if err != nil {
		return err
	}
	b.printf("   index.yaml: %.1f MiB at %s", mib(fi.Size()), srv.URL)

	b.add(b.p5Charter(ctx, srv.URL, version, fi.Size()))
	b.add(b.p5Helm(ctx, srv.URL, version))

	// End to end: a daemon with 50 releases from the index, and one with 50
	// local-chart releases for the memory baseline.
	local := Result{Scenario: "P5", Case: "daemon: 50 local-chart releases", Tool: "charter", Procs: 1}
	if _, err := b.fanOut(ctx, fanOutSpec{n: p5Releases, ns: "p5-local", archive: archive, r: &local}); err != nil {
		local.Error = oneLine(err.Error())
	}
	b.add(local)
	indexed := Result{Scenario: "P5", Case: "daemon: 50 releases from the index", Tool: "charter", Procs: 1}
	prepare := func(state string) (string, string, error) {
		if _, err := newState(state, ""); err != nil {
			return "", "", err
		}
		repos := fmt.Sprintf("apiVersion: charter.sh/v1\nkind: Repositories\nrepositories:\n  - name: bench\n    url: %s\n", srv.URL)
		return "bench/podinfo", version, os.WriteFile(filepath.Join(state, "repositories.yaml"), []byte(repos), 0o644)
	}
	if _, err := b.fanOut(ctx, fanOutSpec{n: p5Releases, ns: "p5-index", prepare: prepare, r: &indexed}); err != nil {
		indexed.Error = oneLine(err.Error())
	}
	if local.Error == "" && indexed.Error == "" {
		indexed.Extra = append(indexed.Extra, Stat{"peak RSS above the local-chart daemon", indexed.PeakRSS - local.PeakRSS, "MiB"})
	}
	b.add(indexed)
	return nil
}

// p5Charter resolves the 50 releases in process with charter's repository
// client, as the daemon does: the first resolve downloads and parses the
// index, the others revalidate it (ETag) and fetch the archive.
func (b *bench) p5Charter(ctx context.Context, url, version string, size int64) Result {
	r := Result{Scenario: "P5", Case: p5Case, Tool: "charter", NoAPI: true, NoRSS: true, Procs: 1}
	client, err := repo.NewClient(repo.ClientOptions{CacheDir: filepath.Join(b.work, "p5", "charter-cache")})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	repos := []repo.Repository{{Name: "bench", URL: url}}
	ref, err := repo.ParseRef("bench/podinfo")
	if err != nil {
		r.Error = err.Error()
		return r
	}
	runtime.GC()
	base := heapInUse()
	stop := heapPeak()
	cpu0 := selfCPU()
	t0 := time.Now()
	var first time.Duration
	for i := range p5Releases {
		res, err := repo.Resolve(ctx, client, ref, "="+version, repos)
		if err != nil {
			stop()
			r.Error = oneLine(err.Error())
			return r
		}
		if _, err := render.LoadArchive("podinfo", strings.NewReader(string(res.Archive))); err != nil {
			stop()
			r.Error = oneLine(err.Error())
			return r
		}
		if i == 0 {
			first = time.Since(t0)
		}
	}
	wall := time.Since(t0)
	peak := stop()
	cpu := selfCPU() - cpu0
	runtime.GC()
	retained := heapInUse() - base
	runtime.KeepAlive(client)
	r.Wall, r.CPU = wall.Seconds(), cpu.Seconds()
	r.Measured = "in process: repo.Resolve and chart load for each of the 50 releases, one client (its index cache shared)"
	r.Extra = []Stat{
		{"extra memory (heap peak)", mib(int64(peak)), "MiB"},
		{"retained (index cache)", mib(int64(max(0, retained))), "MiB"},
		{"first resolve (download + parse)", first.Seconds(), "s"},
		{"later resolves, each", (wall - first).Seconds() / float64(p5Releases-1), "s"},
		{"index size", mib(size), "MiB"},
	}
	return r
}

// p5Helm pulls the same chart version 50 times with helm (at most -workers
// at once), after one `helm repo add`; each helm process loads the whole
// index.
func (b *bench) p5Helm(ctx context.Context, url, version string) Result {
	r := Result{Scenario: "P5", Case: p5Case, Tool: "helm", NoAPI: true}
	t := time.Now()
	if _, err := b.helmCmd("p5-helm.log", "repo", "add", "bench", url, "--force-update").run(ctx, nil); err != nil {
		r.Error = oneLine(err.Error())
		return r
	}
	add := time.Since(t)
	dst := filepath.Join(b.work, "p5", "helm-pulls")
	var idx []int
	for i := range p5Releases {
		if err := os.MkdirAll(filepath.Join(dst, fmt.Sprint(i)), 0o755); err != nil {
			r.Error = err.Error()
			return r
		}
		idx = append(idx, i)
	}
	b.measure(ctx, &r, func(ctx context.Context, u *usage) error {
		return parallel(ctx, b.cfg.workers, idx, func(ctx context.Context, i int) error {
			_, err := b.helmCmd("p5-helm.log", "pull", "bench/podinfo", "--version", version, "-d", filepath.Join(dst, fmt.Sprint(i))).run(ctx, u)
			if err != nil {
				u.fail(oneLine(err.Error()))
			}
			return nil
		})
	})
	r.Measured = fmt.Sprintf("%d helm pull processes, %d at a time, after helm repo add", p5Releases, b.cfg.workers)
	r.Extra = []Stat{{"helm repo add (download + parse once)", add.Seconds(), "s"}}
	return r
}

// heapInUse is the live heap in bytes.
func heapInUse() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// heapPeak samples the live heap every millisecond until stop is called
// and returns the peak above the level at the start, in bytes.
func heapPeak() (stop func() uint64) {
	base := heapInUse()
	var peak atomic.Int64
	peak.Store(base)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := heapInUse(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		if v := heapInUse(); v > peak.Load() {
			peak.Store(v)
		}
		return uint64(max(0, peak.Load()-base))
	}
}

// serveIndex writes a generated index.yaml of about p5IndexSize bytes into
// dir, next to the podinfo archive it lists (among thousands of made-up
// charts), and serves dir over HTTP with ETags, as static hosting does.
func serveIndex(dir, archive string) (*httptest.Server, string, error) {
	data, err := os.ReadFile(archive)
	if err != nil {
		return nil, "", err
	}
	base := filepath.Base(archive) // podinfo-6.14.1.tgz
	version := strings.TrimSuffix(strings.TrimPrefix(base, "podinfo-"), ".tgz")
	if err := os.WriteFile(filepath.Join(dir, base), data, 0o644); err != nil {
		return nil, "", err
	}
	etags := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.URL.Path)
		if tag, ok := etags[name]; ok {
			w.Header().Set("ETag", tag)
			if r.Header.Get("If-None-Match") == tag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		http.ServeFile(w, r, filepath.Join(dir, name))
	}))
	sum := sha256.Sum256(data)
	if err := writeIndex(filepath.Join(dir, "index.yaml"), srv.URL, base, version, hex.EncodeToString(sum[:]), p5IndexSize); err != nil {
		srv.Close()
		return nil, "", err
	}
	for _, f := range []string{"index.yaml", base} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			srv.Close()
			return nil, "", err
		}
		s := sha256.Sum256(b)
		etags[f] = `"` + hex.EncodeToString(s[:8]) + `"`
	}
	return srv, version, nil
}

var indexWords = strings.Fields(`kubernetes chart deploys a scalable highly available database cache web server
proxy ingress controller metrics monitoring logging operator storage message queue streaming analytics
for the cluster with persistence replication backups tls authentication and dashboards open source`)

// writeIndex writes an index.yaml in the layout `helm repo index` produces:
// made-up charts with ten versions each and realistic metadata until the
// file reaches size bytes, after podinfo, whose newest version is the
// real archive.
func writeIndex(path, url, archive, version, digest string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	text := func(n int) string {
		ws := make([]string, n)
		for i := range ws {
			ws[i] = indexWords[rng.IntN(len(indexWords))]
		}
		return strings.Join(ws, " ")
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fmt.Fprintf(w, "apiVersion: v1\nentries:\n")
	written := int64(0)
	count := &countWriter{w: w, n: &written}
	entry := func(name, ver, app, desc, u, dg string) {
		fmt.Fprintf(count, "  - annotations:\n      artifacthub.io/changes: |\n        - kind: changed\n          description: %s\n      artifacthub.io/license: Apache-2.0\n      category: Infrastructure\n", text(18))
		fmt.Fprintf(count, "    apiVersion: v2\n    appVersion: %q\n    created: %q\n", app, created.Add(-time.Duration(rng.IntN(1e6))*time.Second).Format(time.RFC3339Nano))
		fmt.Fprintf(count, "    dependencies:\n      - name: common\n        repository: oci://registry.example.com/charts\n        version: 2.x.x\n")
		fmt.Fprintf(count, "    description: %s\n    digest: %s\n    home: https://example.com/%s\n    icon: https://example.com/icons/%s.svg\n", desc, dg, name, name)
		fmt.Fprintf(count, "    keywords:\n      - %s\n      - %s\n    kubeVersion: '>=1.23.0-0'\n", indexWords[rng.IntN(len(indexWords))], indexWords[rng.IntN(len(indexWords))])
		fmt.Fprintf(count, "    maintainers:\n      - email: jane@example.com\n        name: Jane Doe\n    name: %s\n    sources:\n      - https://github.com/example/%s\n    type: application\n", name, name)
		fmt.Fprintf(count, "    urls:\n      - %s\n    version: %s\n", u, ver)
	}
	podinfo := func() {
		fmt.Fprintf(count, "  podinfo:\n")
		entry("podinfo", version, version, "Podinfo Helm chart for Kubernetes", url+"/"+archive, digest)
		for v := range 9 {
			old := fmt.Sprintf("6.%d.%d", 13-v/3, v%3)
			entry("podinfo", old, old, "Podinfo Helm chart for Kubernetes", fmt.Sprintf("%s/podinfo-%s.tgz", url, old), fmt.Sprintf("%064x", rng.Uint64()))
		}
	}
	podinfo()
	for c := 0; written < size; c++ {
		name := fmt.Sprintf("%s-%04d", indexWords[c%len(indexWords)], c)
		fmt.Fprintf(count, "  %s:\n", name)
		desc := text(10 + rng.IntN(30))
		for v := range 10 {
			ver := fmt.Sprintf("%d.%d.%d", v/5+1, v%5, rng.IntN(20))
			entry(name, ver, fmt.Sprintf("%d.%d", 10+v, rng.IntN(9)), desc, fmt.Sprintf("%s/%s-%s.tgz", url, name, ver), fmt.Sprintf("%064x", rng.Uint64()))
		}
	}
	fmt.Fprintf(w, "generated: %q\n", created.Format(time.RFC3339Nano))
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w *bufio.Writer
	n *int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}
