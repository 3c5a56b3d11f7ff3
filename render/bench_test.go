package render

import (
	"path/filepath"
	"testing"
)

// go test ./render/ -run '^$' -bench . -benchmem
func BenchmarkRender(b *testing.B) {
	needSharedCharts(b)
	for _, name := range []string{"podinfo", "prometheus"} {
		b.Run(name, func(b *testing.B) {
			ch, err := Load(filepath.Join(sharedCharts, name))
			if err != nil {
				b.Fatal(err)
			}
			opts := Options{ReleaseName: "t", Namespace: "ns1", KubeVersion: parityKubeVersion}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Render(ch, nil, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLoad(b *testing.B) {
	needSharedCharts(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(filepath.Join(sharedCharts, "prometheus")); err != nil {
			b.Fatal(err)
		}
	}
}
