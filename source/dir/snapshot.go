package dir

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// errChanged marks a read that saw the folder change under it; Fetch
// retries it.
var errChanged = errors.New("folder changed while it was read")

// stamp is what a file or folder looked like when it was read.
type stamp struct {
	size  int64
	mtime int64
	ino   uint64
	ctime int64
}

func stampOf(fi os.FileInfo) stamp {
	ino, ctime := fileID(fi)
	return stamp{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: ino, ctime: ctime}
}

// walker reads the folder once: it hashes every file and, with dst set,
// copies it there. It records what it read so that check can tell whether
// anything changed since.
type walker struct {
	ctx     context.Context
	root    string // the folder, symlinks resolved
	dst     string // snapshot folder to fill, or "" to only hash
	maxSize int64
	digest  hash.Hash
	seen    map[string]stamp // real path → stamp when read
}

// read walks the folder and returns its digest ("sha256:<hex>").
func (w *walker) read() (string, error) {
	w.digest = sha256.New()
	w.seen = map[string]stamp{}
	if err := w.dir(w.root, "", map[string]bool{}); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(w.digest.Sum(nil)), nil
}

// check reports errChanged when a file or folder read earlier no longer
// has the size and modification time it had.
func (w *walker) check() error {
	for p, was := range w.seen {
		fi, err := os.Lstat(p)
		if err != nil || stampOf(fi) != was {
			return fmt.Errorf("%w: %s", errChanged, w.rel(p))
		}
	}
	return nil
}

func (w *walker) rel(p string) string {
	r, err := filepath.Rel(w.root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

// dir reads the folder real (symlinks resolved) as rel in the snapshot.
// onStack holds the real folders being read, to skip link cycles.
func (w *walker) dir(real, rel string, onStack map[string]bool) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return w.vanished(real, err)
	}
	// A folder's mtime changes when an entry is added, removed or renamed.
	w.seen[real] = stampOf(fi)
	entries, err := os.ReadDir(real) // sorted by name, as filepath.WalkDir
	if err != nil {
		return w.vanished(real, err)
	}
	if w.dst != "" {
		if err := os.MkdirAll(filepath.Join(w.dst, filepath.FromSlash(rel)), 0o755); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	onStack[real] = true
	defer delete(onStack, real)
	for _, e := range entries {
		name := e.Name()
		if ignoredName(name) {
			continue
		}
		p := filepath.Join(real, name)
		r := path.Join(rel, name)
		typ := e.Type()
		if typ&fs.ModeSymlink != 0 {
			target, ok := w.resolve(p)
			if !ok {
				continue // outside the folder, ignored or dangling: never followed
			}
			tfi, err := os.Stat(target)
			if err != nil {
				continue
			}
			p, typ = target, tfi.Mode().Type()
			// The link itself: retargeting it changes the folder's content.
			lfi, err := os.Lstat(filepath.Join(real, name))
			if err != nil {
				return w.vanished(real, err)
			}
			w.seen[filepath.Join(real, name)] = stampOf(lfi)
		}
		switch {
		case typ.IsDir():
			if onStack[p] {
				continue // a link back to a folder being read
			}
			if err := w.dir(p, r, onStack); err != nil {
				return err
			}
		case typ.IsRegular():
			if err := w.file(p, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve follows the symbolic link p; ok is false when it dangles or
// resolves outside the folder or into an ignored path.
func (w *walker) resolve(p string) (string, bool) {
	target, err := filepath.EvalSymlinks(p)
	if err != nil || !within(w.root, target) {
		return "", false
	}
	if rel, err := filepath.Rel(w.root, target); err != nil || ignoredRel(rel) {
		return "", false
	}
	return target, true
}

// file hashes (and copies) the regular file real as rel.
func (w *walker) file(real, rel string) error {
	fi, err := os.Lstat(real)
	if err != nil {
		return w.vanished(real, err)
	}
	if fi.Size() > w.maxSize {
		return fmt.Errorf("%s is %d bytes, more than the %d bytes allowed for one file", rel, fi.Size(), w.maxSize)
	}
	f, err := openNoFollow(real)
	if err != nil {
		return w.vanished(real, err)
	}
	defer f.Close()
	if ofi, err := f.Stat(); err != nil || !ofi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is no longer a regular file", errChanged, rel)
	}
	h := sha256.New()
	var out io.Writer = h
	var dst *os.File
	if w.dst != "" {
		dst, err = os.OpenFile(filepath.Join(w.dst, filepath.FromSlash(rel)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
		defer dst.Close()
		out = io.MultiWriter(h, dst)
	}
	n, err := io.Copy(out, io.LimitReader(f, w.maxSize+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	if n > w.maxSize {
		return fmt.Errorf("%s is more than the %d bytes allowed for one file", rel, w.maxSize)
	}
	if dst != nil {
		if err := dst.Close(); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	if n != fi.Size() {
		return fmt.Errorf("%w: %s", errChanged, rel)
	}
	w.seen[real] = stampOf(fi)
	// The same line as state.Dir.Revision writes for a regular file.
	fmt.Fprintf(w.digest, "file %d:%s %s\n", len(rel), rel, hex.EncodeToString(h.Sum(nil)))
	return nil
}

// vanished turns "it disappeared while we read" into errChanged; other
// errors are returned as they are.
func (w *walker) vanished(p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) && p != w.root {
		return fmt.Errorf("%w: %s disappeared", errChanged, w.rel(p))
	}
	return fmt.Errorf("read %s: %w", p, err)
}
