package bucketstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"mime"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/bucket"
	"github.com/charter-sh/charter/state"
)

// MaxAttempts is how often Edit applies fn when concurrent writers keep
// winning the race.
const MaxAttempts = 5

// MetadataChange is the user-metadata name (x-amz-meta-charter-change)
// holding the change message on every object Edit writes.
const MetadataChange = "charter-change"

// maxMessage caps the stored message: S3 allows 2 KiB of user metadata.
const maxMessage = 1024

// Files of the state package that are never published: its lock and its
// temporary files.
const (
	stateLock   = ".charter.lock"
	stateTmpPfx = ".charter-tmp-"
)

// downloadWorkers is how many objects a refresh downloads at once.
const downloadWorkers = 4

// errConflict marks a lost race: a condition failed, Edit retries.
var errConflict = errors.New("changed concurrently")

// Store is a state.Store on an object-store prefix. Its methods may be
// called from several goroutines and processes sharing the cache folder:
// refreshes and edits are serialised.
type Store struct {
	loc     bucket.Location
	client  *minio.Client
	root    string // this store's folder under the cache
	work    string // root/state: the working copy of the prefix
	maxSize int64
	timeout time.Duration

	mu sync.Mutex // serialises refresh and Edit in this process (flock does across processes)

	// beforePublish, when set, runs after fn and before the writes of each
	// attempt; tests use it to make another writer win the race.
	beforePublish func(attempt int)
}

var _ state.Store = (*Store)(nil)

// manifest records, for each file of the working folder, the ETag of the
// object it was downloaded or published as and the SHA-256 of its content,
// so local edits and remote changes are told apart.
type manifest struct {
	Objects map[string]entry `json:"objects"` // Rel → entry
}

type entry struct {
	ETag   string `json:"etag"`
	SHA256 string `json:"sha256"`
}

// Open returns a Store for a bucket location (see bucket.ParseURL) whose
// working folder lives under opts.CacheDir. It makes no request: a missing
// bucket or wrong credentials show up in the first Dir or Edit.
func Open(ctx context.Context, location string, opts source.Options) (*Store, error) {
	loc, err := bucket.ParseURL(location, opts)
	if err != nil {
		return nil, err
	}
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("open state %s: no cache folder", loc)
	}
	c, err := bucket.NewClient(loc, opts)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(opts.CacheDir, bucket.CacheName(loc)+"-store")
	s := &Store{
		loc:     loc,
		client:  c,
		root:    root,
		work:    filepath.Join(root, "state"),
		maxSize: opts.MaxFileSize,
		timeout: opts.Timeout,
	}
	if s.maxSize <= 0 {
		s.maxSize = bucket.DefaultMaxFileSize
	}
	if s.timeout <= 0 {
		s.timeout = bucket.DefaultTimeout
	}
	if err := os.MkdirAll(s.work, 0o755); err != nil {
		return nil, fmt.Errorf("open state %s: %w", loc, err)
	}
	return s, nil
}

// String is the location, redacted.
func (s *Store) String() string { return s.loc.String() }

// Dir refreshes the working folder from the bucket (one listing, then only
// the objects that changed) and opens it. An empty prefix gives a new,
// initialised state directory; it is published by the first Edit.
func (s *Store) Dir(ctx context.Context) (*state.Dir, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	m, err := s.refresh(ctx)
	if err != nil {
		return nil, err
	}
	return s.open(m)
}

// Edit refreshes the working folder, applies fn to it and publishes the
// difference with conditional writes (see the package documentation). When
// a condition fails it refreshes and applies fn again, up to MaxAttempts
// times. An error from fn is returned unchanged and nothing more is
// published. It returns the listing digest of the published state: the
// revision source/bucket reports for it.
func (s *Store) Edit(ctx context.Context, message string, fn func(*state.Dir) error) (string, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	var lastConflict error
	for attempt := 1; attempt <= MaxAttempts; attempt++ {
		m, err := s.refresh(ctx)
		if err != nil {
			return "", err
		}
		d, err := s.open(m)
		if err != nil {
			return "", err
		}
		if err := fn(d); err != nil {
			return "", err
		}
		if s.beforePublish != nil {
			s.beforePublish(attempt)
		}
		rev, err := s.publish(ctx, m, message)
		if errors.Is(err, errConflict) {
			lastConflict = err
			// A short random pause, so writers racing in step fall out of it.
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("edit %s: %w", s, ctx.Err())
			case <-time.After(time.Duration(rand.Int64N(int64(attempt) * int64(20*time.Millisecond)))):
			}
			continue
		}
		if err != nil {
			return "", err
		}
		return rev, nil
	}
	return "", fmt.Errorf("edit %s: gave up after %d attempts, concurrent writers kept winning: %w", s, MaxAttempts, lastConflict)
}

// open opens the working folder; when the prefix holds nothing (m is
// empty) it is initialised as a new state directory first.
func (s *Store) open(m *manifest) (*state.Dir, error) {
	if len(m.Objects) == 0 {
		return state.Init(s.work)
	}
	return state.Open(s.work)
}

// ignored reports whether a local file name is one of the state package's
// own files, never published.
func ignored(name string) bool {
	return name == stateLock || strings.HasPrefix(name, stateTmpPfx)
}

// refresh makes the working folder a copy of the prefix and returns the
// manifest describing it. Files whose object is unchanged and that were
// not edited locally are kept; others are downloaded; files without an
// object are removed.
func (s *Store) refresh(ctx context.Context) (*manifest, error) {
	for attempt := 1; ; attempt++ {
		m, err := s.refreshOnce(ctx)
		if errors.Is(err, bucket.ErrChanged) && attempt < MaxAttempts {
			continue // an object changed between listing and download
		}
		if err != nil {
			return nil, fmt.Errorf("refresh state %s: %w", s, err)
		}
		return m, nil
	}
}

func (s *Store) refreshOnce(ctx context.Context) (*manifest, error) {
	lctx, cancel := context.WithTimeout(ctx, s.timeout)
	objs, _, err := bucket.List(lctx, s.client, s.loc, s.maxSize)
	cancel()
	if err != nil {
		if bucket.IsNoSuchBucket(err) {
			return nil, fmt.Errorf("bucket %q does not exist at %s; create it first", s.loc.Bucket, s.loc.Endpoint)
		}
		return nil, err
	}
	old := s.loadManifest()
	m := &manifest{Objects: make(map[string]entry, len(objs))}
	remote := make(map[string]bool, len(objs))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(downloadWorkers)
	for _, o := range objs {
		if ignored(filepath.Base(o.Rel)) {
			continue // would collide with the state package's own files
		}
		remote[o.Rel] = true
		path := filepath.Join(s.work, filepath.FromSlash(o.Rel))
		if e, ok := old.Objects[o.Rel]; ok && e.ETag == o.ETag {
			if sum, err := fileSHA256(path); err == nil && sum == e.SHA256 {
				mu.Lock()
				m.Objects[o.Rel] = e
				mu.Unlock()
				continue
			}
		}
		g.Go(func() error {
			dctx, cancel := context.WithTimeout(gctx, s.timeout)
			defer cancel()
			if err := removeConflicting(s.work, o.Rel); err != nil {
				return err
			}
			if err := bucket.Download(dctx, s.client, s.loc, o, path, s.maxSize); err != nil {
				return err
			}
			sum, err := fileSHA256(path)
			if err != nil {
				return err
			}
			mu.Lock()
			m.Objects[o.Rel] = entry{ETag: o.ETag, SHA256: sum}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		// Keep what is known to be in sync, so the next refresh downloads less.
		s.saveManifest(merge(old, m))
		return nil, err
	}
	local, err := s.localFiles()
	if err != nil {
		return nil, err
	}
	for rel := range local {
		if !remote[rel] {
			if err := os.Remove(filepath.Join(s.work, filepath.FromSlash(rel))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("remove %s: %w", rel, err)
			}
		}
	}
	if err := s.saveManifest(m); err != nil {
		return nil, err
	}
	return m, nil
}

// merge returns the entries of b, and those of a that b lacks.
func merge(a, b *manifest) *manifest {
	out := &manifest{Objects: map[string]entry{}}
	for k, v := range a.Objects {
		out.Objects[k] = v
	}
	for k, v := range b.Objects {
		out.Objects[k] = v
	}
	return out
}

// removeConflicting removes a local folder where a file must go, and local
// files where its parent folders must go (the bucket won over local edits).
func removeConflicting(root, rel string) error {
	path := filepath.Join(root, filepath.FromSlash(rel))
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("replace folder %s by a file: %w", rel, err)
		}
	}
	for dir := filepath.Dir(path); dir != root && len(dir) > len(root); dir = filepath.Dir(dir) {
		if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
			if err := os.Remove(dir); err != nil {
				return fmt.Errorf("replace file by a folder for %s: %w", rel, err)
			}
		}
	}
	return nil
}

// localFiles returns the working folder's files (Rel → SHA-256), without
// the state package's own files. A symbolic link or other special file is
// an error: only regular files can be published.
func (s *Store) localFiles() (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(s.work, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || ignored(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(s.work, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file; only regular files are published", rel)
		}
		sum, err := fileSHA256(path)
		if err != nil {
			return err
		}
		files[rel] = sum
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read working folder: %w", err)
	}
	return files, nil
}

// change is one object write or removal of a publish.
type change struct {
	rel    string
	sum    string // new content; "" for a removal
	etag   string // the ETag it was read at; "" for a new file
	remove bool
}

// publish writes the difference between the working folder and m with
// conditional requests, updating m as it goes. A failed condition is
// errConflict.
func (s *Store) publish(ctx context.Context, m *manifest, message string) (string, error) {
	local, err := s.localFiles()
	if err != nil {
		return "", fmt.Errorf("publish to %s: %w", s, err)
	}
	var writes, removals []change
	for rel, sum := range local {
		e, known := m.Objects[rel]
		switch {
		case !known:
			writes = append(writes, change{rel: rel, sum: sum})
		case e.SHA256 != sum:
			writes = append(writes, change{rel: rel, sum: sum, etag: e.ETag})
		}
	}
	for rel, e := range m.Objects {
		if _, ok := local[rel]; !ok {
			removals = append(removals, change{rel: rel, etag: e.ETag, remove: true})
		}
	}
	// Supporting files first and declarations last when writing; the
	// reverse when removing: a declaration never refers to a missing file.
	sort.Slice(writes, func(i, j int) bool { return publishOrder(writes[i].rel, writes[j].rel, false) })
	sort.Slice(removals, func(i, j int) bool { return publishOrder(removals[i].rel, removals[j].rel, true) })

	meta := map[string]string{MetadataChange: encodeMessage(message)}
	err = func() error {
		for _, c := range append(writes, removals...) {
			if err := bucket.CheckKey(c.rel); err != nil {
				return err
			}
			if c.remove {
				if err := s.remove(ctx, c); err != nil {
					return err
				}
				delete(m.Objects, c.rel)
				continue
			}
			etag, err := s.put(ctx, c, meta)
			if err != nil {
				return err
			}
			m.Objects[c.rel] = entry{ETag: etag, SHA256: c.sum}
		}
		return nil
	}()
	if saveErr := s.saveManifest(m); saveErr != nil && err == nil {
		err = saveErr
	}
	if err != nil {
		return "", fmt.Errorf("publish to %s: %w", s, err)
	}
	objs := make([]bucket.Object, 0, len(m.Objects))
	for rel, e := range m.Objects {
		objs = append(objs, bucket.Object{Rel: rel, ETag: e.ETag})
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Rel < objs[j].Rel })
	return bucket.Digest(objs), nil
}

// publishOrder sorts releases/ after everything else (before, when
// removing), then by name.
func publishOrder(a, b string, removing bool) bool {
	ra, rb := strings.HasPrefix(a, "releases/"), strings.HasPrefix(b, "releases/")
	if ra != rb {
		return rb != removing
	}
	return a < b
}

// put writes one file with its condition and returns the new ETag.
func (s *Store) put(ctx context.Context, c change, meta map[string]string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := s.loc.Prefix + c.rel
	if s.loc.Google {
		// GCS ignores the conditional headers on writes: check first.
		if err := s.checkUnchanged(ctx, c); err != nil {
			return "", err
		}
	}
	f, err := os.Open(filepath.Join(s.work, filepath.FromSlash(c.rel)))
	if err != nil {
		return "", fmt.Errorf("put %s: %w", c.rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("put %s: %w", c.rel, err)
	}
	if fi.Size() > s.maxSize {
		return "", fmt.Errorf("put %s: %w: %d bytes, the limit is %d", c.rel, bucket.ErrTooLarge, fi.Size(), s.maxSize)
	}
	opts := minio.PutObjectOptions{
		UserMetadata:     meta,
		ContentType:      contentType(c.rel),
		DisableMultipart: true, // one request, so the condition covers the whole write
	}
	if c.etag == "" {
		opts.SetMatchETagExcept("*")
	} else {
		opts.SetMatchETag(c.etag)
	}
	info, err := s.client.PutObject(ctx, s.loc.Bucket, key, f, fi.Size(), opts)
	if err != nil {
		if bucket.IsPreconditionFailed(err) || bucket.IsNotFound(err) {
			return "", fmt.Errorf("put %s: %w", c.rel, errConflict)
		}
		return "", fmt.Errorf("put %s: %w", c.rel, err)
	}
	return info.ETag, nil
}

// remove deletes one object after checking it is still the version read.
func (s *Store) remove(ctx context.Context, c change) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.checkUnchanged(ctx, c); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.loc.Bucket, s.loc.Prefix+c.rel, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("remove %s: %w", c.rel, err)
	}
	return nil
}

// checkUnchanged stats the object of c: it must be absent for a new file
// and still at c.etag otherwise; if not, errConflict.
func (s *Store) checkUnchanged(ctx context.Context, c change) error {
	info, err := s.client.StatObject(ctx, s.loc.Bucket, s.loc.Prefix+c.rel, minio.StatObjectOptions{})
	switch {
	case bucket.IsNotFound(err) && c.etag == "":
		return nil
	case bucket.IsNotFound(err):
		return fmt.Errorf("check %s: removed meanwhile: %w", c.rel, errConflict)
	case err != nil:
		return fmt.Errorf("check %s: %w", c.rel, err)
	case c.etag == "":
		return fmt.Errorf("check %s: created meanwhile: %w", c.rel, errConflict)
	case info.ETag != c.etag:
		return fmt.Errorf("check %s: rewritten meanwhile: %w", c.rel, errConflict)
	}
	return nil
}

// contentType names YAML and chart archives so bucket consoles show them
// sensibly; the source ignores it.
func contentType(rel string) string {
	switch {
	case strings.HasSuffix(rel, ".yaml"), strings.HasSuffix(rel, ".yml"):
		return "application/yaml"
	case strings.HasSuffix(rel, ".tgz"):
		return "application/gzip"
	}
	return "application/octet-stream"
}

// encodeMessage makes message a valid metadata value: one line, at most
// maxMessage bytes, RFC 2047 encoded when it is not printable ASCII.
func encodeMessage(message string) string {
	message = strings.Join(strings.Fields(message), " ")
	if len(message) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(message[cut]) {
			cut--
		}
		message = message[:cut]
	}
	for _, r := range message {
		if r < 0x20 || r > 0x7e {
			return mime.QEncoding.Encode("utf-8", message)
		}
	}
	return message
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (s *Store) manifestPath() string { return filepath.Join(s.root, "manifest.json") }

// loadManifest reads the manifest; a missing or unreadable one is empty
// (every file is then downloaded again).
func (s *Store) loadManifest() *manifest {
	m := &manifest{Objects: map[string]entry{}}
	data, err := os.ReadFile(s.manifestPath())
	if err != nil || json.Unmarshal(data, m) != nil || m.Objects == nil {
		return &manifest{Objects: map[string]entry{}}
	}
	return m
}

// saveManifest writes the manifest atomically.
func (s *Store) saveManifest(m *manifest) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	tmp := s.manifestPath() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	if err := os.Rename(tmp, s.manifestPath()); err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	return nil
}

// lock serialises refreshes and edits of this store across goroutines and
// processes.
func (s *Store) lock(ctx context.Context) (func(), error) {
	s.mu.Lock()
	unlockFile, err := state.LockFile(ctx, filepath.Join(s.root, "lock"))
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("lock %s: %w", s, err)
	}
	return func() {
		unlockFile()
		s.mu.Unlock()
	}, nil
}
