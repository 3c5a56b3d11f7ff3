package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// vcsDirs are version-control folders Revision skips at any depth.
var vcsDirs = map[string]bool{".git": true, ".svn": true, ".bzr": true, ".hg": true}

// Revision returns "sha256:<hex>", a digest of the content of the state
// directory: the path and bytes of every regular file and the path and
// target of every symbolic link, in the whole tree — so it covers
// releases/, charts/, values/ and any other file a declaration may
// reference. Temporary, editor and lock files (the names List ignores) and
// version-control folders (.git .svn .bzr .hg) are left out, so the digest
// changes exactly when what charter would read changes. It reads every file
// once and writes nothing.
func (d *Dir) Revision(ctx context.Context) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(d.root, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path == d.root {
			return nil
		}
		name := de.Name()
		if de.IsDir() {
			if vcsDirs[name] {
				return filepath.SkipDir
			}
			return nil
		}
		if ignoredName(name) {
			return nil
		}
		rel, err := filepath.Rel(d.root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case de.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "link %d:%s %d:%s\n", len(rel), rel, len(target), target)
		case de.Type().IsRegular():
			sum, err := fileDigest(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "file %d:%s %s\n", len(rel), rel, sum)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("compute state revision: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
