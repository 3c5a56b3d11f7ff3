package dir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/charter-sh/charter/source"
)

// vcsKind names the version-control tool that owns a folder.
type vcsKind string

const (
	vcsNone vcsKind = ""
	vcsSVN  vcsKind = "svn"
	vcsBrz  vcsKind = "brz"
)

// detectVCS finds the nearest folder, from root up, holding .svn or .bzr.
// stateFile is the file the tool rewrites whenever the working copy's
// revision changes (the SVN working-copy database, the Bazaar dirstate).
func detectVCS(root string) (kind vcsKind, stateFile string) {
	for d := root; ; {
		if fi, err := os.Stat(filepath.Join(d, ".svn")); err == nil && fi.IsDir() {
			return vcsSVN, filepath.Join(d, ".svn", "wc.db")
		}
		if fi, err := os.Stat(filepath.Join(d, ".bzr")); err == nil && fi.IsDir() {
			return vcsBrz, filepath.Join(d, ".bzr", "checkout", "dirstate")
		}
		parent := filepath.Dir(d)
		if parent == d {
			return vcsNone, ""
		}
		d = parent
	}
}

// revMemo remembers the last revision a tool reported and the stamp of the
// working copy's state file then, so that an unchanged working copy costs
// a stat instead of starting svn or brz (brz takes ~0.3s to start).
type revMemo struct {
	stateFile string
	stamp     stamp
	rev       string
}

// revision returns the checkout's revision like toolRevision, asking the
// tool again only when the working copy's state file changed.
func (s *Source) revision(ctx context.Context) (string, error) {
	kind, stateFile := detectVCS(s.root)
	if kind == vcsNone {
		return "", nil
	}
	fi, err := os.Stat(stateFile)
	if err != nil {
		return s.toolRevision(ctx, kind)
	}
	st := stampOf(fi) // taken before asking: a change meanwhile makes the next call ask again
	if m := s.memo; m != nil && m.stateFile == stateFile && m.stamp == st {
		return m.rev, nil
	}
	rev, err := s.toolRevision(ctx, kind)
	if err != nil {
		return "", err
	}
	s.memo = &revMemo{stateFile: stateFile, stamp: st, rev: rev}
	return rev, nil
}

var digits = regexp.MustCompile(`^[0-9]+$`)

// toolRevision asks svn or brz for the checkout's revision ("r42",
// "revno:7"); it returns "" when the folder is not versioned or the tool is
// not installed.
func (s *Source) toolRevision(ctx context.Context, kind vcsKind) (string, error) {
	switch kind {
	case vcsSVN:
		if _, err := exec.LookPath("svn"); err != nil {
			return "", nil
		}
		out, stderr, err := runTool(ctx, s.toolTimeout, "svn", "info", "--non-interactive", "--show-item", "revision", "--", s.root)
		if err != nil {
			// E155007: not a working copy; W155010: not versioned in it.
			if strings.Contains(stderr, "E155007") || strings.Contains(stderr, "W155010") {
				return "", nil
			}
			return "", toolError("svn info", stderr, err)
		}
		if !digits.MatchString(out) {
			return "", fmt.Errorf("svn info %s: unexpected revision %q", s.root, out)
		}
		return "r" + out, nil
	case vcsBrz:
		if _, err := exec.LookPath("brz"); err != nil {
			return "", nil
		}
		// --tree: the working tree's revno, not the (possibly newer) branch's.
		out, stderr, err := runTool(ctx, s.toolTimeout, "brz", "revno", "--tree", "--", s.root)
		if err != nil {
			if strings.Contains(stderr, "Not a branch") || strings.Contains(stderr, "No WorkingTree") {
				return "", nil
			}
			return "", toolError("brz revno", stderr, err)
		}
		if !digits.MatchString(out) {
			return "", fmt.Errorf("brz revno %s: unexpected revno %q", s.root, out)
		}
		return "revno:" + out, nil
	}
	return "", nil
}

// runTool runs a local VCS command with a timeout and an English, UTF-8
// locale; it returns trimmed stdout and stderr.
func runTool(ctx context.Context, timeout time.Duration, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANGUAGE=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("%w (timeout %s)", ctx.Err(), timeout)
	}
	return strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()), err
}

// toolError is a one-line error from a tool's stderr, URLs redacted.
func toolError(what, stderr string, err error) error {
	msg := source.RedactText(stderr)
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if msg == "" {
		return fmt.Errorf("%s: %w", what, err)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("%s: %s", what, msg)
	}
	return fmt.Errorf("%s: %s: %w", what, msg, err)
}
