//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package dir

import "os"

// openNoFollow opens a file for reading. This platform has no O_NOFOLLOW;
// links were checked when the folder was listed.
func openNoFollow(p string) (*os.File, error) { return os.Open(p) }

// lockRun creates the lock file; this platform has no flock(2).
func lockRun(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
}

// abandoned cannot tell on this platform; run folders are only removed by
// Close.
func abandoned(string) bool { return false }
