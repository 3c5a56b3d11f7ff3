package bucket

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/charter-sh/charter/internal/testenv"
)

// server is a MinIO server started for one test, with an admin client.
type server struct {
	endpoint  string // http://127.0.0.1:PORT
	host      string // 127.0.0.1:PORT
	accessKey string
	secretKey string
	admin     *minio.Client
}

func startServer(t testing.TB) *server {
	t.Helper()
	endpoint, ak, sk := testenv.StartMinIO(t)
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, "")})
	if err != nil {
		t.Fatal(err)
	}
	return &server{endpoint: endpoint, host: u.Host, accessKey: ak, secretKey: sk, admin: admin}
}

// newBucket creates an empty bucket with a unique name.
func (s *server) newBucket(t testing.TB) string {
	t.Helper()
	name := "t-" + strings.ToLower(rand.Text()[:12])
	if err := s.admin.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

// put writes objects (key → content; nil content removes the key).
func (s *server) put(t testing.TB, bucket string, objects map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	for key, data := range objects {
		var err error
		if data == nil {
			err = s.admin.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{})
		} else {
			_, err = s.admin.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		}
		if err != nil {
			t.Fatalf("write %s/%s: %v", bucket, key, err)
		}
	}
}

// listingRewriter starts a reverse proxy to s, on loopback, that renames
// keys in object listings (old → new) and returns its HOST:PORT. AWS S3
// stores keys MinIO refuses ("a/../b", "a//b", "/abs", "a\b") or hides ("a"
// beside "a/b"); through the proxy, a real MinIO listing carries them. Old
// keys must be made of [A-Za-z0-9/._-] (listed as they are).
func (s *server) listingRewriter(t testing.TB, renames map[string]string) string {
	t.Helper()
	target, err := url.Parse(s.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	// The request keeps the client's Host header, which its signature covers.
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Query().Get("list-type") != "2" {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		for old, new := range renames {
			// Listings are url-encoded (minio-go asks for encoding-type=url).
			body = bytes.ReplaceAll(body, []byte("<Key>"+old+"</Key>"), []byte("<Key>"+url.QueryEscape(new)+"</Key>"))
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	ts := httptest.NewServer(proxy)
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

// countingTransport records the requests a client makes and can run a
// hook before each one.
type countingTransport struct {
	base   http.RoundTripper
	bucket string

	mu     sync.Mutex
	reqs   []string // "METHOD /path?query"
	before func(*http.Request)
}

func newCountingTransport(t testing.TB, bucket string) *countingTransport {
	base, err := minio.DefaultTransport(false)
	if err != nil {
		t.Fatal(err)
	}
	return &countingTransport{base: base, bucket: bucket}
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, req.Method+" "+req.URL.Path+"?"+req.URL.RawQuery)
	before := c.before
	c.mu.Unlock()
	if before != nil {
		before(req)
	}
	return c.base.RoundTrip(req)
}

// reset forgets the requests seen so far.
func (c *countingTransport) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = nil
}

// objectGets returns the object downloads (GETs below the bucket) since
// the last reset, as paths.
func (c *countingTransport) objectGets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var gets []string
	for _, r := range c.reqs {
		method, rest, _ := strings.Cut(r, " ")
		path, _, _ := strings.Cut(rest, "?")
		if method == http.MethodGet && strings.TrimPrefix(path, "/"+c.bucket+"/") != "" && strings.HasPrefix(path, "/"+c.bucket+"/") {
			gets = append(gets, path)
		}
	}
	return gets
}

func (c *countingTransport) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.reqs...)
}

// fetchTimeout bounds every Fetch in these tests.
const fetchTimeout = time.Minute

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	t.Cleanup(cancel)
	return ctx
}
