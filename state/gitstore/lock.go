package gitstore

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/charter-sh/charter/state"
)

// lock takes the Store's mutex and an exclusive lock on the clone's lock
// file, so goroutines and processes sharing the cache folder take turns,
// waiting until it is free or ctx is done.
func (s *Store) lock(ctx context.Context) (unlock func(), err error) {
	s.mu.Lock()
	unlockFile, err := state.LockFile(ctx, filepath.Join(s.dir, "lock"))
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("git %s: lock cached clone: %w", s.spec, err)
	}
	return func() {
		unlockFile()
		s.mu.Unlock()
	}, nil
}
