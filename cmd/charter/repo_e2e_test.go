package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charter-sh/charter/internal/testenv"
)

// helmRepo builds a chart repository with the Helm CLI (helm package +
// helm repo index) and serves it with basic auth on 127.0.0.1.
func helmRepo(t *testing.T, user, pass string) (url, dir string) {
	t.Helper()
	helm := testenv.Tool(t, "helm", "helm CLI")
	dir = t.TempDir()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	for _, args := range [][]string{
		{"package", exampleChart, "-d", dir},
		{"repo", "index", dir, "--url", srv.URL},
	} {
		if out, err := exec.Command(helm, args...).CombinedOutput(); err != nil {
			t.Fatalf("helm %v: %v\n%s", args, err, out)
		}
	}
	return srv.URL, dir
}

func TestDeployFromAHelmRepository(t *testing.T) {
	c := newCLI(t)
	url, dir := helmRepo(t, "reader", "r3p0-pass")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--kubeconfig", c.kubeconfig, "--records-namespace", c.ns,
		"credential", "add", "reader", "-"}, strings.NewReader("r3p0-pass\n"), &out, &errb); code != 0 {
		t.Fatalf("credential add: %s", errb.String())
	}
	c.ok("repo", "add", "-c", "token-reader", "--name", "team", url)

	got := c.ok("search", "hello")
	mustContain(t, got, "team/hello#0.1.0", "A small web page")
	mustContain(t, c.ok("search", "web page", "-o", "json"), `"chart": "hello"`)

	mustContain(t, c.ok("deploy", "-n", "from-repo", "--namespace", c.ns, "--set", "message=pulled", "team/hello"), "Created from-repo")
	decl, err := os.ReadFile(filepath.Join(c.state, "releases", "from-repo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, string(decl), "chart: team/hello", "version: 0.1.0", "digest: sha256:")
	if strings.Contains(string(decl), "r3p0-pass") {
		t.Error("the declaration holds the repository password")
	}
	mustContain(t, c.message("from-repo"), "pulled")
	mustContain(t, c.ok("status", "from-repo"), "deployed", "hello#0.1.0")

	// The archive is replaced on the server (republished or tampered): the
	// pinned digest refuses it, nothing is applied.
	tgz := filepath.Join(dir, "hello-0.1.0.tgz")
	b, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tgz, append(b, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	errOut := c.fails("redeploy", "--set", "message=changed", "from-repo")
	mustContain(t, errOut, "digest")
	if strings.Contains(c.message("from-repo"), "changed") {
		t.Error("a tampered chart was applied")
	}

	// Wrong credentials: 403 named with the repository, secret not shown.
	c.ok("credential", "rm", "token-reader")
	if code := run(context.Background(), []string{"--kubeconfig", c.kubeconfig, "--records-namespace", c.ns,
		"credential", "add", "reader", "-"}, strings.NewReader("wrong-pass\n"), &out, &errb); code != 0 {
		t.Fatalf("credential add: %s", errb.String())
	}
	errOut = c.fails("search", "hello")
	mustContain(t, errOut, "team", "403")
	if strings.Contains(errOut, "wrong-pass") {
		t.Errorf("error shows the secret: %s", errOut)
	}
}
