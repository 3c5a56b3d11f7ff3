package repo

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	"sigs.k8s.io/yaml"
)

var words = strings.Fields(`kubernetes chart deploys a scalable highly available database cache web server
proxy ingress controller metrics monitoring logging operator storage message queue streaming analytics
for the cluster with persistence replication backups tls authentication and dashboards open source`)

// genIndex writes an index the way `helm repo index` does (Helm's
// IndexFile marshalled by sigs.k8s.io/yaml), with realistic entries.
func genIndex(tb testing.TB, charts, versions int) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	text := func(n int) string {
		w := make([]string, n)
		for i := range w {
			w[i] = words[rng.IntN(len(words))]
		}
		return strings.Join(w, " ")
	}
	idx := &helmIndexFile{APIVersion: "v1", Generated: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Entries: map[string][]*helmChartVersion{}}
	for c := range charts {
		name := fmt.Sprintf("%s-%d", words[c%len(words)], c)
		desc := text(10 + rng.IntN(30))
		for v := range versions {
			ver := fmt.Sprintf("%d.%d.%d", v/5+1, v%5, rng.IntN(20))
			if v%7 == 6 {
				ver += "-rc." + fmt.Sprint(v)
			}
			md := &chart.Metadata{
				APIVersion: "v2", Name: name, Version: ver, AppVersion: fmt.Sprintf("%d.%d", 10+v, rng.IntN(9)),
				Description: desc, Keywords: strings.Fields(text(2 + rng.IntN(4))),
				Home: "https://example.com/" + name, Sources: []string{"https://github.com/example/" + name},
				Icon: "https://example.com/icons/" + name + ".svg", Type: "application", KubeVersion: ">=1.23.0-0",
				Maintainers: []*chart.Maintainer{{Name: "Jane Doe", Email: "jane@example.com"}, {Name: "Team " + name, URL: "https://example.com/team"}},
				Dependencies: []*chart.Dependency{
					{Name: "common", Version: "2.x.x", Repository: "oci://registry.example.com/charts", Tags: []string{"common-lib"}},
					{Name: "redis", Version: "19.x.x", Repository: "https://charts.example.com", Condition: "redis.enabled"},
				},
				Annotations: map[string]string{
					"category":                  "Database",
					"licenses":                  "Apache-2.0",
					"images":                    fmt.Sprintf("- name: %s\n  image: docker.io/example/%s:%s\n- name: os-shell\n  image: docker.io/example/os-shell:12-debian-12-r%d\n", name, name, ver, v),
					"artifacthub.io/changes":    "- kind: changed\n  description: " + text(20) + "\n- kind: fixed\n  description: " + text(16) + "\n",
					"artifacthub.io/license":    "Apache-2.0",
					"artifacthub.io/prerelease": fmt.Sprint(v%7 == 6),
				},
				Deprecated: c%50 == 0 && v == versions-1,
			}
			cv := &helmChartVersion{Metadata: md, URLs: []string{fmt.Sprintf("https://charts.example.com/%s-%s.tgz", name, ver)},
				Created: idx.Generated.Add(-time.Duration(rng.IntN(1e6)) * time.Second), Digest: fmt.Sprintf("%064x", rng.Uint64())}
			idx.Entries[name] = append(idx.Entries[name], cv)
		}
	}
	for _, cvs := range idx.Entries {
		helmSort(cvs)
	}
	b, err := yaml.Marshal(idx)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var (
	bigOnce sync.Once
	bigPath string
)

// bigIndex is a ~30 MiB (1,650 charts, 16,500 versions) generated index file, written once per test binary.
func bigIndex(tb testing.TB) string {
	bigOnce.Do(func() {
		dir, err := os.MkdirTemp("", "charter-repo-bench-")
		if err != nil {
			tb.Fatal(err)
		}
		bigPath = filepath.Join(dir, "index.yaml")
		if err := os.WriteFile(bigPath, genIndex(tb, 1650, 10), 0o644); err != nil {
			tb.Fatal(err)
		}
	})
	return bigPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bigPath != "" {
		os.RemoveAll(filepath.Dir(bigPath))
	}
	os.Exit(code)
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
