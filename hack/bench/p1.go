package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/charter-sh/charter/render"
)

// p1State is a converged charter fan-out that P2 and P3 build on.
type p1State struct {
	n         int
	state     string // the folder state
	ns, recNS string
	names     []string
}

func (b *bench) p1(ctx context.Context) error {
	archive, err := b.packaged(ctx, "podinfo")
	if err != nil {
		return err
	}
	largest := b.cfg.sizes[len(b.cfg.sizes)-1]
	for _, n := range b.cfg.sizes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b.printf("-- P1 %d releases", n)
		objects, err := b.podinfoObjects(archive)
		if err != nil {
			return err
		}
		b.add(b.p1Charter(ctx, n, objects, archive, n == largest && b.cfg.profile > 0))
		b.add(b.p1Helm(ctx, n, objects, archive))
		b.add(b.p1Kubectl(ctx, n, archive))
	}
	return nil
}

// podinfoObjects counts the objects one podinfo release applies.
func (b *bench) podinfoObjects(archive string) (int, error) {
	ch, err := render.Load(archive)
	if err != nil {
		return 0, err
	}
	vals, err := parseValues(podinfoValues("r0000", 0))
	if err != nil {
		return 0, err
	}
	_, n, err := b.renderYAML(ch, "r0000", "default", vals)
	return n, err
}

// declareFanOut writes n declarations (with their values files) into a
// folder state; it is the whole of what a user does for charter in P1.
func declareFanOut(state, ns, chartRef, version string, names []string) error {
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(state, "values", name+".yaml"), []byte(podinfoValues(name, 0)), 0o644); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(state, "releases", name+".yaml"), []byte(declaration(name, ns, chartRef, version, true))); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) p1Charter(ctx context.Context, n, perRelease int, archive string, profile bool) Result {
	r := Result{Scenario: "P1", Case: fmt.Sprintf("%d releases", n), Tool: "charter", Objects: n * perRelease, Procs: 1}
	st, err := b.fanOut(ctx, fanOutSpec{n: n, ns: fmt.Sprintf("p1-%d-charter", n), archive: archive, r: &r, profile: profile})
	if err != nil {
		r.Error = oneLine(err.Error())
		return r
	}
	b.mu.Lock()
	b.converged[n] = st
	b.mu.Unlock()
	return r
}

// fanOutSpec is one fan-out: n podinfo releases in namespace ns.
type fanOutSpec struct {
	n       int
	ns      string
	archive string // the chart, copied into the state's charts/
	// prepare, when set, makes the state instead and returns the chart
	// reference and version constraint declarations use.
	prepare func(state string) (ref, version string, err error)
	r       *Result // filled when not nil
	profile bool    // take a CPU profile of the daemon
}

// fanOut starts a daemon on a state without releases, declares n releases
// at once and waits until all are deployed, measuring into spec.r.
func (b *bench) fanOut(ctx context.Context, spec fanOutSpec) (*p1State, error) {
	n, ns, r, profile := spec.n, spec.ns, spec.r, spec.profile
	st := &p1State{n: n, state: filepath.Join(b.work, ns, "state"), ns: ns, recNS: ns + "-records", names: releaseNames(n)}
	for _, name := range []string{st.ns, st.recNS} {
		if err := b.c.createNamespace(ctx, name); err != nil {
			return nil, err
		}
	}
	var ref, version string
	var err error
	if spec.prepare != nil {
		ref, version, err = spec.prepare(st.state)
	} else {
		ref, err = newState(st.state, spec.archive)
	}
	if err != nil {
		return nil, err
	}
	d, err := b.startDaemon(ctx, daemonOptions{state: st.state, recordsNS: st.recNS, resync: 10 * time.Minute, log: ns + "-daemon.log", pprof: profile})
	if err != nil {
		return nil, err
	}
	defer d.stop()
	w, err := b.c.watchRecords(ctx, st.recNS)
	if err != nil {
		return nil, err
	}
	defer w.stop()

	s0 := d.status()
	win, err := b.c.begin(ctx)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := declareFanOut(st.state, st.ns, ref, version, st.names); err != nil {
		return nil, fmt.Errorf("declare releases: %w", err)
	}
	prof := make(chan error, 1)
	profPath := filepath.Join(b.cfg.out, fmt.Sprintf("p1-%d-charter-cpu.pprof", n))
	if profile && b.pprof {
		secs := int(b.cfg.profile / time.Second)
		go func() { prof <- d.profile(ctx, secs, profPath) }()
	} else {
		prof <- nil
	}
	err = w.waitDeployed(ctx, n, b.cfg.timeout, func(s string) { b.printf("   charter  %s", s) })
	wall := time.Since(t0)
	if err != nil {
		deployed, failed := w.deployed()
		return nil, fmt.Errorf("%d of %d releases deployed, %d failed after %s: %w; daemon log: %s", deployed, n, failed, wall.Round(time.Second), err, d.lastLog())
	}
	cost, _, err := win.end(ctx)
	if err != nil {
		return nil, err
	}
	s1 := d.status()
	if r != nil {
		r.Wall, r.CPU, r.PeakRSS, r.API = wall.Seconds(), (s1.cpu - s0.cpu).Seconds(), mib(s1.hwm), cost
		r.Note = fmt.Sprintf("daemon RSS after converging %.0f MiB.", mib(s1.rss))
	}
	if profile {
		switch {
		case !b.pprof:
			b.note("No CPU profile of the daemon: this charter has no `daemon run --pprof`.")
		default:
			if err := <-prof; err != nil {
				b.note("CPU profile of the daemon during P1 %d failed: %v", n, err)
			} else {
				b.report.Profile = pprofTop(b.charter, profPath)
				b.note("CPU profile of the daemon during P1 at %d releases (%s from the start of the fan-out): %s; `go tool pprof -top %s %s`.",
					n, b.cfg.profile, profPath, b.charter, profPath)
			}
		}
	}
	return st, nil
}

// pprofTop summarises a CPU profile with go tool pprof -top -cum, leaving
// out the Go runtime's own frames so charter's call paths show.
func pprofTop(binary, profile string) []string {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=120", binary, profile).Output()
	if err != nil {
		return []string{"go tool pprof failed: " + err.Error()}
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && (strings.HasPrefix(f[len(f)-1], "runtime.") || strings.HasPrefix(f[len(f)-1], "internal/runtime")) {
			continue
		}
		if lines = append(lines, l); len(lines) >= 50 {
			break
		}
	}
	return lines
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }

func (b *bench) p1Helm(ctx context.Context, n, perRelease int, archive string) Result {
	r := Result{Scenario: "P1", Case: fmt.Sprintf("%d releases", n), Tool: "helm", Objects: n * perRelease}
	ns := fmt.Sprintf("p1-%d-helm", n)
	if err := b.c.createNamespace(ctx, ns); err != nil {
		r.Error = err.Error()
		return r
	}
	values := filepath.Join(b.work, ns, "values")
	names := releaseNames(n)
	if err := writeValues(values, names); err != nil {
		r.Error = err.Error()
		return r
	}
	done := progressEvery(b, "helm", n)
	b.measure(ctx, &r, func(ctx context.Context, u *usage) error {
		return parallel(ctx, b.cfg.workers, names, func(ctx context.Context, name string) error {
			defer done()
			_, err := b.helmCmd(ns+".log", "upgrade", "--install", name, archive, "-n", ns,
				"-f", filepath.Join(values, name+".yaml"), "--wait", "--timeout", "10m").run(ctx, u)
			if err != nil {
				u.fail(oneLine(err.Error()))
			}
			return nil
		})
	})
	return r
}

// progressEvery returns a func to call per finished item; it prints a
// progress line every 10 s.
func progressEvery(b *bench, tool string, n int) func() {
	var count int
	start, last := time.Now(), time.Now()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		count++
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			b.printf("   %-8s %d/%d done (%s)", tool, count, n, time.Since(start).Round(time.Second))
		}
	}
}

func writeValues(dir string, names []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(podinfoValues(name, 0)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) p1Kubectl(ctx context.Context, n int, archive string) Result {
	r := Result{Scenario: "P1", Case: fmt.Sprintf("%d releases", n), Tool: "kubectl"}
	ns := fmt.Sprintf("p1-%d-kubectl", n)
	if err := b.c.createNamespace(ctx, ns); err != nil {
		r.Error = err.Error()
		return r
	}
	chunks, objects, err := b.renderChunks(archive, ns, releaseNames(n), filepath.Join(b.work, ns))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Objects = objects
	b.kubectlApply(ctx, &r, ns, chunks)
	return r
}

// kubectlChunk is one kubectl worker's share: a file of objects and the
// Deployments among them to wait for.
type kubectlChunk struct {
	file        string
	deployments []string
}

// renderChunks renders every release with charter's renderer and splits
// the objects into -workers files, a release never split across files.
func (b *bench) renderChunks(archive, ns string, names []string, dir string) ([]kubectlChunk, int, error) {
	ch, err := render.Load(archive)
	if err != nil {
		return nil, 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	chunks := make([]kubectlChunk, min(b.cfg.workers, len(names)))
	data := make([][]byte, len(chunks))
	total := 0
	for i, name := range names {
		vals, err := parseValues(podinfoValues(name, 0))
		if err != nil {
			return nil, 0, err
		}
		objs, err := b.renderObjects(ch, name, ns, vals)
		if err != nil {
			return nil, 0, err
		}
		k := i % len(chunks)
		for _, o := range objs {
			y, err := marshalObject(o.Object)
			if err != nil {
				return nil, 0, err
			}
			data[k] = append(append(data[k], "---\n"...), y...)
			if o.GetKind() == "Deployment" {
				chunks[k].deployments = append(chunks[k].deployments, "deployment/"+o.GetName())
			}
		}
		total += len(objs)
	}
	for k := range chunks {
		chunks[k].file = filepath.Join(dir, fmt.Sprintf("objects-%d.yaml", k))
		if err := os.WriteFile(chunks[k].file, data[k], 0o644); err != nil {
			return nil, 0, err
		}
	}
	return chunks, total, nil
}

// kubectlApply runs one kubectl pipeline per chunk, all at once: `kubectl
// apply --server-side` of the chunk's file, then `kubectl wait
// --for=condition=Available` on its Deployments (if any). It measures
// into r.
func (b *bench) kubectlApply(ctx context.Context, r *Result, ns string, chunks []kubectlChunk) {
	b.measure(ctx, r, func(ctx context.Context, u *usage) error {
		return parallel(ctx, b.cfg.workers, chunks, func(ctx context.Context, c kubectlChunk) error {
			if _, err := b.kubectlCmd(ns+".log", "apply", "--server-side", "--field-manager", "bench", "-f", c.file).run(ctx, u); err != nil {
				return err
			}
			if len(c.deployments) == 0 {
				return nil
			}
			args := append([]string{"wait", "--for=condition=Available", "-n", ns, "--timeout=10m"}, c.deployments...)
			_, err := b.kubectlCmd(ns+".log", args...).run(ctx, u)
			return err
		})
	})
}
