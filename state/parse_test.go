package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	cases := map[string]struct {
		in      string
		want    *Release
		wantErr string // substring of the error; "" means no error
	}{
		"full declaration": {
			in: `apiVersion: charter.sh/v1
kind: Release
name: taco-tuesday
namespace: food
chart: charts/mychart-0.0.1.tgz
version: ">=1.0.0"
chartPath: /home/me/src/mychart
valuesFiles: [values/common.yaml, values/prod.yaml]
values:
  replicaCount: 2
  enabled: yes
  tag: "1.0"
  empty: null
  list: [a, 1]
`,
			want: &Release{
				APIVersion: "charter.sh/v1", Kind: "Release", Name: "taco-tuesday", Namespace: "food",
				Chart: "charts/mychart-0.0.1.tgz", Version: ">=1.0.0", ChartPath: "/home/me/src/mychart",
				ValuesFiles: []string{"values/common.yaml", "values/prod.yaml"},
				// Helm's reading: numbers are float64, a bare yes is true.
				Values: map[string]any{"replicaCount": 2.0, "enabled": true, "tag": "1.0", "empty": nil, "list": []any{"a", 1.0}},
			},
		},
		"params file without name, apiVersion or kind": {
			in:   "chart: charts/x-1.0.0.tgz\nvalues: {}\n",
			want: &Release{Chart: "charts/x-1.0.0.tgz"},
		},
		"number where a string is expected is read as its text": {
			in:   "chart: c\nversion: 1.0\n",
			want: &Release{Chart: "c", Version: "1.0"},
		},
		"null fields are empty": {
			in:   "chart: c\nnamespace:\nvaluesFiles: null\nvalues: ~\n",
			want: &Release{Chart: "c"},
		},
		"comments only":            {in: "# nothing here\n", wantErr: "f.yaml: file is empty"},
		"empty":                    {in: "", wantErr: "f.yaml: file is empty"},
		"not YAML":                 {in: "chart: [unclosed\n", wantErr: "f.yaml: not valid YAML: line"},
		"tab indentation":          {in: "values:\n\tx: 1\n", wantErr: "f.yaml: not valid YAML"},
		"top level is a list":      {in: "- chart: c\n", wantErr: "f.yaml: line 1: want a mapping of release fields, got a list"},
		"unknown field":            {in: "chart: c\nvaluesFile: [a.yaml]\n", wantErr: `f.yaml: line 2: unknown field "valuesFile" (known fields: apiVersion, kind, name, namespace, chart, version, digest, chartPath, valuesFiles, dependsOn, timeout, remediation, force, adopt, drift, values)`},
		"duplicate top-level key":  {in: "chart: a\nname: x\nchart: b\n", wantErr: `f.yaml: line 3: duplicate key "chart" (first at line 1)`},
		"duplicate key in values":  {in: "chart: a\nvalues:\n  image:\n    tag: 1\n    tag: 2\n", wantErr: `f.yaml: line 5: duplicate key "tag" (first at line 4)`},
		"two documents":            {in: "chart: a\n---\nchart: b\n", wantErr: "f.yaml: holds 2 YAML documents"},
		"wrong apiVersion":         {in: "apiVersion: v1\nkind: Release\nchart: c\n", wantErr: `f.yaml: apiVersion "v1" is not supported: want "charter.sh/v1"`},
		"wrong kind":               {in: "apiVersion: charter.sh/v1\nkind: Deployment\nchart: c\n", wantErr: `f.yaml: kind "Deployment" is not supported`},
		"values is a list":         {in: "chart: c\nvalues: [1]\n", wantErr: "f.yaml: line 2: field values must be a mapping, got a list"},
		"name is a mapping":        {in: "chart: c\nname: {a: b}\n", wantErr: "f.yaml: line 2: field name must be a string, got a mapping"},
		"valuesFiles is a string":  {in: "chart: c\nvaluesFiles: a.yaml\n", wantErr: "field valuesFiles must be a list of paths"},
		"valuesFiles holds a list": {in: "chart: c\nvaluesFiles: [[a]]\n", wantErr: "field valuesFiles: want a path, got a list"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Parse("f.yaml", []byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q spans several lines", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRefusesFilesOverTheLimit(t *testing.T) {
	big := "chart: c\nvalues:\n  blob: \"" + strings.Repeat("x", MaxFileSize) + "\"\n"
	_, err := Parse("big.yaml", []byte(big))
	if err == nil || !strings.Contains(err.Error(), "big.yaml: file is 10.0 MiB, larger than the 10 MiB limit") {
		t.Fatalf("Parse error = %v, want the size limit", err)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ParseFile(path); err == nil || !strings.Contains(err.Error(), "larger than the 10 MiB limit") {
		t.Fatalf("ParseFile error = %v, want the size limit", err)
	}
}

func TestParseFileTellsDeclarationsFromValuesFiles(t *testing.T) {
	cases := map[string]struct {
		in          string
		declaration bool
		want        *Release
		wantErr     string
	}{
		"declaration with kind": {
			in: "apiVersion: charter.sh/v1\nkind: Release\nname: a\nchart: c\n", declaration: true,
			want: &Release{APIVersion: "charter.sh/v1", Kind: "Release", Name: "a", Chart: "c"},
		},
		"params file: chart and values only": {
			in: "chart: c\nvalues:\n  x: 1\n", declaration: true,
			want: &Release{Chart: "c", Values: map[string]any{"x": 1.0}},
		},
		"params file with namespace": {
			in: "namespace: n\nchart: c\nvalues: {}\n", declaration: true,
			want: &Release{Namespace: "n", Chart: "c"},
		},
		"values file that has chart and values keys among others": {
			in: "chart: c\nvalues: {}\nreplicaCount: 2\n",
		},
		"plain values file":                        {in: "replicaCount: 2\nimage:\n  tag: x\n"},
		"values file with only a chart key":        {in: "chart: my-subchart-setting\n"},
		"values file with a non-Release kind":      {in: "kind: Deployment\nchart: c\nvalues: {}\n"},
		"empty file is an empty values file":       {in: ""},
		"declaration with an unknown field errors": {in: "kind: Release\nchart: c\nvalue: {}\n", declaration: true, wantErr: `unknown field "value"`},
		"top level list errors":                    {in: "- a\n", wantErr: "want a mapping, got a list"},
		"broken YAML errors":                       {in: "a: [\n", wantErr: "not valid YAML"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.yaml")
			if err := os.WriteFile(path, []byte(tc.in), 0o644); err != nil {
				t.Fatal(err)
			}
			got, isDecl, err := ParseFile(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error = %v, want one naming %s and containing %q", err, path, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			if isDecl != tc.declaration {
				t.Errorf("isDeclaration = %v, want %v", isDecl, tc.declaration)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("release (-want +got):\n%s", diff)
			}
		})
	}
}
