package bucketstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/source"
)

// server is a MinIO server started for one test, with an admin client.
type server struct {
	endpoint  string // http://127.0.0.1:PORT
	host      string // 127.0.0.1:PORT
	accessKey string
	secretKey string
	admin     *minio.Client
}

func startServer(t *testing.T) *server {
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

func (s *server) newBucket(t testing.TB) string {
	t.Helper()
	name := "t-" + strings.ToLower(rand.Text()[:12])
	if err := s.admin.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

func (s *server) put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	_, err := s.admin.PutObject(context.Background(), bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

// get returns an object's content and user metadata; ok is false when it
// does not exist.
func (s *server) get(t testing.TB, bucket, key string) (data string, meta map[string]string, ok bool) {
	t.Helper()
	ctx := context.Background()
	info, err := s.admin.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return "", nil, false
	}
	if err != nil {
		t.Fatalf("stat %s/%s: %v", bucket, key, err)
	}
	obj, err := s.admin.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return string(b), info.UserMetadata, true
}

// openStore opens a store on location with srv's keys and its own cache,
// its client's requests checked by a guard.
func openStore(t *testing.T, srv *server, location string, opts source.Options) (*Store, *guard) {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	if opts.AccessKey == "" {
		opts.AccessKey, opts.SecretKey = srv.accessKey, srv.secretKey
	}
	s, err := Open(context.Background(), location, opts)
	if err != nil {
		t.Fatal(err)
	}
	base, err := minio.DefaultTransport(false)
	if err != nil {
		t.Fatal(err)
	}
	g := &guard{base: base}
	c, err := minio.New(s.loc.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, ""),
		Secure:    s.loc.Secure,
		Region:    s.loc.Region,
		Transport: g,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	return s, g
}

// guard records the writes a store makes: every PUT must be conditional
// and every DELETE preceded by a HEAD of the same object.
type guard struct {
	base http.RoundTripper

	mu         sync.Mutex
	violations []string
	lastHead   string
	puts       int
	deletes    int
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	g.mu.Lock()
	switch req.Method {
	case http.MethodPut:
		g.puts++
		if req.Header.Get("If-Match") == "" && req.Header.Get("If-None-Match") == "" {
			g.violations = append(g.violations, "unconditional PUT "+req.URL.Path)
		}
	case http.MethodHead:
		g.lastHead = req.URL.Path
	case http.MethodDelete:
		g.deletes++
		if g.lastHead != req.URL.Path {
			g.violations = append(g.violations, "DELETE without a stat first: "+req.URL.Path)
		}
	}
	g.mu.Unlock()
	return g.base.RoundTrip(req)
}

func (g *guard) check(t testing.TB) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, v := range g.violations {
		t.Error(v)
	}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
