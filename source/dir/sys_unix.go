//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package dir

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// openNoFollow opens a regular file for reading, refusing a symbolic link
// that replaced it after it was examined.
func openNoFollow(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%w: %s became a symbolic link", errChanged, p)
	}
	return f, err
}

// lockRun takes an exclusive lock on a run folder's lock file for the life
// of the returned file, so that other processes know the folder is in use.
func lockRun(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// abandoned reports whether no one holds the lock file of a run folder: its
// owner exited without Close (a crash) and the folder can be removed.
func abandoned(lockPath string) bool {
	f, err := lockRun(lockPath)
	if err != nil {
		return false
	}
	f.Close()
	return true
}
