package bucket

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Object is one object of a listing.
type Object struct {
	// Rel is the key relative to the prefix, checked by CheckKey.
	Rel string
	// Key is the full object key.
	Key string
	// ETag identifies the object's content as the server reports it.
	ETag string
	// Size in bytes.
	Size int64
}

// ErrTooLarge is wrapped by the error for an object over the size cap.
var ErrTooLarge = errors.New("object too large")

// ErrChanged is wrapped by Download's error when the object changed or
// vanished since it was listed: list again.
var ErrChanged = errors.New("object changed during the download")

// List lists the objects under loc's prefix with one listing (one request
// per 1000 keys) and returns them sorted by Rel, with Digest of them. It
// downloads nothing. Folder markers (keys ending in "/" with no content, as
// consoles create) are skipped; keys CheckKey refuses, keys that are both a
// file and a folder ("a" and "a/b"), and objects larger than maxSize are
// errors naming the key. Errors do not repeat the location; callers add it.
func List(ctx context.Context, c *minio.Client, loc Location, maxSize int64) ([]Object, string, error) {
	ctx, cancel := context.WithCancel(ctx) // stops the listing goroutine on an early return
	defer cancel()
	var objs []Object
	for info := range c.ListObjects(ctx, loc.Bucket, minio.ListObjectsOptions{Prefix: loc.Prefix, Recursive: true}) {
		if info.Err != nil {
			return nil, "", fmt.Errorf("list: %w", info.Err)
		}
		rel := strings.TrimPrefix(info.Key, loc.Prefix)
		if strings.HasSuffix(info.Key, "/") && info.Size == 0 {
			if dir := strings.TrimSuffix(rel, "/"); dir == "" || CheckKey(dir) == nil {
				continue // a folder marker
			}
		}
		if err := CheckKey(rel); err != nil {
			return nil, "", fmt.Errorf("refused %w", err)
		}
		if maxSize > 0 && info.Size > maxSize {
			return nil, "", fmt.Errorf("key %q: %w: %d bytes, the limit is %d", rel, ErrTooLarge, info.Size, maxSize)
		}
		objs = append(objs, Object{Rel: rel, Key: info.Key, ETag: info.ETag, Size: info.Size})
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Rel < objs[j].Rel })
	if err := checkTree(objs); err != nil {
		return nil, "", err
	}
	return objs, Digest(objs), nil
}

// checkTree refuses a key that is also the folder of another ("a" and
// "a/b"): no local folder can hold both. objs is sorted by Rel.
func checkTree(objs []Object) error {
	files := make(map[string]bool, len(objs))
	for _, o := range objs {
		files[o.Rel] = true
	}
	for _, o := range objs {
		for dir := o.Rel; ; {
			i := strings.LastIndexByte(dir, '/')
			if i < 0 {
				break
			}
			dir = dir[:i]
			if files[dir] {
				return fmt.Errorf("refused key %q: %w: %q is also an object", o.Rel, ErrUnsafeKey, dir)
			}
		}
	}
	return nil
}

// Digest is "sha256:<hex>" over the sorted (Rel, ETag) pairs: it changes
// whenever an object is added, removed or rewritten with other content.
// It is both the Revision and the Digest of a bucket snapshot.
func Digest(objs []Object) string {
	h := sha256.New()
	for _, o := range objs {
		fmt.Fprintf(h, "%d:%s %d:%s\n", len(o.Rel), o.Rel, len(o.ETag), o.ETag)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Download streams the object o (as listed) to the file dst, through a
// temporary file in dst's folder renamed into place, so dst is either
// absent or complete. It asks for exactly the listed version (If-Match on
// its ETag) and never writes more than maxSize bytes (0: no cap).
func Download(ctx context.Context, c *minio.Client, loc Location, o Object, dst string, maxSize int64) (err error) {
	opts := minio.GetObjectOptions{}
	if o.ETag != "" {
		if err := opts.SetMatchETag(o.ETag); err != nil {
			return fmt.Errorf("download %q: %w", o.Rel, err)
		}
	}
	obj, err := c.GetObject(ctx, loc.Bucket, o.Key, opts)
	if err != nil {
		return downloadErr(o, err)
	}
	defer obj.Close()

	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("download %q: %w", o.Rel, err)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".charter-tmp-*")
	if err != nil {
		return fmt.Errorf("download %q: %w", o.Rel, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var r io.Reader = obj
	if maxSize > 0 {
		r = io.LimitReader(obj, maxSize+1)
	}
	n, err := io.Copy(f, r)
	if err != nil {
		return downloadErr(o, err)
	}
	if maxSize > 0 && n > maxSize {
		return fmt.Errorf("download %q: %w: more than %d bytes", o.Rel, ErrTooLarge, maxSize)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("download %q: %w", o.Rel, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("download %q: %w", o.Rel, err)
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return fmt.Errorf("download %q: %w", o.Rel, err)
	}
	return nil
}

func downloadErr(o Object, err error) error {
	if IsPreconditionFailed(err) || IsNotFound(err) {
		return fmt.Errorf("download %q: %w", o.Rel, ErrChanged)
	}
	return fmt.Errorf("download %q: %w", o.Rel, err)
}
