package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// tmpPrefix starts the name of every temporary file the store writes.
const tmpPrefix = ".charter-tmp-"

// errFileExists is returned by writeFile in exclusive mode when the final
// name is taken.
var errFileExists = errors.New("file exists")

// writeFile puts data at path so that path only ever holds a complete file:
// data goes to a temporary file in the same folder, which is synced, then
// published. With exclusive set, publishing is a hard link that fails with
// errFileExists when path exists (so two writers cannot both win); otherwise
// it is a rename that replaces path. The folder is synced afterwards so the
// new name survives a crash. A cancelled ctx stops the write before it is
// published. The temporary file is removed in every case.
//
// wrap, when not nil, wraps the writer of the temporary file; tests use it
// to fail a write half way.
func writeFile(ctx context.Context, path string, data []byte, perm fs.FileMode, exclusive bool, wrap func(io.Writer) io.Writer) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		// After a successful rename tmp is gone; after a link it is a
		// second name for the published file. Either way, drop it.
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("remove temporary file: %w", rmErr)
		}
	}()

	var w io.Writer = f
	if wrap != nil {
		w = wrap(f)
	}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}

	if exclusive {
		if err := os.Link(tmp, path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return errFileExists
			}
			return fmt.Errorf("publish %s: %w", path, err)
		}
	} else if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("publish %s: %w", path, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename, link or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}
