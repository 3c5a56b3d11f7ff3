package repo

import (
	"os"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

// heapPeak samples the live heap every millisecond until stop is called and
// returns the peak above the level at the start, in bytes.
func heapPeak() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := read(); v > peak.Load() {
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
		if v := read(); v > peak.Load() {
			peak.Store(v)
		}
		if p := peak.Load(); p > base {
			return p - base
		}
		return 0
	}
}

func benchLoad(b *testing.B, load func(path string) (any, error)) {
	path := bigIndex(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	var allocs, peak, retained float64
	var keep any
	for b.Loop() {
		keep = nil
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := heapPeak()
		v, err := load(path)
		if err != nil {
			b.Fatal(err)
		}
		peak += float64(stop())
		runtime.ReadMemStats(&after)
		allocs += float64(after.TotalAlloc - before.TotalAlloc)
		runtime.GC()
		runtime.ReadMemStats(&after)
		retained += float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
		keep = v
	}
	_ = keep
	n := float64(b.N) * (1 << 20)
	b.ReportMetric(allocs/n, "MiB-alloc")
	b.ReportMetric(peak/n, "MiB-peak")
	b.ReportMetric(retained/n, "MiB-retained")
}

// BenchmarkLoadIndex loads a generated ~30 MiB index (1,650 charts, 16,500
// versions, ~30 MiB). Target: ≤ 0.3 s and ≤ 50 MiB extra memory per load.
func BenchmarkLoadIndex(b *testing.B) {
	benchLoad(b, func(path string) (any, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return LoadIndex(f, 64<<20)
	})
}

// BenchmarkHelmLoadIndex is Helm's loader (see helmLoadIndexFile) on the same file, for the ratio.
func BenchmarkHelmLoadIndex(b *testing.B) {
	benchLoad(b, func(path string) (any, error) { return helmLoadIndexFile(path) })
}
