package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/charter-sh/charter/render"
)

// p4Values turn off the chart's PersistentVolumeClaims (the test cluster
// has no storage provisioner, so pods using them would never be Ready) and
// node-exporter's host network: charter's and helm's releases share the
// nodes, and the second DaemonSet could not bind port 9100 again.
const p4Values = `server:
  persistentVolume:
    enabled: false
alertmanager:
  persistence:
    enabled: false
prometheus-node-exporter:
  hostNetwork: false
`

// p4 measures the largest shared chart, prometheus with its four
// subcharts: rendering (charter in process, warm, against helm template),
// then install and no-op upgrade (charter CLI against helm).
func (b *bench) p4(ctx context.Context) error {
	chart := filepath.Join(b.cfg.charts, "prometheus")
	dir := filepath.Join(b.work, "p4")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	values := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(values, []byte(p4Values), 0o644); err != nil {
		return err
	}
	b.add(b.p4RenderCharter(ctx, chart))
	b.add(b.p4RenderHelm(ctx, chart, values))

	state := filepath.Join(dir, "state")
	if _, err := newState(state, ""); err != nil {
		return err
	}
	cns, hns := "p4-charter", "p4-helm"
	for _, ns := range []string{cns, cns + "-records", hns} {
		if err := b.c.createNamespace(ctx, ns); err != nil {
			return err
		}
	}
	charter := func(args ...string) command {
		return b.charterCmd("p4-charter.log", append([]string{"--state", state, "--records-namespace", cns + "-records"}, args...)...)
	}
	helm := func() command {
		return b.helmCmd("p4-helm.log", "upgrade", "--install", "prom-h", chart, "-n", hns, "-f", values, "--wait", "--timeout", "5m")
	}
	objects := 0
	if r, ok := findResult(b.report.Results, "P4", "render", "charter"); ok {
		objects = r.Objects
	}
	for _, c := range []struct {
		name          string
		charter, helm command
	}{
		{"install", charter("deploy", "-n", "prom-c", "--namespace", cns, "-f", values, "--timeout", "5m", chart), helm()},
		{"no-op upgrade", charter("redeploy", "--timeout", "5m", "prom-c"), helm()},
	} {
		for _, t := range []struct {
			tool string
			cmd  command
		}{{"charter", c.charter}, {"helm", c.helm}} {
			r := Result{Scenario: "P4", Case: c.name, Tool: t.tool, Objects: objects}
			b.measure(ctx, &r, func(ctx context.Context, u *usage) error {
				_, err := t.cmd.run(ctx, u)
				return err
			})
			b.add(r)
		}
	}
	return nil
}

// p4RenderCharter renders prometheus in process with charter's renderer:
// the chart is loaded once (as the daemon keeps it), one warm-up render,
// then the median of -renders renders.
func (b *bench) p4RenderCharter(ctx context.Context, chart string) Result {
	r := Result{Scenario: "P4", Case: "render", Tool: "charter", NoAPI: true, NoRSS: true, Procs: 1}
	caps, err := b.capabilities()
	if err != nil {
		r.Error = err.Error()
		return r
	}
	vals, err := parseValues(p4Values)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	t0 := time.Now()
	ch, err := render.Load(chart)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	load := time.Since(t0)
	opts := caps.RenderOptions(render.Options{ReleaseName: "prom-c", Namespace: "p4-charter"})
	res, err := render.Render(ch, vals, opts)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Objects = len(res.Objects) + len(res.Hooks)
	cpu0 := selfCPU()
	var times []float64
	for range b.cfg.renders {
		t := time.Now()
		if _, err := render.Render(ch, vals, opts); err != nil {
			r.Error = err.Error()
			return r
		}
		times = append(times, time.Since(t).Seconds())
	}
	r.Wall = percentile(times, 50)
	r.CPU = (selfCPU() - cpu0).Seconds() / float64(len(times))
	r.Measured = fmt.Sprintf("in process: render.Render, chart loaded once, median of %d warm renders", len(times))
	r.Extra = []Stat{{"chart load (once)", load.Seconds(), "s"}, {"slowest render", slices.Max(times), "s"}}

	// The CLI, for comparison with helm template as processes.
	var cli []float64
	for i := range 3 {
		u := newUsage()
		t := time.Now()
		if _, err := b.charterCmd("p4-template.log", "template", "--name", "prom-c", "--namespace", "p4-charter", chart).run(ctx, u); err != nil {
			b.note("P4: charter template failed: %v", err)
			break
		}
		if i > 0 || b.cfg.renders == 1 { // the first run warms the page cache
			cli = append(cli, time.Since(t).Seconds())
		}
	}
	if len(cli) > 0 {
		r.Extra = append(r.Extra, Stat{"charter template CLI (process)", percentile(cli, 50), "s"})
	}
	return r
}

// p4RenderHelm times `helm template` processes: one warm-up, then the
// median of -renders runs (at least 3).
func (b *bench) p4RenderHelm(ctx context.Context, chart, values string) Result {
	r := Result{Scenario: "P4", Case: "render", Tool: "helm", NoAPI: true}
	runs := max(3, b.cfg.renders/2)
	cmd := b.helmCmd("p4-template.log", "template", "prom-h", chart, "-n", "p4-helm", "-f", values)
	if _, err := cmd.run(ctx, nil); err != nil {
		r.Error = oneLine(err.Error())
		return r
	}
	u := newUsage()
	var times []float64
	for range runs {
		t := time.Now()
		if _, err := cmd.run(ctx, u); err != nil {
			r.Error = oneLine(err.Error())
			return r
		}
		times = append(times, time.Since(t).Seconds())
	}
	r.Wall, r.CPU, r.PeakRSS, r.Procs = percentile(times, 50), u.cpu.Seconds()/float64(runs), mib(u.maxRSS), 1
	r.Measured = fmt.Sprintf("helm template process, median of %d runs after a warm-up", runs)
	return r
}

// selfCPU is the harness's own user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
