package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLint(t *testing.T) {
	chartYAML := "apiVersion: v2\nname: l\nversion: 1.0.0\n"
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
	tests := map[string]struct {
		files map[string]string
		want  Finding // Message is a substring
	}{
		"version missing": {
			files: map[string]string{"Chart.yaml": "apiVersion: v2\nname: l\n", "templates/cm.yaml": cm},
			want:  Finding{Severity: "error", Path: "Chart.yaml", Message: "version is required"},
		},
		"version not semver": {
			files: map[string]string{"Chart.yaml": "apiVersion: v2\nname: l\nversion: one\n", "templates/cm.yaml": cm},
			want:  Finding{Severity: "error", Path: "Chart.yaml", Message: "version 'one' is not a valid SemVer"},
		},
		"apiVersion missing": {
			files: map[string]string{"Chart.yaml": "name: l\nversion: 1.0.0\n", "templates/cm.yaml": cm},
			want:  Finding{Severity: "error", Path: "Chart.yaml", Message: "apiVersion is required"},
		},
		"name missing": {
			files: map[string]string{"Chart.yaml": "apiVersion: v2\nversion: 1.0.0\n", "templates/cm.yaml": cm},
			want:  Finding{Severity: "error", Path: "Chart.yaml", Message: "name is required"},
		},
		"kubeVersion not a constraint": {
			files: map[string]string{"Chart.yaml": chartYAML + "kubeVersion: '>=>1'\n", "templates/cm.yaml": cm},
			want:  Finding{Severity: "error", Path: "Chart.yaml", Message: `kubeVersion ">=>1" is not a valid version constraint`},
		},
		"values not YAML": {
			files: map[string]string{"Chart.yaml": chartYAML, "templates/cm.yaml": cm, "values.yaml": "a: 1\nb: [\n"},
			want:  Finding{Severity: "error", Path: "values.yaml", Line: 2, Message: "did not find expected node content"},
		},
		"values duplicate key": {
			files: map[string]string{"Chart.yaml": chartYAML, "templates/cm.yaml": cm, "values.yaml": "a: 1\nb: 2\na: 3\n"},
			want:  Finding{Severity: "error", Path: "values.yaml", Line: 3, Message: `duplicate key "a"`},
		},
		"template parse error": {
			files: map[string]string{"Chart.yaml": chartYAML, "templates/cm.yaml": cm + "data:\n  a: {{ .Values.x \n"},
			want:  Finding{Severity: "error", Path: "templates/cm.yaml", Line: 7, Message: "unclosed action"},
		},
		"template execution error": {
			files: map[string]string{"Chart.yaml": chartYAML, "templates/cm.yaml": cm + "data:\n  a: {{ index .Values.list 3 }}\n", "values.yaml": "list: [1]\n"},
			want:  Finding{Severity: "error", Path: "templates/cm.yaml", Line: 6, Message: "index out of range"},
		},
		"required value is a warning": {
			files: map[string]string{"Chart.yaml": chartYAML, "templates/cm.yaml": cm + "data:\n  a: {{ required \"need x\" .Values.x }}\n"},
			want:  Finding{Severity: "warning", Path: "templates/cm.yaml", Line: 6, Message: "need x"},
		},
		"schema violation": {
			files: map[string]string{"Chart.yaml": chartYAML, "templates/cm.yaml": cm, "values.yaml": "a: x\n", "values.schema.json": `{"properties":{"a":{"type":"integer"}}}`},
			want:  Finding{Severity: "error", Path: "values.schema.json", Message: "a: got string, want integer"},
		},
		"rendered document not YAML": {
			files: map[string]string{"Chart.yaml": chartYAML, "templates/cm.yaml": cm + "data:\n  a: b\n   c: d\n"},
			want:  Finding{Severity: "error", Path: "templates/cm.yaml", Line: 7, Message: "mapping values are not allowed"},
		},
		"document without kind": {
			files: map[string]string{"Chart.yaml": chartYAML, "templates/cm.yaml": "apiVersion: v1\nmetadata:\n  name: x\n"},
			want:  Finding{Severity: "error", Path: "templates/cm.yaml", Message: `object "x" has no kind`},
		},
		"document without name": {
			files: map[string]string{"Chart.yaml": chartYAML, "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"},
			want:  Finding{Severity: "error", Path: "templates/cm.yaml", Message: "ConfigMap has no metadata.name"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			findings := Lint(writeChart(t, tc.files))
			for _, f := range findings {
				if f.Severity == tc.want.Severity && f.Path == tc.want.Path && f.Line == tc.want.Line && strings.Contains(f.Message, tc.want.Message) {
					if strings.Contains(f.Message, "\n") {
						t.Errorf("message spans several lines: %q", f.Message)
					}
					return
				}
			}
			t.Errorf("no finding like %v among:\n%s", tc.want, findingList(findings))
		})
	}
}

func findingList(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}

func problems(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Severity != "info" {
			out = append(out, f)
		}
	}
	return out
}

func TestCreateLintsCleanAndRenders(t *testing.T) {
	dir := t.TempDir()
	p, err := Create(dir, "mychart")
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, "mychart") {
		t.Errorf("path = %s", p)
	}
	if bad := problems(Lint(p)); len(bad) > 0 {
		t.Errorf("starter chart has lint problems:\n%s", findingList(bad))
	}
	ch, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Render(ch, nil, Options{ReleaseName: "demo", Namespace: "ns1", KubeVersion: "v1.36.3"})
	if err != nil {
		t.Fatal(err)
	}
	// Helm's starter: ServiceAccount, Service, Deployment (+ a test hook, dropped).
	if got := strings.Join(objectIDs(res.Objects), ", "); got != "ServiceAccount ns1/demo-mychart, Service ns1/demo-mychart, Deployment ns1/demo-mychart" {
		t.Errorf("objects: %s", got)
	}
	if len(res.Hooks) != 0 || !strings.Contains(res.Notes, "demo") {
		t.Errorf("hooks %d, notes %q", len(res.Hooks), res.Notes)
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir, "taken"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("error = %v, want already exists", err)
	}
	if _, err := Create(dir, "Bad Name!"); err == nil || !strings.Contains(err.Error(), "chart name must match") {
		t.Errorf("error = %v, want invalid name", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("Create left %d entries behind, want only the existing one", len(left))
	}
}

func TestLintSharedCharts(t *testing.T) {
	needSharedCharts(t)
	for _, name := range []string{"podinfo", "ingress-nginx", "nginx", "postgresql", "prometheus"} {
		t.Run(name, func(t *testing.T) {
			for _, f := range Lint(filepath.Join(sharedCharts, name)) {
				if f.Severity == "error" {
					t.Errorf("%s", f)
				}
			}
		})
	}
}

func TestLintArchive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mini-0.1.0.tgz")
	if err := os.WriteFile(p, makeTgz(t, minimalChart...), 0o644); err != nil {
		t.Fatal(err)
	}
	if bad := problems(Lint(p)); len(bad) > 0 {
		t.Errorf("archive lint problems:\n%s", findingList(bad))
	}
	broken := append(withEntries(), tarEntry{name: "mini/templates/bad.yaml", body: "a: {{ .Values.x \n"})
	if err := os.WriteFile(p, makeTgz(t, broken...), 0o644); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range Lint(p) {
		found = found || (f.Severity == "error" && f.Path == "templates/bad.yaml" && f.Line == 2)
	}
	if !found {
		t.Errorf("no error for templates/bad.yaml:2 in:\n%s", findingList(Lint(p)))
	}
}
