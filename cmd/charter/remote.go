package main

import (
	"context"
	"fmt"

	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/bucket"
	sourcedir "github.com/charter-sh/charter/source/dir"
	sourcegit "github.com/charter-sh/charter/source/git"
	"github.com/charter-sh/charter/state"
	"github.com/charter-sh/charter/state/bucketstore"
	"github.com/charter-sh/charter/state/gitstore"
)

// openSource opens the backend that serves a location (see source.KindOf).
func openSource(loc string, opts source.Options) (source.Source, error) {
	switch source.KindOf(loc, isGitRepo) {
	case source.KindGit:
		return sourcegit.New(loc, opts)
	case source.KindBucket:
		return bucket.New(loc, opts)
	default:
		return sourcedir.New(localPath(loc), opts)
	}
}

// openRemoteStore opens a git or bucket store for editing.
func (g *globalOptions) openRemoteStore(ctx context.Context, loc string) (state.Store, error) {
	cache, err := defaultCacheDir()
	if err != nil {
		return nil, err
	}
	opts, err := g.withCredential(ctx, g.src.sourceOptions(cache), loc, g.stateCredential)
	if err != nil {
		return nil, err
	}
	switch source.KindOf(loc, isGitRepo) {
	case source.KindGit:
		return gitstore.Open(ctx, loc, gitstore.Options{Options: opts, AuthorName: g.authorName, AuthorEmail: g.authorEmail, NoPush: g.noPush})
	case source.KindBucket:
		return bucketstore.Open(ctx, loc, opts)
	}
	return nil, fmt.Errorf("declared state %s: unknown kind of location", source.Redact(loc))
}
