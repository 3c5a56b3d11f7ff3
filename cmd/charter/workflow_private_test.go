package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charter-sh/charter/internal/testenv"
)

// setChart writes a chart named name (a copy of the example) into dir.
func setChart(t *testing.T, dir, name string) {
	t.Helper()
	copyDir(t, exampleChart, dir)
	cf := filepath.Join(dir, "Chart.yaml")
	b, _ := os.ReadFile(cf)
	os.WriteFile(cf, bytes.Replace(b, []byte("name: hello"), []byte("name: "+name), 1), 0o644)
}

// Workflow 2, Public Unofficial: the charts live in a Bazaar branch; the
// maintainer releases every chart of it to S3 in one command.
func TestWorkflowPublicUnofficial(t *testing.T) {
	needTool(t, "brz")
	c := newCLI(t)
	endpoint, access, secret := publicBucket(t, "community")
	u, _ := url.Parse(endpoint)
	branch := filepath.Join(t.TempDir(), "charts-branch")
	sh(t, "", "brz", "init", "-q", branch)
	setChart(t, filepath.Join(branch, "charts", "alpha"), "alpha")
	setChart(t, filepath.Join(branch, "charts", "beta"), "beta")
	sh(t, branch, "brz", "add", "-q")
	sh(t, branch, "brz", "commit", "-q", "-m", "two charts")

	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	out := c.ok("release", "-u", "s3+http://"+u.Host+"/community", filepath.Join(branch, "charts"))
	mustContain(t, out, "/community/alpha-0.1.0.tgz", "/community/beta-0.1.0.tgz")

	// Anyone can use it: no credentials.
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	c.ok("init")
	c.ok("repo", "add", "--name", "community", endpoint+"/community")
	got := c.ok("search", "a small web page")
	mustContain(t, got, "community/alpha#0.1.0", "community/beta#0.1.0")
}

// Workflow 3, Private: a MinIO bucket only a credential can read; CI
// releases a snapshot version from every commit and the final version
// from a tag; internal users deploy from it and the daemon pulls with the
// credential from the cluster.
func TestWorkflowPrivateRepository(t *testing.T) {
	needTool(t, "git")
	c := newCLI(t)
	endpoint, access, secret := testenv.StartMinIO(t)
	testenv.MakeBucket(t, endpoint, access, secret, "internal")
	u, _ := url.Parse(endpoint)
	dest := "s3+http://" + u.Host + "/internal/charts"

	// CI releases with the same credential the cluster holds.
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"--kubeconfig", c.kubeconfig, "--records-namespace", c.ns,
		"credential", "add", access, "-", "--name", "ci-minio"}, strings.NewReader(secret+"\n"), &o, &e); code != 0 {
		t.Fatalf("credential add: %s", e.String())
	}
	src := t.TempDir()
	setChart(t, filepath.Join(src, "charts", "web"), "web")
	sh(t, src, "git", "init", "-q", "-b", "main")
	sh(t, src, "git", "add", "-A")
	sh(t, src, "git", "commit", "-q", "-m", "web")
	version := func() string {
		script, _ := filepath.Abs("../../examples/ci/snapshot-version.sh")
		out, err := exec.Command("bash", "-c", "cd "+src+" && "+script+" charts/web").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	snap := version()
	if !strings.HasPrefix(snap, "0.1.0-snapshot.") {
		t.Fatalf("snapshot version %q, want 0.1.0-snapshot.<commit>", snap)
	}
	c.ok("release", "-c", "ci-minio", "-u", dest, "--version", snap, filepath.Join(src, "charts", "web"))
	sh(t, src, "git", "tag", "v0.1.0")
	final := version()
	if final != "0.1.0" {
		t.Fatalf("version on a tag %q, want 0.1.0", final)
	}
	c.ok("release", "-c", "ci-minio", "-u", dest, "--version", final, filepath.Join(src, "charts", "web"))

	// Without the credential the repository is closed.
	c.ok("init")
	c.ok("repo", "add", "--name", "nocred", dest)
	mustContain(t, c.fails("search", "web"), "nocred")
	c.ok("repo", "rm", "nocred")

	// Internal users: the repository with the credential; the daemon pulls.
	c.ok("repo", "add", "-c", "ci-minio", "--name", "internal", dest)
	got := c.ok("search", "--versions", "--version", ">=0.1.0-0", "web")
	mustContain(t, got, "internal/web#0.1.0", "internal/web#"+snap)
	mustContain(t, c.ok("search", "web"), "internal/web#0.1.0")
	c.startDaemon(t, "--interval", "1s")
	c.ok("deploy", "--no-wait", "-n", "web-snapshot", "--namespace", c.ns, "--version", snap, "internal/web")
	c.ok("deploy", "--no-wait", "-n", "web-final", "--namespace", c.ns, "internal/web")
	c.eventually(t, "both deployed by the daemon", 90*time.Second, func() bool {
		out, _, code := c.run("deployment", "list", "-o", "json")
		return code == 0 && strings.Count(out, `"status": "deployed"`) == 2
	})
	out := c.ok("chart", "list")
	mustContain(t, out, "internal/web#0.1.0", "internal/web#"+snap)
	mustContain(t, c.ok("chart", "get", "internal/web"), "web-final", "web-snapshot")
}
