package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Workflow 4, private charts without repositories: the state is an SVN
// checkout; a developer deploys a local chart (bundled into the state and
// committed with --commit); the watched checkout on the ops host is
// updated with `svn up`, and the daemon converges.
func TestWorkflowPrivateChartsWithoutRepositories(t *testing.T) {
	needTool(t, "svnadmin")
	c := newCLI(t)
	repo := filepath.Join(t.TempDir(), "repo")
	sh(t, "", "svnadmin", "create", repo)
	url := serveSVN(t, repo)
	dev := filepath.Join(t.TempDir(), "dev-checkout")
	sh(t, "", "svn", "checkout", "-q", url, dev)
	ops := filepath.Join(t.TempDir(), "ops-checkout")
	sh(t, "", "svn", "checkout", "-q", url, ops)

	// The daemon on the ops host watches its checkout.
	c.state = ops
	c.startDaemon(t)

	// The developer deploys ./localchart into their checkout and commits.
	work := t.TempDir()
	copyDir(t, exampleChart, filepath.Join(work, "localchart"))
	t.Chdir(work)
	dev1 := *c
	dev1.state = dev
	_, errOut, code := dev1.run("deploy", "--commit", "--no-wait", "-n", "ledger", "--namespace", c.ns, "--set", "message=private", "./localchart")
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, errOut)
	}
	mustContain(t, errOut, "Uploading ./localchart as charts/hello-0.1.0.tgz")
	log := sh(t, dev, "svn", "log", "-v", "-l", "1", url)
	mustContain(t, log, "deploy ledger: hello 0.1.0", "releases/ledger.yaml", "charts/hello-0.1.0.tgz")

	// Nothing reaches the cluster until the ops checkout is updated.
	time.Sleep(time.Second)
	if c.message("ledger") != "" {
		t.Fatal("the daemon applied a release its checkout does not hold yet")
	}
	sh(t, ops, "svn", "up", "-q")
	c.eventually(t, "ledger deployed after svn up", 60*time.Second, func() bool {
		out, _, code := c.run("status", "ledger", "-o", "json")
		return code == 0 && strings.Contains(out, `"status": "deployed"`)
	})
	mustContain(t, c.message("ledger"), "private")
	out := c.ok("status", "ledger")
	mustContain(t, out, "deployed", "Source revision:  r1")
}
