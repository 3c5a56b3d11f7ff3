package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
)

// Result is one measurement: one tool doing one case of a scenario.
type Result struct {
	Scenario   string  `json:"scenario"`                   // P1…P6
	Case       string  `json:"case"`                       // "1000 releases", "no-op upgrade", …
	Tool       string  `json:"tool"`                       // charter, helm, kubectl
	Wall       float64 `json:"wallSeconds"`                // until applied and Ready (or the case's own end)
	Objects    int     `json:"objects"`                    // objects applied (0: not an apply)
	PeakRSS    float64 `json:"peakRSSMiB"`                 // see Report.Method
	CPU        float64 `json:"cpuSeconds"`                 // user+system of the tool's processes
	Procs      int     `json:"processes"`                  // processes the tool ran (the daemon counts 1)
	MaxProcRSS float64 `json:"maxProcessRSSMiB,omitempty"` // the largest single process (peers)
	API        apiCost `json:"apiRequests"`                // from apiserver_request_total
	Error      string  `json:"error,omitempty"`            // the case failed: why
	Note       string  `json:"note,omitempty"`             // how to read it
	Extra      []Stat  `json:"extra,omitempty"`            // scenario-specific figures
	NoAPI      bool    `json:"noAPI,omitempty"`            // the case makes no API requests (rendering)
	NoRSS      bool    `json:"noRSS,omitempty"`            // in-process measurement: RSS not comparable
	Measured   string  `json:"measured,omitempty"`         // "in process" when not a separate process
}

// Stat is a named figure with its unit.
type Stat struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// ObjPerSec is objects applied per second of wall time.
func (r Result) ObjPerSec() float64 {
	if r.Wall <= 0 || r.Objects == 0 {
		return 0
	}
	return float64(r.Objects) / r.Wall
}

// Ratio is charter's figure divided by a peer's, for one case.
type Ratio struct {
	Scenario string  `json:"scenario"`
	Case     string  `json:"case"`
	Peer     string  `json:"peer"`
	Wall     float64 `json:"wall"`
	CPU      float64 `json:"cpu,omitempty"`
	PeakRSS  float64 `json:"peakRSS,omitempty"`
	API      float64 `json:"apiRequests,omitempty"`
}

// Target is one goal of the issue, checked against this run.
type Target struct {
	Scenario string  `json:"scenario"`
	What     string  `json:"what"`  // "P1 1000 releases: wall vs helm"
	Goal     string  `json:"goal"`  // "≤ 0.5× (≥ 2× faster)"
	Limit    float64 `json:"limit"` // the measured value must be ≤ Limit
	Value    float64 `json:"value"` // NaN when not measured
	Unit     string  `json:"unit"`  // "×", "MiB", "s", "ms", "requests"
	Met      bool    `json:"met"`
	Missing  bool    `json:"missing,omitempty"`
	Case     string  `json:"case,omitempty"` // for a wall-ratio goal: the case and peer
	Peer     string  `json:"peer,omitempty"`
}

func newTarget(scenario, what, goal string, limit, value float64, unit string) Target {
	t := Target{Scenario: scenario, What: what, Goal: goal, Limit: limit, Value: value, Unit: unit}
	if math.IsNaN(value) {
		t.Missing, t.Value = true, 0
		return t
	}
	t.Met = value <= limit
	return t
}

// Report is everything a run found.
type Report struct {
	Started  string            `json:"started"`
	Duration string            `json:"duration"`
	Machine  map[string]string `json:"machine"`
	Settings map[string]string `json:"settings"`
	Method   []string          `json:"method"`
	Results  []Result          `json:"results"`
	Ratios   []Ratio           `json:"ratios"`
	Targets  []Target          `json:"targets"`
	Notes    []string          `json:"notes,omitempty"`
	Failures []string          `json:"failures,omitempty"`
	Profile  []string          `json:"profileTop,omitempty"` // go tool pprof -top of the daemon during P1
}

// ratios pairs every peer result with charter's result of the same case.
func ratios(results []Result) []Ratio {
	type key struct{ s, c string }
	ch := map[key]Result{}
	for _, r := range results {
		if r.Tool == "charter" && r.Error == "" {
			ch[key{r.Scenario, r.Case}] = r
		}
	}
	var out []Ratio
	for _, r := range results {
		c, ok := ch[key{r.Scenario, r.Case}]
		if r.Tool == "charter" || !ok || r.Error != "" {
			continue
		}
		out = append(out, Ratio{
			Scenario: r.Scenario, Case: r.Case, Peer: r.Tool,
			Wall:    div(c.Wall, r.Wall),
			CPU:     div(c.CPU, r.CPU),
			PeakRSS: div(c.PeakRSS, r.PeakRSS),
			API:     div(c.API.Total, r.API.Total),
		})
	}
	return out
}

// div is a/b, or 0 when either is unknown.
func div(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

// findRatio returns the wall ratio of charter to peer in one case, NaN
// when the case did not produce both.
func findRatio(rs []Ratio, scenario, cas, peer string) float64 {
	for _, r := range rs {
		if r.Scenario == scenario && r.Case == cas && r.Peer == peer && r.Wall > 0 {
			return r.Wall
		}
	}
	return math.NaN()
}

// findResult returns charter's (or a peer's) result of a case.
func findResult(results []Result, scenario, cas, tool string) (Result, bool) {
	for _, r := range results {
		if r.Scenario == scenario && r.Case == cas && r.Tool == tool && r.Error == "" {
			return r, true
		}
	}
	return Result{}, false
}

// extra returns a scenario-specific figure of a result, NaN when absent.
func (r Result) extra(name string) float64 {
	for _, s := range r.Extra {
		if s.Name == name {
			return s.Value
		}
	}
	return math.NaN()
}

// row formats one result for the table; ratio is charter/this (peers only).
func row(r Result, rs []Ratio) []string {
	if r.Error != "" {
		return []string{r.Scenario, r.Case, r.Tool, "failed: " + truncate(r.Error, 60), "", "", "", "", ""}
	}
	ratio := ""
	if r.Tool != "charter" {
		if v := findRatio(rs, r.Scenario, r.Case, r.Tool); !math.IsNaN(v) {
			ratio = fmtRatio(v)
		}
	}
	ops, rss, api := "", "", ""
	if r.Objects > 0 {
		ops = fmt.Sprintf("%.0f", r.ObjPerSec())
	}
	if !r.NoRSS && r.PeakRSS > 0 {
		rss = fmt.Sprintf("%.0f MiB", r.PeakRSS)
	}
	if !r.NoAPI {
		api = fmt.Sprintf("%.0f (%.0f w)", r.API.Total, r.API.Writes)
	}
	return []string{r.Scenario, r.Case, r.Tool, fmtSeconds(r.Wall), ops, rss, fmt.Sprintf("%.1f s", r.CPU), api, ratio}
}

var tableHeader = []string{"scenario", "case", "tool", "wall", "objects/s", "peak RSS", "CPU", "API requests (writes)", "charter/peer wall"}

func fmtSeconds(s float64) string {
	switch {
	case s <= 0:
		return "—"
	case s < 1:
		return fmt.Sprintf("%.0f ms", s*1000)
	case s < 100:
		return fmt.Sprintf("%.1f s", s)
	}
	return fmt.Sprintf("%.0f s", s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// writeTable prints the results as aligned text.
func writeTable(w io.Writer, results []Result, rs []Ratio) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader, "\t"))
	for _, r := range results {
		fmt.Fprintln(tw, strings.Join(row(r, rs), "\t"))
	}
	return tw.Flush()
}

// markdownTable formats rows as a Markdown table.
func markdownTable(header []string, rows [][]string) string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = strings.ReplaceAll(c, "|", "\\|")
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}

func targetRows(ts []Target) [][]string {
	var rows [][]string
	for _, t := range ts {
		val, met := fmtValue(t.Value, t.Unit), "no"
		switch {
		case t.Missing:
			val, met = "not measured", "—"
		case t.Met:
			met = "yes"
		}
		rows = append(rows, []string{t.What, t.Goal, val, met})
	}
	return rows
}

// fmtRatio shows a ratio with two significant digits at least.
func fmtRatio(v float64) string {
	if v > 0 && v < 0.1 {
		return fmt.Sprintf("%.2g×", v)
	}
	return fmt.Sprintf("%.2f×", v)
}

func fmtValue(v float64, unit string) string {
	switch unit {
	case "×":
		return fmtRatio(v)
	case "s":
		return fmtSeconds(v)
	case "requests", "writes":
		if v < 10 && v != math.Trunc(v) {
			return fmt.Sprintf("%.3f %s", v, unit)
		}
		return fmt.Sprintf("%.0f %s", v, unit)
	}
	if v < 10 && v != math.Trunc(v) {
		return fmt.Sprintf("%.2f %s", v, unit)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

// markdown renders the whole report.
func (rep *Report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# charter benchmark results\n\nRun started %s, took %s.\n\n", rep.Started, rep.Duration)
	b.WriteString("## Machine and settings\n\n")
	for _, m := range []map[string]string{rep.Machine, rep.Settings} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "- %s: %s\n", k, m[k])
		}
	}
	b.WriteString("\n## Results\n\n")
	var rows [][]string
	for _, r := range rep.Results {
		rows = append(rows, row(r, rep.Ratios))
	}
	b.WriteString(markdownTable(tableHeader, rows))
	b.WriteString("\n![charter/peer ratios](ratios.png)\n\n## Targets\n\n")
	b.WriteString(markdownTable([]string{"target", "goal", "measured", "met"}, targetRows(rep.Targets)))
	if details := rep.details(); details != "" {
		b.WriteString("\n## Details\n\n" + details)
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range rep.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	if len(rep.Failures) > 0 {
		b.WriteString("\n## Failures\n\n")
		for _, f := range rep.Failures {
			b.WriteString("- " + f + "\n")
		}
	}
	if len(rep.Profile) > 0 {
		b.WriteString("\n## Daemon CPU profile during P1 (go tool pprof -top -cum, Go runtime frames left out)\n\n```\n" + strings.Join(rep.Profile, "\n") + "\n```\n")
	}
	b.WriteString("\n## Method\n\n")
	for _, m := range rep.Method {
		b.WriteString("- " + m + "\n")
	}
	return b.String()
}

// details lists scenario-specific figures, notes and where API requests
// went, result by result.
func (rep *Report) details() string {
	var b strings.Builder
	for _, r := range rep.Results {
		if r.Error != "" || len(r.Extra) == 0 && r.Note == "" && len(r.API.ByVerb) == 0 {
			continue
		}
		fmt.Fprintf(&b, "- **%s %s, %s**", r.Scenario, r.Case, r.Tool)
		if r.Measured != "" {
			fmt.Fprintf(&b, " (%s)", r.Measured)
		}
		b.WriteString(":")
		var parts []string
		for _, s := range r.Extra {
			parts = append(parts, fmt.Sprintf("%s %s", s.Name, fmtValue(s.Value, s.Unit)))
		}
		if len(parts) > 0 {
			b.WriteString(" " + strings.Join(parts, "; ") + ".")
		}
		if r.Note != "" {
			b.WriteString(" " + r.Note)
		}
		if r.Procs > 1 {
			fmt.Fprintf(&b, " %d processes, the largest %.0f MiB.", r.Procs, r.MaxProcRSS)
		}
		if top := r.API.topVerbs(6); top != "" && !r.NoAPI {
			b.WriteString(" Requests: " + top + ".")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// writeReport writes results.json, results.md and ratios.png, and prints
// the table and targets.
func (b *bench) writeReport() error {
	rep := &b.report
	rep.Ratios = ratios(rep.Results)
	rep.Targets = targets(rep.Results, rep.Ratios)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	out := b.cfg.out
	if err := os.WriteFile(filepath.Join(out, "results.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(rep.markdown()), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	png, err := ratioChart(rep.Ratios, rep.Targets)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "ratios.png"), png, 0o644); err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	fmt.Fprintln(b.out)
	if err := writeTable(b.out, rep.Results, rep.Ratios); err != nil {
		return err
	}
	fmt.Fprintln(b.out)
	tw := tabwriter.NewWriter(b.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tgoal\tmeasured\tmet")
	for _, r := range targetRows(rep.Targets) {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\nresults: %s, %s, %s\n", filepath.Join(out, "results.md"), filepath.Join(out, "results.json"), filepath.Join(out, "ratios.png"))
	return nil
}
