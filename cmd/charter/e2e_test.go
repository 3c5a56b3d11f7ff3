package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/reconcile"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// cli runs charter in-process against the test control plane, with its own
// declared state, target namespace and records namespace.
type cli struct {
	t          *testing.T
	kubeconfig string
	state      string
	ns         string
	kube       kubernetes.Interface
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	env := testenv.Get(t)
	kube, err := kubernetes.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	// Commands read the default state from the user config dir: keep it
	// inside the test.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // git clones and bucket downloads of stores
	return &cli{t: t, kubeconfig: env.Kubeconfig, state: filepath.Join(t.TempDir(), "state"), ns: env.NewNamespace(t), kube: kube}
}

// run executes one charter command and returns stdout, stderr, exit code.
func (c *cli) run(args ...string) (string, string, int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	full := append([]string{"--kubeconfig", c.kubeconfig, "--state", c.state, "--records-namespace", c.ns}, args...)
	code := run(ctx, full, strings.NewReader(""), &out, &errb)
	c.t.Logf("$ charter %s\n%s%s(exit %d)", strings.Join(args, " "), out.String(), errb.String(), code)
	return out.String(), errb.String(), code
}

// ok runs a command that must succeed and returns its stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("charter %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// fails runs a command that must fail and returns its stderr.
func (c *cli) fails(args ...string) string {
	c.t.Helper()
	_, errOut, code := c.run(args...)
	if code == 0 {
		c.t.Fatalf("charter %s: succeeded, want failure", strings.Join(args, " "))
	}
	// Progress lines may precede it; the error itself is one line, last.
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "Error: ") || strings.Count(errOut, "Error: ") != 1 {
		c.t.Errorf("error is not one final line starting with \"Error: \": %q", errOut)
	}
	return errOut
}

func (c *cli) deployment(name string) *appsv1.Deployment {
	c.t.Helper()
	d, err := c.kube.AppsV1().Deployments(c.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatalf("get deployment %s: %v", name, err)
	}
	return d
}

func mustContain(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("output does not contain %q:\n%s", w, got)
		}
	}
}

// copyDir copies the example chart so a test can edit it.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

const exampleChart = "../../examples/state/charts/hello"

// The seed's user workflow: deploy with a random name, list-params,
// gen-params, deploy -f, status, redeploy, get-values, manifest get, chart
// list, chart get, deployment list, uninstall.
func TestUserWorkflow(t *testing.T) {
	c := newCLI(t)
	work := t.TempDir()
	copyDir(t, exampleChart, filepath.Join(work, "hello"))
	t.Chdir(work)

	out := c.ok("deploy", "--namespace", c.ns, "./hello")
	m := regexp.MustCompile(`(?m)^Created ([a-z]+-[a-z]+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("deploy did not print a random adjective-noun name: %q", out)
	}
	random := m[1]

	out = c.ok("list-params", "./hello")
	mustContain(t, out, "replicaCount", "Number of web server pods.", "service.port", "Port the Service listens on.")

	out = c.ok("gen-params", "./hello")
	mustContain(t, out, "Created: values.yaml")
	params, err := os.ReadFile("values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, string(params), "chart: ./hello", "Text of the page.")
	c.fails("gen-params", "./hello") // refuses to overwrite
	edited := strings.Replace(string(params), "message: Hello, world", "message: Taco Tuesday", 1)
	if edited == string(params) {
		t.Fatalf("params file does not hold the default message:\n%s", params)
	}
	if err := os.WriteFile("values.yaml", []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}

	out = c.ok("deploy", "-f", "values.yaml", "-n", "taco-tuesday", "--namespace", c.ns)
	mustContain(t, out, "Created taco-tuesday")
	c.fails("deploy", "-f", "values.yaml", "-n", "taco-tuesday", "--namespace", c.ns) // name taken

	out = c.ok("status", "taco-tuesday")
	mustContain(t, out, "deployed", "Deployment/"+c.ns+"/taco-tuesday-hello", "Current", "Located at: ", "hello#0.1.0")
	if d := c.deployment("taco-tuesday-hello"); d.Status.ReadyReplicas != 1 {
		t.Errorf("ready replicas = %d, want 1", d.Status.ReadyReplicas)
	}

	out = c.ok("redeploy", "--set", "replicaCount=2", "taco-tuesday")
	mustContain(t, out, "Redeployed taco-tuesday")
	if d := c.deployment("taco-tuesday-hello"); *d.Spec.Replicas != 2 || d.Status.ReadyReplicas != 2 {
		t.Errorf("after redeploy: replicas %d ready %d, want 2 and 2", *d.Spec.Replicas, d.Status.ReadyReplicas)
	}

	out = c.ok("get-values", "taco-tuesday")
	mustContain(t, out, "replicaCount: 2", "message: Taco Tuesday")
	out = c.ok("get-values", "taco-tuesday", random, "-o", "json")
	mustContain(t, out, `"taco-tuesday"`, `"`+random+`"`)

	out = c.ok("manifest", "get", "taco-tuesday")
	mustContain(t, out, "kind: Deployment", "kind: Service", "kind: ConfigMap", "Taco Tuesday")

	out = c.ok("chart", "list")
	if !regexp.MustCompile(`hello#0\.1\.0\s+2`).MatchString(out) {
		t.Errorf("chart list does not show hello#0.1.0 used by 2 releases:\n%s", out)
	}
	out = c.ok("chart", "get", "hello")
	mustContain(t, out, "taco-tuesday", random)

	out = c.ok("deployment", "list")
	mustContain(t, out, "taco-tuesday", random, "deployed")

	// A chart whose values come from a live release.
	out = c.ok("create", "--from", "taco-tuesday", "tacochart")
	mustContain(t, out, "Created tacochart/Chart.yaml")
	fromVals, err := os.ReadFile(filepath.Join("tacochart", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, string(fromVals), "message: Taco Tuesday", "replicaCount: 2")
	c.ok("lint", "tacochart")

	out = c.ok("uninstall", "taco-tuesday", random)
	mustContain(t, out, "Destroyed taco-tuesday", "Destroyed "+random)
	_, err = c.kube.AppsV1().Deployments(c.ns).Get(context.Background(), "taco-tuesday-hello", metav1.GetOptions{})
	if err == nil {
		d := c.deployment("taco-tuesday-hello")
		if d.DeletionTimestamp == nil {
			t.Errorf("deployment still exists after uninstall")
		}
	} else if !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	errOut := c.fails("status", "taco-tuesday")
	mustContain(t, errOut, `release "taco-tuesday" not found`)
	if _, err := os.Stat(filepath.Join(c.state, "releases", "taco-tuesday.yaml")); !os.IsNotExist(err) {
		t.Errorf("declaration still present after uninstall: %v", err)
	}
}

// The seed's developer workflow: create, lint, deploy ., status, edit,
// redeploy.
func TestDeveloperWorkflow(t *testing.T) {
	c := newCLI(t)
	work := t.TempDir()
	t.Chdir(work)

	out := c.ok("create", "mychart")
	mustContain(t, out, "Created mychart/Chart.yaml")
	c.ok("lint", "mychart")

	t.Chdir(filepath.Join(work, "mychart"))
	_, errOut, code := c.run("deploy", "-n", "skinny-pigeon", "--namespace", c.ns, ".")
	if code != 0 {
		t.Fatalf("deploy .: exit %d: %s", code, errOut)
	}
	mustContain(t, errOut, "Uploading . as charts/mychart-0.1.0.tgz")

	out = c.ok("status", "skinny-pigeon")
	mustContain(t, out, "deployed", "Deployment/"+c.ns+"/skinny-pigeon-mychart", "Current")

	// Edit the chart, then redeploy picks it up from the current folder.
	vals, err := os.ReadFile("values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	edited := regexp.MustCompile(`(?m)^replicaCount: 1$`).ReplaceAllString(string(vals), "replicaCount: 3")
	if edited == string(vals) {
		t.Fatal("starter values.yaml has no replicaCount: 1")
	}
	if err := os.WriteFile("values.yaml", []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("redeploy", "skinny-pigeon")
	if d := c.deployment("skinny-pigeon-mychart"); *d.Spec.Replicas != 3 || d.Status.ReadyReplicas != 3 {
		t.Errorf("after edit + redeploy: replicas %d ready %d, want 3 and 3", *d.Spec.Replicas, d.Status.ReadyReplicas)
	}
	out = c.ok("status", "skinny-pigeon")
	mustContain(t, out, "Revision:", "2")
}

// An object edited or deleted by hand is restored by the next reconcile.
func TestDriftIsCorrected(t *testing.T) {
	c := newCLI(t)
	c.ok("deploy", "-n", "drifty", "--namespace", c.ns, exampleChart)
	ctx := context.Background()

	cm, err := c.kube.CoreV1().ConfigMaps(c.ns).Get(ctx, "drifty-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := cm.Data["index.html"]
	cm.Data["index.html"] = "<h1>defaced</h1>"
	if _, err := c.kube.CoreV1().ConfigMaps(c.ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.kube.CoreV1().Services(c.ns).Delete(ctx, "drifty-hello", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	d := c.deployment("drifty-hello")
	d.Spec.Replicas = ptr(int32(4))
	if _, err := c.kube.AppsV1().Deployments(c.ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	out := c.ok("reconcile", "drifty")
	mustContain(t, out, "drifty: corrected")

	cm, err = c.kube.CoreV1().ConfigMaps(c.ns).Get(ctx, "drifty-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["index.html"] != want {
		t.Errorf("configmap not restored: %q, want %q", cm.Data["index.html"], want)
	}
	if _, err := c.kube.CoreV1().Services(c.ns).Get(ctx, "drifty-hello", metav1.GetOptions{}); err != nil {
		t.Errorf("deleted service not restored: %v", err)
	}
	if d := c.deployment("drifty-hello"); *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %d, want 1 restored", *d.Spec.Replicas)
	}
	out = c.ok("reconcile", "drifty")
	mustContain(t, out, "drifty: unchanged")
}

func ptr[T any](v T) *T { return &v }

// credential add/list/rm against the cluster: the secret is never printed.
func TestCredentials(t *testing.T) {
	c := newCLI(t)
	var out, errb bytes.Buffer
	full := []string{"--kubeconfig", c.kubeconfig, "--records-namespace", c.ns, "credential", "add", "foo", "-"}
	if code := run(context.Background(), full, strings.NewReader("s3cr3t-value\n"), &out, &errb); code != 0 {
		t.Fatalf("credential add: exit %d: %s", code, errb.String())
	}
	mustContain(t, out.String(), "Created token-foo")
	for _, format := range []string{"table", "json", "yaml"} {
		got := c.ok("credential", "list", "-o", format)
		mustContain(t, got, "token-foo", "foo")
		if strings.Contains(got, "s3cr3t-value") {
			t.Errorf("credential list -o %s prints the secret", format)
		}
	}
	c.fails("credential", "add", "foo", "x", "--name", "token-foo") // taken
	mustContain(t, c.ok("credential", "rm", "token-foo"), "Removed token-foo")
	mustContain(t, c.fails("credential", "rm", "token-foo"), `credential "token-foo" not found`)
}

// repo add/list/rm edit repositories.yaml in the declared state; a
// repository names a credential that must exist, never its secret.
func TestRepositories(t *testing.T) {
	c := newCLI(t)
	mustContain(t, c.fails("repo", "add", "-c", "token-nope", "https://charts.example.com/stable"), `credential "token-nope" not found`)
	var out, errb bytes.Buffer
	full := []string{"--kubeconfig", c.kubeconfig, "--records-namespace", c.ns, "credential", "add", "ci", "-"}
	if code := run(context.Background(), full, strings.NewReader("the-secret\n"), &out, &errb); code != 0 {
		t.Fatalf("credential add: %s", errb.String())
	}
	mustContain(t, c.ok("repo", "add", "-c", "token-ci", "https://charts.example.com/stable"), "Added stable")
	mustContain(t, c.ok("repo", "add", "--name", "internal", "s3+http://127.0.0.1:9000/charts"), "Added internal")
	c.fails("repo", "add", "https://charts.example.com/stable") // same URL again
	c.fails("repo", "add", "ftp://example.com/x")               // unsupported scheme
	got := c.ok("repo", "list", "-o", "yaml")
	mustContain(t, got, "name: stable", "credential: token-ci", "name: internal")
	file, err := os.ReadFile(filepath.Join(c.state, "repositories.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(file), "the-secret") {
		t.Error("repositories.yaml holds the secret")
	}
	mustContain(t, c.ok("repo", "rm", "internal"), "Removed internal")
	if strings.Contains(c.ok("repo", "list"), "internal") {
		t.Error("removed repository still listed")
	}
}

// history lists revisions; rollback writes an earlier revision's chart and
// values back into the declared state and converges to it.
func TestHistoryAndRollback(t *testing.T) {
	c := newCLI(t)
	work := t.TempDir()
	copyDir(t, exampleChart, filepath.Join(work, "hello"))
	t.Chdir(work)
	c.ok("deploy", "-n", "roll", "--namespace", c.ns, "--set", "message=one", "./hello")
	c.ok("redeploy", "--set", "message=two", "roll")
	mustContain(t, c.message("roll"), "two")

	out := c.ok("history", "roll")
	mustContain(t, out, "REVISION", "superseded", "deployed", "hello#0.1.0")
	mustContain(t, c.ok("rollback", "roll"), "Rolled back roll to revision 1")
	mustContain(t, c.message("roll"), "one")
	decl, err := os.ReadFile(filepath.Join(c.state, "releases", "roll.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, string(decl), "message: one")
	mustContain(t, c.ok("status", "roll"), "Revision:", "3", "deployed")
	c.fails("rollback", "roll", "99")
	mustContain(t, c.fails("rollback", "nope"), `release "nope" not found`)
}

// doctor reports each check with ✓/✗ and fails when one fails.
func TestDoctor(t *testing.T) {
	c := newCLI(t)
	c.ok("init")
	out, _, code := c.run("doctor")
	mustContain(t, out, "✓ kubeconfig", "✓ API server", "✓ version skew", "✓ permissions", "✓ declared state", "✓ clock")
	// No daemon follows this state: reported, so doctor fails.
	mustContain(t, out, "✗ daemon")
	if code == 0 {
		t.Error("doctor exited 0 with a failed check")
	}
	jout, _, _ := c.run("doctor", "-o", "json")
	mustContain(t, jout, `"name": "API server"`, `"ok": true`)

	// A daemon running elsewhere: its version and each source as it last
	// fetched it.
	hb := &reconcile.Heartbeat{Client: c.kube, Namespace: c.ns, Identity: "elsewhere", Version: "v9.1.0"}
	statePath, _ := filepath.Abs(c.state)
	err := hb.Renew(context.Background(), []string{statePath}, reconcile.HeartbeatStatus{Sources: []reconcile.SourceStatus{
		{Source: statePath, Revision: "abcdef1234567|sha256:x", Releases: 2, LastFetch: time.Now()},
		{Source: "https://git.example.com/private.git", Error: "authentication required", LastFetch: time.Now()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out, _, _ = c.run("doctor")
	mustContain(t, out, "✓ daemon: not installed in the cluster; one runs elsewhere", "daemon v9.1.0, CLI dev",
		"✓ source "+statePath+": fetched", "at abcdef1", "2 release(s)",
		"✗ source https://git.example.com/private.git: the daemon cannot fetch it: authentication required")
	if err := versionSkew("v1.2.3", "v1.3.0"); err == nil {
		t.Error("versionSkew accepts a minor-version difference")
	}
	if err := versionSkew("v1.2.3", "1.2.9"); err != nil {
		t.Errorf("versionSkew: %v", err)
	}

	// A repository that cannot be reached is named.
	c.ok("repo", "add", "--name", "gone", "http://127.0.0.1:1/charts")
	out, _, _ = c.run("doctor")
	mustContain(t, out, "✗ repository gone")

	// An unreachable cluster stops at the API server check.
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"), 0o600)
	bad := *c
	bad.kubeconfig = kc
	out, _, code = bad.run("doctor", "--request-timeout", "3s")
	mustContain(t, out, "✗ API server", "127.0.0.1:1")
	if code == 0 {
		t.Error("doctor exited 0 without a cluster")
	}
}
