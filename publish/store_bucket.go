package publish

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/charter-sh/charter/source/bucket"
)

// bucketStore is an object-storage destination (source/bucket's URLs).
type bucketStore struct {
	loc     bucket.Location
	client  *minio.Client
	timeout time.Duration
}

func newBucketStore(dest string, opts Options) (*bucketStore, error) {
	loc, err := bucket.ParseURL(dest, opts.Bucket)
	if err != nil {
		return nil, err
	}
	c, err := bucket.NewClient(loc, opts.Bucket)
	if err != nil {
		return nil, err
	}
	t := opts.Bucket.Timeout
	if t <= 0 {
		t = bucket.DefaultTimeout
	}
	return &bucketStore{loc: loc, client: c, timeout: t}, nil
}

func (s *bucketStore) describe(name string, err error) error {
	if bucket.IsNoSuchBucket(err) {
		return fmt.Errorf("bucket %q does not exist at %s; create it first", s.loc.Bucket, s.loc.Endpoint)
	}
	if code := minio.ToErrorResponse(err).StatusCode; code != 0 {
		return fmt.Errorf("%s: %d %s: %w", name, code, http.StatusText(code), err)
	}
	return fmt.Errorf("%s: %w", name, err)
}

func (s *bucketStore) readFile(ctx context.Context, name string, max int64) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// One GET whose response carries both the content and its ETag (the
	// lazy minio.Object would ask again with If-Match, failing with 412
	// when a concurrent release rewrote the index in between).
	body, info, _, err := (&minio.Core{Client: s.client}).GetObject(ctx, s.loc.Bucket, s.loc.Prefix+name, minio.GetObjectOptions{})
	if bucket.IsNotFound(err) {
		return nil, "", fmt.Errorf("read %s: %w", name, errNotFound)
	}
	if err != nil {
		return nil, "", s.describe("read "+name, err)
	}
	defer body.Close()
	if info.Size > max {
		return nil, "", fmt.Errorf("read %s: %d bytes, larger than the %d byte limit", name, info.Size, max)
	}
	data, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, "", s.describe("read "+name, err)
	}
	if int64(len(data)) > max {
		return nil, "", fmt.Errorf("read %s: larger than the %d byte limit", name, max)
	}
	return data, info.ETag, nil
}

func (s *bucketStore) writeFile(ctx context.Context, name string, data []byte, version string, replace bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := s.loc.Prefix + name
	if s.loc.Google && (version != "" || !replace) {
		// GCS's XML API ignores the conditions on writes: check first.
		info, err := s.client.StatObject(ctx, s.loc.Bucket, key, minio.StatObjectOptions{})
		switch {
		case bucket.IsNotFound(err) && version == "":
		case bucket.IsNotFound(err):
			return fmt.Errorf("write %s: removed meanwhile: %w", name, errConflict)
		case err != nil:
			return s.describe("write "+name, err)
		case version == "":
			return fmt.Errorf("write %s: %w", name, errExists)
		case info.ETag != version:
			return fmt.Errorf("write %s: %w", name, errConflict)
		}
	}
	opts := minio.PutObjectOptions{
		ContentType:      contentType(name),
		DisableMultipart: true, // one request, so the condition covers the whole write
	}
	switch {
	case version != "":
		opts.SetMatchETag(version)
	case !replace:
		opts.SetMatchETagExcept("*")
	}
	_, err := s.client.PutObject(ctx, s.loc.Bucket, key, bytes.NewReader(data), int64(len(data)), opts)
	switch {
	case err == nil:
		return nil
	case version != "" && (bucket.IsPreconditionFailed(err) || bucket.IsNotFound(err)):
		return fmt.Errorf("write %s: %w", name, errConflict)
	case version == "" && bucket.IsPreconditionFailed(err):
		return fmt.Errorf("write %s: %w", name, errExists)
	}
	return s.describe("write "+name, err)
}

func (s *bucketStore) removeFile(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := s.client.RemoveObject(ctx, s.loc.Bucket, s.loc.Prefix+name, minio.RemoveObjectOptions{})
	if err != nil && !bucket.IsNotFound(err) {
		return s.describe("remove "+name, err)
	}
	return nil
}

// contentType is what clients and bucket consoles expect for each file.
func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".yaml"):
		return "application/yaml"
	case strings.HasSuffix(name, ".tgz"):
		return "application/gzip"
	case strings.HasSuffix(name, ".prov"):
		return "application/pgp-signature"
	}
	return "application/octet-stream"
}
