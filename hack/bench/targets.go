package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// targets checks the goals against a run's results. A goal whose
// case did not run (or failed) is listed as not measured.
func targets(results []Result, rs []Ratio) []Target {
	var out []Target
	// P1, for every size run: ≥ 2× faster than helm, ≤ 1.3× kubectl; RSS at the largest.
	sizes := map[int]bool{}
	largest := 0
	for _, r := range results {
		if r.Scenario == "P1" {
			if n, err := strconv.Atoi(strings.Fields(r.Case)[0]); err == nil {
				sizes[n] = true
				largest = max(largest, n)
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(sizes)) {
		c := fmt.Sprintf("%d releases", n)
		out = append(out,
			ratioTarget(rs, "P1", c, "helm", "P1 "+c+": wall vs helm loop", "≤ 0.50× (≥ 2× faster)", 0.5),
			ratioTarget(rs, "P1", c, "kubectl", "P1 "+c+": wall vs kubectl floor", "≤ 1.30×", 1.3))
	}
	if largest > 0 {
		c := fmt.Sprintf("%d releases", largest)
		rss := math.NaN()
		if r, ok := findResult(results, "P1", c, "charter"); ok {
			rss = r.PeakRSS
		}
		goal := "≤ 100 MiB"
		if largest != 1000 {
			goal += " (the goal is for 1000 releases)"
		}
		out = append(out, newTarget("P1", "P1 "+c+": charter daemon peak RSS", goal, 100, rss, "MiB"))
	}
	// P2: 0 writes, ≤ 0.1 requests and ≤ 1 ms CPU per release per resync.
	if r, ok := firstOf(results, "P2", "charter"); ok {
		out = append(out,
			newTarget("P2", "P2 "+r.Case+": writes to objects and records", "0", 0, r.extra("writes to objects and records"), "writes"),
			newTarget("P2", "P2 "+r.Case+": API requests per release per resync", "≤ 0.1", 0.1, r.extra("API requests per release per resync"), "requests"),
			newTarget("P2", "P2 "+r.Case+": CPU per idle release per resync", "≤ 1 ms", 1, r.extra("CPU per release per resync"), "ms"))
	} else if ran(results, "P2") {
		out = append(out, newTarget("P2", "P2 steady state", "0 writes, ≤ 0.1 requests, ≤ 1 ms CPU per release per resync", 0, math.NaN(), ""))
	}
	// P3: only the edited release is rendered and applied.
	if r, ok := firstOf(results, "P3", "charter"); ok {
		out = append(out, newTarget("P3", "P3 "+r.Case+": other releases applied", "0", 0, r.extra("releases applied other than the edited one"), "releases"))
	} else if ran(results, "P3") {
		out = append(out, newTarget("P3", "P3 one change", "only the edited release applied", 0, math.NaN(), ""))
	}
	// P4: render ≤ 0.5× helm template.
	if ran(results, "P4") {
		out = append(out, ratioTarget(rs, "P4", "render", "helm", "P4 prometheus: render vs helm template", "≤ 0.50×", 0.5))
	}
	// P5: resolve ≤ 0.3 s, ≤ 50 MiB extra.
	if ran(results, "P5") {
		t, mem := math.NaN(), math.NaN()
		if r, ok := findResult(results, "P5", p5Case, "charter"); ok {
			t, mem = r.Wall, r.extra("extra memory (heap peak)")
		}
		out = append(out,
			newTarget("P5", "P5 "+p5Case+": time", "≤ 0.3 s", 0.3, t, "s"),
			newTarget("P5", "P5 "+p5Case+": extra memory", "≤ 50 MiB", 50, mem, "MiB"))
	}
	return out
}

const p5Case = "resolve 50 releases"

// ratioTarget is a goal on charter's wall time over a peer's in one case.
func ratioTarget(rs []Ratio, scenario, cas, peer, what, goal string, limit float64) Target {
	t := newTarget(scenario, what, goal, limit, findRatio(rs, scenario, cas, peer), "×")
	t.Case, t.Peer = cas, peer
	return t
}

func firstOf(results []Result, scenario, tool string) (Result, bool) {
	for _, r := range results {
		if r.Scenario == scenario && r.Tool == tool && r.Error == "" {
			return r, true
		}
	}
	return Result{}, false
}

func ran(results []Result, scenario string) bool {
	for _, r := range results {
		if r.Scenario == scenario {
			return true
		}
	}
	return false
}
