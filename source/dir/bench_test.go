package dir

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/charter-sh/charter/source"
)

// BenchmarkChangeToNotify measures, per change, the time from the change
// reaching the watched folder — a file written; the start of `svn up` or
// `brz update` in the watched checkout, after a commit from another working
// copy — until Changes signals and Fetch returns the new revision. The
// debounce is 100ms (the default is 500ms) and is included. It reports p50
// and p90 in milliseconds; for 20 changes run
//
//	go test ./source/dir -run '^$' -bench ChangeToNotify -benchtime 20x -v
func BenchmarkChangeToNotify(b *testing.B) {
	const debounce = 100 * time.Millisecond
	release := func(i int) map[string][]byte {
		return map[string][]byte{"releases/web.yaml": []byte(fmt.Sprintf("name: web\nn: %d\n", i))}
	}
	for _, bc := range []struct {
		name string
		// setup returns the folder to watch and a function making change i
		// and returning when the watched folder began to change.
		setup func(b *testing.B) (watched string, change func(i int) time.Time)
	}{
		{"plain", func(b *testing.B) (string, func(int) time.Time) {
			root := b.TempDir()
			return root, func(i int) time.Time {
				start := time.Now()
				writeFiles(b, root, release(i))
				return start
			}
		}},
		{"svn", func(b *testing.B) (string, func(int) time.Time) {
			p := newSVNPair(b)
			p.commit(b, release(-1))
			p.update(b)
			return p.b, func(i int) time.Time {
				p.commit(b, release(i))
				start := time.Now()
				p.update(b)
				return start
			}
		}},
		{"brz", func(b *testing.B) (string, func(int) time.Time) {
			p := newBrzPair(b)
			p.commit(b, release(-1))
			p.update(b)
			return p.co, func(i int) time.Time {
				p.commit(b, release(i))
				start := time.Now()
				p.update(b)
				return start
			}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			watched, change := bc.setup(b)
			s := newSource(b, watched, source.Options{Debounce: debounce})
			last, err := s.Fetch(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				drain(s.Changes())
				start := change(i)
				if !waitSignal(s.Changes(), 10*time.Second) {
					b.Fatalf("change %d: no signal", i)
				}
				a, err := s.Fetch(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if a.Revision == last.Revision || a.Digest == last.Digest {
					b.Fatalf("change %d: fetch returned the old revision %s", i, a.Revision)
				}
				took = append(took, time.Since(start))
				last = a
			}
			slices.Sort(took)
			p := func(q float64) float64 {
				return float64(took[int(q*float64(len(took)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(p(0.5), "p50-ms")
			b.ReportMetric(p(0.9), "p90-ms")
			b.ReportMetric(0, "ns/op")
			b.Logf("%-6s changes=%d p50=%.0fms p90=%.0fms max=%.0fms (debounce %s)", bc.name, len(took), p(0.5), p(0.9), p(1), debounce)
		})
	}
}
