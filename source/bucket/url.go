package bucket

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/charter-sh/charter/source"
)

// Default endpoints of the s3:// and gs:// forms.
const (
	awsEndpoint = "s3.amazonaws.com"
	gcsEndpoint = "storage.googleapis.com"
)

// Location is a parsed bucket URL: where the S3 API answers and which
// bucket and prefix hold the declared state.
type Location struct {
	// Endpoint is the S3 API's HOST[:PORT], without scheme.
	Endpoint string
	// Secure is true when the endpoint speaks https.
	Secure bool
	// Bucket is the bucket name.
	Bucket string
	// Prefix is "" (the whole bucket) or a key prefix ending in "/".
	Prefix string
	// Region is the bucket's region; empty lets the client ask the server.
	Region string
	// Google is true for gs:// locations and the storage.googleapis.com
	// endpoint, whose XML API ignores If-Match and If-None-Match on writes.
	Google bool

	raw string // the location as given, for String
}

// String is the location as given (it never holds credentials: ParseURL
// refuses them), redacted anyway.
func (l Location) String() string { return source.Redact(l.raw) }

// ParseURL parses a bucket location:
//
//	s3://BUCKET[/PREFIX]                   endpoint opts.Endpoint, else AWS S3
//	gs://BUCKET[/PREFIX]                   endpoint opts.Endpoint, else https://storage.googleapis.com
//	s3+http://HOST[:PORT]/BUCKET[/PREFIX]  that endpoint, plain http
//	s3+https://HOST[:PORT]/BUCKET[/PREFIX] that endpoint, https
//
// opts.Endpoint is "http://HOST[:PORT]", "https://HOST[:PORT]" or
// "HOST[:PORT]" (https). The region is opts.Region, or a "?region=NAME"
// query, which wins. Credentials in the URL (user info) are refused: they
// would end up in shell history and process lists; use opts.AccessKey and
// opts.SecretKey or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func ParseURL(location string, opts source.Options) (Location, error) {
	loc := Location{raw: location, Region: opts.Region}
	fail := func(format string, args ...any) (Location, error) {
		return Location{}, fmt.Errorf("bucket location %s: %s", source.Redact(location), fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(location)
	if err != nil {
		return fail("not a URL")
	}
	if u.User != nil {
		return fail("credentials in the URL are not accepted; set the access and secret key options or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.Fragment != "" {
		return fail("a #fragment has no meaning here")
	}
	for k, v := range u.Query() {
		switch {
		case k == "region" && len(v) == 1 && v[0] != "":
			loc.Region = v[0]
		default:
			return fail("unknown query parameter %q (only region=NAME is accepted)", k)
		}
	}

	path := strings.TrimPrefix(u.Path, "/")
	switch u.Scheme {
	case "s3", "gs":
		loc.Bucket = u.Host
		loc.Endpoint, loc.Secure = awsEndpoint, true
		if u.Scheme == "gs" {
			loc.Endpoint = gcsEndpoint
		}
		if opts.Endpoint != "" {
			loc.Endpoint, loc.Secure, err = parseEndpoint(opts.Endpoint)
			if err != nil {
				return fail("%v", err)
			}
		}
	case "s3+http", "s3+https":
		if u.Host == "" {
			return fail("no HOST in %s://HOST[:PORT]/BUCKET[/PREFIX]", u.Scheme)
		}
		loc.Endpoint, loc.Secure = u.Host, u.Scheme == "s3+https"
		loc.Bucket, path, _ = strings.Cut(path, "/")
	default:
		return fail("scheme %q is not a bucket scheme (s3, gs, s3+http, s3+https)", u.Scheme)
	}
	loc.Google = u.Scheme == "gs" || loc.Endpoint == gcsEndpoint || strings.HasPrefix(loc.Endpoint, gcsEndpoint+":")
	if loc.Bucket == "" {
		return fail("no bucket name")
	}
	if err := s3utils.CheckValidBucketName(loc.Bucket); err != nil {
		return fail("bucket name %q: %v", loc.Bucket, err)
	}
	if path != "" {
		p := strings.TrimSuffix(path, "/")
		if err := CheckKey(p); err != nil {
			return fail("prefix: %v", err)
		}
		loc.Prefix = p + "/"
	}
	return loc, nil
}

// parseEndpoint reads "http://HOST[:PORT]", "https://HOST[:PORT]" or
// "HOST[:PORT]" (https).
func parseEndpoint(e string) (host string, secure bool, err error) {
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil || u.Host == "" {
		return "", false, fmt.Errorf("endpoint %s: want http(s)://HOST[:PORT]", source.Redact(e))
	}
	if u.User != nil {
		return "", false, fmt.Errorf("endpoint %s: credentials in the endpoint are not accepted", source.Redact(e))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", false, fmt.Errorf("endpoint %s: scheme must be http or https", source.Redact(e))
	}
	if p := strings.Trim(u.Path, "/"); p != "" || u.RawQuery != "" {
		return "", false, fmt.Errorf("endpoint %s: want no path or query after HOST[:PORT]", source.Redact(e))
	}
	return u.Host, u.Scheme == "https", nil
}

// Key errors, wrapped by CheckKey's error.
var (
	// ErrUnsafeKey marks a key that cannot be mapped safely to a file in a
	// local folder.
	ErrUnsafeKey = errors.New("unsafe key")
)

// CheckKey refuses a key (relative to the prefix) that does not map to a
// file inside a local folder: absolute ("/etc/passwd"), with backslashes,
// with empty, "." or ".." segments, or with control characters.
func CheckKey(rel string) error {
	bad := func(why string) error { return fmt.Errorf("key %q: %w: %s", rel, ErrUnsafeKey, why) }
	switch {
	case rel == "":
		return bad("empty")
	case strings.HasPrefix(rel, "/"):
		return bad("absolute path")
	case strings.Contains(rel, `\`):
		return bad("backslash")
	}
	for _, r := range rel {
		if r < 0x20 || r == 0x7f {
			return bad("control character")
		}
	}
	for seg := range strings.SplitSeq(rel, "/") {
		switch seg {
		case "":
			return bad("empty path segment")
		case ".", "..":
			return bad(fmt.Sprintf("%q segment", seg))
		}
	}
	return nil
}
