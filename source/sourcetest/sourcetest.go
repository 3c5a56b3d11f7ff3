// Package sourcetest is the conformance suite every source backend runs:
// snapshots are complete and consistent, unchanged origins give the same
// revision without new content, changes show up, and credentials never
// appear in String() or errors.
package sourcetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charter-sh/charter/source"
)

// Harness is one backend under test, with a way to change its origin.
type Harness struct {
	// Source reads the origin.
	Source source.Source
	// Write publishes files to the origin as one change (an svn/git commit,
	// object puts): path (slash-separated, relative to the state root) →
	// content; a nil content deletes the file.
	Write func(t testing.TB, files map[string][]byte)
	// Secret, when set, is a credential the source was opened with; it must
	// never appear in String() or in an error.
	Secret string
	// Broken, when set, returns a Source for the same origin that cannot be
	// reached or authenticated; Fetch must fail without leaking Secret.
	Broken func(t testing.TB) source.Source
}

// decl is a small release declaration.
func decl(name, msg string) []byte {
	return []byte("apiVersion: charter.sh/v1\nkind: Release\nname: " + name + "\nchart: charts/hello\nvalues:\n  message: " + msg + "\n")
}

// Run runs the suite. newHarness must return an origin that already holds
// nothing or only unrelated files; the suite writes what it needs.
func Run(t *testing.T, newHarness func(t *testing.T) *Harness) {
	ctx := context.Background()

	t.Run("snapshot holds what the origin holds", func(t *testing.T) {
		h := newHarness(t)
		h.Write(t, map[string][]byte{
			"releases/web.yaml":       decl("web", "one"),
			"values/common.yaml":      []byte("a: 1\n"),
			"charts/hello/Chart.yaml": []byte("apiVersion: v2\nname: hello\nversion: 0.1.0\n"),
		})
		a := mustFetch(t, h.Source)
		checkFile(t, a, "releases/web.yaml", decl("web", "one"))
		checkFile(t, a, "values/common.yaml", []byte("a: 1\n"))
		checkFile(t, a, "charts/hello/Chart.yaml", []byte("apiVersion: v2\nname: hello\nversion: 0.1.0\n"))
		if a.Revision == "" || !strings.HasPrefix(a.Digest, "sha256:") {
			t.Errorf("artifact revision %q digest %q: want a revision and a sha256: digest", a.Revision, a.Digest)
		}
	})

	t.Run("unchanged origin gives the same revision and digest", func(t *testing.T) {
		h := newHarness(t)
		h.Write(t, map[string][]byte{"releases/web.yaml": decl("web", "one")})
		a := mustFetch(t, h.Source)
		b := mustFetch(t, h.Source)
		if a.Revision != b.Revision || a.Digest != b.Digest {
			t.Errorf("second fetch without change: %q/%q, then %q/%q", a.Revision, a.Digest, b.Revision, b.Digest)
		}
		checkFile(t, b, "releases/web.yaml", decl("web", "one"))
	})

	t.Run("a change shows up as a new revision with the new content", func(t *testing.T) {
		h := newHarness(t)
		h.Write(t, map[string][]byte{"releases/web.yaml": decl("web", "one"), "releases/old.yaml": decl("old", "x")})
		a := mustFetch(t, h.Source)
		h.Write(t, map[string][]byte{"releases/web.yaml": decl("web", "two"), "releases/old.yaml": nil, "releases/new.yaml": decl("new", "y")})
		b := waitForChange(t, h.Source, a)
		if b.Revision == a.Revision || b.Digest == a.Digest {
			t.Errorf("after a change: revision %q→%q digest %q→%q, want both to change", a.Revision, b.Revision, a.Digest, b.Digest)
		}
		checkFile(t, b, "releases/web.yaml", decl("web", "two"))
		checkFile(t, b, "releases/new.yaml", decl("new", "y"))
		if _, err := os.Stat(filepath.Join(b.Path, "releases", "old.yaml")); !os.IsNotExist(err) {
			t.Errorf("deleted file still in the snapshot: %v", err)
		}
	})

	t.Run("String never shows the secret", func(t *testing.T) {
		h := newHarness(t)
		if h.Secret != "" && strings.Contains(h.Source.String(), h.Secret) {
			t.Errorf("String() = %q shows the secret", h.Source.String())
		}
	})

	t.Run("an unreachable origin fails without leaking credentials", func(t *testing.T) {
		h := newHarness(t)
		if h.Broken == nil {
			t.Skip("backend has no broken variant")
		}
		s := h.Broken(t)
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := s.Fetch(ctx)
		if err == nil {
			t.Fatal("fetch from a broken origin succeeded")
		}
		if h.Secret != "" && (strings.Contains(err.Error(), h.Secret) || strings.Contains(s.String(), h.Secret)) {
			t.Errorf("error or String leaks the secret: %v / %s", err, s.String())
		}
	})
}

func mustFetch(t *testing.T, s source.Source) *source.Artifact {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := s.Fetch(ctx)
	if err != nil {
		t.Fatalf("fetch %s: %v", s, err)
	}
	if a.Path == "" {
		t.Fatal("artifact has no path")
	}
	return a
}

// waitForChange fetches until the revision moves (sources that notice
// changes asynchronously get a few seconds).
func waitForChange(t *testing.T, s source.Source, old *source.Artifact) *source.Artifact {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		a := mustFetch(t, s)
		if a.Revision != old.Revision || a.Digest != old.Digest || time.Now().After(deadline) {
			return a
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func checkFile(t *testing.T, a *source.Artifact, rel string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(a.Path, filepath.FromSlash(rel)))
	if err != nil {
		t.Errorf("snapshot lacks %s: %v", rel, err)
		return
	}
	if string(got) != string(want) {
		t.Errorf("%s = %q, want %q", rel, got, want)
	}
}
