//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package gitstore

import "context"

// lock takes the Store's mutex only: without flock(2), processes must not
// share a cache folder.
func (s *Store) lock(context.Context) (unlock func(), err error) {
	s.mu.Lock()
	return s.mu.Unlock, nil
}
