package git

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/git/gittest"
)

// BenchmarkCommitToFetch measures, per transport, how long Fetch takes to
// return a commit pushed just before (one ls-remote, one depth-1 fetch,
// one snapshot), over 20 changes, and what an idle poll costs:
//
//	go test ./source/git/ -run '^$' -bench CommitToFetch -benchtime 1x
func BenchmarkCommitToFetch(b *testing.B) {
	const changes = 20
	type result struct {
		name                         string
		p50, p90, max, idle          time.Duration
		idleRequests, changeRequests string
	}
	var results []result
	for _, transport := range []string{"file", "http", "ssh"} {
		b.Run(transport, func(b *testing.B) {
			root := b.TempDir()
			repo := gittest.NewRepo(b, root, "state")
			repo.Commit(b, map[string][]byte{"releases/web.yaml": []byte("v: 0\n"), "charts/hello/Chart.yaml": []byte("name: hello\n")}, "init")
			location, opts := repo.URL, source.Options{CacheDir: b.TempDir()}
			var srv *gittest.HTTPServer
			switch transport {
			case "http":
				srv = gittest.ServeHTTP(b, root, "bench", "bench-secret")
				location, opts.Username, opts.Password = srv.RepoURL(repo), "bench", "bench-secret"
			case "ssh":
				key, pub := gittest.NewSSHKey(b, b.TempDir(), "")
				ssrv := gittest.ServeSSH(b, root, pub)
				kh := filepath.Join(b.TempDir(), "known_hosts")
				gittest.WriteKnownHosts(b, kh, ssrv.KnownHostsLine())
				location, opts.SSHKeyFile, opts.KnownHostsFile = ssrv.RepoURL(repo), key, kh
			}
			s := newSource(b, location, opts)
			fetch(b, s)
			for b.Loop() {
				var lat []time.Duration
				for i := 1; i <= changes; i++ {
					sha := repo.Commit(b, map[string][]byte{"releases/web.yaml": []byte(fmt.Sprintf("v: %d\n", i))}, "change")
					start := time.Now()
					a, err := s.Fetch(context.Background())
					lat = append(lat, time.Since(start))
					if err != nil || !strings.HasSuffix(a.Revision, sha) {
						b.Fatalf("change %d: %v %v", i, a, err)
					}
				}
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				r := result{name: transport, p50: lat[len(lat)/2], p90: lat[len(lat)*9/10], max: lat[len(lat)-1]}

				var before gittest.Requests
				if srv != nil {
					before = srv.Requests()
				}
				st := s.Stats()
				start := time.Now()
				fetch(b, s)
				r.idle = time.Since(start)
				st2 := s.Stats()
				r.idleRequests = fmt.Sprintf("%d ls-remote, %d fetch", st2.ListRemote-st.ListRemote, st2.Fetches-st.Fetches)
				if srv != nil {
					after := srv.Requests()
					r.idleRequests += fmt.Sprintf(" (HTTP: %d GET info/refs, %d POST upload-pack)", after.InfoRefs-before.InfoRefs, after.UploadPack-before.UploadPack)
				}
				b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(r.p90.Microseconds())/1000, "p90-ms")
				results = append(results, r)
			}
		})
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "commit → Fetch returns it, %d changes\n%-6s %9s %9s %9s %11s  %s\n", changes, "source", "p50", "p90", "max", "idle poll", "idle poll requests")
	for _, r := range results {
		fmt.Fprintf(&sb, "%-6s %9s %9s %9s %11s  %s\n", r.name, r.p50.Round(time.Millisecond), r.p90.Round(time.Millisecond), r.max.Round(time.Millisecond), r.idle.Round(100*time.Microsecond), r.idleRequests)
	}
	// A parent benchmark's log is not shown: print the table as its own
	// line-oriented output, after the per-transport lines.
	fmt.Print(sb.String())
}
