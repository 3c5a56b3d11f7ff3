package git

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/charter-sh/charter/source"
)

const (
	defaultMaxFileSize = 10 << 20
	defaultTimeout     = 60 * time.Second
	// maxPacks bounds the cached repository: each incremental fetch adds a
	// pack file; past this many the repository is recreated on the next
	// fetch.
	maxPacks = 20
	// fetchedRef is where the cached repository keeps what was fetched.
	fetchedRef = plumbing.ReferenceName("refs/charter/fetched")
)

// ErrRefNotFound is wrapped by Fetch's error when the branch, tag or commit
// the location names is not on the remote (a deleted branch, a tag not
// pushed yet, no tag matching the semver range).
var ErrRefNotFound = errors.New("not found on the remote")

// Source is a git repository read with go-git. See the package
// documentation for what Fetch guarantees. Its methods may be called from
// several goroutines; Fetches run one at a time.
type Source struct {
	spec    Spec
	auth    transport.AuthMethod
	dir     string // cache folder of this source
	maxSize int64
	timeout time.Duration
	secrets []string

	mu       sync.Mutex
	closed   bool
	last     *source.Artifact
	lastName string
	lastHash plumbing.Hash
	lastSnap string // snapshot folder holding last.Path
	stats    Stats
}

// Stats counts the network operations of a Source.
type Stats struct {
	// ListRemote counts ls-remote round trips (one per Fetch).
	ListRemote int
	// Fetches counts object downloads (only when the resolved commit moved
	// and is not cached yet).
	Fetches int
}

var (
	_ source.Source = (*Source)(nil)
	_ source.Closer = (*Source)(nil)
)

// New returns a Source for a git location (see ParseURL). It checks the
// location and reads key and known_hosts files, but does not connect:
// network errors surface in Fetch. opts.CacheDir is required.
func New(location string, opts source.Options) (*Source, error) {
	spec, err := ParseURL(location)
	if err != nil {
		return nil, err
	}
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("git %s: no cache folder", spec)
	}
	auth, err := Auth(spec, opts.Credentials)
	if err != nil {
		return nil, err
	}
	s := &Source{
		spec:    spec,
		auth:    auth,
		dir:     filepath.Join(opts.CacheDir, "git-"+spec.Key()),
		maxSize: opts.MaxFileSize,
		timeout: opts.Timeout,
		secrets: Secrets(spec, opts.Password, opts.Token, opts.SSHKeyPassphrase),
	}
	if s.maxSize <= 0 {
		s.maxSize = defaultMaxFileSize
	}
	if s.timeout <= 0 {
		s.timeout = defaultTimeout
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "snapshots"), 0o755); err != nil {
		return nil, fmt.Errorf("git %s: create cache folder: %w", spec, err)
	}
	return s, nil
}

// String is the location with credentials redacted.
func (s *Source) String() string { return s.spec.String() }

// Spec returns the parsed location.
func (s *Source) Spec() Spec { return s.spec }

// Stats returns the network operations made so far.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close removes the snapshots; the cached repository stays for the next
// process. Artifacts returned earlier are invalid afterwards, and Fetch
// fails.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.last = nil
	if err := os.RemoveAll(filepath.Join(s.dir, "snapshots")); err != nil {
		return fmt.Errorf("git %s: remove snapshots: %w", s.spec, err)
	}
	return nil
}

func (s *Source) fail(op string, err error) error {
	return SanitizeError(s.spec.String(), op, err, s.secrets)
}

// Fetch resolves the ref with one ls-remote and returns the previous
// artifact when it still points at the same commit. Otherwise it fetches
// that commit (depth 1) unless it is cached, and writes its tree (the
// sub-path only) to a new snapshot folder.
func (s *Source) Fetch(ctx context.Context) (*source.Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("git %s: fetch: source is closed", s.spec)
	}

	lctx, cancel := context.WithTimeout(ctx, s.timeout)
	refs, err := s.lsRemote(lctx)
	cancel()
	if err != nil {
		return nil, s.fail("list remote refs", err)
	}
	t, err := resolve(s.spec, refs)
	if err != nil {
		return nil, s.fail("resolve ref", err)
	}
	if s.last != nil && t.commit == s.lastHash && t.name == s.lastName {
		a := *s.last
		return &a, nil
	}

	commit, err := s.fetch(ctx, t)
	if err != nil {
		return nil, err
	}
	hash := commit.Hash
	snap, err := os.MkdirTemp(filepath.Join(s.dir, "snapshots"), hash.String()[:12]+"-")
	if err != nil {
		return nil, fmt.Errorf("git %s: create snapshot: %w", s.spec, err)
	}
	root, digest, err := writeSnapshot(ctx, commit, s.spec.SubPath, snap, s.maxSize)
	if err != nil {
		os.RemoveAll(snap)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			// The cache lost objects: refetch from scratch next time.
			_, _ = openCache(filepath.Join(s.dir, "repo"), s.spec.URL, s.maxSize, true)
		}
		return nil, fmt.Errorf("git %s: snapshot of %s: %w", s.spec, hash, err)
	}

	rev := "sha1:" + hash.String()
	if t.name != "" {
		rev = t.name + "@" + rev
	}
	prev := ""
	if s.last != nil {
		prev = s.lastSnap
	}
	s.last = &source.Artifact{Revision: rev, Digest: digest, Path: root}
	s.lastName, s.lastHash, s.lastSnap = t.name, hash, snap
	s.removeSnapshots(snap, prev)
	a := *s.last
	return &a, nil
}

// removeSnapshots removes every snapshot but keep (the new one) and prev
// (which a reader may still be using until this Fetch returns).
func (s *Source) removeSnapshots(keep ...string) {
	root := filepath.Join(s.dir, "snapshots")
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		kept := false
		for _, k := range keep {
			kept = kept || p == k
		}
		if !kept {
			// Best effort: a leftover folder is retried next time.
			_ = os.RemoveAll(p)
		}
	}
}

func (s *Source) lsRemote(ctx context.Context) ([]*plumbing.Reference, error) {
	s.stats.ListRemote++
	r := gogit.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{s.spec.URL}})
	return r.ListContext(ctx, &gogit.ListOptions{Auth: s.auth, PeelingOption: gogit.AppendPeeled})
}

// target is what a spec resolved to on the remote.
type target struct {
	name   string                 // branch or tag name; "" for a pinned commit
	ref    plumbing.ReferenceName // remote ref to fetch; "" when the commit is no ref's tip
	commit plumbing.Hash          // the commit (tags peeled)
}

// resolve finds the commit spec follows among the advertised refs.
func resolve(spec Spec, refs []*plumbing.Reference) (target, error) {
	hashes := map[plumbing.ReferenceName]plumbing.Hash{}
	peeled := map[plumbing.ReferenceName]plumbing.Hash{}
	var head *plumbing.Reference
	for _, r := range refs {
		name := r.Name()
		switch {
		case name == plumbing.HEAD:
			head = r
		case strings.HasSuffix(string(name), "^{}"):
			peeled[plumbing.ReferenceName(strings.TrimSuffix(string(name), "^{}"))] = r.Hash()
		case r.Type() == plumbing.HashReference:
			hashes[name] = r.Hash()
		}
	}
	commitOf := func(n plumbing.ReferenceName) plumbing.Hash {
		if h, ok := peeled[n]; ok {
			return h
		}
		return hashes[n]
	}
	byName := func(kind, short string, n plumbing.ReferenceName) (target, error) {
		if _, ok := hashes[n]; !ok {
			return target{}, fmt.Errorf("%s %q %w", kind, short, ErrRefNotFound)
		}
		return target{name: short, ref: n, commit: commitOf(n)}, nil
	}

	switch {
	case spec.Branch != "":
		return byName("branch", spec.Branch, plumbing.NewBranchReferenceName(spec.Branch))
	case spec.Tag != "":
		return byName("tag", spec.Tag, plumbing.NewTagReferenceName(spec.Tag))
	case spec.Semver != "":
		c, err := semver.NewConstraint(spec.Semver)
		if err != nil {
			return target{}, fmt.Errorf("semver range %q: %w", spec.Semver, err)
		}
		var best *semver.Version
		var bestRef plumbing.ReferenceName
		for n := range hashes {
			if !n.IsTag() {
				continue
			}
			v, err := semver.NewVersion(n.Short())
			if err != nil || !c.Check(v) {
				continue
			}
			// Equal versions ("v1.0.0" and "1.0.0"): the lower name wins,
			// so the choice does not depend on map order.
			if best == nil || v.GreaterThan(best) || (v.Equal(best) && n < bestRef) {
				best, bestRef = v, n
			}
		}
		if best == nil {
			return target{}, fmt.Errorf("no tag matching semver range %q %w", spec.Semver, ErrRefNotFound)
		}
		return target{name: bestRef.Short(), ref: bestRef, commit: commitOf(bestRef)}, nil
	case spec.Commit != "":
		h := plumbing.NewHash(spec.Commit)
		t := target{commit: h}
		// Prefer fetching a ref that points at it: servers always allow that.
		var names []string
		for n := range hashes {
			if commitOf(n) == h && (n.IsBranch() || n.IsTag()) {
				names = append(names, string(n))
			}
		}
		sort.Strings(names)
		if len(names) > 0 {
			t.ref = plumbing.ReferenceName(names[0])
		}
		return t, nil
	}

	if head == nil {
		if len(hashes) == 0 {
			return target{}, errors.New("the repository is empty")
		}
		return target{}, errors.New("the remote does not say which branch HEAD is: give ?ref=BRANCH")
	}
	if head.Type() == plumbing.SymbolicReference {
		n := head.Target()
		if _, ok := hashes[n]; !ok {
			return target{}, fmt.Errorf("HEAD points to %s, which has no commit yet", n.Short())
		}
		return target{name: n.Short(), ref: n, commit: commitOf(n)}, nil
	}
	return target{}, errors.New("the remote does not say which branch HEAD is: give ?ref=BRANCH")
}

// IsRepository reports whether path is a git repository (bare, or a work
// tree with .git), for source.KindOf's file:// check. It reads a few files
// and runs nothing.
func IsRepository(path string) bool {
	_, err := gogit.PlainOpen(path)
	return err == nil
}
