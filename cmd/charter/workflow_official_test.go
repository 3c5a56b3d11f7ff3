package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/charter-sh/charter/internal/testenv"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	// goCache is resolved before tests move XDG_CACHE_HOME (the build
	// cache's default home) to a temporary folder.
	goCache = func() string {
		out, _ := exec.Command("go", "env", "GOCACHE").Output()
		return strings.TrimSpace(string(out))
	}()
)

// charterBinary builds the CLI once, for tests that run scripts.
func charterBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "charter-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "charter")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "GOCACHE="+goCache)
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// gpgKey makes a signing key without passphrase; it returns the secret
// and public keyrings.
func gpgKey(t *testing.T, name string) (secring, pubring string) {
	t.Helper()
	needTool(t, "gpg")
	home, err := os.MkdirTemp("", "gpg") // short: gpg-agent's socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run(); os.RemoveAll(home) })
	gpg := func(stdin string, args ...string) []byte {
		cmd := exec.Command("gpg", append([]string{"--batch", "--homedir", home}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	gpg("%no-protection\nKey-Type: RSA\nKey-Length: 2048\nKey-Usage: sign\nName-Real: "+name+"\nName-Email: charts@example.com\nExpire-Date: 0\n%commit\n", "--gen-key")
	dir := t.TempDir()
	secring, pubring = filepath.Join(dir, "secring.gpg"), filepath.Join(dir, "pubring.gpg")
	os.WriteFile(secring, gpg("", "--export-secret-keys"), 0o600)
	os.WriteFile(pubring, gpg("", "--export"), 0o644)
	return secring, pubring
}

// publicBucket starts MinIO with a bucket anyone may read, as a public
// chart repository is set up; it returns the endpoint and admin keys.
func publicBucket(t *testing.T, bucket string) (endpoint, access, secret string) {
	t.Helper()
	endpoint, access, secret = testenv.StartMinIO(t)
	testenv.MakeBucket(t, endpoint, access, secret, bucket)
	u, _ := url.Parse(endpoint)
	mc, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(access, secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::` + bucket + `/*"]}]}`
	if err := mc.SetBucketPolicy(context.Background(), bucket, policy); err != nil {
		t.Fatal(err)
	}
	return endpoint, access, secret
}

// Workflow 1, Helm Official: a git repository of charts; CI lints,
// packages, signs and releases every chart to a public bucket; a consumer
// adds the repository without credentials, requiring signatures, searches
// and deploys. An unsigned version is refused.
func TestWorkflowHelmOfficial(t *testing.T) {
	needTool(t, "git")
	c := newCLI(t)
	bin := charterBinary(t)
	endpoint, access, secret := publicBucket(t, "charts")
	u, _ := url.Parse(endpoint)
	dest := "s3+http://" + u.Host + "/charts/stable"

	// The charts repository, as CI checks it out.
	src := t.TempDir()
	copyDir(t, exampleChart, filepath.Join(src, "charts", "hello"))
	sh(t, src, "git", "init", "-q", "-b", "main")
	sh(t, src, "git", "add", "-A")
	sh(t, src, "git", "commit", "-q", "-m", "charts")
	secring, pubring := gpgKey(t, "Charts Team")

	script, _ := filepath.Abs("../../examples/ci/release-charts.sh")
	cmd := exec.Command(script)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CHARTER="+bin, "DEST="+dest, "SIGNING_KEY=Charts Team", "KEYRING="+secring,
		"AWS_ACCESS_KEY_ID="+access, "AWS_SECRET_ACCESS_KEY="+secret)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("CI script: %v\n%s", err, out)
	}
	mustContain(t, string(out), "Signed", "Uploaded to "+dest+"/hello-0.1.0.tgz")

	// The consumer: no credentials; signatures required with the team's key.
	if err := os.MkdirAll(filepath.Join(c.state, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	c.ok("init")
	b, _ := os.ReadFile(pubring)
	os.WriteFile(filepath.Join(c.state, "keys", "charts-team.gpg"), b, 0o644)
	c.ok("repo", "add", "--name", "official", "--require-signatures", "--keyring", "keys/charts-team.gpg", endpoint+"/charts/stable")
	mustContain(t, c.ok("search", "hello"), "official/hello#0.1.0")
	c.ok("deploy", "-n", "official-hello", "--namespace", c.ns, "official/hello")
	mustContain(t, c.ok("status", "official-hello"), "deployed")

	// A version released without a signature is refused, nothing applied.
	cmd = exec.Command(bin, "release", "-u", dest, "--version", "0.2.0", filepath.Join(src, "charts", "hello"))
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+access, "AWS_SECRET_ACCESS_KEY="+secret)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unsigned release: %v\n%s", err, out)
	}
	errOut := c.fails("deploy", "-n", "unsigned", "--namespace", c.ns, "--version", "0.2.0", "official/hello")
	mustContain(t, errOut, "no provenance file")
	c.noDeclaration("unsigned")
}
