package git

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// fetch makes t's commit available in the cached repository and returns
// it. A commit already cached (a revert, a restart) is not downloaded
// again. Errors are sanitised.
func (s *Source) fetch(ctx context.Context, t target) (*object.Commit, error) {
	repoDir := filepath.Join(s.dir, "repo")
	repo, err := openCache(repoDir, s.spec.URL, s.maxSize, false)
	if err != nil {
		return nil, fmt.Errorf("git %s: open cache: %w", s.spec, err)
	}
	if c, err := cachedCommit(repo, t.commit); err == nil {
		return c, nil
	}
	if countPacks(repoDir) > maxPacks {
		if repo, err = openCache(repoDir, s.spec.URL, s.maxSize, true); err != nil {
			return nil, fmt.Errorf("git %s: recreate cache: %w", s.spec, err)
		}
	}
	c, err := s.download(ctx, repo, repoDir, t)
	var broken *brokenCache
	if errors.As(err, &broken) {
		// What was fetched cannot be read back (an interrupted earlier
		// fetch, shallow bookkeeping gone wrong): start over once.
		if repo, err = openCache(repoDir, s.spec.URL, s.maxSize, true); err != nil {
			return nil, fmt.Errorf("git %s: recreate cache: %w", s.spec, err)
		}
		c, err = s.download(ctx, repo, repoDir, t)
	}
	if errors.As(err, &broken) {
		return nil, fmt.Errorf("git %s: read fetched commit: %w", s.spec, broken.err)
	}
	return c, err
}

// brokenCache is a fetch that succeeded on the wire but whose objects
// cannot be read.
type brokenCache struct{ err error }

func (b *brokenCache) Error() string { return b.err.Error() }

func (s *Source) download(ctx context.Context, repo *gogit.Repository, repoDir string, t target) (*object.Commit, error) {
	s.stats.Fetches++
	fctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	opts := &gogit.FetchOptions{
		RemoteName: "origin",
		Auth:       s.auth,
		Depth:      1,
		Tags:       gogit.NoTags,
		Force:      true,
	}
	if t.ref != "" {
		opts.RefSpecs = []config.RefSpec{config.RefSpec("+" + string(t.ref) + ":" + string(fetchedRef))}
	} else {
		// A pinned commit that is no ref's tip: ask for it by id, which
		// servers allow when configured to (GitHub, GitLab do) ...
		opts.RefSpecs = []config.RefSpec{config.RefSpec(t.commit.String() + ":" + string(fetchedRef))}
	}
	err := repo.FetchContext(fctx, opts)
	if errors.Is(err, gogit.ErrExactSHA1NotSupported) {
		// ... else fetch every branch and tag in full, once: a pinned
		// commit never changes, so it stays cached.
		repo, err = openCache(repoDir, s.spec.URL, s.maxSize, true)
		if err != nil {
			return nil, fmt.Errorf("git %s: recreate cache: %w", s.spec, err)
		}
		opts.Depth = 0
		opts.RefSpecs = []config.RefSpec{"+refs/heads/*:refs/charter/heads/*", "+refs/tags/*:refs/charter/tags/*"}
		err = repo.FetchContext(fctx, opts)
		if err == nil || errors.Is(err, gogit.NoErrAlreadyUpToDate) {
			c, err := cachedCommit(repo, t.commit)
			if errors.Is(err, plumbing.ErrObjectNotFound) {
				return nil, s.fail("fetch", fmt.Errorf("commit %s %w", t.commit, ErrRefNotFound))
			}
			if err != nil {
				return nil, &brokenCache{err}
			}
			return c, nil
		}
	}
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		var nomatch gogit.NoMatchingRefSpecError
		if errors.As(err, &nomatch) {
			err = fmt.Errorf("%s %w (deleted after it was listed?)", t.ref.Short(), ErrRefNotFound)
		}
		return nil, s.fail("fetch", err)
	}
	if t.name == "" && t.ref != "" {
		// A pinned commit fetched through a ref: unless the ref moved
		// since it was listed, the commit is here; if it moved, ask for
		// the commit itself.
		if c, err := cachedCommit(repo, t.commit); err == nil {
			return c, nil
		}
		t.ref = ""
		return s.download(ctx, repo, repoDir, t)
	}
	ref, err := repo.Reference(fetchedRef, false)
	if err != nil {
		return nil, &brokenCache{err}
	}
	h, err := peel(repo, ref.Hash())
	if err != nil {
		return nil, &brokenCache{err}
	}
	c, err := cachedCommit(repo, h)
	if err != nil {
		return nil, &brokenCache{err}
	}
	return c, nil
}

// peel follows annotated tags to the commit.
func peel(repo *gogit.Repository, h plumbing.Hash) (plumbing.Hash, error) {
	for i := 0; i < 10; i++ {
		tag, err := repo.TagObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return h, nil
		}
		if err != nil {
			return h, err
		}
		if tag.TargetType == plumbing.TagObject || tag.TargetType == plumbing.CommitObject {
			h = tag.Target
			continue
		}
		return h, fmt.Errorf("tag %s points to a %s, not a commit", tag.Name, tag.TargetType)
	}
	return h, errors.New("tag chain too long")
}

// cachedCommit returns the commit h when it and its root tree are in the
// repository.
func cachedCommit(repo *gogit.Repository, h plumbing.Hash) (*object.Commit, error) {
	c, err := repo.CommitObject(h)
	if err != nil {
		return nil, err
	}
	if _, err := c.Tree(); err != nil {
		return nil, err
	}
	return c, nil
}

// openCache opens (fresh: recreates) the bare repository caching fetched
// objects, with one remote "origin". Objects larger than largeObject are
// streamed from disk when read, never loaded into memory whole.
func openCache(dir, url string, largeObject int64, fresh bool) (*gogit.Repository, error) {
	if fresh {
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	storage := func() *filesystem.Storage {
		return filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRUDefault(),
			filesystem.Options{LargeObjectThreshold: largeObject})
	}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		repo, err := gogit.Open(storage(), nil)
		if err == nil {
			if r, rerr := repo.Remote("origin"); rerr == nil && len(r.Config().URLs) == 1 && r.Config().URLs[0] == url {
				return repo, nil
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	repo, err := gogit.Init(storage(), nil)
	if err != nil {
		return nil, err
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}}); err != nil {
		return nil, err
	}
	return repo, nil
}

func countPacks(repoDir string) int {
	m, _ := filepath.Glob(filepath.Join(repoDir, "objects", "pack", "*.pack"))
	return len(m)
}
