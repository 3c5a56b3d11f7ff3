package gitstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/charter-sh/charter/source"
	gitsrc "github.com/charter-sh/charter/source/git"
	"github.com/charter-sh/charter/state"
)

// MaxAttempts is how many times Edit tries to push before giving up when
// other writers keep winning the race.
const MaxAttempts = 5

const defaultTimeout = 60 * time.Second

// ErrRejected is wrapped by Edit's error when the remote kept rejecting
// the push as not a fast-forward MaxAttempts times, or when local commits
// not pushed yet (made with NoPush) conflict with the remote.
var ErrRejected = errors.New("push rejected")

// Options configure Open.
type Options struct {
	// CacheDir (required) holds the clone, credentials authenticate to the
	// remote, Timeout bounds each fetch and push. MaxFileSize, Endpoint,
	// Region and Debounce are not used.
	source.Options
	// AuthorName and AuthorEmail sign commits (author and committer).
	// Default: user.name and user.email from ~/.gitconfig (or
	// $XDG_CONFIG_HOME/git/config), else "charter" and "charter@localhost".
	AuthorName, AuthorEmail string
	// NoPush makes Edit commit to the cached clone only. Those commits are
	// kept by later refreshes and published by the next Edit without
	// NoPush.
	NoPush bool
}

// Store is a declared state in a branch of a git repository, edited in a
// cached clone and published by commit and push. Its methods may be called
// from several goroutines, and several processes may share CacheDir: each
// operation holds a lock on the clone.
type Store struct {
	spec    gitsrc.Spec
	auth    transport.AuthMethod
	opts    Options
	branch  plumbing.ReferenceName
	dir     string
	secrets []string
	timeout time.Duration
	name    string
	email   string
	mu      sync.Mutex
}

var _ state.Store = (*Store)(nil)

// Open prepares a Store for a git location (see source/git.ParseURL; the
// ref must be a branch, or none for the remote HEAD's branch — "main" for
// an empty repository). It creates the cache folder and asks the remote
// for its HEAD when no branch is given; it fetches nothing yet.
func Open(ctx context.Context, location string, opts Options) (*Store, error) {
	spec, err := gitsrc.ParseURL(location)
	if err != nil {
		return nil, err
	}
	if spec.Tag != "" || spec.Semver != "" || spec.Commit != "" {
		return nil, fmt.Errorf("git %s: a state store commits to a branch: use ?ref=BRANCH, not a tag, semver range or commit", spec)
	}
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("git %s: no cache folder", spec)
	}
	auth, err := gitsrc.Auth(spec, opts.Credentials)
	if err != nil {
		return nil, err
	}
	s := &Store{
		spec:    spec,
		auth:    auth,
		opts:    opts,
		dir:     filepath.Join(opts.CacheDir, "gitstore-"+spec.Key()),
		secrets: gitsrc.Secrets(spec, opts.Password, opts.Token, opts.SSHKeyPassphrase),
		timeout: opts.Timeout,
	}
	if s.timeout <= 0 {
		s.timeout = defaultTimeout
	}
	s.name, s.email = author(opts.AuthorName, opts.AuthorEmail)
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("git %s: create cache folder: %w", spec, err)
	}
	if spec.Branch != "" {
		s.branch = plumbing.NewBranchReferenceName(spec.Branch)
	} else if s.branch, err = s.remoteHead(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// String is the location with credentials redacted.
func (s *Store) String() string { return s.spec.String() }

// Branch is the branch the store commits to.
func (s *Store) Branch() string { return s.branch.Short() }

func (s *Store) fail(op string, err error) error {
	return gitsrc.SanitizeError(s.spec.String(), op, err, s.secrets)
}

// author picks the commit identity: flags, then the user's git config, then
// charter's own.
func author(name, email string) (string, string) {
	if name == "" || email == "" {
		if cfg, err := config.LoadConfig(config.GlobalScope); err == nil {
			if name == "" {
				name = cfg.User.Name
			}
			if email == "" {
				email = cfg.User.Email
			}
		}
	}
	if name == "" {
		name = "charter"
	}
	if email == "" {
		email = "charter@localhost"
	}
	return name, email
}

// remoteHead asks the remote which branch HEAD is.
func (s *Store) remoteHead(ctx context.Context) (plumbing.ReferenceName, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r := gogit.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{s.spec.URL}})
	refs, err := r.ListContext(ctx, &gogit.ListOptions{Auth: s.auth})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return plumbing.NewBranchReferenceName("main"), nil
	}
	if err != nil {
		return "", s.fail("list remote refs", err)
	}
	for _, ref := range refs {
		if ref.Name() == plumbing.HEAD && ref.Type() == plumbing.SymbolicReference && ref.Target().IsBranch() {
			return ref.Target(), nil
		}
	}
	if len(refs) == 0 {
		return plumbing.NewBranchReferenceName("main"), nil
	}
	return "", s.fail("find the default branch", errors.New("the remote does not say which branch HEAD is: give ?ref=BRANCH"))
}

// Dir fetches the branch, brings the cached clone to its head (keeping
// local commits not pushed yet) and returns the state folder inside it,
// initialised when the repository does not hold one yet. The folder is a
// snapshot for reading: the next Dir or Edit resets it.
func (s *Store) Dir(ctx context.Context) (*state.Dir, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c, err := s.open()
	if err != nil {
		return nil, err
	}
	if _, err := c.sync(ctx); err != nil {
		return nil, err
	}
	return c.stateDir()
}

// Edit refreshes the clone as Dir does, calls fn on the state folder,
// commits every change fn made under the state folder (additions,
// modifications, deletions; charter's lock and temporary files and editor
// files are left out) with message and the configured author, and pushes
// it. It returns the commit id (hex).
//
// When the push is rejected because someone else pushed first, Edit
// fetches, resets to the new head and calls fn again, up to MaxAttempts
// times in all; it never force-pushes. An error from fn (such as
// state.ErrExists when the other writer created the same release) is
// returned as is, and nothing is committed. When fn changed nothing, no
// commit is made and Edit returns the current head ("" for a repository
// without commits). With NoPush the commit stays in the clone.
func (s *Store) Edit(ctx context.Context, message string, fn func(*state.Dir) error) (string, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	c, err := s.open()
	if err != nil {
		return "", err
	}
	heads, err := c.sync(ctx)
	if err != nil {
		return "", err
	}
	// Commits made earlier with NoPush, published along with this one.
	unpushed := heads.local != heads.remote
	for attempt := 1; ; attempt++ {
		base := heads.local
		d, err := c.stateDir()
		if err != nil {
			return "", err
		}
		if err := fn(d); err != nil {
			if rerr := c.checkout(base); rerr != nil {
				return "", fmt.Errorf("%w (and resetting the clone failed: %v)", err, rerr)
			}
			return "", err
		}
		commit, err := c.commit(message, s.name, s.email)
		if err != nil {
			_ = c.checkout(base)
			return "", err
		}
		if commit == plumbing.ZeroHash { // nothing changed
			_ = c.checkout(base)
			if base.IsZero() {
				return "", nil
			}
			return base.String(), nil
		}
		if s.opts.NoPush {
			return commit.String(), nil
		}
		err = c.push(ctx)
		if err == nil {
			return commit.String(), nil
		}
		// The commit is not published: take it back, so a retry by the
		// user starts from the remote's state.
		if rerr := c.checkout(base); rerr != nil {
			return "", fmt.Errorf("%w (and resetting the clone failed: %v)", err, rerr)
		}
		if !rejected(err) {
			return "", s.fail("push", err)
		}
		if unpushed {
			return "", s.fail("push", fmt.Errorf("%w: the remote moved, and the clone holds commits made without pushing that cannot be re-applied automatically (%v)", ErrRejected, err))
		}
		if attempt >= MaxAttempts {
			return "", s.fail("push", fmt.Errorf("%w %d times: others kept pushing first (%v)", ErrRejected, attempt, err))
		}
		// Someone pushed first: start again from their commit.
		if heads, err = c.sync(ctx); err != nil {
			return "", err
		}
		if heads.local != heads.remote {
			return "", s.fail("push", fmt.Errorf("%w: the remote branch moved backwards or was rewritten", ErrRejected))
		}
	}
}

// rejected reports whether a push failed because the remote branch moved.
func rejected(err error) bool {
	if errors.Is(err, gogit.ErrNonFastForwardUpdate) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"non-fast-forward", "fetch first", "failed to update ref", "cannot lock ref", "failed to lock", "stale info"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// clone is the cached clone, open for one operation.
type clone struct {
	s     *Store
	repo  *gogit.Repository
	wt    *gogit.Worktree
	empty bool // the branch has no commit yet
}

// open opens the cached clone, creating it (empty, with the remote) when
// missing or unusable.
func (s *Store) open() (*clone, error) {
	dir := filepath.Join(s.dir, "repo")
	repo, err := gogit.PlainOpen(dir)
	if err == nil {
		if r, rerr := repo.Remote("origin"); rerr != nil || len(r.Config().URLs) != 1 || r.Config().URLs[0] != s.spec.URL {
			err = errors.New("remote differs")
		}
	}
	if err != nil {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("git %s: reset cached clone: %w", s.spec, err)
		}
		if repo, err = gogit.PlainInit(dir, false); err != nil {
			return nil, fmt.Errorf("git %s: create cached clone: %w", s.spec, err)
		}
		if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{s.spec.URL}}); err != nil {
			return nil, fmt.Errorf("git %s: create cached clone: %w", s.spec, err)
		}
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, fmt.Errorf("git %s: open cached clone: %w", s.spec, err)
	}
	return &clone{s: s, repo: repo, wt: wt}, nil
}

func (c *clone) remoteRef() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName("origin", c.s.branch.Short())
}

func (c *clone) refHash(name plumbing.ReferenceName) plumbing.Hash {
	ref, err := c.repo.Reference(name, true)
	if err != nil {
		return plumbing.ZeroHash
	}
	return ref.Hash()
}

type heads struct{ local, remote plumbing.Hash }

// sync fetches the branch and checks out what the clone should hold: the
// remote head, or the local branch when it has commits the remote lacks.
func (c *clone) sync(ctx context.Context) (heads, error) {
	fctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	err := c.repo.FetchContext(fctx, &gogit.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec("+" + c.s.branch.String() + ":" + c.remoteRef().String())},
		Auth:       c.s.auth,
		Tags:       gogit.NoTags,
		Force:      true,
	})
	var nomatch gogit.NoMatchingRefSpecError
	switch {
	case err == nil, errors.Is(err, gogit.NoErrAlreadyUpToDate):
	case errors.Is(err, transport.ErrEmptyRemoteRepository), errors.As(err, &nomatch):
		// No branch yet: the first Edit creates it.
		_ = c.repo.Storer.RemoveReference(c.remoteRef())
	default:
		return heads{}, c.s.fail("fetch", err)
	}
	h := heads{remote: c.refHash(c.remoteRef()), local: c.refHash(c.s.branch)}
	switch {
	case h.local.IsZero(), h.local == h.remote:
		h.local = h.remote
	case h.remote.IsZero():
		// Keep local commits; the next push recreates the branch.
	default:
		lc, err1 := c.repo.CommitObject(h.local)
		rc, err2 := c.repo.CommitObject(h.remote)
		if err1 != nil || err2 != nil {
			h.local = h.remote // the local branch is broken: the remote wins
			break
		}
		if behind, err := lc.IsAncestor(rc); err == nil && behind {
			h.local = h.remote // fast-forward
		}
		// Otherwise the local branch is ahead or has diverged: keep its
		// commits, which were never pushed.
	}
	if err := c.checkout(h.local); err != nil {
		return heads{}, err
	}
	return h, nil
}

// checkout points the branch (and HEAD) at commit and makes the work tree
// and index match it exactly: changes and untracked files are dropped.
// The zero hash means an empty branch.
func (c *clone) checkout(commit plumbing.Hash) error {
	fail := func(err error) error { return fmt.Errorf("git %s: reset cached clone: %w", c.s.spec, err) }
	st := c.repo.Storer
	c.empty = commit.IsZero()
	if err := st.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, c.s.branch)); err != nil {
		return fail(err)
	}
	if commit.IsZero() {
		_ = st.RemoveReference(c.s.branch)
		if err := st.SetIndex(&index.Index{Version: 2}); err != nil {
			return fail(err)
		}
		entries, err := os.ReadDir(c.wt.Filesystem.Root())
		if err != nil {
			return fail(err)
		}
		for _, e := range entries {
			if e.Name() != ".git" {
				if err := os.RemoveAll(filepath.Join(c.wt.Filesystem.Root(), e.Name())); err != nil {
					return fail(err)
				}
			}
		}
		return nil
	}
	if err := st.SetReference(plumbing.NewHashReference(c.s.branch, commit)); err != nil {
		return fail(err)
	}
	if err := c.wt.Reset(&gogit.ResetOptions{Commit: commit, Mode: gogit.HardReset}); err != nil {
		return fail(err)
	}
	if err := c.wt.Clean(&gogit.CleanOptions{Dir: true}); err != nil {
		return fail(err)
	}
	return nil
}

// stateRoot is the state folder inside the work tree.
func (c *clone) stateRoot() string {
	return filepath.Join(c.wt.Filesystem.Root(), filepath.FromSlash(c.s.spec.SubPath))
}

// stateDir opens the state folder; on a branch without commits, or when
// the folder does not exist yet, it initialises it (marker, releases/,
// charts/).
func (c *clone) stateDir() (*state.Dir, error) {
	root := c.stateRoot()
	if _, err := os.Stat(root); c.empty || errors.Is(err, os.ErrNotExist) {
		return state.Init(root)
	}
	return state.Open(root)
}

// commit stages every change under the state folder and commits it. It
// returns the zero hash when there is nothing to commit.
func (c *clone) commit(message, name, email string) (plumbing.Hash, error) {
	fail := func(err error) (plumbing.Hash, error) {
		return plumbing.ZeroHash, fmt.Errorf("git %s: commit: %w", c.s.spec, err)
	}
	status, err := c.wt.Status()
	if err != nil {
		return fail(err)
	}
	sub := c.s.spec.SubPath
	for p, fs := range status {
		if sub != "" && p != sub && !strings.HasPrefix(p, sub+"/") {
			continue
		}
		if ignoredName(path.Base(p)) {
			continue
		}
		if fs.Worktree == gogit.Unmodified {
			continue
		}
		if fs.Worktree == gogit.Deleted {
			_, err = c.wt.Remove(p)
		} else {
			_, err = c.wt.Add(p)
		}
		if err != nil {
			return fail(fmt.Errorf("stage %s: %w", p, err))
		}
	}
	when := time.Now()
	sig := &object.Signature{Name: name, Email: email, When: when}
	h, err := c.wt.Commit(message, &gogit.CommitOptions{Author: sig, Committer: sig})
	if errors.Is(err, gogit.ErrEmptyCommit) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return fail(err)
	}
	return h, nil
}

// push publishes the branch; it never forces.
func (c *clone) push(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, c.s.timeout)
	defer cancel()
	spec := config.RefSpec(c.s.branch.String() + ":" + c.s.branch.String())
	err := c.repo.PushContext(pctx, &gogit.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{spec}, Auth: c.s.auth})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return err
	}
	if h := c.refHash(c.s.branch); !h.IsZero() {
		_ = c.repo.Storer.SetReference(plumbing.NewHashReference(c.remoteRef(), h))
	}
	return nil
}

// ignoredName matches the files state.Dir never reads: its lock and
// temporary files, editors' backup, swap and lock files. They are never
// committed.
func ignoredName(name string) bool {
	switch {
	case strings.HasPrefix(name, ".charter-tmp-"), name == ".charter.lock",
		strings.HasSuffix(name, "~"),
		strings.HasPrefix(name, ".#"),
		strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"),
		strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".swp") || strings.HasSuffix(name, ".swo") || strings.HasSuffix(name, ".swx")):
		return true
	}
	return false
}
