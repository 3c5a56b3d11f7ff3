package render

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func TestParams(t *testing.T) {
	ch, err := Load("testdata/charts/documented")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Params(ch)
	if err != nil {
		t.Fatal(err)
	}
	want := []Param{
		{Path: "replicaCount", Type: "int", Default: "1", Description: "Number of replicas. Spread over zones."},
		{Path: "plain", Type: "string", Default: `"text"`, Description: "Plain comment directly above."},
		{Path: "image.repository", Type: "string", Default: `"nginx"`, Description: "Image repository"},
		{Path: "image.tag", Type: "string", Default: `"1.27"`, Description: "Image tag, inline helm-docs style"},
		{Path: "image.pullPolicy", Type: "string", Default: `"IfNotPresent"`, Description: "Pull policy (only this line after the marker counts)"},
		{Path: "service.port", Type: "int", Default: "80", Description: "Service port from a Bitnami-style line"},
		{Path: "service.annotations", Type: "map", Default: "{}"},
		{Path: "service.type", Type: "string", Default: `"ClusterIP"`, Description: "Kubernetes service type"},
		{Path: "fromSchema", Type: "int", Default: "5", Description: "Described only in the schema"},
		{Path: "ports", Type: "list", Default: "[80,443]"},
		{Path: "empty", Type: "list", Default: "[]"},
		{Path: `dotted\.key`, Type: "string", Default: `"value"`},
		{Path: "nothing", Type: "null", Default: "null"},
		{Path: "enabled", Type: "bool", Default: "true"},
		{Path: "ratio", Type: "float", Default: "0.5"},
		{Path: "anchors.base.a", Type: "int", Default: "1"},
		{Path: "anchors.merged.b", Type: "int", Default: "2"},
		{Path: "anchors.merged.a", Type: "int", Default: "1"}, // only reachable through the merge key
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
}

func TestParamsFile(t *testing.T) {
	ch, err := Load("testdata/charts/documented")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParamsFile(ch)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "documented-params.yaml", got)
	doc := append([]byte("chart: ./documented\n"), got...)
	var parsed struct {
		Chart  string         `json:"chart"`
		Values map[string]any `json:"values"`
	}
	if err := yaml.Unmarshal(doc, &parsed); err != nil {
		t.Fatalf("gen-params document does not parse: %v", err)
	}
	if diff := cmp.Diff(ch.Chart.Values, parsed.Values); diff != "" {
		t.Errorf("values under values: (-chart +file):\n%s", diff)
	}
	if !strings.Contains(string(got), "  # -- Number of replicas.\n") {
		t.Error("comments were not kept")
	}
}

func TestParamsFileFallbacks(t *testing.T) {
	tests := map[string]struct {
		values      string
		wantComment string // "" when no comment can survive
	}{
		"empty values.yaml":        {values: ""},
		"only comments":            {values: "# nothing to set\n"},
		"several documents":        {values: "# first\na: 1\n---\nb: 2\n"},
		"document marker up front": {values: "---\n# c\na: 1\n", wantComment: "  # c\n"},
		"block scalar keeps text":  {values: "# s\nscript: |\n  echo hi\n\n  echo there\n", wantComment: "  # s\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ch, err := Load(writeChart(t, map[string]string{
				"Chart.yaml":  "apiVersion: v2\nname: p\nversion: 0.1.0\n",
				"values.yaml": tc.values,
			}))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParamsFile(ch)
			if err != nil {
				t.Fatal(err)
			}
			var parsed map[string]any
			if err := yaml.Unmarshal(got, &parsed); err != nil {
				t.Fatalf("does not parse: %v\n%s", err, got)
			}
			want := ch.Chart.Values
			if want == nil {
				want = map[string]any{}
			}
			if diff := cmp.Diff(want, parsed["values"]); diff != "" {
				t.Errorf("values (-chart +file):\n%s\n%s", diff, got)
			}
			if tc.wantComment != "" && !strings.Contains(string(got), tc.wantComment) {
				t.Errorf("comment %q lost:\n%s", tc.wantComment, got)
			}
		})
	}
}

func TestParamsSharedCharts(t *testing.T) {
	needSharedCharts(t)
	// Share of params with a description, from what each chart documents:
	// helm-docs comments (ingress-nginx), Bitnami @param lines (nginx,
	// postgresql), plain comments (podinfo, prometheus).
	minDescribed := map[string]float64{"podinfo": 0.2, "ingress-nginx": 0.55, "nginx": 0.95, "postgresql": 0.95, "prometheus": 0.45}
	for name, min := range minDescribed {
		t.Run(name, func(t *testing.T) {
			ch, err := Load(filepath.Join(sharedCharts, name))
			if err != nil {
				t.Fatal(err)
			}
			params, err := Params(ch)
			if err != nil {
				t.Fatal(err)
			}
			described := 0
			for _, p := range params {
				if p.Description != "" {
					described++
				}
			}
			if len(params) < 100 || float64(described) < min*float64(len(params)) {
				t.Errorf("%d params, %d described", len(params), described)
			}
			if _, err := ParamsFile(ch); err != nil {
				t.Error(err)
			}
		})
	}
}
