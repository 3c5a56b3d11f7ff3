package dir

import (
	"path/filepath"
	"strings"
)

// ignoredName reports whether a file or folder name is left out of
// snapshots, digests and change signals: VCS metadata, editor backup, swap
// and lock files, and charter's own temporary and lock files.
func ignoredName(name string) bool {
	switch name {
	case ".svn", ".bzr", ".git", ".hg", ".charter.lock":
		return true
	}
	switch {
	case strings.HasPrefix(name, ".charter-tmp-"),
		strings.HasSuffix(name, "~"),
		strings.HasPrefix(name, ".#"),
		len(name) > 1 && strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"),
		strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".swp") || strings.HasSuffix(name, ".swo") || strings.HasSuffix(name, ".swx")):
		return true
	}
	return false
}

// ignoredRel reports whether a path relative to the watched folder lies in
// or is an ignored name at any depth.
func ignoredRel(rel string) bool {
	for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
		if ignoredName(part) {
			return true
		}
	}
	return false
}

// within reports whether p is root or below it (both cleaned, absolute).
func within(root, p string) bool {
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}
