package dir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charter-sh/charter/source"
)

// quiet is how long a test waits to be sure no (further) signal comes: many
// debounce periods.
func quiet(debounce time.Duration) time.Duration { return 5 * debounce }

func TestChangesSignalsOnceForABurst(t *testing.T) {
	const debounce = 300 * time.Millisecond
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (watched string, burst func())
	}{
		{"50 file writes", func(t *testing.T) (string, func()) {
			root := t.TempDir()
			return root, func() {
				for i := range 50 {
					writeFiles(t, root, map[string][]byte{fmt.Sprintf("releases/r%02d.yaml", i): []byte("name: x\n")})
				}
			}
		}},
		{"an svn up bringing 50 files", func(t *testing.T) (string, func()) {
			p := newSVNPair(t)
			files := map[string][]byte{}
			for i := range 50 {
				files[fmt.Sprintf("releases/r%02d.yaml", i)] = []byte("name: x\n")
			}
			p.commit(t, files)
			return p.b, func() { p.update(t) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			watched, burst := tc.setup(t)
			s := newSource(t, watched, source.Options{Debounce: debounce})
			burst()
			if !waitSignal(s.Changes(), 10*time.Second) {
				t.Fatal("no signal after the burst")
			}
			if waitSignal(s.Changes(), quiet(debounce)) {
				t.Error("a second signal for one burst")
			}
		})
	}
}

func TestChangesIgnoresIgnoredPaths(t *testing.T) {
	const debounce = 100 * time.Millisecond
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{"releases/web.yaml": []byte("name: web\n")})
	s := newSource(t, root, source.Options{Debounce: debounce})
	writeFiles(t, root, map[string][]byte{
		".svn/wc.db": []byte("x"), ".svn/tmp/t1": []byte("x"), ".bzr/branch/last-revision": []byte("x"),
		"releases/web.yaml~": []byte("x"), "releases/.web.yaml.swp": []byte("x"), "releases/#web.yaml#": []byte("x"),
		".charter-tmp-1": []byte("x"), ".charter.lock": []byte("x"),
	})
	// The watcher also sees folders created after it started, so the writes
	// above under new .svn/.bzr folders would be seen were they not ignored.
	writeFiles(t, root, map[string][]byte{".svn/tmp/t2": []byte("x"), ".bzr/branch/x": []byte("x")})
	if err := os.Chmod(filepath.Join(root, "releases", "web.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	if waitSignal(s.Changes(), quiet(debounce)) {
		t.Error("signal for ignored paths or a mode change")
	}
	writeFiles(t, root, map[string][]byte{"releases/web.yaml": []byte("name: web\nchanged: true\n")})
	if !waitSignal(s.Changes(), 10*time.Second) {
		t.Error("no signal for a real change")
	}
}

func TestChangesWatchesFoldersCreatedLater(t *testing.T) {
	const debounce = 100 * time.Millisecond
	root := t.TempDir()
	s := newSource(t, root, source.Options{Debounce: debounce})
	if err := os.MkdirAll(filepath.Join(root, "charts", "hello", "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !waitSignal(s.Changes(), 10*time.Second) {
		t.Fatal("no signal for new folders")
	}
	if waitSignal(s.Changes(), quiet(debounce)) {
		t.Fatal("a second signal for one mkdir")
	}
	for _, rel := range []string{"charts/hello/templates/cm.yaml", "charts/hello/Chart.yaml"} {
		writeFiles(t, root, map[string][]byte{rel: []byte("x: 1\n")})
		if !waitSignal(s.Changes(), 10*time.Second) {
			t.Errorf("no signal for %s in a folder created after the watcher started", rel)
		}
	}
	if err := s.Err(); err != nil {
		t.Errorf("watcher error: %v", err)
	}
}

func TestChangesReportsARemovedFolder(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "state")
	writeFiles(t, root, map[string][]byte{"releases/web.yaml": []byte("name: web\n")})
	s := newSource(t, root, source.Options{Debounce: 100 * time.Millisecond})
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if !waitSignal(s.Changes(), 10*time.Second) {
		t.Fatal("no signal when the watched folder was removed")
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "removed or renamed") {
		t.Errorf("Err() = %v, want it to say the folder was removed", err)
	}
	if _, err := s.Fetch(context.Background()); err == nil {
		t.Error("fetch of a removed folder succeeded")
	}
}
