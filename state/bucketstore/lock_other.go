//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package bucketstore

import (
	"context"
	"errors"
)

// lockFile is not implemented on this platform: the store's cache needs
// flock(2).
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	return nil, errors.New("file locking is not supported on this platform")
}
