// Command bench measures charter side by side with the tools users would
// pick instead — a `helm upgrade --install` loop and `kubectl apply
// --server-side` of the same pre-rendered objects — on one local control
// plane it starts itself (internal/testenv: etcd, kube-apiserver,
// controller-manager, scheduler and kwok, which makes pods Ready).
//
//	go run ./hack/bench -scenario all
//	go run ./hack/bench -scenario P1 -n 1000
//	go run ./hack/bench -scenario P2,P3 -steady-n 300 -resync 10s
//
// Scenarios (see docs/performance.md for the method and targets):
//
//	P1  cold fan-out: N podinfo releases declared at once → applied and Ready
//	P2  steady state: N converged releases, several resync intervals, no change
//	P3  one change among N: a values file edited → converged, 20 times
//	P4  the prometheus chart: render, install and no-op upgrade
//	P5  a 30 MiB repository index with 50 releases resolving from it
//	P6  one release of 1500 ConfigMaps: first apply, no-op, 1 % change
//
// For every scenario and tool it reports wall time, objects/s, peak RSS, CPU
// seconds and the API requests the API server counted (its own
// apiserver_request_total, read before and after, minus the harness's own
// requests), and the ratio charter/peer. The table goes to stdout; results.md,
// results.json and ratios.png go to the results folder (-out). Worker counts
// and client QPS/burst are the same for every tool that has the setting and
// are printed with the results.
//
// The harness needs bin/charter (make build), the tools cache (make tools)
// with kubectl (make bench-tools), and the public charts in ../shared/charts
// ($CHARTER_SHARED_CHARTS). `make bench` does all of it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/reconcile"
)

// config is the command line.
type config struct {
	scenarios []string
	sizes     []int // P1 release counts
	steadyN   int   // P2/P3 release count
	workers   int
	qps       float64
	burst     int
	resync    time.Duration
	resyncs   int
	changes   int
	renders   int
	out       string
	charter   string
	tools     string
	charts    string
	profile   time.Duration
	keep      bool
	timeout   time.Duration
	rereport  string // -report DIR
}

var allScenarios = []string{"P1", "P2", "P3", "P4", "P5", "P6"}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var scen, sizes string
	c := &config{}
	fs.StringVar(&scen, "scenario", "all", "scenarios to run: all, or a comma list of "+strings.Join(allScenarios, ","))
	fs.StringVar(&sizes, "n", "100,1000", "P1: release counts, comma separated")
	fs.IntVar(&c.steadyN, "steady-n", 1000, "P2 and P3: converged releases (reuses P1's when it ran with the same count)")
	fs.IntVar(&c.workers, "workers", 4, "parallelism of every tool: charter --workers, concurrent helm and kubectl processes")
	fs.Float64Var(&c.qps, "qps", reconcile.DefaultQPS, "client QPS of charter (--kube-qps, default: charter's) and helm (--qps); kubectl has no such setting")
	fs.IntVar(&c.burst, "burst", reconcile.DefaultBurst, "client burst of charter (--kube-burst, default: charter's) and helm (--burst-limit)")
	fs.DurationVar(&c.resync, "resync", 20*time.Second, "P2: the daemon's --resync-interval")
	fs.IntVar(&c.resyncs, "resyncs", 5, "P2: resync intervals measured")
	fs.IntVar(&c.changes, "changes", 20, "P3: values edits, one after the other")
	fs.IntVar(&c.renders, "renders", 10, "P4: renders timed (after one warm-up)")
	fs.StringVar(&c.out, "out", "", "results folder (default results/bench/<UTC timestamp>)")
	fs.StringVar(&c.charter, "charter", "bin/charter", "the charter binary to measure")
	fs.StringVar(&c.tools, "tools", "", "tools cache: helm, kubectl, control plane (default $CHARTER_TOOLS or ~/.cache/charter/tools)")
	fs.StringVar(&c.charts, "charts", "", "public charts folder (default $CHARTER_SHARED_CHARTS or ../shared/charts)")
	fs.DurationVar(&c.profile, "profile", 30*time.Second, "CPU profile of the charter daemon during P1 at the largest N (needs daemon --pprof; 0 = off)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work folder (states, charts, rendered objects) under the results folder")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "longest wait for one tool to converge one case")
	fs.StringVar(&c.rereport, "report", "", "run nothing: rewrite results.md and ratios.png of an earlier run from DIR/results.json")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.scenarios, err = parseScenarios(scen); err != nil {
		return nil, err
	}
	if c.sizes, err = parseSizes(sizes); err != nil {
		return nil, err
	}
	switch {
	case c.steadyN < 1:
		return nil, fmt.Errorf("-steady-n %d: must be at least 1", c.steadyN)
	case c.workers < 1:
		return nil, fmt.Errorf("-workers %d: must be at least 1", c.workers)
	case c.qps <= 0 || c.burst < 1:
		return nil, fmt.Errorf("-qps %v -burst %d: both must be positive", c.qps, c.burst)
	case c.resync < time.Second || c.resyncs < 1:
		return nil, fmt.Errorf("-resync %s -resyncs %d: need at least 1s and 1", c.resync, c.resyncs)
	case c.changes < 1 || c.renders < 1:
		return nil, fmt.Errorf("-changes %d -renders %d: both must be at least 1", c.changes, c.renders)
	}
	if c.out == "" {
		c.out = filepath.Join("results", "bench", time.Now().UTC().Format("20060102-150405"))
	}
	if c.tools == "" {
		c.tools = testenv.ToolsDir()
	}
	if c.charts == "" {
		c.charts = sharedCharts()
	}
	return c, nil
}

// parseScenarios reads "all" or a comma list like "P1,p3".
func parseScenarios(s string) ([]string, error) {
	if strings.EqualFold(strings.TrimSpace(s), "all") {
		return allScenarios, nil
	}
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.ToUpper(strings.TrimSpace(f))
		if !slices.Contains(allScenarios, f) {
			return nil, fmt.Errorf("-scenario: unknown scenario %q (want all or %s)", f, strings.Join(allScenarios, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out, nil
}

// parseSizes reads "100,1000".
func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 9999 {
			return nil, fmt.Errorf("-n: %q is not a release count between 1 and 9999", f)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// sharedCharts is $CHARTER_SHARED_CHARTS, else ../shared/charts beside the
// working folder (the repository root under make).
func sharedCharts() string {
	if d := os.Getenv(testenv.SharedChartsEnv); d != "" {
		return d
	}
	wd, _ := os.Getwd()
	return filepath.Join(filepath.Dir(wd), "shared", "charts")
}

func main() {
	// reconcile.NewCluster (for the server's capabilities) builds a
	// controller-runtime client, which warns loudly without a logger.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}
	if cfg.rereport != "" {
		err = rewriteReport(cfg, os.Stdout)
	} else {
		err = run(ctx, cfg, os.Stdout)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// run checks the prerequisites, starts the control plane, runs the
// scenarios and writes the report. A scenario that fails is reported as
// such and the run goes on; a missing prerequisite stops it before
// anything starts.
func run(ctx context.Context, cfg *config, stdout io.Writer) error {
	b, err := newBench(cfg, stdout)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return fmt.Errorf("create results folder: %w", err)
	}
	b.printf("bench: results in %s; %d CPUs, %s, %s/%s", cfg.out, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	b.printf("bench: every tool runs with %d workers; charter --kube-qps %g --kube-burst %d, helm --qps %g --burst-limit %d; kubectl: no QPS setting (its client is not rate limited for these requests)",
		cfg.workers, cfg.qps, cfg.burst, cfg.qps, cfg.burst)
	begin := time.Now()
	if err := b.start(ctx); err != nil {
		return err
	}
	defer b.stop()

	for _, s := range cfg.scenarios {
		if ctx.Err() != nil {
			break
		}
		b.printf("== %s", scenarioTitle[s])
		start := time.Now()
		if err := b.scenario(ctx, s); err != nil {
			b.printf("%s failed: %v", s, err)
			b.report.Failures = append(b.report.Failures, fmt.Sprintf("%s: %v", s, oneLine(err.Error())))
		}
		b.printf("   %s took %s", s, time.Since(start).Round(time.Second))
	}
	b.report.Duration = time.Since(begin).Round(time.Second).String()
	b.report.Machine["load average at end (1, 5, 15 min)"] = loadAvg()
	if err := b.writeReport(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if len(b.report.Failures) > 0 {
		return fmt.Errorf("%d scenario(s) failed; see %s", len(b.report.Failures), filepath.Join(cfg.out, "results.md"))
	}
	return nil
}

// rewriteReport renders an earlier run's results.json again (after a
// change to the report's format or targets), without running anything.
func rewriteReport(cfg *config, stdout io.Writer) error {
	data, err := os.ReadFile(filepath.Join(cfg.rereport, "results.json"))
	if err != nil {
		return fmt.Errorf("read earlier results: %w", err)
	}
	b := &bench{cfg: cfg, out: stdout}
	if err := json.Unmarshal(data, &b.report); err != nil {
		return fmt.Errorf("read earlier results: %s: %w", filepath.Join(cfg.rereport, "results.json"), err)
	}
	cfg.out = cfg.rereport
	return b.writeReport()
}

var scenarioTitle = map[string]string{
	"P1": "P1 cold fan-out: podinfo releases declared at once → applied and Ready",
	"P2": "P2 steady state: converged releases, nothing changes",
	"P3": "P3 one change among many: a values file edited → converged",
	"P4": "P4 big chart: prometheus render, install, no-op upgrade",
	"P5": "P5 index: 30 MiB index.yaml, 50 releases resolving from it",
	"P6": "P6 many objects in one release: 1500 ConfigMaps",
}

func (b *bench) scenario(ctx context.Context, s string) error {
	switch s {
	case "P1":
		return b.p1(ctx)
	case "P2":
		return b.p2(ctx)
	case "P3":
		return b.p3(ctx)
	case "P4":
		return b.p4(ctx)
	case "P5":
		return b.p5(ctx)
	case "P6":
		return b.p6(ctx)
	}
	return fmt.Errorf("unknown scenario %s", s)
}

// oneLine keeps an error to one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
