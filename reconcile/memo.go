package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// memo remembers, per release, the fingerprint of the inputs its last
// successful reconcile in this process converged, so that a pass over a
// thousand unchanged releases costs a few file stats each, not a records
// read, a chart load and a render. It is only an optimisation: an entry
// older than ttl is ignored, so every release is checked against the
// cluster now and then whatever the watches say.
type memo struct {
	ttl time.Duration

	mu      sync.Mutex
	entries map[string]memoEntry
}

type memoEntry struct {
	key string
	at  time.Time
}

func newMemo(ttl time.Duration) *memo {
	return &memo{ttl: ttl, entries: map[string]memoEntry{}}
}

// fresh reports whether name converged with exactly these inputs recently.
func (m *memo) fresh(name, key string) bool {
	if m == nil || key == "" {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[name]
	return ok && e.key == key && time.Since(e.at) < m.ttl
}

// remember records that name converged with inputs key; an empty key
// forgets it.
func (m *memo) remember(name, key string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if key == "" {
		delete(m.entries, name)
		return
	}
	m.entries[name] = memoEntry{key: key, at: time.Now()}
}

// inputsKey fingerprints what decides a release's rendered output and that
// can be read without the cluster: the declaration (values inline), the
// contents of its values files and its chart (the pinned archive digest,
// else the contents of the chart in the state). It returns "" when something cannot be read: the
// release is then reconciled the long way, which reports the problem.
func inputsKey(d *Declared) string {
	h := sha256.New()
	decl, err := json.Marshal(d.Release)
	if err != nil {
		return ""
	}
	h.Write(decl)
	h.Write([]byte{0})
	h.Write([]byte(d.Source))
	h.Write([]byte{0})
	for _, vf := range d.Release.ValuesFiles {
		p, err := d.Dir.ResolvePath(vf)
		if err != nil {
			return ""
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return ""
		}
		sum := sha256.Sum256(b)
		h.Write(sum[:])
	}
	if d.Release.Digest != "" {
		h.Write([]byte(d.Release.Digest))
	} else if path, err := d.Dir.ResolveChart(d.Release.Chart); err == nil {
		if !hashTree(h, path) {
			return ""
		}
	} else {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashTree writes the contents of path, or the names and contents of
// every file below it, to w. Snapshots are fresh copies, so modification
// times say nothing; charts are small, so hashing them is cheap.
func hashTree(w io.Writer, path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	file := func(p string) error {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	}
	if !fi.IsDir() {
		return file(path) == nil
	}
	err = filepath.WalkDir(path, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		io.WriteString(w, "\x00"+rel+"\x00")
		return file(p)
	})
	return err == nil
}
