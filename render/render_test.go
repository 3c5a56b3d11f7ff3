package render

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/golden")

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./render/ -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", p, diff)
	}
}

// describeResult is the golden form of a Result.
func describeResult(t *testing.T, res *Result) []byte {
	t.Helper()
	var b strings.Builder
	b.WriteString("# ---- Manifest ----\n")
	b.WriteString(res.Manifest)
	b.WriteString("# ---- Hooks ----\n")
	for _, h := range res.Hooks {
		y, err := yaml.Marshal(h.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	b.WriteString("# ---- Notes ----\n")
	b.WriteString(res.Notes)
	b.WriteString("# ---- Values ----\n")
	y, err := yaml.Marshal(res.Values)
	if err != nil {
		t.Fatal(err)
	}
	b.Write(y)
	return []byte(b.String())
}

func TestRenderGolden(t *testing.T) {
	tests := map[string]struct {
		chart  string
		values []string
		opts   Options
	}{
		"app-defaults": {chart: "app", opts: Options{ReleaseName: "golden", Namespace: "ns1", KubeVersion: "v1.36.3"}},
		"app-override": {chart: "app", values: []string{"app-override.yaml"},
			opts: Options{ReleaseName: "golden", Namespace: "ns1", KubeVersion: "v1.36.3", Revision: 4, IsUpgrade: true, APIVersions: []string{"example.com/v1"}}},
		"legacy-v1":             {chart: "legacy", opts: Options{ReleaseName: "old", Namespace: "legacy-ns"}},
		"legacy-v1-backend-off": {chart: "legacy", values: []string{"legacy-off.yaml"}, opts: Options{ReleaseName: "old", Namespace: "legacy-ns"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ch, err := Load(filepath.Join("testdata", "charts", tc.chart))
			if err != nil {
				t.Fatal(err)
			}
			var files []map[string]any
			for _, f := range tc.values {
				v, err := ReadValuesFile(filepath.Join("testdata", "values", f))
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, v)
			}
			res, err := Render(ch, MergeValues(nil, files...), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".yaml", describeResult(t, res))
		})
	}
}

func objectIDs(objs []*unstructured.Unstructured) []string {
	var ids []string
	for _, o := range objs {
		ids = append(ids, o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName())
	}
	return ids
}

func TestRenderPostProcessing(t *testing.T) {
	ch, err := Load("testdata/charts/app")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("namespace only on namespaced objects without one", func(t *testing.T) {
		res, err := Render(ch, nil, Options{ReleaseName: "r", Namespace: "ns1", KubeVersion: "v1.36.3"})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"CustomResourceDefinition /gadgets.example.com", // crds/ first, cluster-scoped built-in
			"CustomResourceDefinition /widgets.example.com",
			"Secret ns1/r-packed",
			"ConfigMap ns1/r-first",
			"ConfigMap ns1/r-app",
			"ConfigMap ns1/r-app-files",
			"ConfigMap other/r-app-elsewhere", // an explicit namespace is kept
			"ClusterRole /r-app-reader",
			"Role ns1/r-app-reader",
			"Gadget /r-app-gadget", // cluster-scoped per the CRD in the same render
			"ServiceAccount ns1/r-app-one",
			"ServiceAccount ns1/r-app-two",
			"Widget ns1/r-app-widget", // namespaced per its CRD
		}
		if diff := cmp.Diff(want, objectIDs(res.Objects)); diff != "" {
			t.Errorf("objects (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"Job ns1/r-app-migrate"}, objectIDs(res.Hooks)); diff != "" {
			t.Errorf("hooks, test hook dropped (-want +got):\n%s", diff)
		}
	})
	t.Run("extra cluster-scoped kinds from options", func(t *testing.T) {
		res, err := Render(ch, nil, Options{ReleaseName: "r", Namespace: "ns1", KubeVersion: "v1.36.3",
			ClusterScoped: []schema.GroupKind{{Group: "example.com", Kind: "Widget"}}})
		if err != nil {
			t.Fatal(err)
		}
		last := res.Objects[len(res.Objects)-1]
		if last.GetKind() != "Widget" || last.GetNamespace() != "" {
			t.Errorf("last object %s in namespace %q, want a Widget without namespace", last.GetKind(), last.GetNamespace())
		}
	})
	t.Run("ownership metadata on objects and hooks", func(t *testing.T) {
		res, err := Render(ch, nil, Options{ReleaseName: "r", Namespace: "ns1", KubeVersion: "v1.36.3"})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range append(res.Objects, res.Hooks...) {
			l, a := o.GetLabels(), o.GetAnnotations()
			if l[LabelRelease] != "r" || l[LabelNamespace] != "ns1" || a[AnnotationRelease] != "ns1/r" {
				t.Errorf("%s %s: labels %v annotations %v", o.GetKind(), o.GetName(), l, a)
			}
		}
		// The chart's own labels survive next to ours.
		cm := res.Objects[4]
		if cm.GetName() != "r-app" || cm.GetLabels()["app.kubernetes.io/name"] != "app" {
			t.Errorf("%s lost its chart labels: %v", cm.GetName(), cm.GetLabels())
		}
	})
	t.Run("notes from the root chart only", func(t *testing.T) {
		res, err := Render(ch, nil, Options{ReleaseName: "r", Namespace: "ns1", KubeVersion: "v1.36.3"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Notes != "Thank you for installing app as r in ns1.\n" {
			t.Errorf("notes = %q", res.Notes)
		}
		if strings.Contains(res.Manifest, "NOTES") || strings.Contains(res.Manifest, "subchart notes") {
			t.Error("NOTES.txt leaked into the manifest")
		}
	})
	t.Run("skip CRDs", func(t *testing.T) {
		res, err := Render(ch, nil, Options{ReleaseName: "r", Namespace: "ns1", KubeVersion: "v1.36.3", SkipCRDs: true})
		if err != nil {
			t.Fatal(err)
		}
		if k := res.Objects[0].GetKind(); k == "CustomResourceDefinition" {
			t.Error("crds/ rendered with SkipCRDs")
		}
	})
}

func TestRenderNullDeletesChartDefault(t *testing.T) {
	ch, err := Load("testdata/charts/app")
	if err != nil {
		t.Fatal(err)
	}
	user, err := ParseValues("user.yaml", []byte("removeMe: null\nimage:\n  tag: null\n"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Render(ch, MergeValues(nil, user), Options{ReleaseName: "r", Namespace: "ns1", KubeVersion: "v1.36.3"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Values["removeMe"]; ok {
		t.Error("removeMe still in computed values")
	}
	if diff := cmp.Diff(map[string]any{"repository": "nginx"}, res.Values["image"]); diff != "" {
		t.Errorf("image values (-want +got):\n%s", diff)
	}
	cm := res.Objects[4]
	if got := cm.Object["data"].(map[string]any)["removeMe"]; got != "false" {
		t.Errorf("template saw removeMe: hasKey = %v, want false", got)
	}
}

func TestRenderLeavesChartAndValuesAlone(t *testing.T) {
	opts := Options{ReleaseName: "r", Namespace: "ns1", KubeVersion: "v1.36.3"}
	over, err := ReadValuesFile("testdata/values/app-override.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fresh := func(vals map[string]any) string {
		c, err := Load("testdata/charts/app")
		if err != nil {
			t.Fatal(err)
		}
		res, err := Render(c, vals, opts)
		if err != nil {
			t.Fatal(err)
		}
		return res.Manifest
	}
	wantDefault, wantOver := fresh(nil), fresh(over)

	ch, err := Load("testdata/charts/app")
	if err != nil {
		t.Fatal(err)
	}
	before := MergeValues(over)
	// Defaults disable the "second" alias and the tagged subchart; a
	// render that changed the chart would lose them for the next one.
	for i, vals := range []map[string]any{nil, over, nil, over} {
		res, err := Render(ch, vals, opts)
		if err != nil {
			t.Fatal(err)
		}
		want := wantDefault
		if vals != nil {
			want = wantOver
		}
		if diff := cmp.Diff(want, res.Manifest); diff != "" {
			t.Errorf("render %d of the same chart differs from a fresh one (-fresh +got):\n%s", i, diff)
		}
	}
	if diff := cmp.Diff(before, over); diff != "" {
		t.Errorf("Render modified the values (-before +after):\n%s", diff)
	}
}

func TestRenderErrors(t *testing.T) {
	chartYAML := "apiVersion: v2\nname: broken\nversion: 0.1.0\n"
	tests := map[string]struct {
		files  map[string]string
		values string
		opts   Options
		want   []string // substrings of the error
	}{
		"template parse error names file and line": {
			files: map[string]string{"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }\n"},
			want:  []string{"parse error at (broken/templates/cm.yaml:4)"},
		},
		"unknown function names file and line": {
			files: map[string]string{"templates/cm.yaml": "a: 1\nb: {{ nosuchfunc 1 }}\n"},
			want:  []string{"broken/templates/cm.yaml:2", `function "nosuchfunc" not defined`},
		},
		"execution error names file, line and column": {
			files:  map[string]string{"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{ index .Values.list 5 }}\n"},
			values: "list: [1]\n",
			want:   []string{"broken/templates/cm.yaml:6:", "index out of range"},
		},
		"error in an included helper": {
			files: map[string]string{
				"templates/_helpers.tpl": "{{- define \"x\" -}}\n{{ .Values.a.b.c }}\n{{- end -}}\n",
				"templates/cm.yaml":      "name: {{ include \"x\" . }}\n",
			},
			values: "a: 1\n",
			want:   []string{"broken/templates/_helpers.tpl:2:", "broken/templates/cm.yaml:1:"},
		},
		"required value missing": {
			files: map[string]string{"templates/cm.yaml": "a: {{ required \"owner is required\" .Values.owner }}\n"},
			want:  []string{"execution error at (broken/templates/cm.yaml:1:6): owner is required"},
		},
		"fail": {
			files: map[string]string{"templates/cm.yaml": "{{ fail \"unsupported setup\" }}\n"},
			want:  []string{"broken/templates/cm.yaml:1:3", "unsupported setup"},
		},
		"schema violation lists the failing keys": {
			files: map[string]string{
				"values.yaml":        "replicaCount: 1\n",
				"values.schema.json": `{"type":"object","required":["owner"],"properties":{"replicaCount":{"type":"integer"},"image":{"type":"object","properties":{"tag":{"type":"string"}}}}}`,
				"templates/cm.yaml":  "a: b\n",
			},
			values: "replicaCount: three\nimage:\n  tag: 5\n",
			want:   []string{"values.schema.json", "replicaCount: got string, want integer", "image.tag: got number, want string", "(top level): missing property 'owner'"},
		},
		"subchart schema violation": {
			files: map[string]string{
				"Chart.yaml":                        chartYAML + "dependencies:\n  - name: child\n    version: 0.1.0\n",
				"charts/child/Chart.yaml":           "apiVersion: v2\nname: child\nversion: 0.1.0\n",
				"charts/child/values.yaml":          "port: 80\n",
				"charts/child/values.schema.json":   `{"type":"object","properties":{"port":{"type":"integer","maximum":65535}}}`,
				"charts/child/templates/empty.yaml": "",
			},
			values: "child:\n  port: 70000\n",
			want:   []string{"chart child: child.port: maximum: got 70,000, want 65,535"},
		},
		"remote schema reference refused": {
			files: map[string]string{
				"values.schema.json": `{"type":"object","properties":{"a":{"$ref":"https://example.invalid/schema.json"}}}`,
				"templates/cm.yaml":  "a: b\n",
			},
			want: []string{"values.schema.json cannot be compiled (render reads no files or URLs for $ref)"},
		},
		"rendered YAML invalid": {
			files: map[string]string{"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n   bad: indent\n"},
			want:  []string{"YAML parse error on broken/templates/cm.yaml"},
		},
		"object without kind": {
			files: map[string]string{"templates/cm.yaml": "apiVersion: v1\nmetadata:\n  name: x\n"},
			want:  []string{`broken/templates/cm.yaml: object "x" has no kind`},
		},
		"object without name": {
			files: map[string]string{"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {}\n"},
			want:  []string{"broken/templates/cm.yaml: ConfigMap has no metadata.name"},
		},
		"object without apiVersion": {
			files: map[string]string{"templates/cm.yaml": "kind: ConfigMap\nmetadata:\n  name: x\n"},
			want:  []string{`broken/templates/cm.yaml: ConfigMap "x" has no apiVersion`},
		},
		"invalid release name": {
			files: map[string]string{"templates/cm.yaml": "a: b\n"},
			opts:  Options{ReleaseName: "Not_Valid"},
			want:  []string{`release name "Not_Valid"`},
		},
		"incompatible kube version": {
			files: map[string]string{"Chart.yaml": chartYAML + "kubeVersion: '>=1.40.0'\n", "templates/cm.yaml": "a: b\n"},
			want:  []string{"chart requires kubeVersion >=1.40.0, which is incompatible with Kubernetes v1.36.3"},
		},
		"library chart": {
			files: map[string]string{"Chart.yaml": chartYAML + "type: library\n", "templates/_x.tpl": ""},
			want:  []string{"library charts cannot be rendered"},
		},
		"missing dependency": {
			files: map[string]string{"Chart.yaml": chartYAML + "dependencies:\n  - name: gone\n    version: 1.0.0\n    alias: g\n", "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"},
			want:  nil, // Helm renders without a missing dependency; so do we
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			files := map[string]string{"Chart.yaml": chartYAML}
			for k, v := range tc.files {
				files[k] = v
			}
			ch, err := Load(writeChart(t, files))
			if err != nil {
				t.Fatal(err)
			}
			vals, err := ParseValues("user.yaml", []byte(tc.values))
			if err != nil {
				t.Fatal(err)
			}
			opts := tc.opts
			if opts.ReleaseName == "" {
				opts.ReleaseName = "r"
			}
			opts.KubeVersion = "v1.36.3"
			_, err = Render(ch, vals, opts)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), "render broken: ") {
				t.Errorf("error %q does not start with what failed", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestRenderConcurrently(t *testing.T) {
	ch, err := Load("testdata/charts/app")
	if err != nil {
		t.Fatal(err)
	}
	over, err := ReadValuesFile("testdata/values/app-override.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[bool]string{}
	for _, withOverride := range []bool{false, true} {
		var vals map[string]any
		if withOverride {
			vals = over
		}
		res, err := Render(ch, vals, Options{ReleaseName: "r", Namespace: "ns1", KubeVersion: "v1.36.3"})
		if err != nil {
			t.Fatal(err)
		}
		want[withOverride] = res.Manifest
	}
	errs := make(chan error, 8)
	got := make(chan [2]string, 8)
	for i := range 8 {
		go func() {
			var vals map[string]any
			if i%2 == 1 {
				vals = over
			}
			res, err := Render(ch, vals, Options{ReleaseName: "r", Namespace: "ns1", KubeVersion: "v1.36.3"})
			errs <- err
			if err == nil {
				got <- [2]string{want[i%2 == 1], res.Manifest}
			}
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		g := <-got
		if g[0] != g[1] {
			t.Errorf("concurrent render differs:\n%s", cmp.Diff(g[0], g[1]))
		}
	}
}
