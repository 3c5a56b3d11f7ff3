package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// steady returns a converged charter state of -steady-n releases: P1's
// when it ran with that count, else one set up now (not measured).
func (b *bench) steady(ctx context.Context) (*p1State, error) {
	b.mu.Lock()
	st := b.converged[b.cfg.steadyN]
	b.mu.Unlock()
	if st != nil {
		return st, nil
	}
	archive, err := b.packaged(ctx, "podinfo")
	if err != nil {
		return nil, err
	}
	b.printf("   setting up %d converged releases (not measured)", b.cfg.steadyN)
	st, err = b.fanOut(ctx, fanOutSpec{n: b.cfg.steadyN, ns: fmt.Sprintf("steady-%d", b.cfg.steadyN), archive: archive})
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.converged[b.cfg.steadyN] = st
	b.mu.Unlock()
	return st, nil
}

// steadyDaemon returns the daemon P2 left running on st, or starts one
// with the given resync and waits for its first pass over every release.
func (b *bench) steadyDaemon(ctx context.Context, st *p1State, resync time.Duration, tag string) (*daemon, error) {
	b.mu.Lock()
	d := b.live
	b.mu.Unlock()
	if d != nil && !d.exited() {
		return d, nil
	}
	d, err := b.startDaemon(ctx, daemonOptions{state: st.state, recordsNS: st.recNS, resync: resync, log: fmt.Sprintf("%s-%d-daemon.log", tag, st.n)})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := b.waitFirstPass(ctx, d, st); err != nil {
		d.stop()
		return nil, err
	}
	b.printf("   daemon's first pass over %d converged releases took %s", st.n, time.Since(t0).Round(100*time.Millisecond))
	return d, nil
}

// waitFirstPass waits until a freshly started daemon finished its first
// pass over every release (see waitPass); counting reconciles on the
// daemon's /metrics, where it has them, may tell sooner.
func (b *bench) waitFirstPass(ctx context.Context, d *daemon, st *p1State) error {
	return b.waitPass(ctx, d, st, d.started, true)
}

// waitPass waits until the daemon reports, on its heartbeat Lease, a pass
// over every release that ended after since (the heartbeat is renewed
// every 10 s, so this may lag the pass by as much).
func (b *bench) waitPass(ctx context.Context, d *daemon, st *p1State, since time.Time, countReconciles bool) error {
	deadline := time.Now().Add(b.cfg.timeout)
	for time.Now().Before(deadline) {
		if d.exited() {
			return fmt.Errorf("charter daemon exited: %v; last log line: %s", d.waitErr, d.lastLog())
		}
		if countReconciles {
			if n, ok := sumMetric(d.metrics(), "charter_reconciles_total"); ok && n >= float64(st.n) {
				return nil
			}
		}
		leases, err := b.c.kube.CoordinationV1().Leases(st.recNS).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, l := range leases.Items {
				var hb struct {
					LastReconcile time.Time `json:"lastReconcile"`
				}
				if json.Unmarshal([]byte(l.Annotations["charter.sh/status"]), &hb) == nil && hb.LastReconcile.After(since) {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("no pass over the %d releases ended within %s; last log line: %s", st.n, b.cfg.timeout, d.lastLog())
}

// p2 measures an idle daemon: converged releases, nothing changes, several
// resync intervals.
func (b *bench) p2(ctx context.Context) error {
	st, err := b.steady(ctx)
	if err != nil {
		return err
	}
	b.stopLive()
	r := Result{Scenario: "P2", Case: fmt.Sprintf("%d releases idle", st.n), Tool: "charter", Procs: 1}
	defer func() { b.add(r) }()

	// What the control plane does on its own (kwok's node heartbeats,
	// controllers): measured with no daemon, subtracted below.
	const baseline = 20 * time.Second
	b.printf("   measuring the idle control plane for %s (baseline)", baseline)
	win, err := b.c.begin(ctx)
	if err != nil {
		return err
	}
	if err := sleep(ctx, baseline); err != nil {
		return err
	}
	bg, bgDur, err := win.end(ctx)
	if err != nil {
		return err
	}

	d, err := b.steadyDaemon(ctx, st, b.cfg.resync, "p2")
	if err != nil {
		r.Error = oneLine(err.Error())
		return nil
	}
	keep := slices.Contains(b.cfg.scenarios, "P3")
	if keep {
		b.mu.Lock()
		b.live = d
		b.mu.Unlock()
	} else {
		defer d.stop()
	}
	// Warm-up: the first resync after a start may still find the drift
	// watcher's caches cold; steady state is what comes after it.
	b.printf("   warm-up: the first resync (%s) and its pass", b.cfg.resync)
	warmStart := time.Now()
	warmWin, err := b.c.begin(ctx)
	if err != nil {
		return err
	}
	if err := sleep(ctx, b.cfg.resync); err != nil {
		return err
	}
	if err := b.waitPass(ctx, d, st, warmStart.Add(b.cfg.resync), false); err != nil {
		r.Error = oneLine(err.Error())
		return nil
	}
	warm, warmDur, err := warmWin.end(ctx)
	if err != nil {
		return err
	}
	if err := resetPeakRSS(d.pid); err != nil {
		b.note("P2: could not reset the daemon's VmHWM (%v); its peak includes the first pass.", err)
	}
	span := time.Duration(b.cfg.resyncs) * b.cfg.resync
	b.printf("   watching the daemon for %d resync intervals of %s (%s)", b.cfg.resyncs, b.cfg.resync, span)
	m0, s0 := d.metrics(), d.status()
	win, err = b.c.begin(ctx)
	if err != nil {
		return err
	}
	if err := sleep(ctx, span); err != nil {
		return err
	}
	raw, dur, err := win.end(ctx)
	if err != nil {
		return err
	}
	m1, s1 := d.metrics(), d.status()
	if d.exited() {
		r.Error = "the daemon exited during the window: " + d.lastLog()
		return nil
	}
	cost := raw.minus(bg, dur.Seconds()/bgDur.Seconds())
	per := float64(st.n * b.cfg.resyncs)
	objectWrites, houseWrites, clusterWrites := splitWrites(cost.Writers)
	cpu := (s1.cpu - s0.cpu).Seconds()
	r.Wall, r.CPU, r.PeakRSS, r.API = dur.Seconds(), cpu, mib(s1.hwm), cost
	r.Extra = []Stat{
		{"API requests per release per resync", cost.Total / per, "requests"},
		{"writes to objects and records", objectWrites, "writes"},
		{"lease/event writes", houseWrites, "writes"},
		{"node and status writes (kwok, controllers)", clusterWrites, "writes"},
		{"dry runs", cost.DryRuns, "requests"},
		{"CPU per release per resync", cpu * 1000 / per, "ms"},
	}
	if c0, ok0 := sumMetric(m0, "charter_api_requests_total"); ok0 {
		if c1, ok1 := sumMetric(m1, "charter_api_requests_total"); ok1 {
			r.Extra = append(r.Extra, Stat{"daemon-counted requests per release per resync", (c1 - c0) / per, "requests"})
		}
	}
	if c0, ok0 := sumMetric(m0, "charter_reconciles_total"); ok0 {
		if c1, ok1 := sumMetric(m1, "charter_reconciles_total"); ok1 {
			r.Extra = append(r.Extra, Stat{"reconciles in the window, per release", (c1 - c0) / float64(st.n), "×"})
		}
	}
	r.Note = fmt.Sprintf("Background of the idle control plane (%.0f requests, %.0f writes per %s without a daemon) subtracted; raw window: %.0f requests, %.0f writes. Before the window, a warm-up of one resync interval and its pass (%s) cost %.0f requests (%.0f dry runs, %.0f writes). Peak RSS is over the window only.",
		bg.Total, bg.Writes, bgDur.Round(time.Second), raw.Total, raw.Writes, warmDur.Round(time.Second), warm.Total, warm.DryRuns, warm.Writes)
	return nil
}

// splitWrites sorts a window's writes by resource: the releases' objects
// and records; the daemon's housekeeping (heartbeat and leader Leases,
// Events); and what kwok and the controllers write (Nodes, status).
func splitWrites(byResource map[string]float64) (objects, house, cluster float64) {
	for res, v := range byResource {
		switch {
		case res == "leases" || res == "events":
			house += v
		case res == "nodes" || strings.HasPrefix(res, "nodes/") || strings.HasSuffix(res, "/status"):
			cluster += v
		default:
			objects += v
		}
	}
	return objects, house, cluster
}

// p3 edits one values file at a time among the converged releases and
// measures change → converged.
func (b *bench) p3(ctx context.Context) error {
	st, err := b.steady(ctx)
	if err != nil {
		return err
	}
	r := Result{Scenario: "P3", Case: fmt.Sprintf("1 change among %d", st.n), Tool: "charter", Procs: 1}
	defer func() { b.add(r) }()
	b.mu.Lock()
	reused := b.live != nil && !b.live.exited()
	b.mu.Unlock()
	resync := 10 * time.Minute
	if reused {
		resync = b.cfg.resync
	}
	d, err := b.steadyDaemon(ctx, st, resync, "p3")
	if err != nil {
		r.Error = oneLine(err.Error())
		return nil
	}
	defer b.stopLive()
	defer d.stop()
	w, err := b.c.watchRecords(ctx, st.recNS)
	if err != nil {
		return err
	}
	defer w.stop()

	changes := min(b.cfg.changes, st.n)
	var picked []string
	for k := range changes {
		picked = append(picked, st.names[k*st.n/changes])
	}
	off, m0, s0 := d.logOffset(), d.metrics(), d.status()
	if err := resetPeakRSS(d.pid); err != nil {
		b.note("P3: could not reset the daemon's VmHWM (%v).", err)
	}
	win, err := b.c.begin(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	var lat []float64
	for k, name := range picked {
		cur, _ := w.get(name)
		path := filepath.Join(st.state, "values", name+".yaml")
		start := time.Now()
		if err := writeFileAtomic(path, []byte(podinfoValues(name, k+1))); err != nil {
			return err
		}
		err := w.wait(ctx, 5*time.Minute, func() bool {
			s, _ := w.get(name)
			return s.revision > cur.revision && s.status == "deployed"
		})
		if err != nil {
			r.Error = fmt.Sprintf("change %d (%s) did not converge: %v; daemon log: %s", k+1, name, err, d.lastLog())
			return nil
		}
		s, _ := w.get(name)
		lat = append(lat, s.at.Sub(start).Seconds())
	}
	total := time.Since(t0)
	cost, _, err := win.end(ctx)
	if err != nil {
		return err
	}
	m1, s1 := d.metrics(), d.status()

	// Which releases did the daemon apply? It logs "reconciled" for every
	// release it did something to (unchanged ones are not logged).
	edited := map[string]bool{}
	for _, p := range picked {
		edited[p] = true
	}
	var others []string
	applied := 0
	for _, e := range d.logSince(off) {
		if e.Msg != "reconciled" {
			continue
		}
		applied++
		if !edited[e.Release] {
			others = append(others, e.Release+" "+e.Action)
		}
	}
	r.Wall, r.CPU, r.PeakRSS, r.API = total.Seconds(), (s1.cpu - s0.cpu).Seconds(), mib(s1.hwm), cost
	r.Extra = []Stat{
		{"p50 change→converged", percentile(lat, 50), "s"},
		{"p99", percentile(lat, 99), "s"},
		{"max", slices.Max(lat), "s"},
		{"releases applied other than the edited one", float64(len(others)), "releases"},
		{"API requests per change", cost.Total / float64(changes), "requests"},
		{"CPU per change", (s1.cpu - s0.cpu).Seconds() / float64(changes), "s"},
	}
	if c0, ok0 := sumMetric(m0, "charter_reconciles_total"); ok0 {
		if c1, ok1 := sumMetric(m1, "charter_reconciles_total"); ok1 {
			r.Extra = append(r.Extra, Stat{"reconciles (any result) per change", (c1 - c0) / float64(changes), "×"})
		}
	}
	r.Note = fmt.Sprintf("%d values files edited one after the other (atomic rename, as an editor or svn up does); latency from the rename to the record of the new revision reading deployed. The daemon logged %d reconciles that changed something. Daemon --resync-interval %s", changes, applied, resync)
	if reused {
		r.Note += " (P2's daemon, kept running: full resyncs run during the edits)"
	}
	r.Note += "."
	if len(others) > 0 {
		r.Note += " Also applied: " + strings.Join(others[:min(5, len(others))], ", ") + "."
	}
	return nil
}

// percentile is the nearest-rank percentile p of xs (p99 of 20 samples is
// the largest).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
