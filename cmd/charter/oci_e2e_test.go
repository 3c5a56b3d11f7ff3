package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charter-sh/charter/internal/testenv"
)

// deploy oci://… with a registry credential: the chart is pulled with the
// credential from the cluster, pinned by version and digest, and a redeploy
// renders exactly that chart again.
func TestDeployFromAnOCIRegistry(t *testing.T) {
	c := newCLI(t)
	host := testenv.StartRegistryWithAuth(t, "pusher", "oci-s3cret")
	helm := testenv.Tool(t, "helm", "helm CLI")
	work := t.TempDir()
	helmRun := func(args ...string) {
		cmd := exec.Command(helm, args...)
		cmd.Env = append(os.Environ(), "HELM_REGISTRY_CONFIG="+filepath.Join(work, "registry.json"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helm %v: %v\n%s", args, err, out)
		}
	}
	helmRun("package", exampleChart, "-d", work)
	helmRun("push", filepath.Join(work, "hello-0.1.0.tgz"), "oci://"+host+"/charts", "--plain-http", "--username", "pusher", "--password", "oci-s3cret")

	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"--kubeconfig", c.kubeconfig, "--records-namespace", c.ns,
		"credential", "add", "pusher", "-", "--name", "registry"}, strings.NewReader("oci-s3cret\n"), &o, &e); code != 0 {
		t.Fatalf("credential add: %s", e.String())
	}
	c.ok("repo", "add", "-c", "registry", "--name", "oci", "oci://"+host+"/charts")

	c.ok("deploy", "-n", "from-oci", "--namespace", c.ns, "--set", "message=from a registry", "oci://"+host+"/charts/hello")
	decl, err := os.ReadFile(filepath.Join(c.state, "releases", "from-oci.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, string(decl), "chart: oci://"+host+"/charts/hello\n", "version: 0.1.0", "digest: sha256:")
	mustContain(t, c.message("from-oci"), "from a registry")
	c.ok("redeploy", "--set", "message=again", "from-oci")
	mustContain(t, c.message("from-oci"), "again")
	mustContain(t, c.ok("status", "from-oci"), "deployed", "Revision:")
}
