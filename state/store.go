package state

import (
	"context"
	"fmt"
)

// Store is a declared state the CLI can change: a local, up-to-date Dir to
// read, and Edit to publish a change as one attributable unit (a git
// commit, an svn/brz commit, a set of conditional object writes).
//
// Backends: *DirStore (a folder, optionally committing to its SVN or
// Bazaar checkout), state/gitstore (a cached clone that commits and pushes)
// and state/bucketstore (an object-store prefix written with conditional
// puts). cmd/charter picks one from the --state URL.
type Store interface {
	// Dir returns a local view of the state, refreshed from its origin,
	// for reading.
	Dir(ctx context.Context) (*Dir, error)
	// Edit applies fn to a fresh local view and publishes the result with
	// message (e.g. "deploy taco-tuesday: mychart 0.1.0"). When a concurrent
	// change wins the race (a rejected push, a failed conditional write) Edit
	// refreshes and calls fn again, so fn must derive its change from the Dir
	// it is given; an error from fn (such as ErrExists found on retry) is
	// returned unchanged and nothing is published. It returns the revision
	// of the published change ("" when the backend has none).
	Edit(ctx context.Context, message string, fn func(*Dir) error) (revision string, err error)
	// String is the store's location with credentials redacted.
	String() string
}

// DirStore is a Store on a local folder. The folder may be an SVN or
// Bazaar working copy: with Commit set, Edit commits the change with that
// tool (see CommitVCS).
type DirStore struct {
	dir *Dir
	// Commit, when set, is called after fn succeeded to publish the change
	// (svn/brz commit). Its error is returned; the local edit stays.
	Commit func(ctx context.Context, root, message string) (revision string, err error)
}

var _ Store = (*DirStore)(nil)

// NewDirStore opens (create: initialises) the state folder root.
func NewDirStore(root string, create bool) (*DirStore, error) {
	var d *Dir
	var err error
	if create {
		d, err = Init(root)
	} else {
		d, err = Open(root)
	}
	if err != nil {
		return nil, err
	}
	return &DirStore{dir: d}, nil
}

// Dir returns the folder itself.
func (s *DirStore) Dir(context.Context) (*Dir, error) { return s.dir, nil }

// Edit applies fn to the folder and, with Commit set, commits it.
func (s *DirStore) Edit(ctx context.Context, message string, fn func(*Dir) error) (string, error) {
	if err := fn(s.dir); err != nil {
		return "", err
	}
	if s.Commit == nil {
		return "", nil
	}
	rev, err := s.Commit(ctx, s.dir.Root(), message)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", s.dir.Root(), err)
	}
	return rev, nil
}

// String is the folder's path.
func (s *DirStore) String() string { return s.dir.Root() }
