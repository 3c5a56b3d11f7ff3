package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/charter-sh/charter/state"
)

// LockName is the lock file Release takes in a file:// destination; a web
// server serving the folder may serve it too (it is empty).
const LockName = ".charter-release.lock"

// dirStore is a file:// destination: a local folder. Releases are
// serialised by an flock on LockName; files are replaced by atomic renames,
// so a web server serving the folder never serves a partial file.
type dirStore struct {
	dir string
}

func newDirStore(dest string) (*dirStore, error) {
	p := strings.TrimPrefix(dest, "file://")
	p = strings.TrimPrefix(p, "localhost/")
	if p == "" {
		return nil, errors.New("no folder")
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, errors.New("not a folder")
	}
	return &dirStore{dir: p}, nil
}

func (s *dirStore) lock(ctx context.Context) (func(), error) {
	return state.LockFile(ctx, filepath.Join(s.dir, LockName))
}

// readFile's version is the content's SHA-256: the lock already excludes
// other charter releases; the version also catches other writers.
func (s *dirStore) readFile(_ context.Context, name string, max int64) ([]byte, string, error) {
	f, err := os.Open(filepath.Join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("read %s: %w", name, errNotFound)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > max {
		return nil, "", fmt.Errorf("read %s: larger than the %d byte limit", name, max)
	}
	return data, sha256Hex(data), nil
}

func (s *dirStore) writeFile(ctx context.Context, name string, data []byte, version string, replace bool) error {
	path := filepath.Join(s.dir, name)
	switch {
	case version != "":
		_, cur, err := s.readFile(ctx, name, MaxIndexSize)
		if errors.Is(err, errNotFound) {
			return fmt.Errorf("write %s: removed meanwhile: %w", name, errConflict)
		}
		if err != nil {
			return err
		}
		if cur != version {
			return fmt.Errorf("write %s: %w", name, errConflict)
		}
	case !replace:
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("write %s: %w", name, errExists)
		}
	}
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func (s *dirStore) removeFile(_ context.Context, name string) error {
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}
