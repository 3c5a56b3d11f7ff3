package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/charter-sh/charter/internal/testenv"
)

// bench is one run: its settings, control plane, tools and findings.
type bench struct {
	cfg     *config
	out     io.Writer
	charter string // absolute paths of the binaries measured
	helm    string
	kubectl string
	work    string // scratch folder: states, charts, homes, logs
	logs    string // tool output, kept with the results
	env     *testenv.Env
	c       *cluster
	report  Report
	pprof   bool // the charter daemon has --pprof
	caps    renderer

	mu        sync.Mutex
	converged map[int]*p1State // converged charter states of P1, by size
	live      *daemon          // a daemon left running by one scenario for the next (P2 → P3)
}

func newBench(cfg *config, out io.Writer) (*bench, error) {
	b := &bench{cfg: cfg, out: out, converged: map[int]*p1State{}}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	b.charter = abs(cfg.charter)
	b.helm = filepath.Join(cfg.tools, "helm")
	b.kubectl = filepath.Join(cfg.tools, "kubectl")
	var missing []string
	for _, t := range []struct{ path, fix string }{
		{b.charter, "run make build"},
		{b.helm, "run make tools"},
		{b.kubectl, "run make bench-tools"},
	} {
		if fi, err := os.Stat(t.path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, fmt.Sprintf("%s is missing (%s)", t.path, t.fix))
		}
	}
	if err := testenv.CheckTools(cfg.tools); err != nil {
		missing = append(missing, err.Error())
	}
	for _, ch := range []string{"podinfo", "prometheus"} {
		if _, err := os.Stat(filepath.Join(cfg.charts, ch, "Chart.yaml")); err != nil {
			missing = append(missing, fmt.Sprintf("chart %s not found in %s (set -charts or %s)", ch, cfg.charts, testenv.SharedChartsEnv))
		}
	}
	if len(missing) > 0 {
		return nil, errors.New(strings.Join(missing, "; "))
	}
	help, _ := exec.Command(b.charter, "daemon", "run", "--help").CombinedOutput()
	b.pprof = strings.Contains(string(help), "--pprof")
	if !strings.Contains(string(help), "--kube-qps") {
		return nil, fmt.Errorf("%s has no --kube-qps flag: rebuild it (make build)", b.charter)
	}
	host, _ := os.Hostname()
	b.report = Report{
		Started: time.Now().UTC().Format(time.RFC3339),
		Machine: map[string]string{
			"CPUs": fmt.Sprint(runtime.NumCPU()), "Go": runtime.Version(), "OS": runtime.GOOS + "/" + runtime.GOARCH,
			"host": host, "kernel": kernel(), "memory": memTotal(), "load average at start (1, 5, 15 min)": loadAvg(),
		},
		Settings: map[string]string{
			"workers (every tool)":     fmt.Sprint(cfg.workers),
			"charter client QPS/burst": fmt.Sprintf("--kube-qps %g --kube-burst %d (one daemon process shares them)", cfg.qps, cfg.burst),
			"helm client QPS/burst":    fmt.Sprintf("--qps %g --burst-limit %d (per helm process)", cfg.qps, cfg.burst),
			"kubectl client QPS/burst": "no setting: kubectl builds a REST client (5 QPS/10 burst) per object, so applies are in effect not rate limited",
			"P1 sizes":                 strings.Trim(strings.Join(strings.Fields(fmt.Sprint(cfg.sizes)), ","), "[]"),
			"P2/P3 releases":           fmt.Sprint(cfg.steadyN),
			"P2 resync":                fmt.Sprintf("%s × %d", cfg.resync, cfg.resyncs),
			"versions":                 toolVersions(b),
		},
		Method: method,
	}
	return b, nil
}

// method explains how every figure is measured; it goes into results.md.
var method = []string{
	"One control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) started by the harness, with one extra kwok node sized for every pod of the run; kwok marks pods Running and Ready at once, so readiness waits measure the tools, not image pulls. Each tool works in fresh namespaces; objects of earlier cases stay (idle) until the end.",
	"wall: from the first action (writing declarations for the daemon, starting the first helm/kubectl process) until every release is applied and Ready: charter's records say deployed (its daemon records a revision deployed only after kstatus says every object is Current); helm upgrade --install --wait returned; kubectl apply --server-side returned and kubectl wait --for=condition=Available returned for every Deployment.",
	"charter runs as it would in production: one `charter daemon run` process following a folder state (P1–P3, P5), or the CLI (`charter deploy`/`redeploy`, in-process reconcile) for single-release cases (P4, P6). helm runs `upgrade --install --wait` per release, at most -workers processes at a time; kubectl applies the objects charter's renderer produced, split into -workers files, one pipeline per file running at the same time: `kubectl apply --server-side`, then `kubectl wait --for=condition=Available` on that file's Deployments.",
	"peak RSS: charter daemon — VmHWM of the daemon process over the case; helm and kubectl — the largest sum of RSS of their processes running at the same moment (sampled every 100 ms), or the largest single process when higher.",
	"CPU: user+system seconds — the daemon's from /proc/PID/stat over the case; helm's and kubectl's from the rusage of every process.",
	"API requests: the API server's own apiserver_request_total summed over all series, read before and after the case. The harness's own requests (a metadata watch on charter's records, started before the case) and the /metrics scrapes are left out. The count includes what the controllers and kwok do in response (ReplicaSets, Pods, status updates), which is the same for every tool creating the same objects. writes = POST/PUT/PATCH/APPLY/DELETE that are not dry runs.",
	"ratio charter/peer: charter's wall time divided by the peer's in the same case of the same run; below 1 means charter was faster.",
}

// benchNodeCapacity is the extra kwok node's: room for every pod of a run.
var benchNodeCapacity = corev1.ResourceList{
	corev1.ResourceCPU:              resource.MustParse("1000"),
	corev1.ResourceMemory:           resource.MustParse("4Ti"),
	corev1.ResourcePods:             resource.MustParse("20000"),
	corev1.ResourceEphemeralStorage: resource.MustParse("10Ti"),
}

// start starts the control plane and the harness's clients.
func (b *bench) start(ctx context.Context) error {
	b.work = filepath.Join(b.cfg.out, "work")
	b.logs = filepath.Join(b.cfg.out, "logs")
	for _, d := range []string{b.work, b.logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	begin := time.Now()
	env, err := testenv.Start(ctx, testenv.Options{Tools: b.cfg.tools})
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	b.env = env
	if b.c, err = newCluster(env); err != nil {
		return err
	}
	// The default fake node takes 250 pods and offers no ephemeral storage;
	// P1 alone runs thousands of pods and prometheus asks for storage.
	nctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := env.AddNode(nctx, "bench-node", benchNodeCapacity); err != nil {
		return err
	}
	b.printf("control plane up in %s (%s)", time.Since(begin).Round(100*time.Millisecond), env.Dir)
	return nil
}

// stop stops what the run started: a daemon left running, the control
// plane, and (unless -keep) the work folder.
func (b *bench) stop() {
	b.stopLive()
	if b.env != nil {
		logs := filepath.Join(b.env.Dir, "logs")
		_ = copyDir(logs, filepath.Join(b.logs, "controlplane"))
		if err := b.env.Stop(); err != nil {
			b.printf("stop control plane: %v", err)
		}
	}
	if !b.cfg.keep && b.work != "" {
		_ = os.RemoveAll(b.work)
	}
}

func (b *bench) stopLive() {
	b.mu.Lock()
	d := b.live
	b.live = nil
	b.mu.Unlock()
	if d != nil {
		d.stop()
	}
}

// printf prints one progress line.
func (b *bench) printf(format string, args ...any) {
	fmt.Fprintf(b.out, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (b *bench) add(r Result) {
	b.report.Results = append(b.report.Results, r)
	switch {
	case r.Error != "":
		b.printf("   %-8s %-22s failed: %s", r.Tool, r.Case, truncate(r.Error, 200))
	default:
		b.printf("   %-8s %-22s %s", r.Tool, r.Case, summary(r))
	}
}

func (b *bench) note(format string, args ...any) {
	b.report.Notes = append(b.report.Notes, fmt.Sprintf(format, args...))
}

// summary is a result in one progress line.
func summary(r Result) string {
	s := fmt.Sprintf("wall %s", fmtSeconds(r.Wall))
	if r.Objects > 0 {
		s += fmt.Sprintf(", %.0f objects/s", r.ObjPerSec())
	}
	if !r.NoRSS && r.PeakRSS > 0 {
		s += fmt.Sprintf(", peak RSS %.0f MiB", r.PeakRSS)
	}
	s += fmt.Sprintf(", CPU %.1f s", r.CPU)
	if !r.NoAPI {
		s += fmt.Sprintf(", API %.0f (%.0f writes)", r.API.Total, r.API.Writes)
	}
	for _, e := range r.Extra {
		s += fmt.Sprintf(", %s %s", e.Name, fmtValue(e.Value, e.Unit))
	}
	return s
}

// home is a private HOME for a tool, so runs never read or write the
// user's helm repositories, kube cache or charter config.
func (b *bench) home(tool string) []string {
	h := filepath.Join(b.work, "home-"+tool)
	_ = os.MkdirAll(h, 0o755)
	return []string{"HOME=" + h, "XDG_CACHE_HOME=" + filepath.Join(h, ".cache"), "XDG_CONFIG_HOME=" + filepath.Join(h, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(h, ".local", "share"), "KUBECONFIG=" + b.env.Kubeconfig, "HELM_DRIVER=secret"}
}

// charterCmd is a charter CLI invocation against the run's control plane.
func (b *bench) charterCmd(log string, args ...string) command {
	base := []string{"--kubeconfig", b.env.Kubeconfig, "--kube-qps", fmt.Sprint(b.cfg.qps), "--kube-burst", fmt.Sprint(b.cfg.burst)}
	return command{name: "charter", path: b.charter, args: append(base, args...), env: b.home("charter"), log: filepath.Join(b.logs, log)}
}

// helmCmd is a helm invocation; rate-limit flags are added to commands
// that talk to the cluster.
func (b *bench) helmCmd(log string, args ...string) command {
	if len(args) > 0 && (args[0] == "upgrade" || args[0] == "install" || args[0] == "uninstall") {
		args = append(args, "--kubeconfig", b.env.Kubeconfig, "--qps", fmt.Sprint(b.cfg.qps), "--burst-limit", fmt.Sprint(b.cfg.burst))
	}
	return command{name: "helm", path: b.helm, args: args, env: b.home("helm"), log: filepath.Join(b.logs, log)}
}

func (b *bench) kubectlCmd(log string, args ...string) command {
	return command{name: "kubectl", path: b.kubectl, args: append([]string{"--kubeconfig", b.env.Kubeconfig}, args...), env: b.home("kubectl"), log: filepath.Join(b.logs, log)}
}

// parallel runs fn for every item with at most workers at once and
// returns the first error (all items still run).
func parallel[T any](ctx context.Context, workers int, items []T, fn func(context.Context, T) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, workers)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, it); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute averages: other work on
// the machine shows there.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			return fmt.Sprintf("%.1f GiB", float64(parseKB(v))/(1<<30))
		}
	}
	return "unknown"
}

func toolVersions(b *bench) string {
	v := func(path string, args ...string) string {
		out, err := exec.Command(path, args...).Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return fmt.Sprintf("charter %s; helm %s; kubectl %s",
		strings.TrimPrefix(v(b.charter, "--version"), "charter version "), v(b.helm, "version", "--short"),
		strings.TrimPrefix(v(b.kubectl, "version", "--client"), "Client Version: "))
}

// copyDir copies the regular files of src into dst (logs).
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// measure runs fn inside an API window with a sampler for the processes
// it starts (through u) and fills r's wall time, CPU, peak RSS, process
// count and API requests. fn's error becomes r.Error.
func (b *bench) measure(ctx context.Context, r *Result, fn func(ctx context.Context, u *usage) error) {
	u := newUsage()
	win, err := b.c.begin(ctx)
	if err != nil {
		r.Error = oneLine(err.Error())
		return
	}
	stop := u.sample()
	t0 := time.Now()
	err = fn(ctx, u)
	wall := time.Since(t0)
	stop()
	cost, _, cerr := win.end(ctx)
	r.Wall, r.CPU, r.PeakRSS, r.API, r.Procs = wall.Seconds(), u.cpu.Seconds(), mib(u.peakRSS()), cost, u.procs
	r.MaxProcRSS = mib(u.maxRSS)
	switch {
	case err != nil:
		r.Error = oneLine(err.Error())
	case u.failed() != "":
		r.Error = u.failed()
	case cerr != nil:
		r.Error = oneLine(cerr.Error())
	}
}
