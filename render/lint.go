package render

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
)

// Finding is one lint result.
type Finding struct {
	Severity string // "error", "warning" or "info"
	Path     string // file inside the chart, e.g. "templates/deployment.yaml"; "" for the chart as a whole
	Line     int    // 1-based; 0 when unknown
	Message  string // one line
}

func (f Finding) String() string {
	loc := f.Path
	if f.Line > 0 {
		loc += ":" + strconv.Itoa(f.Line)
	}
	if loc == "" {
		return fmt.Sprintf("[%s] %s", f.Severity, f.Message)
	}
	return fmt.Sprintf("[%s] %s: %s", f.Severity, loc, f.Message)
}

// Lint checks a chart directory (or .tgz): Helm's own linter (Chart.yaml
// fields and semver version, values.yaml, templates rendered in lint mode,
// YAML validity, object names, deprecated APIs, dependencies, crds/), then
// charter's stricter checks: values.yaml parses without duplicate keys, the
// chart loads safely, and Render succeeds with the default values - schema
// validation included, every document having apiVersion, kind and
// metadata.name. A render failure caused by `required` or `fail` is a
// warning (the chart may simply need values); any other is an error.
// Findings name the file and, where known, the line. Lint reads the chart
// and writes nothing.
func Lint(path string) []Finding {
	var out []Finding
	add := func(f Finding) {
		// Helm reports a load failure from several rules, and a broken
		// template both from its linter and from our render; keep one,
		// preferring the finding that knows the line.
		core := strings.TrimPrefix(f.Message, "unable to load chart ")
		for i, g := range out {
			if strings.TrimPrefix(g.Message, "unable to load chart ") == core {
				return
			}
			if g.Path != f.Path || g.Severity != f.Severity || f.Path == "" {
				continue
			}
			switch {
			case g.Line > 0 && g.Line == f.Line, g.Line > 0 && f.Line == 0:
				return
			case g.Line == 0 && f.Line > 0:
				out[i] = f
				return
			}
		}
		out = append(out, f)
	}
	hasError := func() bool {
		for _, f := range out {
			if f.Severity == "error" {
				return true
			}
		}
		return false
	}
	fi, err := os.Stat(path)
	if err != nil {
		return []Finding{{Severity: "error", Message: fmt.Sprintf("lint: %v", err)}}
	}
	if fi.IsDir() {
		linter := lint.RunAll(path, nil, "default", lint.WithSkipSchemaValidation(true))
		for _, m := range linter.Messages {
			p, line := location(m.Err.Error())
			if p == "" {
				p = strings.TrimSuffix(filepath.ToSlash(m.Path), "/")
				if p == "templates" {
					p = "templates/"
				}
			}
			add(Finding{Severity: severity(m.Severity), Path: p, Line: line, Message: oneLine(m.Err.Error())})
		}
	}

	ch, err := Load(path)
	if err != nil {
		if !hasError() { // otherwise Helm's rules already said why
			p, line := location(err.Error())
			add(Finding{Severity: "error", Path: p, Line: line, Message: oneLine(err.Error())})
		}
		return out
	}
	if raw := rawFile(ch.Chart, "values.yaml"); raw != nil {
		if _, err := ParseValues("values.yaml", raw); err != nil {
			_, line := location(err.Error())
			add(Finding{Severity: "error", Path: "values.yaml", Line: line, Message: strings.TrimPrefix(err.Error(), "values.yaml: ")})
		}
	}
	if ch.Chart.Metadata.Type == "library" {
		return out
	}
	if kv := ch.Chart.Metadata.KubeVersion; kv != "" {
		if _, err := semver.NewConstraint(kv); err != nil {
			add(Finding{Severity: "error", Path: "Chart.yaml", Message: fmt.Sprintf("kubeVersion %q is not a valid version constraint: %v", kv, err)})
		}
	}
	if _, err := render(ch, nil, Options{ReleaseName: "release-name", Namespace: "default"}, false); err != nil {
		msg := strings.TrimPrefix(err.Error(), "render "+ch.Chart.Name()+": ")
		p, line := location(msg)
		if strings.Contains(msg, "values.schema.json") {
			p = "values.schema.json"
		}
		sev := "error"
		if strings.HasPrefix(msg, "execution error at (") {
			sev = "warning"
		}
		add(Finding{Severity: sev, Path: p, Line: line, Message: "rendering with default values failed: " + msg})
	}
	return out
}

func severity(s int) string {
	switch s {
	case support.ErrorSev:
		return "error"
	case support.WarningSev:
		return "warning"
	}
	return "info"
}

var (
	// "chart/templates/x.yaml:12" or "chart/templates/x.yaml:12:3", inside Helm's messages.
	fileLine = regexp.MustCompile(`([\w.\-/]+\.(?:yaml|yml|tpl|txt|json)):(\d+)`)
	// "YAML parse error on chart/templates/x.yaml: ... line 5: ..."
	yamlOn = regexp.MustCompile(`(?:error on|^) ?([\w.\-/]+\.(?:yaml|yml|tpl|txt|json)):.*?line (\d+)`)
	// "chart/templates/x.yaml: object has no kind"
	fileOnly = regexp.MustCompile(`([\w.\-/]+\.(?:yaml|yml|tpl|txt|json)): `)
	// "values.yaml: line 3: ..."
	lineOnly = regexp.MustCompile(`\bline (\d+)\b`)
)

// location finds the chart file and line a message is about, with the
// leading chart name (and subchart path) dropped from template paths.
func location(msg string) (string, int) {
	if m := fileLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[2])
		return chartRelative(m[1]), n
	}
	if m := yamlOn.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[2])
		return chartRelative(m[1]), n
	}
	if m := fileOnly.FindStringSubmatch(msg); m != nil {
		return chartRelative(m[1]), 0
	}
	if m := lineOnly.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return "", n
	}
	return "", 0
}

// chartRelative turns "mychart/templates/x.yaml" into "templates/x.yaml" and
// "mychart/charts/sub/templates/x.yaml" into "charts/sub/templates/x.yaml".
func chartRelative(p string) string {
	if i := strings.Index(p, "/"); i >= 0 && !strings.HasPrefix(p, "templates/") && !strings.HasPrefix(p, "charts/") {
		if rest := p[i+1:]; strings.HasPrefix(rest, "templates/") || strings.HasPrefix(rest, "charts/") || strings.HasPrefix(rest, "crds/") {
			return rest
		}
	}
	return p
}

// Create writes Helm's starter chart (what `helm create` writes) to
// dir/name and returns its path. It refuses to touch an existing dir/name
// and removes what it wrote if writing fails part way.
func Create(dir, name string) (string, error) {
	target := filepath.Join(dir, name)
	if _, err := os.Lstat(target); err == nil {
		return "", fmt.Errorf("create chart: %s already exists", target)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("create chart: %w", err)
	}
	p, err := chartutil.Create(name, dir)
	if err != nil {
		if _, statErr := os.Lstat(target); statErr == nil {
			os.RemoveAll(target)
		}
		return "", fmt.Errorf("create chart %s: %w", name, err)
	}
	return p, nil
}
