package dir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charter-sh/charter/source"
)

func TestSymlinks(t *testing.T) {
	outside := t.TempDir()
	writeFiles(t, outside, map[string][]byte{"secret.yaml": []byte("password: hunter2\n"), "dir/x.yaml": []byte("x: 1\n")})
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{
		"releases/web.yaml":       []byte("name: web\n"),
		"charts/hello/Chart.yaml": []byte("name: hello\n"),
	})
	for link, target := range map[string]string{
		"releases/alias.yaml":  "web.yaml",                                     // inside, to a file
		"charts/hello-link":    "hello",                                        // inside, to a folder
		"releases/leak.yaml":   filepath.Join(outside, "secret.yaml"),          // outside, absolute
		"values/leak.yaml":     "../../" + filepath.Base(outside) + "/x",       // outside, relative (dangling or not)
		"values/leakdir":       filepath.Join(outside, "dir"),                  // outside, a folder
		"values/dangling.yaml": "nowhere.yaml",                                 // dangling
		"charts/hello/loop":    "..",                                           // a cycle
		"values/hgmeta":        filepath.Join(root, ".hg"),                     // into an ignored folder
		"values/up":            filepath.Join(root, "..", filepath.Base(root)), // the root itself, through ..
	} {
		p := filepath.Join(root, filepath.FromSlash(link))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, root, map[string][]byte{".hg/store/data": []byte("12\n")})

	s := newSource(t, root, source.Options{})
	a := fetch(t, s)
	for _, tc := range []struct {
		rel  string
		want string // "" means absent
	}{
		{"releases/web.yaml", "name: web\n"},
		{"releases/alias.yaml", "name: web\n"},
		{"charts/hello-link/Chart.yaml", "name: hello\n"},
		{"releases/leak.yaml", ""},
		{"values/leak.yaml", ""},
		{"values/leakdir", ""},
		{"values/dangling.yaml", ""},
		{"charts/hello/loop", ""},
		{"values/hgmeta", ""},
		{"values/up", ""},
	} {
		p := filepath.Join(a.Path, filepath.FromSlash(tc.rel))
		fi, err := os.Lstat(p)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s is in the snapshot (%s), want it skipped", tc.rel, fi.Mode())
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s = %q, %v; want %q", tc.rel, got, err, tc.want)
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			t.Errorf("%s is a symbolic link in the snapshot, want a copy", tc.rel)
		}
	}
	// Nothing outside the folder is read: changing it changes nothing.
	writeFiles(t, outside, map[string][]byte{"secret.yaml": []byte("password: changed\n")})
	if b := fetch(t, s); b.Digest != a.Digest {
		t.Errorf("digest changed with a file outside the folder: %s → %s", a.Digest, b.Digest)
	}
}

func TestFileSizeCap(t *testing.T) {
	t.Run("a file over the cap is an error naming it", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, map[string][]byte{
			"values/ok.yaml":  []byte(strings.Repeat("a", 1024)),
			"values/big.yaml": []byte(strings.Repeat("b", 1025)),
		})
		_, err := newSource(t, root, source.Options{MaxFileSize: 1024}).Fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), "values/big.yaml") || !strings.Contains(err.Error(), "1024 bytes") {
			t.Fatalf("fetch with a 1025-byte file and a 1024-byte cap: %v; want an error naming values/big.yaml and the cap", err)
		}
	})
	t.Run("a 1 GiB file fails fast in bounded memory", func(t *testing.T) {
		root := t.TempDir()
		f, err := os.Create(filepath.Join(root, "huge.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(1 << 30); err != nil { // sparse: costs no disk
			t.Fatal(err)
		}
		f.Close()
		s := newSource(t, root, source.Options{})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		_, err = s.Fetch(context.Background())
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), "huge.bin") {
			t.Fatalf("fetch with a 1 GiB file: %v; want a size error naming huge.bin", err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
			t.Errorf("fetch allocated %d bytes for a file over the cap, want < 16 MiB", alloc)
		}
		if took > 5*time.Second {
			t.Errorf("fetch took %s to refuse a 1 GiB file: it read it", took)
		}
	})
}

func TestIgnoredFilesAreLeftOut(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{"releases/web.yaml": []byte("name: web\n")})
	s := newSource(t, root, source.Options{})
	a := fetch(t, s)
	ignored := []string{
		".svn/wc.db", ".bzr/checkout/dirstate", ".git/HEAD", ".hg/store", "releases/.git",
		"releases/web.yaml~", "releases/.web.yaml.swp", "releases/.web.yaml.swx", "releases/#web.yaml#",
		"releases/.#web.yaml", ".charter-tmp-123", "releases/.charter-tmp-9", ".charter.lock",
	}
	for _, rel := range ignored {
		writeFiles(t, root, map[string][]byte{rel: []byte("junk")})
	}
	b := fetch(t, s)
	if b.Digest != a.Digest || b.Path != a.Path {
		t.Errorf("ignored files changed the artifact: %+v → %+v", a, b)
	}
	for _, rel := range ignored {
		if _, err := os.Lstat(filepath.Join(b.Path, filepath.FromSlash(rel))); err == nil {
			t.Errorf("%s is in the snapshot", rel)
		}
	}
}

func TestSnapshots(t *testing.T) {
	root := t.TempDir()
	cache := t.TempDir()
	s := newSource(t, root, source.Options{CacheDir: cache})
	snapshots := func() []string {
		m, _ := filepath.Glob(filepath.Join(s.runDir, "snap-*"))
		return m
	}
	var arts []*source.Artifact
	for i := range 3 {
		writeFiles(t, root, map[string][]byte{"releases/web.yaml": []byte(fmt.Sprintf("name: web\nn: %d\n", i))})
		arts = append(arts, fetch(t, s))
	}
	t.Run("an unchanged folder gives the same artifact and writes nothing", func(t *testing.T) {
		before := snapshots()
		again := fetch(t, s)
		if *again != *arts[2] {
			t.Errorf("refetch %+v, want %+v", again, arts[2])
		}
		if after := snapshots(); len(after) != len(before) {
			t.Errorf("snapshots %v → %v: an unchanged fetch wrote one", before, after)
		}
	})
	t.Run("the previous snapshot is kept and older ones removed", func(t *testing.T) {
		if _, err := os.Stat(arts[0].Path); !os.IsNotExist(err) {
			t.Errorf("the snapshot two fetches ago still exists: %v", err)
		}
		got, err := os.ReadFile(filepath.Join(arts[1].Path, "releases", "web.yaml"))
		if err != nil || string(got) != "name: web\nn: 1\n" {
			t.Errorf("the previous snapshot: %q, %v; want it intact", got, err)
		}
		if n := len(snapshots()); n != 2 {
			t.Errorf("%d snapshots on disk, want 2", n)
		}
	})
	t.Run("Close removes the snapshots and closes Changes", func(t *testing.T) {
		s2 := newSource(t, root, source.Options{CacheDir: cache})
		a := fetch(t, s2)
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(a.Path); !os.IsNotExist(err) {
			t.Errorf("snapshot survives Close: %v", err)
		}
		select {
		case _, ok := <-s2.Changes():
			if ok {
				t.Error("Changes delivered a value after Close, want it closed")
			}
		case <-time.After(5 * time.Second):
			t.Error("Changes not closed by Close")
		}
		if _, err := s2.Fetch(context.Background()); err == nil {
			t.Error("Fetch after Close succeeded")
		}
		// The first Source is unaffected by the second sharing its cache.
		if _, err := os.Stat(arts[2].Path); err != nil {
			t.Errorf("another Source's snapshot was removed: %v", err)
		}
	})
	t.Run("a crashed run's snapshots are removed by the next New", func(t *testing.T) {
		base := filepath.Dir(s.runDir)
		stale := filepath.Join(base, "run-crashed")
		writeFiles(t, stale, map[string][]byte{"lock": {}, "snap-1/releases/x.yaml": []byte("x")})
		newSource(t, root, source.Options{CacheDir: cache})
		if _, err := os.Stat(stale); !os.IsNotExist(err) {
			t.Errorf("abandoned run folder still there: %v", err)
		}
		if _, err := os.Stat(s.runDir); err != nil {
			t.Errorf("a live Source's run folder was removed: %v", err)
		}
	})
}

func TestNewRefuses(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	writeFiles(t, root, map[string][]byte{"file": []byte("x")})
	for _, tc := range []struct {
		name, path, cache, want string
	}{
		{"a missing folder", filepath.Join(root, "nope"), t.TempDir(), "no such file"},
		{"a file", file, t.TempDir(), "not a folder"},
		{"no cache folder", root, "", "no cache folder"},
		{"a cache inside the folder", root, filepath.Join(root, ".cache"), "inside it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.path, source.Options{CacheDir: tc.cache})
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v; want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestFetchIsConsistentWhileFilesChange changes a.yaml then z.yaml (each
// replaced by a rename, as svn and editors do) every 10ms, with a quiet
// spell after every tenth change, while fetching;
// reading m.bin between them takes a few milliseconds, so without the
// consistency checks about one read in ten is torn. A snapshot
// may show a state the folder was in — both files at generation n, or a at
// n+1 and z at n — but never a torn read: z newer than a.
func TestFetchIsConsistentWhileFilesChange(t *testing.T) {
	root := t.TempDir()
	content := func(n int) []byte { return []byte(strings.Repeat("#", n%7) + fmt.Sprintf("gen %d\n", n)) }
	put := func(name string, data []byte) {
		tmp := filepath.Join(root, ".charter-tmp-"+name)
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Error(err)
		}
		if err := os.Rename(tmp, filepath.Join(root, name)); err != nil {
			t.Error(err)
		}
	}
	put("a.yaml", content(0))
	put("m.bin", make([]byte, 4<<20))
	put("z.yaml", content(0))
	s := newSource(t, root, source.Options{})
	gen := func(b []byte) int {
		var n int
		if _, err := fmt.Sscanf(strings.TrimLeft(string(b), "#"), "gen %d", &n); err != nil {
			t.Fatalf("unreadable generation %q", b)
		}
		return n
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ctx.Err() == nil; n++ {
			put("a.yaml", content(n))
			put("z.yaml", content(n))
			if n%10 == 0 {
				time.Sleep(150 * time.Millisecond) // a quiet spell: fetches can succeed
			} else {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	var ok, gaveUp, mid int
	for ctx.Err() == nil {
		a, err := s.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if !strings.Contains(err.Error(), "kept changing") {
				t.Fatalf("fetch: %v", err)
			}
			gaveUp++
			continue
		}
		x, _ := os.ReadFile(filepath.Join(a.Path, "a.yaml"))
		z, _ := os.ReadFile(filepath.Join(a.Path, "z.yaml"))
		switch ga, gz := gen(x), gen(z); {
		case ga == gz:
		case ga == gz+1:
			mid++
		default:
			t.Fatalf("torn snapshot: a.yaml at generation %d, z.yaml at %d", ga, gz)
		}
		ok++
	}
	wg.Wait()
	t.Logf("%d consistent snapshots (%d in a burst's middle), %d fetches gave up", ok, mid, gaveUp)
	if ok == 0 {
		t.Error("no fetch succeeded while the folder changed in bursts")
	}
}

func TestFetchGivesUpOnAFolderThatNeverSettles(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{"a.yaml": []byte("n: 0\n")})
	s := newSource(t, root, source.Options{})
	n := 0
	s.afterCopy = func() {
		n++
		writeFiles(t, root, map[string][]byte{"a.yaml": []byte(fmt.Sprintf("n: %d%s\n", n, strings.Repeat(" ", n)))})
	}
	_, err := s.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "kept changing during 6 reads") {
		t.Fatalf("fetch of a folder changing during every read: %v; want it to give up after 6 reads", err)
	}
	if n != fetchAttempts {
		t.Errorf("%d reads, want %d", n, fetchAttempts)
	}
	if m, _ := filepath.Glob(filepath.Join(s.runDir, "snap-*")); len(m) != 0 {
		t.Errorf("failed reads left snapshots: %v", m)
	}
	s.afterCopy = nil
	a := fetch(t, s)
	if got, _ := os.ReadFile(filepath.Join(a.Path, "a.yaml")); !strings.HasPrefix(string(got), fmt.Sprintf("n: %d", n)) {
		t.Errorf("after the folder settled: a.yaml = %q", got)
	}
}
