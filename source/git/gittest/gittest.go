// Package gittest gives tests real git repositories: bare repositories
// made with the system git and served over file://, over smart HTTP (git
// http-backend behind net/http/cgi on 127.0.0.1, with optional basic auth
// and request counting) and over SSH (an in-process server on 127.0.0.1
// that accepts one public key and runs git-upload-pack and
// git-receive-pack for the session's exec request).
//
// Everything started is stopped by the test's Cleanup. Require skips a
// test when git is missing, or fails it with CHARTER_E2E=1.
package gittest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Require skips t when the system git (with http-backend) is missing, or
// fails it when CHARTER_E2E=1.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err == nil {
		out, err := exec.Command("git", "--exec-path").Output()
		if err == nil {
			if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")); err == nil {
				return
			}
		}
	}
	if os.Getenv("CHARTER_E2E") == "1" {
		t.Fatal("git with git-http-backend is required (Debian package git)")
	}
	t.Skip("git with git-http-backend not found (set CHARTER_E2E=1 to make this fatal)")
}

// Env is the environment the helpers run git with: no system or global
// configuration, a fixed identity, no prompts.
func Env() []string {
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test Author", "GIT_AUTHOR_EMAIL=author@example.com",
		"GIT_COMMITTER_NAME=Test Author", "GIT_COMMITTER_EMAIL=author@example.com",
		"GIT_TERMINAL_PROMPT=0",
	)
}

// Git runs git in dir and returns its trimmed standard output; a failure
// fails the test with git's output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s in %s: %v\n%s%s", strings.Join(args, " "), dir, err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// Repo is a bare repository and a work repository whose commits are pushed
// to it.
type Repo struct {
	Name string // file name of the bare repository, "NAME.git"
	Bare string // path of the bare repository
	Work string // path of the work repository (remote "origin" = Bare)
	URL  string // file:// URL of Bare
}

// NewRepo creates root/NAME.git, an empty bare repository whose HEAD is
// main, and a work repository for it. root is the folder servers serve.
func NewRepo(t testing.TB, root, name string) *Repo {
	t.Helper()
	Require(t)
	r := &Repo{Name: name + ".git", Bare: filepath.Join(root, name+".git"), Work: filepath.Join(t.TempDir(), name)}
	Git(t, root, "init", "-q", "--bare", "-b", "main", r.Bare)
	Git(t, root, "init", "-q", "-b", "main", r.Work)
	Git(t, r.Work, "remote", "add", "origin", r.Bare)
	r.URL = "file://" + r.Bare
	return r
}

// Git runs git in the work repository.
func (r *Repo) Git(t testing.TB, args ...string) string {
	t.Helper()
	return Git(t, r.Work, args...)
}

// Commit brings the work repository's current branch up to date with the
// remote one, writes files (slash path → content; nil deletes), commits
// everything in the work tree with msg and pushes. It returns the commit
// id.
func (r *Repo) Commit(t testing.TB, files map[string][]byte, msg string) string {
	t.Helper()
	branch := Git(t, r.Work, "symbolic-ref", "--short", "HEAD")
	Git(t, r.Work, "fetch", "-q", "origin")
	cmd := exec.Command("git", "rev-parse", "--verify", "-q", "refs/remotes/origin/"+branch)
	cmd.Dir, cmd.Env = r.Work, Env()
	if cmd.Run() == nil {
		Git(t, r.Work, "reset", "-q", "--hard", "refs/remotes/origin/"+branch)
	}
	for rel, content := range files {
		p := filepath.Join(r.Work, filepath.FromSlash(rel))
		if content == nil {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Git(t, r.Work, "add", "-A")
	Git(t, r.Work, "commit", "-q", "--allow-empty", "-m", msg)
	Git(t, r.Work, "push", "-q", "origin", "HEAD:refs/heads/"+branch)
	return Git(t, r.Work, "rev-parse", "HEAD")
}

// RemoteHead returns the commit a branch of the bare repository points to,
// or "" when it does not exist.
func (r *Repo) RemoteHead(t testing.TB, branch string) string {
	t.Helper()
	cmd := exec.Command("git", "--git-dir", r.Bare, "rev-parse", "--verify", "-q", "refs/heads/"+branch)
	cmd.Env = Env()
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Show returns the content of path at rev in the bare repository.
func (r *Repo) Show(t testing.TB, rev, path string) string {
	t.Helper()
	return Git(t, r.Bare, "show", rev+":"+path)
}
