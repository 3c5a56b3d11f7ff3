package dir

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charter-sh/charter/source"
)

// requireTools skips the test when a tool is missing, or fails it when
// CHARTER_E2E=1 says every test must run.
func requireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CHARTER_E2E") == "1" {
				t.Fatalf("%s not installed (CHARTER_E2E=1 requires it; .ci/run installs it)", n)
			}
			t.Skipf("%s not installed", n)
		}
	}
}

// toolEnv is the environment of the svn and brz commands tests run.
var toolEnv = append(os.Environ(), "LC_ALL=C.UTF-8", "LANGUAGE=", "BRZ_EMAIL=Charter Test <test@example.com>")

// run runs a command in dir and fails the test with its output on error.
func run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = toolEnv
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// writeFiles writes (nil: removes) files under root, as a person would.
func writeFiles(t testing.TB, root string, files map[string][]byte) {
	t.Helper()
	for rel, data := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if data == nil {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newSource(t testing.TB, root string, opts source.Options) *Source {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	s, err := New(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// svnPair is a repository with two working copies: A where a team commits,
// and B, the checkout charter watches.
type svnPair struct{ url, a, b string }

func newSVNPair(t testing.TB) svnPair {
	t.Helper()
	requireTools(t, "svn", "svnadmin")
	tmp := t.TempDir()
	repo := filepath.Join(tmp, "repo")
	run(t, tmp, "svnadmin", "create", repo)
	p := svnPair{url: "file://" + repo, a: filepath.Join(tmp, "a"), b: filepath.Join(tmp, "b")}
	run(t, tmp, "svn", "checkout", "-q", p.url, p.a)
	run(t, tmp, "svn", "checkout", "-q", p.url, p.b)
	return p
}

// commit writes files in A and commits them.
func (p svnPair) commit(t testing.TB, files map[string][]byte) {
	t.Helper()
	writes := map[string][]byte{}
	for rel, data := range files {
		if data == nil {
			run(t, p.a, "svn", "rm", "-q", filepath.FromSlash(rel))
		} else {
			writes[rel] = data
		}
	}
	writeFiles(t, p.a, writes)
	run(t, p.a, "svn", "add", "-q", "--force", ".")
	run(t, p.a, "svn", "commit", "-q", "-m", "change", ".")
}

// update brings the watched checkout B up to date.
func (p svnPair) update(t testing.TB) { run(t, p.b, "svn", "update", "-q") }

// brzPair is a Bazaar branch where a team commits and a checkout of it
// charter watches.
type brzPair struct{ branch, co string }

func newBrzPair(t testing.TB) brzPair {
	t.Helper()
	requireTools(t, "brz")
	tmp := t.TempDir()
	p := brzPair{branch: filepath.Join(tmp, "branch"), co: filepath.Join(tmp, "co")}
	run(t, tmp, "brz", "init", "-q", p.branch)
	run(t, tmp, "brz", "checkout", "-q", p.branch, p.co)
	return p
}

func (p brzPair) commit(t testing.TB, files map[string][]byte) {
	t.Helper()
	writeFiles(t, p.branch, files)
	run(t, p.branch, "brz", "add", "-q")
	run(t, p.branch, "brz", "commit", "-q", "-m", "change")
}

func (p brzPair) update(t testing.TB) { run(t, p.co, "brz", "update", "-q") }

// waitSignal waits for a value on ch until timeout; it reports whether one
// came.
func waitSignal(ch <-chan struct{}, timeout time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(timeout):
		return false
	}
}

// drain empties a pending signal.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}
