package bucket

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/charter-sh/charter/source"
)

// Defaults of the options.
const (
	DefaultMaxFileSize = 10 << 20
	DefaultTimeout     = 60 * time.Second
)

// fetchAttempts bounds how often one Fetch lists again because an object
// changed between the listing and its download.
const fetchAttempts = 3

// downloadWorkers is how many objects one Fetch downloads at once.
const downloadWorkers = 4

// Source reads a declared state from an object-store prefix. Its methods
// may be called from several goroutines; Fetches run one at a time.
type Source struct {
	loc     Location
	client  *minio.Client
	dir     string // this source's folder under Options.CacheDir
	maxSize int64
	timeout time.Duration

	mu   sync.Mutex
	cur  *snapshot // what the last Fetch returned
	prev *snapshot // the one before, kept until the next Fetch returns
}

var _ source.Source = (*Source)(nil)

// snapshot is one complete snapshot folder and the objects it holds.
type snapshot struct {
	Digest  string            `json:"digest"`
	Objects map[string]string `json:"objects"` // Rel → ETag
	path    string
}

// New returns a Source for a bucket location (see ParseURL). It makes no
// request: a wrong endpoint or credentials show up in the first Fetch.
func New(location string, opts source.Options) (*Source, error) {
	return newSource(location, opts, nil)
}

func newSource(location string, opts source.Options, rt http.RoundTripper) (*Source, error) {
	loc, err := ParseURL(location, opts)
	if err != nil {
		return nil, err
	}
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("bucket %s: no cache folder", loc)
	}
	c, err := newClient(loc, opts, rt)
	if err != nil {
		return nil, err
	}
	s := &Source{
		loc:     loc,
		client:  c,
		dir:     filepath.Join(opts.CacheDir, CacheName(loc)),
		maxSize: opts.MaxFileSize,
		timeout: opts.Timeout,
	}
	if s.maxSize <= 0 {
		s.maxSize = DefaultMaxFileSize
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	return s, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// CacheName is the name of the folder, under Options.CacheDir, that holds
// the cache of loc: readable, and unique per endpoint, bucket and prefix.
func CacheName(loc Location) string {
	sum := sha256.Sum256([]byte(loc.Endpoint + "\x00" + loc.Bucket + "\x00" + loc.Prefix))
	name := unsafeName.ReplaceAllString(strings.TrimSuffix(loc.Bucket+"-"+loc.Prefix, "/"), "-")
	if len(name) > 48 {
		name = name[:48]
	}
	return "bucket-" + name + "-" + hex.EncodeToString(sum[:8])
}

// String is the location, redacted.
func (s *Source) String() string { return s.loc.String() }

// Fetch lists the prefix (one listing) and returns the snapshot it
// describes. When the listing's digest equals the last one, it returns the
// last artifact and downloads nothing. Otherwise it builds a new snapshot
// folder: objects whose ETag did not change are hard-linked from the
// previous snapshot, only the others are downloaded (each asked for by its
// listed ETag, so an object rewritten meanwhile makes Fetch list again
// rather than mix versions). The previous snapshot stays on disk until the
// next Fetch returns; older ones are removed.
//
// Refused keys (see CheckKey), objects over the size cap (checked from the
// listing, before any download) and failed requests are errors; the last
// artifact stays valid.
func (s *Source) Fetch(ctx context.Context) (*source.Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		s.cur = s.loadLatest()
	}
	for attempt := 1; ; attempt++ {
		lctx, cancel := context.WithTimeout(ctx, s.timeout)
		objs, digest, err := List(lctx, s.client, s.loc, s.maxSize)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", s, err)
		}
		if s.cur != nil && s.cur.Digest == digest {
			return s.cur.artifact(), nil
		}
		snap, err := s.build(ctx, objs, digest)
		if errors.Is(err, ErrChanged) && attempt < fetchAttempts {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", s, err)
		}
		s.prev, s.cur = s.cur, snap
		s.prune()
		return snap.artifact(), nil
	}
}

func (snap *snapshot) artifact() *source.Artifact {
	return &source.Artifact{Revision: snap.Digest, Digest: snap.Digest, Path: snap.path}
}

// build makes a new snapshot folder holding objs.
func (s *Source) build(ctx context.Context, objs []Object, digest string) (_ *snapshot, err error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cache folder: %w", err)
	}
	dir, err := os.MkdirTemp(s.dir, "snap-")
	if err != nil {
		return nil, fmt.Errorf("create snapshot folder: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	snap := &snapshot{Digest: digest, Objects: make(map[string]string, len(objs)), path: dir}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(downloadWorkers)
	for _, o := range objs {
		snap.Objects[o.Rel] = o.ETag
		dst := filepath.Join(dir, filepath.FromSlash(o.Rel))
		if s.cur != nil && o.ETag != "" && s.cur.Objects[o.Rel] == o.ETag {
			if err := linkOrCopy(filepath.Join(s.cur.path, filepath.FromSlash(o.Rel)), dst); err == nil {
				continue
			}
			// The previous copy is unusable: download the object again.
		}
		g.Go(func() error {
			dctx, cancel := context.WithTimeout(gctx, s.timeout)
			defer cancel()
			return Download(dctx, s.client, s.loc, o, dst, s.maxSize)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := writeManifest(dir+".json", snap); err != nil {
		return nil, err
	}
	return snap, nil
}

// linkOrCopy hard-links src to dst (snapshots are never written after they
// are built, so they may share files), copying when linking fails.
func linkOrCopy(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	fi, err := os.Lstat(src)
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("previous copy of %s unusable", src)
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

// writeManifest records what a complete snapshot folder holds, so that a
// restarted daemon finds its last snapshot instead of downloading it again.
// Written last, atomically: a manifest means a complete folder.
func writeManifest(path string, snap *snapshot) error {
	data, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("record snapshot: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("record snapshot: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("record snapshot: %w", err)
	}
	return nil
}

// loadLatest returns the newest complete snapshot a previous process left
// in the cache folder, or nil.
func (s *Source) loadLatest() *snapshot {
	manifests, _ := filepath.Glob(filepath.Join(s.dir, "snap-*.json"))
	var best *snapshot
	var bestTime time.Time
	for _, m := range manifests {
		fi, err := os.Stat(m)
		if err != nil || (best != nil && !fi.ModTime().After(bestTime)) {
			continue
		}
		data, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		var snap snapshot
		if json.Unmarshal(data, &snap) != nil || !strings.HasPrefix(snap.Digest, "sha256:") {
			continue
		}
		snap.path = strings.TrimSuffix(m, ".json")
		if di, err := os.Stat(snap.path); err != nil || !di.IsDir() {
			continue
		}
		best, bestTime = &snap, fi.ModTime()
	}
	return best
}

// prune removes every snapshot but the current and the previous one.
func (s *Source) prune() {
	keep := map[string]bool{}
	for _, snap := range []*snapshot{s.cur, s.prev} {
		if snap != nil {
			keep[snap.path] = true
		}
	}
	entries, _ := filepath.Glob(filepath.Join(s.dir, "snap-*"))
	for _, e := range entries {
		base := strings.TrimSuffix(strings.TrimSuffix(e, ".tmp"), ".json")
		if !keep[base] {
			os.RemoveAll(e)
		}
	}
}
