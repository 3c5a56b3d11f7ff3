package publish

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charter-sh/charter/internal/testenv"
)

// testChart is the fixture chart: foo 1.1.2 with a subchart, .helmignore'd
// files and a files/ folder.
const testChart = "testdata/charts/foo"

// testContext is a context bounded by the test's deadline (or a minute).
func testContext(t testing.TB) context.Context {
	t.Helper()
	d := time.Now().Add(2 * time.Minute)
	if tt, ok := t.(*testing.T); ok {
		if dl, ok := tt.Deadline(); ok {
			d = dl
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// need returns the path of a tool, skipping t when it is missing (failing
// under CHARTER_E2E=1).
func need(t testing.TB, path string) string {
	t.Helper()
	if filepath.Base(path) == path {
		p, err := exec.LookPath(path)
		if err == nil {
			return p
		}
	} else if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		return path
	}
	msg := fmt.Sprintf("%s not found", path)
	if os.Getenv(testenv.E2EEnv) == "1" {
		t.Fatalf("%s (%s=1 requires it)", msg, testenv.E2EEnv)
	}
	t.Skip(msg)
	return ""
}

// helm runs the Helm CLI of the tools cache with its own config, cache and
// data folders under home, and returns its combined output.
func helm(t testing.TB, home string, args ...string) (string, error) {
	t.Helper()
	bin := need(t, filepath.Join(testenv.ToolsDir(), "helm"))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"HELM_REPOSITORY_CONFIG="+filepath.Join(home, "config", "repositories.yaml"),
		"HELM_REPOSITORY_CACHE="+filepath.Join(home, "cache", "repository"),
	)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustHelm is helm that fails the test on error.
func mustHelm(t testing.TB, home string, args ...string) string {
	t.Helper()
	out, err := helm(t, home, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// writeChart writes a minimal chart NAME VERSION under a new folder and
// returns its path.
func writeChart(t testing.TB, name, version string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	files := map[string]string{
		"Chart.yaml":        fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\ndescription: chart %s\n", name, version, name),
		"values.yaml":       "n: 1\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Chart.Name }}\ndata:\n  n: {{ .Values.n | quote }}\n",
	}
	for rel, content := range files {
		writeFile(t, filepath.Join(dir, rel), content)
	}
	return dir
}

// packageChart packages a chart into a new folder.
func packageChart(t testing.TB, dir string) string {
	t.Helper()
	p, err := Package(testContext(t), dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// copyDir copies a folder tree (regular files and folders only).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// keyring is a GnuPG key exported for Helm: secring.gpg (secret keys) and
// pubring.gpg (public keys).
type keyring struct {
	Name, Fingerprint string
	Secret, Public    string
}

// newKeyring generates an RSA key without passphrase with gpg, in a
// temporary GNUPGHOME, and exports it.
func newKeyring(t testing.TB, name string) keyring {
	t.Helper()
	gpg := need(t, "gpg")
	// A short home: gpg-agent's socket path must stay under 108 bytes.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) []byte {
		cmd := exec.Command(gpg, append([]string{"--batch", "--homedir", home}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	params := fmt.Sprintf("%%no-protection\nKey-Type: RSA\nKey-Length: 2048\nKey-Usage: sign\nName-Real: %s\nName-Email: %s@example.com\nExpire-Date: 0\n%%commit\n",
		name, strings.ToLower(strings.ReplaceAll(name, " ", ".")))
	run(params, "--gen-key")
	dir := t.TempDir()
	k := keyring{Name: name, Secret: filepath.Join(dir, "secring.gpg"), Public: filepath.Join(dir, "pubring.gpg")}
	if err := os.WriteFile(k.Secret, run("", "--export-secret-keys"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.Public, run("", "--export"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(run("", "--with-colons", "--fingerprint")), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" && k.Fingerprint == "" {
			k.Fingerprint = f[9]
		}
	}
	return k
}
