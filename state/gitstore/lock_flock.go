//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package gitstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lock takes the Store's mutex and an exclusive flock(2) on the clone's
// lock file, so goroutines and processes sharing the cache folder take
// turns, waiting until it is free or ctx is done.
func (s *Store) lock(ctx context.Context) (unlock func(), err error) {
	s.mu.Lock()
	path := filepath.Join(s.dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("git %s: lock cached clone: %w", s.spec, err)
	}
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
				s.mu.Unlock()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			s.mu.Unlock()
			return nil, fmt.Errorf("git %s: lock cached clone: %w", s.spec, err)
		}
		// Polling keeps the wait cancellable; a blocking flock is not.
		select {
		case <-ctx.Done():
			f.Close()
			s.mu.Unlock()
			return nil, fmt.Errorf("git %s: lock cached clone: %w", s.spec, ctx.Err())
		case <-time.After(wait):
		}
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}
