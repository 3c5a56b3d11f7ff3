package render

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/internal/testenv"
)

// sharedCharts is the folder of public charts, set by needSharedCharts.
var sharedCharts string

// parityKubeVersion is passed to both renderers. It is what Helm 4.3 and
// charter (both built against client-go v0.37) assume without a cluster;
// it must be explicit because Helm's library defaults to v1.20 inside
// test binaries.
const parityKubeVersion = "v1.37.0"

// needSharedCharts locates the public charts, skipping t when this
// checkout has none beside it.
func needSharedCharts(t testing.TB) {
	t.Helper()
	sharedCharts = testenv.SharedCharts(t)
}

// helmBinary finds the reference Helm CLI: $HELM_BIN, $CHARTER_TOOLS/helm,
// ~/.cache/charter/tools/helm, /tmp/helmbin/helm.
func helmBinary(t testing.TB) string {
	t.Helper()
	var candidates []string
	if p := os.Getenv("HELM_BIN"); p != "" {
		candidates = append(candidates, p)
	}
	tools := os.Getenv("CHARTER_TOOLS")
	if tools == "" {
		if home, err := os.UserHomeDir(); err == nil {
			tools = filepath.Join(home, ".cache", "charter", "tools")
		}
	}
	candidates = append(candidates, filepath.Join(tools, "helm"), "/tmp/helmbin/helm")
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	if os.Getenv("CHARTER_E2E") == "1" {
		t.Fatalf("helm CLI not found in %v", candidates)
	}
	t.Skipf("helm CLI not found in %v (set CHARTER_E2E=1 to make this fatal)", candidates)
	return ""
}

// mask names a field that differs between any two renders because the
// chart generates it at random (randAlphaNum passwords, genCA/genSignedCert
// certificates); it is replaced on both sides before comparing.
type mask struct {
	kind string
	path []string
}

var (
	// bitnami/nginx: the self-signed TLS secret (genCA + genSignedCert).
	nginxMasks = []mask{{"Secret", []string{"data", "tls.crt"}}, {"Secret", []string{"data", "tls.key"}}, {"Secret", []string{"data", "ca.crt"}}}
	// bitnami/postgresql: the generated postgres password (randAlphaNum).
	postgresMasks = []mask{{"Secret", []string{"data", "postgres-password"}}}
)

type parityCase struct {
	chart     string // under sharedCharts
	dir       string // or a chart directory relative to this package
	valueFile string // relative to the chart directory
	set       []string
	setString []string
	setJSON   []string
	masks     []mask
}

var parityCases = map[string]parityCase{
	"podinfo":       {chart: "podinfo"},
	"ingress-nginx": {chart: "ingress-nginx"},
	"nginx":         {chart: "nginx", masks: nginxMasks},
	"postgresql":    {chart: "postgresql", masks: postgresMasks},
	"prometheus":    {chart: "prometheus"},
	"podinfo with values-prod.yaml and --set": {
		chart: "podinfo", valueFile: "values-prod.yaml",
		set:       []string{"replicaCount=3", "hpa.enabled=true", "ingress.enabled=true"},
		setString: []string{"podAnnotations.team=7"},
	},
	"prometheus with subcharts disabled and --set-json": {
		chart:   "prometheus",
		set:     []string{"alertmanager.enabled=false,prometheus-pushgateway.enabled=false", "server.replicaCount=2", "server.statefulSet.enabled=true"},
		setJSON: []string{`server.extraArgs={"log.level":"debug"}`},
	},
	"fixture app with overrides": {dir: "testdata/charts/app", valueFile: "../../values/app-override.yaml"},
	"fixture legacy v1 chart":    {dir: "testdata/charts/legacy"},
	"postgresql with replication": {
		chart: "postgresql",
		set:   []string{"architecture=replication", "auth.username=app", "auth.password=apppw", "auth.postgresPassword=adminpw", "auth.replicationPassword=replpw", "readReplicas.replicaCount=2"},
	},
}

func TestHelmParity(t *testing.T) {
	helm := helmBinary(t)
	for name, tc := range parityCases {
		t.Run(name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				needSharedCharts(t)
				dir = filepath.Join(sharedCharts, tc.chart)
			}
			args := []string{"template", "t", dir, "--namespace", "ns1", "--skip-tests", "--include-crds", "--kube-version", parityKubeVersion}
			vals := map[string]any{}
			if tc.valueFile != "" {
				args = append(args, "-f", filepath.Join(dir, tc.valueFile))
				v, err := ReadValuesFile(filepath.Join(dir, tc.valueFile))
				if err != nil {
					t.Fatal(err)
				}
				vals = MergeValues(vals, v)
			}
			for _, s := range tc.setJSON {
				args = append(args, "--set-json", s)
			}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			for _, s := range tc.setString {
				args = append(args, "--set-string", s)
			}
			if err := ApplySet(vals, tc.set, tc.setString, tc.setJSON); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(helm, args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			want := helmObjects(t, stdout.String())

			ch, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Render(ch, vals, Options{ReleaseName: "t", Namespace: "ns1", KubeVersion: parityKubeVersion})
			if err != nil {
				t.Fatal(err)
			}
			got := ourObjects(t, append(append([]*unstructured.Unstructured(nil), res.Objects...), res.Hooks...))

			for _, m := range tc.masks {
				applyMask(want, m)
				applyMask(got, m)
			}
			if diff := cmp.Diff(keys(want), keys(got)); diff != "" {
				t.Fatalf("objects (-helm +charter):\n%s", diff)
			}
			for k := range want {
				if diff := cmp.Diff(want[k], got[k]); diff != "" {
					t.Errorf("%s (-helm +charter):\n%s", k, diff)
				}
			}
		})
	}
}

// TestSharedChartCounts checks the object counts documented for the shared
// charts (default values, release t), without the Helm CLI. podinfo's 5
// include 3 test hooks, which Render drops.
func TestSharedChartCounts(t *testing.T) {
	needSharedCharts(t)
	want := map[string]int{"podinfo": 5 - 3, "ingress-nginx": 18, "nginx": 6, "postgresql": 7, "prometheus": 25}
	got := map[string]int{}
	for name := range want {
		ch, err := Load(filepath.Join(sharedCharts, name))
		if err != nil {
			t.Fatal(err)
		}
		res, err := Render(ch, nil, Options{ReleaseName: "t", Namespace: "ns1", KubeVersion: parityKubeVersion})
		if err != nil {
			t.Fatal(err)
		}
		got[name] = len(res.Objects) + len(res.Hooks)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("object counts (-want +got):\n%s", diff)
	}
}

// helmObjects parses `helm template` output into normalised objects keyed
// by apiVersion/kind/namespace/name.
func helmObjects(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	for _, d := range releaseutil.SplitManifests(out) {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("helm output: %v\n%s", err, d)
		}
		if len(m) == 0 {
			continue
		}
		// Helm's client flattens a List into its items when installing.
		if items, ok := m["items"].([]any); ok && strings.HasSuffix(str(m["kind"]), "List") {
			for _, it := range items {
				addObject(t, objs, it.(map[string]any))
			}
			continue
		}
		addObject(t, objs, m)
	}
	return objs
}

// ourObjects normalises Render's objects the same way, after removing
// charter's ownership metadata.
func ourObjects(t *testing.T, us []*unstructured.Unstructured) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	for _, u := range us {
		o := u.DeepCopy()
		labels, annotations := o.GetLabels(), o.GetAnnotations()
		if labels[LabelRelease] != "t" || labels[LabelNamespace] != "ns1" || annotations[AnnotationRelease] != "ns1/t" {
			t.Errorf("%s %s lacks ownership metadata: %v %v", o.GetKind(), o.GetName(), labels, annotations)
		}
		unstructured.RemoveNestedField(o.Object, "metadata", "labels", LabelRelease)
		unstructured.RemoveNestedField(o.Object, "metadata", "labels", LabelNamespace)
		unstructured.RemoveNestedField(o.Object, "metadata", "annotations", AnnotationRelease)
		addObject(t, objs, o.Object)
	}
	return objs
}

func addObject(t *testing.T, objs map[string]map[string]any, m map[string]any) {
	t.Helper()
	// JSON round trip: the same number types on both sides.
	j, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var n map[string]any
	if err := json.Unmarshal(j, &n); err != nil {
		t.Fatal(err)
	}
	meta, _ := n["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		n["metadata"] = meta
	}
	// helm template leaves namespaces unset; Render sets the release's.
	if meta["namespace"] == "ns1" {
		delete(meta, "namespace")
	}
	for _, f := range []string{"labels", "annotations"} {
		if v, ok := meta[f].(map[string]any); meta[f] == nil || (ok && len(v) == 0) {
			delete(meta, f)
		}
	}
	key := strings.Join([]string{n["apiVersion"].(string), n["kind"].(string), str(meta["namespace"]), str(meta["name"])}, "/")
	if _, dup := objs[key]; dup {
		t.Errorf("duplicate object %s", key)
	}
	objs[key] = n
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func applyMask(objs map[string]map[string]any, m mask) {
	for _, o := range objs {
		if o["kind"] != m.kind {
			continue
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(o, m.path...); found {
			_ = unstructured.SetNestedField(o, "<masked>", m.path...)
		}
	}
}

func keys(m map[string]map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
