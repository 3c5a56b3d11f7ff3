package state

import (
	"bytes"
	"context"
	"encoding/xml"
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

// vcsTimeout bounds one svn or brz command; a commit to a remote
// repository may take a while.
const vcsTimeout = 5 * time.Minute

// CommitVCS commits the state directory root to the SVN working copy or the
// Bazaar branch or checkout it lies in (the nearest .svn or .bzr folder at
// root or above it decides), with message as the log message, and returns
// the new revision: "r<N>" for SVN, "revno:<N>" for Bazaar. When nothing
// changed it commits nothing and returns the working copy's revision.
//
// Only root is committed, with everything below it: new files are added
// (and, for SVN, files that disappeared are removed; Bazaar commits
// removals by itself), except charter's temporary and lock files, editor
// backup and swap files, and files the working copy's ignore rules
// (svn:ignore, .bzrignore) exclude. A root that is itself new is added with
// its new parent folders. After an SVN commit root is updated to the new
// revision, so that the working copy is not left at mixed revisions.
//
// The tools run non-interactively with the user's configuration and cached
// credentials. Their error output is returned as one line, URLs redacted.
// A commit refused because the working copy is out of date is an error: run
// `svn update` or `brz update`, then retry.
func CommitVCS(ctx context.Context, root, message string) (revision string, err error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", root, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", root, err)
	}
	for d := real; ; {
		if fi, err := os.Stat(filepath.Join(d, ".svn")); err == nil && fi.IsDir() {
			return commitSVN(ctx, real, d, message)
		}
		if fi, err := os.Stat(filepath.Join(d, ".bzr")); err == nil && fi.IsDir() {
			return commitBrz(ctx, real, message)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("%s is not an SVN or Bazaar working copy: no .svn or .bzr folder in it or above it", root)
		}
		d = parent
	}
}

// vcsSkipped reports whether a path below root must never be committed.
func vcsSkipped(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == "." {
		return false
	}
	for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
		if ignoredName(part) || vcsDirs[part] {
			return true
		}
	}
	return false
}

// svnStatus is the XML of `svn status --xml`.
type svnStatus struct {
	Entries []struct {
		Path   string `xml:"path,attr"`
		Status struct {
			Item string `xml:"item,attr"`
		} `xml:"wc-status"`
	} `xml:"target>entry"`
}

// svnItems returns the status items below (and including) path by item
// ("unversioned", "missing", ...).
func svnItems(ctx context.Context, path string, depthEmpty bool) (map[string][]string, string, error) {
	args := []string{"status", "--xml", "--non-interactive"}
	if depthEmpty {
		args = append(args, "--depth=empty")
	}
	out, stderr, err := vcsRun(ctx, "", "svn", append(args, "--", path)...)
	if err != nil {
		return nil, stderr, vcsError("svn status", stderr, err)
	}
	var st svnStatus
	if err := xml.Unmarshal([]byte(out), &st); err != nil {
		return nil, stderr, fmt.Errorf("svn status: read its output: %w", err)
	}
	items := map[string][]string{}
	for _, e := range st.Entries {
		items[e.Status.Item] = append(items[e.Status.Item], e.Path)
	}
	return items, stderr, nil
}

var svnCommitted = regexp.MustCompile(`Committed revision ([0-9]+)\.`)

func commitSVN(ctx context.Context, root, wcRoot, message string) (string, error) {
	// The commit target is root, or its topmost new parent when root is new:
	// svn refuses to commit a folder whose parent is not in the repository.
	target := root
	for d := root; d != wcRoot; d = filepath.Dir(d) {
		items, stderr, err := svnItems(ctx, d, true)
		if err != nil {
			return "", err
		}
		// W155010: a path inside an unversioned folder is "not found".
		if len(items["unversioned"]) == 0 && !strings.Contains(stderr, "W155010") {
			break
		}
		target = d
	}
	if target != root {
		if _, stderr, err := vcsRun(ctx, "", "svn", "add", "--non-interactive", "-q", "--depth=empty", "--parents", "--", root); err != nil {
			return "", vcsError("svn add", stderr, err)
		}
	}
	// Add new files one level at a time (--depth=empty), so nothing inside a
	// new folder is added without being checked; remove missing ones.
	for level := 0; ; level++ {
		items, _, err := svnItems(ctx, root, false)
		if err != nil {
			return "", err
		}
		if missing := items["missing"]; len(missing) > 0 {
			if err := vcsEach(ctx, missing, "svn rm", "svn", "rm", "--non-interactive", "-q", "--"); err != nil {
				return "", err
			}
		}
		var add []string
		for _, p := range items["unversioned"] {
			if !vcsSkipped(root, p) {
				add = append(add, p)
			}
		}
		if len(add) == 0 {
			break
		}
		if level > 1000 {
			return "", fmt.Errorf("svn add: files below %s keep appearing", root)
		}
		if err := vcsEach(ctx, add, "svn add", "svn", "add", "--non-interactive", "-q", "--depth=empty", "--"); err != nil {
			return "", err
		}
	}
	out, stderr, err := vcsRun(ctx, "", "svn", "commit", "--non-interactive", "--force-log", "-m", message, "--", target)
	if err != nil {
		if strings.Contains(stderr, "out of date") {
			return "", vcsError("svn commit: the working copy is out of date; run `svn update`, then retry", stderr, err)
		}
		return "", vcsError("svn commit", stderr, err)
	}
	if m := svnCommitted.FindStringSubmatch(out); m != nil {
		// svn leaves a working copy at mixed revisions after a commit (the
		// folders stay at their old revision); update root to the commit so
		// that `svn info` (and a source watching this checkout) tells it.
		// Everything under root was just committed, so this cannot conflict.
		if _, stderr, err := vcsRun(ctx, "", "svn", "update", "--non-interactive", "-q", "-r", m[1], "--", root); err != nil {
			return "", vcsError("svn update after commit r"+m[1], stderr, err)
		}
		return "r" + m[1], nil
	}
	// Nothing to commit.
	out, stderr, err = vcsRun(ctx, "", "svn", "info", "--non-interactive", "--show-item", "revision", "--", root)
	if err != nil {
		return "", vcsError("svn info", stderr, err)
	}
	return "r" + out, nil
}

var brzCommitted = regexp.MustCompile(`Committed revision ([0-9]+)\.`)

func commitBrz(ctx context.Context, root, message string) (string, error) {
	treeRoot, stderr, err := vcsRun(ctx, "", "brz", "root", "--", root)
	if err != nil {
		return "", vcsError("brz root", stderr, err)
	}
	// A recursive dry run lists what `brz add` would add under the ignore
	// rules (paths relative to the tree, quoted when unusual); add those
	// charter does not skip, each by name.
	out, stderr, err := vcsRun(ctx, treeRoot, "brz", "add", "--dry-run", "--", root)
	if err != nil {
		return "", vcsError("brz add", stderr, err)
	}
	var add []string
	target := root
	for _, line := range strings.Split(out, "\n") {
		rel, ok := strings.CutPrefix(line, "adding ")
		if !ok {
			continue
		}
		if len(rel) >= 2 && strings.HasPrefix(rel, `"`) && strings.HasSuffix(rel, `"`) {
			rel = rel[1 : len(rel)-1]
		}
		p := filepath.Join(treeRoot, filepath.FromSlash(rel))
		if vcsSkipped(root, p) {
			continue
		}
		add = append(add, rel)
		// A new parent of root must be committed with it.
		if within(p, target) && len(p) < len(target) {
			target = p
		}
	}
	if len(add) > 0 {
		if _, stderr, err := vcsRun(ctx, treeRoot, "brz", append([]string{"add", "-q", "--no-recurse", "--"}, add...)...); err != nil {
			return "", vcsError("brz add", stderr, err)
		}
	}
	_, stderr, err = vcsRun(ctx, "", "brz", "commit", "-q", "-m", message, "--", target)
	if err != nil {
		if strings.Contains(stderr, "No changes to commit") {
			out, stderr, err := vcsRun(ctx, "", "brz", "revno", "--tree", "--", root)
			if err != nil {
				return "", vcsError("brz revno", stderr, err)
			}
			return "revno:" + out, nil
		}
		if strings.Contains(stderr, "out of date") {
			return "", vcsError("brz commit: the checkout is out of date; run `brz update`, then retry", stderr, err)
		}
		return "", vcsError("brz commit", stderr, err)
	}
	// -q hides "Committed revision N."; ask for the new revno.
	out, stderr, err = vcsRun(ctx, "", "brz", "revno", "--tree", "--", root)
	if err != nil {
		return "", vcsError("brz revno", stderr, err)
	}
	return "revno:" + out, nil
}

// vcsEach runs cmd with paths appended, in batches that fit a command line.
func vcsEach(ctx context.Context, paths []string, what, name string, args ...string) error {
	for len(paths) > 0 {
		n := min(len(paths), 200)
		if _, stderr, err := vcsRun(ctx, "", name, append(append([]string{}, args...), paths[:n]...)...); err != nil {
			return vcsError(what, stderr, err)
		}
		paths = paths[n:]
	}
	return nil
}

// vcsRun runs a tool with a timeout and an English UTF-8 locale, in dir
// when set; it returns trimmed stdout and stderr.
func vcsRun(ctx context.Context, dir, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, vcsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANGUAGE=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (after %s)", ctx.Err(), vcsTimeout)
	}
	return strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()), err
}

// vcsError is a tool's failure as one line: what ran, then its error
// output with URLs redacted (never a credential), cut to 400 bytes.
func vcsError(what, stderr string, err error) error {
	msg := source.RedactText(stderr)
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	var exit *exec.ExitError
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return fmt.Errorf("%s: %w (install it to commit the state)", what, err)
	case msg == "":
		return fmt.Errorf("%s: %w", what, err)
	case errors.As(err, &exit):
		return fmt.Errorf("%s: %s", what, msg)
	}
	return fmt.Errorf("%s: %s: %w", what, msg, err)
}
