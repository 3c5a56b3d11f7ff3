package bucket

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charter-sh/charter/source"
)

// BenchmarkChangeToFetch measures, over 20 changes to a state of 50
// declarations in a real MinIO, the time from the start of a put to the
// return of the Fetch that shows it, polling back to back (a daemon adds up
// to its poll interval on top), and what an idle poll costs. It prints a
// table; run it once:
//
//	CHARTER_E2E=1 go test ./source/bucket -run '^$' -bench ChangeToFetch -benchtime 1x
func BenchmarkChangeToFetch(b *testing.B) {
	const changes, releases = 20, 50
	srv := startServer(b)
	bucket := srv.newBucket(b)
	seed := map[string][]byte{}
	for i := range releases {
		seed[fmt.Sprintf("state/releases/r%02d.yaml", i)] = []byte(fmt.Sprintf("name: r%02d\nvalues:\n  n: 0\n", i))
	}
	srv.put(b, bucket, seed)
	rt := newCountingTransport(b, bucket)
	s, err := newSource("s3+http://"+srv.host+"/"+bucket+"/state", source.Options{
		CacheDir:    b.TempDir(),
		Credentials: source.Credentials{AccessKey: srv.accessKey, SecretKey: srv.secretKey},
	}, rt)
	if err != nil {
		b.Fatal(err)
	}
	ctx := testContext(b)
	last, err := s.Fetch(ctx)
	if err != nil {
		b.Fatal(err)
	}

	for range b.N {
		var converge, idle []time.Duration
		var idleRequests, changeGets []int
		for i := range changes {
			rt.reset()
			start := time.Now()
			if _, err := s.Fetch(ctx); err != nil {
				b.Fatal(err)
			}
			idle = append(idle, time.Since(start))
			idleRequests = append(idleRequests, len(rt.requests()))

			key := fmt.Sprintf("state/releases/r%02d.yaml", i%releases)
			content := fmt.Sprintf("name: r%02d\nvalues:\n  n: %d\n", i%releases, time.Now().UnixNano())
			rt.reset()
			start = time.Now()
			srv.put(b, bucket, map[string][]byte{key: []byte(content)})
			for {
				a, err := s.Fetch(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if a.Revision != last.Revision {
					last = a
					break
				}
			}
			converge = append(converge, time.Since(start))
			changeGets = append(changeGets, len(rt.objectGets()))
		}
		b.ReportMetric(float64(pct(converge, 50).Microseconds())/1000, "p50-ms")
		b.Logf("\n%s", table(releases, converge, idle, idleRequests, changeGets))
	}
}

// pct returns the p-th percentile of ds.
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func table(objects int, converge, idle []time.Duration, idleRequests, changeGets []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "bucket source, MinIO on loopback, %d objects, %d changes\n", objects, len(converge))
	fmt.Fprintf(&b, "%-36s %9s %9s %9s\n", "", "p50", "p90", "max")
	row := func(name string, ds []time.Duration) {
		fmt.Fprintf(&b, "%-36s %9s %9s %9s\n", name, pct(ds, 50).Round(100*time.Microsecond),
			pct(ds, 90).Round(100*time.Microsecond), slices.Max(ds).Round(100*time.Microsecond))
	}
	row("put → Fetch returns it", converge)
	row("idle poll (Fetch, nothing changed)", idle)
	fmt.Fprintf(&b, "requests per idle poll: %v (max %d)\n", slices.Min(idleRequests), slices.Max(idleRequests))
	fmt.Fprintf(&b, "object downloads per change: max %d\n", slices.Max(changeGets))
	return b.String()
}
