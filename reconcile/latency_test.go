package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/bucket"
	sourcedir "github.com/charter-sh/charter/source/dir"
	sourcegit "github.com/charter-sh/charter/source/git"
	"github.com/charter-sh/charter/source/git/gittest"
)

// A chart of one ConfigMap: the latency measured is charter's (fetch,
// render, apply, record), not a Deployment's rollout.
var latencyChart = map[string][]byte{
	"charter.yaml":          []byte("apiVersion: charter.sh/v1\nkind: State\n"),
	"charts/cm/Chart.yaml":  []byte("apiVersion: v2\nname: cm\nversion: 0.1.0\n"),
	"charts/cm/values.yaml": []byte("message: none\n"),
	"charts/cm/templates/cm.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n" +
		"data:\n  message: {{ .Values.message | quote }}\n"),
}

func latencyRelease(ns, msg string) []byte {
	return []byte("name: lat\nnamespace: " + ns + "\nchart: charts/cm\nvalues:\n  message: " + msg + "\n")
}

func writeFiles(b *testing.B, root string, files map[string][]byte) {
	for rel, content := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func runCmd(b *testing.B, dir string, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BRZ_EMAIL=Bench <bench@example.com>")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// latencyCase is one source kind: its source and how a change reaches it.
type latencyCase struct {
	name   string
	target string
	setup  func(b *testing.B, ns string) (src source.Source, change func(msg string), interval time.Duration)
}

// BenchmarkChangeToConverged measures, per source kind, the time from a
// change reaching the source to the cluster holding it (p50/p90 over b.N
// changes; run with -benchtime 20x). Targets from the issue: folder and SVN
// checkout ≤ 0.5 s, git via webhook ≤ 2 s, bucket ≤ poll interval + 1 s.
// Folder sources use a 100 ms debounce here (default 500 ms).
func BenchmarkChangeToConverged(b *testing.B) {
	cases := []latencyCase{
		{name: "folder", target: "0.5s", setup: func(b *testing.B, ns string) (source.Source, func(string), time.Duration) {
			root := b.TempDir()
			writeFiles(b, root, latencyChart)
			writeFiles(b, root, map[string][]byte{"releases/lat.yaml": latencyRelease(ns, "m0")})
			src, err := sourcedir.New(root, source.Options{CacheDir: b.TempDir(), Debounce: 100 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			return src, func(msg string) {
				writeFiles(b, root, map[string][]byte{"releases/lat.yaml": latencyRelease(ns, msg)})
			}, time.Hour
		}},
		{name: "svn-checkout", target: "0.5s (from svn up)", setup: func(b *testing.B, ns string) (source.Source, func(string), time.Duration) {
			if _, err := exec.LookPath("svnadmin"); err != nil {
				b.Skip("svn not installed")
			}
			repo := filepath.Join(b.TempDir(), "repo")
			runCmd(b, "", "svnadmin", "create", repo)
			wc, watched := filepath.Join(b.TempDir(), "wc"), filepath.Join(b.TempDir(), "watched")
			runCmd(b, "", "svn", "checkout", "-q", "file://"+repo, wc)
			writeFiles(b, wc, latencyChart)
			writeFiles(b, wc, map[string][]byte{"releases/lat.yaml": latencyRelease(ns, "m0")})
			runCmd(b, wc, "svn", "add", "-q", "--force", ".")
			runCmd(b, wc, "svn", "commit", "-q", "-m", "seed")
			runCmd(b, "", "svn", "checkout", "-q", "file://"+repo, watched)
			src, err := sourcedir.New(watched, source.Options{CacheDir: b.TempDir(), Debounce: 100 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			return src, func(msg string) {
				b.StopTimer()
				writeFiles(b, wc, map[string][]byte{"releases/lat.yaml": latencyRelease(ns, msg)})
				runCmd(b, wc, "svn", "commit", "-q", "-m", msg)
				b.StartTimer()
				runCmd(b, watched, "svn", "up", "-q")
			}, time.Hour
		}},
		{name: "git-webhook", target: "2s", setup: func(b *testing.B, ns string) (source.Source, func(string), time.Duration) {
			repo := gittest.NewRepo(b, b.TempDir(), "state")
			files := map[string][]byte{"releases/lat.yaml": latencyRelease(ns, "m0")}
			for k, v := range latencyChart {
				files[k] = v
			}
			repo.Commit(b, files, "seed")
			src, err := sourcegit.New(repo.URL, source.Options{CacheDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			return src, func(msg string) {
				b.StopTimer()
				repo.Commit(b, map[string][]byte{"releases/lat.yaml": latencyRelease(ns, msg)}, msg)
				b.StartTimer()
				latencyDaemon.Trigger(src.String()) // what POST /hooks/NAME does
			}, time.Hour
		}},
		{name: "bucket", target: "poll interval (1s) + 1s", setup: func(b *testing.B, ns string) (source.Source, func(string), time.Duration) {
			endpoint, access, secret := testenv.StartMinIO(b)
			testenv.MakeBucket(b, endpoint, access, secret, "state")
			mc, err := minio.New(hostOf(endpoint), &minio.Options{Creds: credentials.NewStaticV4(access, secret, "")})
			if err != nil {
				b.Fatal(err)
			}
			put := func(key string, data []byte) {
				if _, err := mc.PutObject(context.Background(), "state", "prod/"+key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			for k, v := range latencyChart {
				put(k, v)
			}
			put("releases/lat.yaml", latencyRelease(ns, "m0"))
			src, err := bucket.New("s3://state/prod", source.Options{CacheDir: b.TempDir(), Endpoint: endpoint,
				Credentials: source.Credentials{AccessKey: access, SecretKey: secret}})
			if err != nil {
				b.Fatal(err)
			}
			return src, func(msg string) { put("releases/lat.yaml", latencyRelease(ns, msg)) }, time.Second
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) { benchConverge(b, tc) })
	}
}

// latencyDaemon lets the git case trigger the running daemon.
var latencyDaemon *Daemon

func hostOf(endpoint string) string {
	for _, p := range []string{"http://", "https://"} {
		if len(endpoint) > len(p) && endpoint[:len(p)] == p {
			return endpoint[len(p):]
		}
	}
	return endpoint
}

func benchConverge(b *testing.B, tc latencyCase) {
	env := testenv.Get(b)
	ns := env.NewNamespace(b)
	cl, err := NewCluster(env.RESTConfig())
	if err != nil {
		b.Fatal(err)
	}
	src, change, interval := tc.setup(b, ns)
	if c, ok := src.(source.Closer); ok {
		defer c.Close()
	}
	set := NewSourceSet([]string{src.String()})
	r := &Reconciler{State: set, Records: record.NewStore(cl.Typed, ns, 0), Cluster: cl, Timeout: time.Minute}
	d := &Daemon{Reconciler: r, Set: set, Sources: []Watched{{Source: src}}, Interval: interval, Resync: time.Hour, Workers: 2}
	latencyDaemon = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitMessage(b, cl.Typed, ns, "m0", 2*time.Minute)

	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msg := fmt.Sprintf("m%d", i+1)
		start := time.Now()
		change(msg)
		waitMessage(b, cl.Typed, ns, msg, time.Minute)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Milliseconds()) }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.9), "p90-ms")
	b.Logf("%-13s changes=%d p50=%.0fms p90=%.0fms target=%s", tc.name, len(lat), p(0.5), p(0.9), tc.target)
}

func waitMessage(b *testing.B, kube kubernetes.Interface, ns, msg string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		cm, err := kube.CoreV1().ConfigMaps(ns).Get(context.Background(), "lat", metav1.GetOptions{})
		if err == nil && cm.Data["message"] == msg {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%q not converged after %s", msg, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
