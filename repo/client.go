package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/bucket"
)

// Default caps and timeout of a Client.
const (
	DefaultMaxChartSize = 100 << 20
	DefaultTimeout      = 2 * time.Minute
	maxProvSize         = 1 << 20
	maxRedirects        = 10
)

// Repository is a chart repository and its credentials.
type Repository struct {
	Name string
	URL  string // https://, http://, s3://, gs://, s3+http(s)://, file://
	// Username and Password: HTTP basic auth, or the bucket's access and
	// secret key. A Password without Username is sent as a bearer token.
	Username, Password string
	// AllowCrossOrigin sends the credentials also to chart URLs of another
	// origin listed in the index (never to plain http from https).
	AllowCrossOrigin bool
}

// String is the repository's name and redacted URL; never a secret.
func (r Repository) String() string {
	return fmt.Sprintf("repository %s (%s)", r.Name, source.Redact(r.URL))
}

// ClientOptions configure a Client.
type ClientOptions struct {
	// CacheDir keeps downloaded index files and their ETags (required for
	// http and bucket repositories).
	CacheDir string
	// HTTPClient's Transport is used for http(s) (nil: http.DefaultTransport).
	// Its redirect policy and Jar are replaced.
	HTTPClient *http.Client
	// BucketOptions are used for bucket repositories (endpoint, region,
	// default keys); a Repository's Username/Password override the keys.
	BucketOptions source.Options
	// Timeout bounds each request (0: DefaultTimeout).
	Timeout time.Duration
	// MaxIndexSize and MaxChartSize cap downloads (0: the defaults).
	MaxIndexSize, MaxChartSize int64
}

// Client fetches indexes and charts. It is safe for concurrent use.
type Client struct {
	opts ClientOptions
	base http.RoundTripper

	mu     sync.Mutex
	loaded map[string]loadedIndex // by cache key
}

type loadedIndex struct {
	etag string
	idx  *Index
}

// NewClient returns a Client; it makes no request.
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.CacheDir == "" {
		return nil, errors.New("repository client: no cache folder")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxIndexSize <= 0 {
		opts.MaxIndexSize = DefaultMaxIndexSize
	}
	if opts.MaxChartSize <= 0 {
		opts.MaxChartSize = DefaultMaxChartSize
	}
	c := &Client{opts: opts, base: http.DefaultTransport, loaded: map[string]loadedIndex{}}
	if opts.HTTPClient != nil && opts.HTTPClient.Transport != nil {
		c.base = opts.HTTPClient.Transport
	}
	return c, nil
}

// origin is scheme://host:port with the default port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// authTransport adds the credentials to requests whose URL has one of the
// allowed origins, checked per request, so redirects elsewhere go without.
type authTransport struct {
	base    http.RoundTripper
	allowed map[string]bool
	user    string
	pass    string
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Del("Authorization")
	if t.allowed[origin(req.URL)] && (t.user != "" || t.pass != "") {
		if t.user != "" {
			req.SetBasicAuth(t.user, t.pass)
		} else {
			req.Header.Set("Authorization", "Bearer "+t.pass)
		}
	}
	return t.base.RoundTrip(req)
}

// httpClient returns a client sending repo's credentials to the origins of
// the given URLs only.
func (c *Client) httpClient(repo Repository, origins ...*url.URL) *http.Client {
	t := &authTransport{base: c.base, allowed: map[string]bool{}, user: repo.Username, pass: repo.Password}
	for _, u := range origins {
		t.allowed[origin(u)] = true
	}
	return &http.Client{
		Transport: t,
		Timeout:   c.opts.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			return nil
		},
	}
}

func (c *Client) repoErr(repo Repository, what string, err error) error {
	return fmt.Errorf("%s: %s: %w", repo, what, err)
}

func parseRepoURL(repo Repository) (*url.URL, error) {
	u, err := url.Parse(repo.URL)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("%s: not a URL", repo)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: credentials in the URL are not accepted; give them as a credential", repo)
	}
	switch u.Scheme {
	case "https", "http", "file", "s3", "gs", "s3+http", "s3+https":
	default:
		return nil, fmt.Errorf("%s: scheme %q is not supported (https, http, s3, gs, s3+http(s), file)", repo, u.Scheme)
	}
	return u, nil
}

func isBucket(scheme string) bool {
	return scheme == "s3" || scheme == "gs" || scheme == "s3+http" || scheme == "s3+https"
}

// indexURL is the repository URL with /index.yaml appended.
func indexURL(u *url.URL) *url.URL {
	v := *u
	v.Path = strings.TrimSuffix(v.Path, "/") + "/index.yaml"
	v.RawPath = ""
	return &v
}

// Index fetches, caches and loads repo's index.yaml. http(s) and bucket
// indexes are revalidated with their ETag on every call (one conditional
// request; an unchanged index is not downloaded or parsed again); file://
// indexes are reloaded when their size or modification time change. The
// returned Index has Name set to repo.Name and must not be modified.
func (c *Client) Index(ctx context.Context, repo Repository) (*Index, error) {
	u, err := parseRepoURL(repo)
	if err != nil {
		return nil, err
	}
	key := cacheKey(u)
	c.mu.Lock()
	prev := c.loaded[key]
	c.mu.Unlock()
	dir := filepath.Join(c.opts.CacheDir, "index", key)
	meta := readMeta(dir)
	if prev.idx == nil && meta.ETag != "" { // cache from an earlier process
		prev.etag = meta.ETag
	}

	var etag, file string
	switch {
	case u.Scheme == "file":
		file = filepath.Join(filepath.FromSlash(u.Path), "index.yaml")
		fi, err := os.Stat(file)
		if err != nil {
			return nil, c.repoErr(repo, "read index", err)
		}
		etag = fmt.Sprintf("%d-%d", fi.Size(), fi.ModTime().UnixNano())
	case isBucket(u.Scheme):
		etag, file, err = c.bucketIndex(ctx, repo, u, dir, prev.etag)
	default:
		etag, file, err = c.httpIndex(ctx, repo, u, dir, prev.etag)
	}
	if err != nil {
		return nil, err
	}
	if prev.idx != nil && etag == prev.etag {
		return prev.idx, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, c.repoErr(repo, "read index", err)
	}
	defer f.Close()
	idx, err := LoadIndex(f, c.opts.MaxIndexSize)
	if err != nil {
		return nil, c.repoErr(repo, "index", err)
	}
	idx.Name = repo.Name
	c.mu.Lock()
	c.loaded[key] = loadedIndex{etag: etag, idx: idx}
	c.mu.Unlock()
	return idx, nil
}

func cacheKey(u *url.URL) string {
	s := sha256.Sum256([]byte(strings.TrimSuffix(u.String(), "/")))
	return hex.EncodeToString(s[:12])
}

type cacheMeta struct {
	ETag string `json:"etag"`
}

func readMeta(dir string) cacheMeta {
	var m cacheMeta
	if b, err := os.ReadFile(filepath.Join(dir, "meta.json")); err == nil {
		_ = json.Unmarshal(b, &m) // a damaged cache is refetched
	}
	if _, err := os.Stat(filepath.Join(dir, "index.yaml")); err != nil {
		return cacheMeta{}
	}
	return m
}

// store writes body (capped) to dir/index.yaml and the ETag beside it.
func store(dir string, body io.Reader, etag string, max int64) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".index-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, io.LimitReader(body, max+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if n > max {
		return "", fmt.Errorf("index larger than the %d byte limit", max)
	}
	dst := filepath.Join(dir, "index.yaml")
	if err := os.Rename(f.Name(), dst); err != nil {
		return "", err
	}
	m, _ := json.Marshal(cacheMeta{ETag: etag})
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), m, 0o644); err != nil {
		return "", err
	}
	return dst, nil
}

func (c *Client) httpIndex(ctx context.Context, repo Repository, u *url.URL, dir, etag string) (string, string, error) {
	iu := indexURL(u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, iu.String(), nil)
	if err != nil {
		return "", "", c.repoErr(repo, "fetch index", err)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.httpClient(repo, u).Do(req)
	if err != nil {
		return "", "", c.repoErr(repo, "fetch index", redactErr(err))
	}
	defer resp.Body.Close()
	file := filepath.Join(dir, "index.yaml")
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		return etag, file, nil
	case resp.StatusCode != http.StatusOK:
		return "", "", fmt.Errorf("%s: %s", repo, resp.Status)
	}
	newTag := resp.Header.Get("ETag")
	if file, err = store(dir, resp.Body, newTag, c.opts.MaxIndexSize); err != nil {
		return "", "", c.repoErr(repo, "fetch index", redactErr(err))
	}
	if newTag == "" {
		newTag = "none-" + time.Now().String() // never equal: always reload
	}
	return newTag, file, nil
}

// redactErr strips URLs with credentials from transport errors.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, source.Redact(ue.URL), ue.Err)
	}
	return err
}

func (c *Client) bucketClient(repo Repository, u *url.URL) (*minio.Client, bucket.Location, error) {
	opts := c.opts.BucketOptions
	if repo.Username != "" || repo.Password != "" {
		opts.AccessKey, opts.SecretKey = repo.Username, repo.Password
	}
	loc, err := bucket.ParseURL(u.String(), opts)
	if err != nil {
		return nil, loc, err
	}
	mc, err := bucket.NewClient(loc, opts)
	return mc, loc, err
}

func (c *Client) bucketIndex(ctx context.Context, repo Repository, u *url.URL, dir, etag string) (string, string, error) {
	mc, loc, err := c.bucketClient(repo, u)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", repo, err)
	}
	opts := minio.GetObjectOptions{}
	if etag != "" {
		_ = opts.SetMatchETagExcept(etag)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	obj, err := mc.GetObject(ctx, loc.Bucket, loc.Prefix+"index.yaml", opts)
	if err == nil {
		var st minio.ObjectInfo
		if st, err = obj.Stat(); err == nil {
			defer obj.Close()
			file, err := store(dir, obj, st.ETag, c.opts.MaxIndexSize)
			if err != nil {
				return "", "", c.repoErr(repo, "fetch index", err)
			}
			return st.ETag, file, nil
		}
		obj.Close()
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.StatusCode == http.StatusNotModified && etag != "" {
		return etag, filepath.Join(dir, "index.yaml"), nil
	}
	return "", "", c.repoErr(repo, "fetch index", bucketErr(err))
}

func bucketErr(err error) error {
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.StatusCode != 0 {
		return fmt.Errorf("%d %s (%s)", er.StatusCode, http.StatusText(er.StatusCode), er.Code)
	}
	return err
}

// ChartURL resolves cv's first URL against the repository URL.
func ChartURL(repo Repository, cv *ChartVersion) (*url.URL, error) {
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("%s: chart %s-%s has no URL", repo, cv.Name, cv.Version)
	}
	base, err := parseRepoURL(repo)
	if err != nil {
		return nil, err
	}
	b := *base
	b.Path = strings.TrimSuffix(b.Path, "/") + "/"
	ref, err := url.Parse(cv.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("%s: chart %s-%s: bad URL %s", repo, cv.Name, cv.Version, source.Redact(cv.URLs[0]))
	}
	u := b.ResolveReference(ref)
	switch {
	case u.Scheme == "http" || u.Scheme == "https":
	case u.Scheme == base.Scheme && (u.Scheme == "file" || isBucket(u.Scheme)):
		// a file or bucket URL only from a repository of the same kind
	default:
		return nil, fmt.Errorf("%s: chart %s-%s: URL scheme %q not allowed in this repository", repo, cv.Name, cv.Version, u.Scheme)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: chart %s-%s: credentials in a chart URL are not accepted", repo, cv.Name, cv.Version)
	}
	return u, nil
}

// Fetch downloads cv's archive (at most MaxChartSize bytes) and its .prov
// file (nil when the repository has none), verifying the archive against
// cv.Digest when the index gives one. Relative chart URLs are resolved
// against the repository URL.
func (c *Client) Fetch(ctx context.Context, repo Repository, cv *ChartVersion) (archive, prov []byte, err error) {
	u, err := ChartURL(repo, cv)
	if err != nil {
		return nil, nil, err
	}
	archive, err = c.get(ctx, repo, u, c.opts.MaxChartSize)
	if err != nil {
		return nil, nil, err
	}
	if err := verifyDigest(archive, cv.Digest); err != nil {
		return nil, nil, fmt.Errorf("%s: chart %s-%s: %w", repo, cv.Name, cv.Version, err)
	}
	pu := *u
	pu.Path += ".prov"
	pu.RawPath = ""
	prov, err = c.get(ctx, repo, &pu, maxProvSize)
	if errors.Is(err, errNotFound) {
		return archive, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return archive, prov, nil
}

// ErrDigestMismatch marks an archive whose sha256 differs from the index.
var ErrDigestMismatch = errors.New("digest mismatch")

func verifyDigest(data []byte, want string) error {
	want = strings.ToLower(strings.TrimPrefix(want, "sha256:"))
	if want == "" {
		return nil
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want {
		return fmt.Errorf("%w: archive has sha256:%s, the index says sha256:%s", ErrDigestMismatch, got, want)
	}
	return nil
}

var errNotFound = errors.New("not found")

// get downloads u (an archive or .prov) with repo's credentials when allowed.
func (c *Client) get(ctx context.Context, repo Repository, u *url.URL, max int64) ([]byte, error) {
	fail := func(err error) ([]byte, error) {
		return nil, fmt.Errorf("repository %s (%s): %w", repo.Name, source.Redact(u.String()), err)
	}
	base, err := parseRepoURL(repo)
	if err != nil {
		return nil, err
	}
	var body io.ReadCloser
	switch {
	case u.Scheme == "file":
		f, err := os.Open(filepath.FromSlash(u.Path))
		if errors.Is(err, os.ErrNotExist) {
			return fail(errNotFound)
		}
		if err != nil {
			return fail(err)
		}
		body = f
	case isBucket(u.Scheme):
		bu := *u
		dir, file := path.Split(bu.Path)
		bu.Path = dir
		r := repo
		if bucketOf(&bu) != bucketOf(base) && !repo.AllowCrossOrigin {
			r.Username, r.Password = "", ""
		}
		mc, loc, err := c.bucketClient(r, &bu)
		if err != nil {
			return fail(err)
		}
		ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
		obj, err := mc.GetObject(ctx, loc.Bucket, loc.Prefix+file, minio.GetObjectOptions{})
		if err == nil {
			_, err = obj.Stat()
		}
		if bucket.IsNotFound(err) {
			return fail(errNotFound)
		}
		if err != nil {
			return fail(bucketErr(err))
		}
		body = obj
	default:
		origins := []*url.URL{base}
		if repo.AllowCrossOrigin && (u.Scheme == "https" || base.Scheme == "http") {
			origins = append(origins, u)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return fail(err)
		}
		resp, err := c.httpClient(repo, origins...).Do(req)
		if err != nil {
			return fail(redactErr(err))
		}
		if resp.StatusCode == http.StatusNotFound {
			resp.Body.Close()
			return fail(errNotFound)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fail(errors.New(resp.Status))
		}
		body = resp.Body
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return fail(redactErr(err))
	}
	if int64(len(data)) > max {
		return fail(fmt.Errorf("larger than the %d byte limit", max))
	}
	return data, nil
}

// bucketOf is the endpoint-independent identity of a bucket URL.
func bucketOf(u *url.URL) string {
	if u.Scheme == "s3" || u.Scheme == "gs" {
		return u.Scheme + "://" + u.Host
	}
	b, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	return u.Scheme + "://" + u.Host + "/" + b
}
