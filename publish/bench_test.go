package publish

import (
	"fmt"
	"testing"
)

// BenchmarkPackage measures packaging the fixture chart (load, Helm's
// save, normalisation, atomic write).
//
//	go test ./publish -run '^$' -bench Package
func BenchmarkPackage(b *testing.B) {
	ctx := testContext(b)
	dest := b.TempDir()
	for b.Loop() {
		if _, err := Package(ctx, testChart, dest); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReleaseFile measures one release to a file:// repository that
// already indexes 200 charts (index read, merge and atomic rewrite).
func BenchmarkReleaseFile(b *testing.B) {
	ctx := testContext(b)
	r := fileRepo(b)
	for i := range 200 {
		if _, err := Release(ctx, packageChart(b, writeChart(b, fmt.Sprintf("seed%03d", i), "1.0.0")), r.dest, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	archive := packageChart(b, writeChart(b, "bench", "1.0.0"))
	opts := Options{Force: true}
	for b.Loop() {
		if _, err := Release(ctx, archive, r.dest, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(r.read(b, IndexFile)))/1024, "index-KiB")
}
