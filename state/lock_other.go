//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package state

import (
	"context"
	"errors"
)

// LockFile is not implemented on this platform: writes to a state
// directory need flock(2).
func LockFile(ctx context.Context, path string) (unlock func(), err error) {
	return nil, errors.New("lock state: file locking is not supported on this platform")
}
