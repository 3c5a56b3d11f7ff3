package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/charter-sh/charter/internal/testenv"
)

// needTool skips (or fails under CHARTER_E2E=1) without a system tool.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv(testenv.E2EEnv) == "1" {
			t.Fatalf("%s is not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
}

// sh runs a command in dir and fails the test on error.
func sh(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Team", "GIT_AUTHOR_EMAIL=team@example.com",
		"GIT_COMMITTER_NAME=Team", "GIT_COMMITTER_EMAIL=team@example.com", "BRZ_EMAIL=Team <team@example.com>")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// daemon runs `charter daemon run` in-process until the test ends.
type daemonRun struct {
	cancel context.CancelFunc
	done   chan int
	mu     sync.Mutex
	log    bytes.Buffer
}

func (c *cli) startDaemon(t *testing.T, args ...string) *daemonRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonRun{cancel: cancel, done: make(chan int, 1)}
	w := writerFunc(func(p []byte) (int, error) { d.mu.Lock(); defer d.mu.Unlock(); return d.log.Write(p) })
	full := append([]string{"--kubeconfig", c.kubeconfig, "--state", c.state, "--records-namespace", c.ns,
		"daemon", "run", "--log-json", "--cache-dir", t.TempDir()}, args...)
	go func() { d.done <- run(ctx, full, strings.NewReader(""), w, w) }()
	t.Cleanup(func() {
		cancel()
		if code := <-d.done; code != 0 {
			t.Errorf("daemon exited %d:\n%s", code, d.logs())
		}
	})
	c.eventually(t, "daemon started", 60*time.Second, func() bool { return strings.Contains(d.logs(), "daemon started") })
	return d
}

func (d *daemonRun) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (c *cli) eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// message reads the example chart's page text from the cluster.
func (c *cli) message(release string) string {
	cm, err := c.kube.CoreV1().ConfigMaps(c.ns).Get(context.Background(), release+"-hello", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return cm.Data["index.html"]
}

// seedState writes a state with the example chart and one release.
func seedState(t *testing.T, root, ns, release, message string) {
	t.Helper()
	copyDir(t, exampleChart, filepath.Join(root, "charts", "hello"))
	writeRelease(t, root, ns, release, message)
}

func writeRelease(t *testing.T, root, ns, release, message string) {
	t.Helper()
	body := fmt.Sprintf("apiVersion: charter.sh/v1\nkind: Release\nname: %s\nnamespace: %s\nchart: charts/hello\nvalues:\n  message: %s\n", release, ns, message)
	if err := os.MkdirAll(filepath.Join(root, "releases"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "releases", release+".yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// (a) A team commits a values change to git → the daemon converges;
// `charter redeploy` from the CLI commits and pushes → converged; two
// concurrent CLI edits both land.
func TestGitWorkflow(t *testing.T) {
	needTool(t, "git")
	c := newCLI(t)
	remote := filepath.Join(t.TempDir(), "state.git")
	sh(t, "", "git", "init", "--bare", "-b", "main", remote)
	team := filepath.Join(t.TempDir(), "team")
	sh(t, "", "git", "clone", remote, team)
	seedState(t, team, c.ns, "shop", "v1")
	sh(t, team, "git", "add", "-A")
	sh(t, team, "git", "commit", "-m", "add shop")
	sh(t, team, "git", "push", "origin", "HEAD:main")

	c.state = "file://" + remote
	d := c.startDaemon(t, "--interval", "1s")
	c.eventually(t, "shop v1 applied", 90*time.Second, func() bool { return strings.Contains(c.message("shop"), "v1") })

	// A team member commits a values change.
	writeRelease(t, team, c.ns, "shop", "v2")
	sh(t, team, "git", "commit", "-am", "shop v2")
	sh(t, team, "git", "push", "origin", "HEAD:main")
	c.eventually(t, "shop v2 applied", 60*time.Second, func() bool { return strings.Contains(c.message("shop"), "v2") })

	// The CLI edits the same repository: a commit pushed, then converged.
	out := c.ok("redeploy", "--set", "message=v3", "--author-name", "Ops", "--author-email", "ops@example.com", "shop")
	mustContain(t, out, "Redeployed shop")
	c.eventually(t, "shop v3 applied", 60*time.Second, func() bool { return strings.Contains(c.message("shop"), "v3") })
	log := sh(t, "", "git", "--git-dir", remote, "log", "-1", "--format=%an|%s")
	mustContain(t, log, "Ops|redeploy shop: hello 0.1.0")

	// Two concurrent CLI edits both land (the loser of the push race retries).
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, name := range []string{"edit-a", "edit-b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, codes[i] = c.run("deploy", "--no-wait", "-n", name, "--namespace", c.ns, "charts/hello")
		}()
	}
	wg.Wait()
	if codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("concurrent deploys exited %v", codes)
	}
	files := sh(t, "", "git", "--git-dir", remote, "ls-tree", "--name-only", "main", "releases/")
	mustContain(t, files, "releases/edit-a.yaml", "releases/edit-b.yaml", "releases/shop.yaml")
	c.eventually(t, "both concurrent releases applied", 90*time.Second, func() bool {
		return c.message("edit-a") != "" && c.message("edit-b") != ""
	})
	out = c.ok("deployment", "list")
	mustContain(t, out, "sha1:")
	_ = d
}

// (b) An SVN shop (repository served by svnserve): `svn commit` from one
// working copy, `svn up` in the watched checkout → converged; the CLI
// commits with --commit.
func TestSVNWorkflow(t *testing.T) {
	needTool(t, "svnadmin")
	needTool(t, "svn")
	c := newCLI(t)
	repo := filepath.Join(t.TempDir(), "repo")
	sh(t, "", "svnadmin", "create", repo)
	url := serveSVN(t, repo)
	wcA := filepath.Join(t.TempDir(), "wc-a")
	sh(t, "", "svn", "checkout", url, wcA)
	seedState(t, wcA, c.ns, "ledger", "one")
	sh(t, wcA, "svn", "add", "--force", ".")
	sh(t, wcA, "svn", "commit", "-m", "add ledger")
	watched := filepath.Join(t.TempDir(), "watched")
	sh(t, "", "svn", "checkout", url, watched)

	c.state = watched
	c.startDaemon(t, "--interval", "30s")
	c.eventually(t, "ledger applied", 90*time.Second, func() bool { return strings.Contains(c.message("ledger"), "one") })
	out := c.ok("deployment", "list")
	mustContain(t, out, "r1")

	writeRelease(t, wcA, c.ns, "ledger", "two")
	sh(t, wcA, "svn", "commit", "-m", "ledger two")
	sh(t, watched, "svn", "up")
	c.eventually(t, "ledger two applied after svn up", 30*time.Second, func() bool { return strings.Contains(c.message("ledger"), "two") })

	// The CLI commits its own change with --commit.
	c.ok("redeploy", "--commit", "--no-wait", "--set", "message=three", "ledger")
	log := sh(t, watched, "svn", "log", "-l", "1", url)
	mustContain(t, log, "redeploy ledger")
	c.eventually(t, "ledger three applied", 30*time.Second, func() bool { return strings.Contains(c.message("ledger"), "three") })
}

// serveSVN serves repo with svnserve on 127.0.0.1 (anonymous write, as a
// test server) and returns its svn:// URL.
func serveSVN(t *testing.T, repo string) string {
	t.Helper()
	needTool(t, "svnserve")
	conf := "[general]\nanon-access = write\nauth-access = write\n"
	if err := os.WriteFile(filepath.Join(repo, "conf", "svnserve.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command("svnserve", "-d", "--foreground", "-r", filepath.Dir(repo), "--listen-host", "127.0.0.1", "--listen-port", port)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("svnserve did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "svn://127.0.0.1:" + port + "/" + filepath.Base(repo)
}

// (b) The same with Bazaar: commit in a branch, `brz update` in the watched checkout.
func TestBazaarWorkflow(t *testing.T) {
	needTool(t, "brz")
	c := newCLI(t)
	t.Setenv("BRZ_EMAIL", "Team <team@example.com>")
	branch := filepath.Join(t.TempDir(), "branch")
	sh(t, "", "brz", "init", branch)
	seedState(t, branch, c.ns, "mill", "one")
	sh(t, branch, "brz", "add", "-q")
	sh(t, branch, "brz", "commit", "-q", "-m", "add mill")
	watched := filepath.Join(t.TempDir(), "watched")
	sh(t, "", "brz", "checkout", branch, watched)

	c.state = watched
	c.startDaemon(t, "--interval", "30s")
	c.eventually(t, "mill applied", 90*time.Second, func() bool { return strings.Contains(c.message("mill"), "one") })

	writeRelease(t, branch, c.ns, "mill", "two")
	sh(t, branch, "brz", "commit", "-q", "-m", "mill two")
	sh(t, watched, "brz", "update", "-q")
	c.eventually(t, "mill two applied after brz update", 30*time.Second, func() bool { return strings.Contains(c.message("mill"), "two") })
	out := c.ok("deployment", "list")
	mustContain(t, out, "revno:2")
}

// (c) Declarations in a MinIO bucket, read with access key and secret.
func TestBucketWorkflow(t *testing.T) {
	c := newCLI(t)
	endpoint, access, secret := testenv.StartMinIO(t)
	testenv.MakeBucket(t, endpoint, access, secret, "charter-state")
	// The token and secret live in the cluster's credential store; the CLI
	// and the daemon both name it.
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"--kubeconfig", c.kubeconfig, "--records-namespace", c.ns,
		"credential", "add", access, "-", "--name", "state-minio"}, strings.NewReader(secret+"\n"), &o, &e); code != 0 {
		t.Fatalf("credential add: %s", e.String())
	}
	c.state = "s3://charter-state/prod"
	c.fails("--s3-endpoint", endpoint, "deploy", "--no-wait", "-n", "vault", "--namespace", c.ns, exampleChart) // no credential: refused
	// The CLI creates the bucket content: deploy into the bucket store.
	c.ok("--s3-endpoint", endpoint, "--state-credential", "state-minio", "deploy", "--no-wait", "-n", "vault", "--namespace", c.ns, "--set", "message=sealed", exampleChart)
	d := c.startDaemon(t, "--s3-endpoint", endpoint, "--state-credential", "state-minio", "--interval", "1s")
	c.eventually(t, "vault applied from the bucket", 90*time.Second, func() bool { return strings.Contains(c.message("vault"), "sealed") })
	c.ok("--s3-endpoint", endpoint, "--state-credential", "state-minio", "redeploy", "--no-wait", "--set", "message=open", "vault")
	c.eventually(t, "vault change applied within the poll", 30*time.Second, func() bool { return strings.Contains(c.message("vault"), "open") })
	if strings.Contains(d.logs(), secret) {
		t.Error("daemon logs contain the bucket secret")
	}
}

// (d) A webhook triggers an immediate fetch and reconcile.
func TestWebhookTriggersImmediateReconcile(t *testing.T) {
	needTool(t, "git")
	c := newCLI(t)
	remote := filepath.Join(t.TempDir(), "state.git")
	sh(t, "", "git", "init", "--bare", "-b", "main", remote)
	team := filepath.Join(t.TempDir(), "team")
	sh(t, "", "git", "clone", remote, team)
	seedState(t, team, c.ns, "hooked", "before")
	sh(t, team, "git", "add", "-A")
	sh(t, team, "git", "commit", "-m", "add hooked")
	sh(t, team, "git", "push", "origin", "HEAD:main")

	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("hook-secret\n"), 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// A poll interval far longer than the test: only the webhook can trigger.
	c.startDaemon(t, "--source", "team=file://"+remote, "--interval", "1h", "--listen", addr, "--webhook-secret-file", secretFile)
	c.eventually(t, "hooked applied", 90*time.Second, func() bool { return strings.Contains(c.message("hooked"), "before") })

	writeRelease(t, team, c.ns, "hooked", "after")
	sh(t, team, "git", "commit", "-am", "hooked after")
	sh(t, team, "git", "push", "origin", "HEAD:main")

	body := []byte(`{"ref":"refs/heads/main"}`)
	post := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/team", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", sig)
		req.Header.Set("X-GitHub-Event", "push")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("sha256=" + strings.Repeat("0", 64)); code != http.StatusUnauthorized {
		t.Errorf("badly signed webhook: status %d, want 401", code)
	}
	mac := hmac.New(sha256.New, []byte("hook-secret"))
	mac.Write(body)
	start := time.Now()
	if code := post("sha256=" + hex.EncodeToString(mac.Sum(nil))); code != http.StatusAccepted {
		t.Fatalf("signed webhook: status %d, want 202", code)
	}
	c.eventually(t, "hooked after applied via webhook", 30*time.Second, func() bool { return strings.Contains(c.message("hooked"), "after") })
	t.Logf("webhook → converged in %s", time.Since(start).Round(time.Millisecond))
}

// charter init on an empty git repository publishes the state's marker.
func TestInitPublishesAGitState(t *testing.T) {
	needTool(t, "git")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	remote := filepath.Join(t.TempDir(), "state.git")
	sh(t, "", "git", "init", "-q", "--bare", "-b", "main", remote)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"init", "--state", "file://" + remote}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errb.String())
	}
	mustContain(t, sh(t, "", "git", "--git-dir", remote, "log", "--format=%s", "main"), "init charter state")
	mustContain(t, sh(t, "", "git", "--git-dir", remote, "ls-tree", "--name-only", "main"), "charter.yaml")
}
