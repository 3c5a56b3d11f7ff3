package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// noDeclaration fails the test when a declaration for name was written.
func (c *cli) noDeclaration(name string) {
	c.t.Helper()
	if _, err := os.Stat(filepath.Join(c.state, "releases", name+".yaml")); err == nil {
		c.t.Errorf("declaration %s was written", name)
	}
}

// noRecords fails the test when anything was recorded for name.
func (c *cli) noRecords(name string) {
	c.t.Helper()
	l, err := c.kube.CoreV1().Secrets(c.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "charter.sh/release=" + name})
	if err != nil {
		c.t.Fatal(err)
	}
	if len(l.Items) > 0 {
		c.t.Errorf("%d records written for %s", len(l.Items), name)
	}
}

func writeChart(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBadInput(t *testing.T) {
	c := newCLI(t)

	t.Run("template error names file and line, nothing applied", func(t *testing.T) {
		chart := writeChart(t, filepath.Join(t.TempDir(), "broken"), map[string]string{
			"Chart.yaml":               "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
			"values.yaml":              "a: 1\n",
			"templates/good.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\n",
			"templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{ .Values.a | nosuchfunc }}\n",
		})
		errOut := c.fails("deploy", "-n", "broken", "--namespace", c.ns, chart)
		if !strings.Contains(errOut, "templates/configmap.yaml") || !strings.Contains(errOut, ":6") {
			t.Errorf("error does not name templates/configmap.yaml:6: %s", errOut)
		}
		c.noDeclaration("broken")
		c.noRecords("broken")
		if _, err := c.kube.CoreV1().ConfigMaps(c.ns).Get(context.Background(), "good", metav1.GetOptions{}); err == nil {
			t.Error("an object of the broken release was applied")
		}
	})

	t.Run("lint names file and line and exits non-zero", func(t *testing.T) {
		chart := writeChart(t, filepath.Join(t.TempDir(), "linty"), map[string]string{
			"Chart.yaml":        "apiVersion: v2\nname: linty\nversion: 0.1.0\n",
			"values.yaml":       "a: 1\n",
			"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{ .Values.a | nosuchfunc }}\n",
		})
		out, _, code := c.run("lint", chart)
		if code == 0 {
			t.Fatal("lint of a broken chart exited 0")
		}
		mustContain(t, out, "[ERROR]", "templates/cm.yaml:6")
	})

	t.Run("values violating the schema list the failing keys", func(t *testing.T) {
		errOut := c.fails("deploy", "-n", "schemabad", "--namespace", c.ns, "--set", "replicaCount=many", exampleChart)
		mustContain(t, errOut, "replicaCount")
		c.noDeclaration("schemabad")
	})

	t.Run("unknown release", func(t *testing.T) {
		for _, args := range [][]string{{"status", "nope"}, {"get-values", "nope"}, {"manifest", "get", "nope"}, {"redeploy", "nope"}, {"uninstall", "nope"}} {
			errOut := c.fails(args...)
			mustContain(t, errOut, `release "nope" not found`)
		}
	})

	t.Run("bad names are refused before anything is written", func(t *testing.T) {
		for _, name := range []string{"Bad_Name", "-leading", strings.Repeat("a", 54)} {
			errOut := c.fails("deploy", "-n", name, "--namespace", c.ns, exampleChart)
			mustContain(t, errOut, name)
			c.noDeclaration(name)
		}
		if entries, _ := os.ReadDir(filepath.Join(c.state, "charts")); len(entries) > 0 {
			t.Errorf("charts were bundled for refused deploys: %v", entries)
		}
	})

	t.Run("values file that is not YAML", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "v.yaml")
		os.WriteFile(p, []byte("a: [unclosed\n"), 0o644)
		errOut := c.fails("deploy", "-n", "notyaml", "--namespace", c.ns, "-f", p, exampleChart)
		mustContain(t, errOut, "v.yaml")
		c.noDeclaration("notyaml")
	})

	t.Run("unreachable API server is named within the timeout", func(t *testing.T) {
		kc := filepath.Join(t.TempDir(), "kubeconfig")
		os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600)
		bad := *c
		bad.kubeconfig = kc
		errOut := bad.fails("deploy", "-n", "offline", "--namespace", c.ns, "--request-timeout", "5s", exampleChart)
		mustContain(t, errOut, "127.0.0.1:1")
		bad.noDeclaration("offline")
		errOut = bad.fails("status", "anything", "--request-timeout", "5s")
		mustContain(t, errOut, "127.0.0.1:1")
	})

	t.Run("object rejected by the API server fails the release and keeps the earlier revision", func(t *testing.T) {
		c.ok("deploy", "-n", "rejected", "--namespace", c.ns, exampleChart)
		// The chart's schema does not constrain pullPolicy; the API server
		// rejects the Deployment.
		errOut := c.fails("redeploy", "--set", "image.pullPolicy=Bogus", "rejected")
		mustContain(t, errOut, "Deployment", "rejected-hello", "Bogus")
		out := c.ok("status", "rejected")
		mustContain(t, out, "failed", "Revision:")
		l, err := c.kube.CoreV1().Secrets(c.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "charter.sh/release=rejected,charter.sh/status=deployed"})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) != 1 {
			t.Errorf("deployed revisions kept = %d, want the earlier one", len(l.Items))
		}
	})
}
