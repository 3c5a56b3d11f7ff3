package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/reconcile"
)

// objectKeys lists apiVersion/kind/name of every object in a YAML stream.
func objectKeys(t *testing.T, stream string) []string {
	t.Helper()
	objs, err := reconcile.ParseManifest(stream)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(objs))
	for _, o := range objs {
		keys = append(keys, keyOfObject(o))
	}
	sort.Strings(keys)
	return keys
}

func keyOfObject(o *unstructured.Unstructured) string {
	return o.GetAPIVersion() + "/" + o.GetKind() + "/" + o.GetName()
}

// `charter template` prints the same objects as `helm template` for every
// public chart in ../shared/charts (field-level parity is tested in render).
func TestTemplateMatchesHelmOnSharedCharts(t *testing.T) {
	helm := testenv.Tool(t, "helm", "helm CLI")
	charts, _ := filepath.Glob(filepath.Join(testenv.SharedCharts(t), "*", "Chart.yaml"))
	if len(charts) == 0 {
		t.Fatal("no charts in the shared charts folder")
	}
	for _, cf := range charts {
		dir := filepath.Dir(cf)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var hout, herr bytes.Buffer
			cmd := exec.Command(helm, "template", "t", dir, "--namespace", "ns1", "--skip-tests", "--kube-version", "v1.36.3")
			cmd.Stdout, cmd.Stderr = &hout, &herr
			if err := cmd.Run(); err != nil {
				t.Fatalf("helm template: %v: %s", err, herr.String())
			}
			var out, errb bytes.Buffer
			if code := run(context.Background(), []string{"template", dir, "--name", "t", "--namespace", "ns1", "--kube-version", "v1.36.3"},
				strings.NewReader(""), &out, &errb); code != 0 {
				t.Fatalf("charter template: exit %d: %s", code, errb.String())
			}
			want, got := objectKeys(t, hout.String()), objectKeys(t, out.String())
			if len(want) == 0 {
				t.Fatal("helm rendered nothing")
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("objects differ from helm template (-helm +charter):\n%s", diff)
			}
		})
	}
}
