package main

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/reconcile"
	"github.com/charter-sh/charter/repo"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-scenario", "p3,P1,p1", "-n", "1000, 100,100"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"P1", "P3"}, cfg.scenarios); diff != "" {
		t.Errorf("scenarios (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{100, 1000}, cfg.sizes); diff != "" {
		t.Errorf("sizes (-want +got):\n%s", diff)
	}
	if cfg.workers != 4 || cfg.qps != reconcile.DefaultQPS || cfg.burst != reconcile.DefaultBurst {
		t.Errorf("defaults: workers %d qps %v burst %d, want 4 and charter's %v %v", cfg.workers, cfg.qps, cfg.burst, reconcile.DefaultQPS, reconcile.DefaultBurst)
	}
	all, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(allScenarios, all.scenarios); diff != "" {
		t.Errorf("default scenarios (-want +got):\n%s", diff)
	}
}

func TestParseFlagsRejectsBadInput(t *testing.T) {
	for name, args := range map[string][]string{
		"unknown scenario": {"-scenario", "P7"},
		"bad size":         {"-n", "100,lots"},
		"zero size":        {"-n", "0"},
		"no workers":       {"-workers", "0"},
		"negative qps":     {"-qps", "-1"},
		"tiny resync":      {"-resync", "10ms"},
		"extra argument":   {"P1"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseFlags(args, io.Discard); err == nil {
				t.Errorf("parseFlags(%q) accepted bad input", args)
			}
		})
	}
}

func TestSumMetric(t *testing.T) {
	text := `# HELP charter_reconciles_total Reconciles by action and result.
# TYPE charter_reconciles_total counter
charter_reconciles_total{action="installed",result="success"} 12
charter_reconciles_total{action="unchanged",result="success"} 988
charter_reconciles_total_other 5
charter_api_requests_total{code="200",method="GET"} 1.5e+03
charter_api_requests_total 7
`
	for _, c := range []struct {
		name  string
		match []string
		want  float64
		ok    bool
	}{
		{"charter_reconciles_total", nil, 1000, true},
		{"charter_reconciles_total", []string{`action="unchanged"`}, 988, true},
		{"charter_api_requests_total", nil, 1507, true},
		{"charter_missing_total", nil, 0, false},
	} {
		got, ok := sumMetric(text, c.name, c.match...)
		if got != c.want || ok != c.ok {
			t.Errorf("sumMetric(%s, %q) = %v, %v; want %v, %v", c.name, c.match, got, ok, c.want, c.ok)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "4242 (charter (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 12 0 100 0 0"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; got != want {
		t.Errorf("cpu = %s, want %s", got, want)
	}
	if _, err := parseStatCPU("4242 charter S 1"); err == nil {
		t.Error("a line without the name's parentheses parsed")
	}
}

func TestReadProcStatusOfSelf(t *testing.T) {
	st, err := readProcStatus(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if st.rss <= 0 || st.hwm < st.rss {
		t.Errorf("rss %d hwm %d: want 0 < rss <= hwm", st.rss, st.hwm)
	}
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 20)
	for i := range xs {
		xs[i] = float64(20 - i) // 20 … 1
	}
	if got := percentile(xs, 50); got != 10 {
		t.Errorf("p50 = %v, want 10", got)
	}
	if got := percentile(xs, 99); got != 20 {
		t.Errorf("p99 of 20 samples = %v, want the largest", got)
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
}

func TestCostOf(t *testing.T) {
	d := testenv.RequestCounts{
		{Verb: "APPLY", Resource: "deployments", Code: "200", Count: 10},
		{Verb: "APPLY", Resource: "deployments", Code: "200", DryRun: true, Count: 10},
		{Verb: "GET", Resource: "deployments", Code: "200", Count: 30},
		{Verb: "PUT", Resource: "deployments", Subresource: "status", Code: "200", Count: 4},
		{Verb: "GET", Subresource: "/metrics", Code: "200", Count: 1},
		{Verb: "LIST", Resource: "secrets", Code: "200", Count: 2},
	}
	got := costOf(d, 2)
	if got.Total != 54 || got.Writes != 14 || got.DryRuns != 10 || got.Reads != 30 {
		t.Errorf("total %v writes %v dry runs %v reads %v; want 54 14 10 30", got.Total, got.Writes, got.DryRuns, got.Reads)
	}
	if got.Writers["deployments/status"] != 4 || got.Writers["deployments"] != 10 {
		t.Errorf("writes by resource: %v", got.Writers)
	}
	less := got.minus(apiCost{Total: 10, Reads: 10, Writes: 2, Writers: map[string]float64{"deployments/status": 2}, ByVerb: map[string]float64{}}, 2)
	if less.Total != 34 || less.Writes != 10 || less.Reads != 10 || less.Writers["deployments/status"] != 0 {
		t.Errorf("minus: total %v writes %v reads %v writers %v; want 34 10 10 and no status writes", less.Total, less.Writes, less.Reads, less.Writers)
	}
}

var sampleResults = []Result{
	{Scenario: "P1", Case: "100 releases", Tool: "charter", Wall: 10, Objects: 300, PeakRSS: 80, CPU: 2, API: apiCost{Total: 1000, Writes: 400}},
	{Scenario: "P1", Case: "100 releases", Tool: "helm", Wall: 40, Objects: 300, PeakRSS: 300, CPU: 30, API: apiCost{Total: 2000, Writes: 500}},
	{Scenario: "P1", Case: "100 releases", Tool: "kubectl", Wall: 5, Objects: 300, PeakRSS: 200, CPU: 1, API: apiCost{Total: 800, Writes: 400}},
	{Scenario: "P1", Case: "1000 releases", Tool: "charter", Error: "timed out"},
	{Scenario: "P1", Case: "1000 releases", Tool: "helm", Wall: 300},
	{Scenario: "P2", Case: "1000 releases idle", Tool: "charter", Wall: 100, Extra: []Stat{
		{"API requests per release per resync", 0.05, "requests"},
		{"writes to objects and records", 0, "writes"},
		{"CPU per release per resync", 2.5, "ms"},
	}},
}

func TestRatios(t *testing.T) {
	got := ratios(sampleResults)
	want := []Ratio{
		{Scenario: "P1", Case: "100 releases", Peer: "helm", Wall: 0.25, CPU: 2.0 / 30, PeakRSS: 80.0 / 300, API: 0.5},
		{Scenario: "P1", Case: "100 releases", Peer: "kubectl", Wall: 2, CPU: 2, PeakRSS: 0.4, API: 1.25},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}
}

func TestTargets(t *testing.T) {
	got := map[string]Target{}
	for _, tg := range targets(sampleResults, ratios(sampleResults)) {
		got[tg.What] = tg
	}
	for what, want := range map[string]struct{ met, missing bool }{
		"P1 100 releases: wall vs helm loop":                         {met: true},
		"P1 100 releases: wall vs kubectl floor":                     {met: false},
		"P1 1000 releases: wall vs helm loop":                        {missing: true},
		"P1 1000 releases: charter daemon peak RSS":                  {missing: true},
		"P2 1000 releases idle: writes to objects and records":       {met: true},
		"P2 1000 releases idle: API requests per release per resync": {met: true},
		"P2 1000 releases idle: CPU per idle release per resync":     {met: false},
	} {
		tg, ok := got[what]
		if !ok {
			t.Errorf("no target %q among %d", what, len(got))
			continue
		}
		if tg.Met != want.met || tg.Missing != want.missing {
			t.Errorf("%s: met %v missing %v, want met %v missing %v", what, tg.Met, tg.Missing, want.met, want.missing)
		}
	}
}

func TestTableAndMarkdown(t *testing.T) {
	rs := ratios(sampleResults)
	var buf bytes.Buffer
	if err := writeTable(&buf, sampleResults, rs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(sampleResults)+1 {
		t.Fatalf("table has %d lines, want a header and %d rows:\n%s", len(lines), len(sampleResults), buf.String())
	}
	helm := lines[2]
	for _, want := range []string{"helm", "40.0 s", "300 MiB", "2000 (500 w)", "0.25×"} {
		if !strings.Contains(helm, want) {
			t.Errorf("helm row %q lacks %q", helm, want)
		}
	}
	if !strings.Contains(lines[4], "failed: timed out") {
		t.Errorf("failed case shown as %q", lines[4])
	}
	rep := &Report{Results: sampleResults, Ratios: rs, Targets: targets(sampleResults, rs)}
	md := rep.markdown()
	for _, want := range []string{
		"| scenario | case | tool | wall |",
		"| P1 | 100 releases | kubectl | 5.0 s | 60 | 200 MiB | 1.0 s | 800 (400 w) | 2.00× |",
		"| P1 1000 releases: wall vs helm loop | ≤ 0.50× (≥ 2× faster) | not measured | — |",
		"![charter/peer ratios](ratios.png)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestRatioChart(t *testing.T) {
	rs := ratios(sampleResults)
	data, err := ratioChart(rs, targets(sampleResults, rs))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != chartWidth || b.Dy() != chartTop+2*rowHeight+chartBottom {
		t.Errorf("chart is %v, want %dx%d", b, chartWidth, chartTop+2*rowHeight+chartBottom)
	}
	if _, err := ratioChart(nil, nil); err != nil {
		t.Errorf("empty chart: %v", err)
	}
}

// TestWriteIndex checks the generated index loads with charter's parser
// and resolves the real chart version.
func TestWriteIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.yaml")
	if err := writeIndex(path, "http://127.0.0.1:1", "podinfo-6.14.1.tgz", "6.14.1", strings.Repeat("ab", 32), 1<<20); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 1<<20 || fi.Size() > 1<<20+64<<10 {
		t.Errorf("index is %d bytes, want about 1 MiB", fi.Size())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	idx, err := repo.LoadIndex(f, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := idx.Find("podinfo", "=6.14.1")
	if err != nil {
		t.Fatal(err)
	}
	if cv.URLs[0] != "http://127.0.0.1:1/podinfo-6.14.1.tgz" {
		t.Errorf("podinfo URL %q", cv.URLs[0])
	}
	if idx.Len() < 100 {
		t.Errorf("only %d chart versions in a 1 MiB index", idx.Len())
	}
}

func TestParallelRunsEveryItemAndReportsTheFirstError(t *testing.T) {
	var mu = make(chan struct{}, 1)
	seen := map[int]bool{}
	err := parallel(context.Background(), 3, []int{1, 2, 3, 4, 5}, func(ctx context.Context, i int) error {
		mu <- struct{}{}
		seen[i] = true
		<-mu
		if i == 4 {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	if err != io.ErrUnexpectedEOF {
		t.Errorf("error %v, want the item's", err)
	}
	if len(seen) != 5 {
		t.Errorf("ran %d of 5 items", len(seen))
	}
}

func TestSplitWrites(t *testing.T) {
	objects, house, cluster := splitWrites(map[string]float64{
		"secrets": 2, "deployments": 3, "leases": 60, "events": 1, "nodes/status": 2, "deployments/status": 4,
	})
	if objects != 5 || house != 61 || cluster != 6 {
		t.Errorf("objects %v house %v cluster %v, want 5 61 6", objects, house, cluster)
	}
}

func TestRewriteReport(t *testing.T) {
	dir := t.TempDir()
	b := &bench{cfg: &config{out: dir}, out: io.Discard, report: Report{Results: sampleResults}}
	if err := b.writeReport(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "results.md")); err != nil {
		t.Fatal(err)
	}
	if err := rewriteReport(&config{rereport: dir}, io.Discard); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| P1 | 100 releases | helm | 40.0 s |") {
		t.Errorf("rewritten results.md lacks the helm row:\n%s", md)
	}
	if err := rewriteReport(&config{rereport: filepath.Join(dir, "missing")}, io.Discard); err == nil {
		t.Error("no error for a folder without results.json")
	}
}
