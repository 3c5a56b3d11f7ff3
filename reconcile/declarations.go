package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/charter-sh/charter/state"
)

// Declared is one release's declaration and where it lives.
type Declared struct {
	Release *state.Release
	// Dir is the state (a directory or a source's snapshot) holding it:
	// its charts and values files resolve there.
	Dir *state.Dir
	// Source is the redacted location the declaration came from and
	// Revision that source's revision (git commit, svn revision, digest).
	Source   string
	Revision string
}

// Declarations is the declared state the reconciler reads.
type Declarations interface {
	// Scan returns every readable declaration. A declaration that exists but
	// cannot be used is reported as a *state.ReleaseError, so its release is
	// neither reconciled nor uninstalled; any other error means the state
	// cannot be read at all.
	Scan(ctx context.Context) ([]*state.Release, []error)
	// Lookup returns one release's declaration; state.ErrNotFound when no
	// source declares it.
	Lookup(ctx context.Context, name string) (*Declared, error)
	// Holds reports whether a release recorded as applied from source may be
	// judged by these declarations: false while that source has not been
	// read successfully, so its releases are not uninstalled for lack of news.
	Holds(source string) bool
}

// DirDeclarations are the declarations of one state directory, read in
// place (the CLI's view).
type DirDeclarations struct {
	Dir *state.Dir
	// Location names the state in records (default: the folder's path); a
	// CLI editing a git or bucket store through a local clone passes the
	// store's redacted URL, which is what a daemon following it records too.
	Location string
}

var _ Declarations = DirDeclarations{}

// Scan reads every declaration of the directory.
func (d DirDeclarations) Scan(ctx context.Context) ([]*state.Release, []error) {
	return d.Dir.Scan(ctx)
}

// Lookup reads one declaration; its revision is the directory's digest.
func (d DirDeclarations) Lookup(ctx context.Context, name string) (*Declared, error) {
	rel, err := d.Dir.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	rev, err := d.Dir.Revision(ctx)
	if err != nil {
		return nil, err
	}
	return &Declared{Release: rel, Dir: d.Dir, Source: d.location(), Revision: rev}, nil
}

func (d DirDeclarations) location() string {
	if d.Location != "" {
		return d.Location
	}
	return d.Dir.Root()
}

// Holds is true: a directory is always read in full.
func (d DirDeclarations) Holds(string) bool { return true }

// Snapshot is one source's latest good snapshot.
type Snapshot struct {
	Source   string // redacted location
	Revision string
	Dir      *state.Dir
}

// SourceSet combines the latest snapshots of several sources. A release
// declared by two sources is an error reported for both, and neither copy
// is applied (no flip-flop between them). Safe for concurrent use.
type SourceSet struct {
	mu    sync.RWMutex
	snaps map[string]*Snapshot // by source
	order []string             // sources, as configured

	// index caches scan: snapshots never change, only get replaced.
	index     map[string]*Declared
	indexErrs []error
}

var _ Declarations = (*SourceSet)(nil)

// NewSourceSet returns a set expecting the given sources (redacted
// locations). Until a source has a snapshot, Holds is false for it.
func NewSourceSet(sources []string) *SourceSet {
	return &SourceSet{snaps: map[string]*Snapshot{}, order: append([]string(nil), sources...)}
}

// Set replaces a source's snapshot.
func (s *SourceSet) Set(snap *Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snaps[snap.Source] = snap
	s.index, s.indexErrs = nil, nil
}

// Get returns a source's current snapshot, or nil.
func (s *SourceSet) Get(source string) *Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snaps[source]
}

// Holds reports whether the source has been read successfully (or is not
// one of this set's sources: such records are judged as undeclared).
func (s *SourceSet) Holds(source string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	known := false
	for _, o := range s.order {
		if o == source {
			known = true
		}
	}
	return !known || s.snaps[source] != nil
}

// scan reads every snapshot: releases by name with their snapshot, and
// errors. Names declared twice become errors for both sources.
func (s *SourceSet) scan(ctx context.Context) (map[string]*Declared, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index != nil {
		return s.index, s.indexErrs
	}
	snaps := make([]*Snapshot, 0, len(s.snaps))
	for _, o := range s.order {
		if sn := s.snaps[o]; sn != nil {
			snaps = append(snaps, sn)
		}
	}

	found := map[string][]*Declared{}
	var errs []error
	for _, sn := range snaps {
		rels, serrs := sn.Dir.Scan(ctx)
		for _, e := range serrs {
			var re *state.ReleaseError
			if errors.As(e, &re) {
				errs = append(errs, &state.ReleaseError{Release: re.Release, Err: fmt.Errorf("%s: %w", sn.Source, re.Err)})
				continue
			}
			errs = append(errs, fmt.Errorf("%s: %w", sn.Source, e))
		}
		for _, r := range rels {
			found[r.Name] = append(found[r.Name], &Declared{Release: r, Dir: sn.Dir, Source: sn.Source, Revision: sn.Revision})
		}
	}
	out := map[string]*Declared{}
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ds := found[n]
		if len(ds) == 1 {
			out[n] = ds[0]
			continue
		}
		var srcs []string
		for _, d := range ds {
			srcs = append(srcs, d.Source)
		}
		errs = append(errs, &state.ReleaseError{Release: n, Err: fmt.Errorf("release %q is declared in %d sources (%v); fix one: neither is applied", n, len(ds), srcs)})
	}
	if ctx.Err() == nil {
		s.index, s.indexErrs = out, errs
	}
	return out, errs
}

// Scan returns the releases of every source's snapshot.
func (s *SourceSet) Scan(ctx context.Context) ([]*state.Release, []error) {
	found, errs := s.scan(ctx)
	rels := make([]*state.Release, 0, len(found))
	for _, d := range found {
		rels = append(rels, d.Release)
	}
	sort.Slice(rels, func(i, j int) bool { return rels[i].Name < rels[j].Name })
	// A broken file in one source only concerns that release; the state as
	// a whole stays readable.
	var out []error
	for _, e := range errs {
		var re *state.ReleaseError
		if errors.As(e, &re) {
			out = append(out, e)
		}
	}
	return rels, out
}

// Lookup finds the one source declaring name.
func (s *SourceSet) Lookup(ctx context.Context, name string) (*Declared, error) {
	found, errs := s.scan(ctx)
	for _, e := range errs {
		var re *state.ReleaseError
		if errors.As(e, &re) && re.Release == name {
			return nil, e
		}
	}
	d, ok := found[name]
	if !ok {
		return nil, fmt.Errorf("release %q: %w", name, state.ErrNotFound)
	}
	return d, nil
}
