package bucket

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/sourcetest"
)

func TestConformance(t *testing.T) {
	srv := startServer(t)
	forms := map[string]func(bucket string) (string, source.Options){
		"s3+http URL": func(bucket string) (string, source.Options) {
			return "s3+http://" + srv.host + "/" + bucket + "/team/state", source.Options{}
		},
		"s3 URL with an endpoint option": func(bucket string) (string, source.Options) {
			return "s3://" + bucket + "/state", source.Options{Endpoint: srv.endpoint, Region: "us-east-1"}
		},
		"whole bucket": func(bucket string) (string, source.Options) {
			return "s3+http://" + srv.host + "/" + bucket, source.Options{}
		},
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			sourcetest.Run(t, func(t *testing.T) *sourcetest.Harness {
				bucket := srv.newBucket(t)
				location, opts := form(bucket)
				opts.CacheDir = t.TempDir()
				opts.AccessKey, opts.SecretKey = srv.accessKey, srv.secretKey
				s, err := New(location, opts)
				if err != nil {
					t.Fatal(err)
				}
				prefix := s.loc.Prefix
				return &sourcetest.Harness{
					Source: s,
					Write: func(t testing.TB, files map[string][]byte) {
						objects := map[string][]byte{}
						for rel, data := range files {
							objects[prefix+rel] = data
						}
						srv.put(t, bucket, objects)
					},
					Secret: srv.secretKey,
					Broken: func(t testing.TB) source.Source {
						bad := opts
						bad.SecretKey = "not-the-secret-key"
						s, err := New(location, bad)
						if err != nil {
							t.Fatal(err)
						}
						return s
					},
				}
			})
		})
	}
}

// newTestSource opens a counted source on bucket/state with srv's keys.
func newTestSource(t *testing.T, srv *server, bucket string, opts source.Options) (*Source, *countingTransport) {
	t.Helper()
	return newTestSourceAt(t, srv, srv.host, bucket, opts)
}

// newTestSourceAt is newTestSource through another HOST:PORT (a proxy).
func newTestSourceAt(t *testing.T, srv *server, host, bucket string, opts source.Options) (*Source, *countingTransport) {
	t.Helper()
	rt := newCountingTransport(t, bucket)
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	opts.AccessKey, opts.SecretKey = srv.accessKey, srv.secretKey
	s, err := newSource("s3+http://"+host+"/"+bucket+"/state", opts, rt)
	if err != nil {
		t.Fatal(err)
	}
	return s, rt
}

func mustFetch(t *testing.T, s *Source) *source.Artifact {
	t.Helper()
	a, err := s.Fetch(testContext(t))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return a
}

func readFile(t *testing.T, a *source.Artifact, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(a.Path, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return string(data)
}

func TestFetchDownloadsOnlyWhatChanged(t *testing.T) {
	srv := startServer(t)
	bucket := srv.newBucket(t)
	srv.put(t, bucket, map[string][]byte{
		"state/releases/a.yaml": []byte("a: 1\n"),
		"state/releases/b.yaml": []byte("b: 1\n"),
		"state/values/c.yaml":   []byte("c: 1\n"),
		"elsewhere/x.yaml":      []byte("outside the prefix\n"),
	})
	s, rt := newTestSource(t, srv, bucket, source.Options{})

	first := mustFetch(t, s)
	if got := len(rt.objectGets()); got != 3 {
		t.Errorf("first fetch downloaded %d objects, want 3: %v", got, rt.objectGets())
	}
	if _, err := os.Stat(filepath.Join(first.Path, "x.yaml")); !os.IsNotExist(err) {
		t.Errorf("object outside the prefix in the snapshot: %v", err)
	}

	t.Run("an unchanged poll is one listing and downloads nothing", func(t *testing.T) {
		rt.reset()
		again := mustFetch(t, s)
		if *again != *first {
			t.Errorf("unchanged poll: %+v, want %+v", again, first)
		}
		if reqs := rt.requests(); len(reqs) != 1 || !strings.HasPrefix(reqs[0], "GET /"+bucket+"/?") {
			t.Errorf("unchanged poll made %d requests %v, want one listing", len(reqs), reqs)
		}
	})

	t.Run("a change downloads the changed object only", func(t *testing.T) {
		srv.put(t, bucket, map[string][]byte{"state/releases/b.yaml": []byte("b: 2\n")})
		rt.reset()
		second := mustFetch(t, s)
		if second.Revision == first.Revision || second.Digest != second.Revision {
			t.Errorf("after a change: revision %q → %q, digest %q", first.Revision, second.Revision, second.Digest)
		}
		if gets := rt.objectGets(); len(gets) != 1 || !strings.HasSuffix(gets[0], "/state/releases/b.yaml") {
			t.Errorf("downloads after changing b.yaml: %v, want only b.yaml", gets)
		}
		if got := readFile(t, second, "releases/b.yaml"); got != "b: 2\n" {
			t.Errorf("b.yaml = %q", got)
		}
		for _, rel := range []string{"releases/a.yaml", "values/c.yaml"} {
			fi1, err1 := os.Stat(filepath.Join(first.Path, rel))
			fi2, err2 := os.Stat(filepath.Join(second.Path, rel))
			if err1 != nil || err2 != nil || !os.SameFile(fi1, fi2) {
				t.Errorf("%s: not shared with the previous snapshot (%v, %v)", rel, err1, err2)
			}
		}
		if got := readFile(t, first, "releases/b.yaml"); got != "b: 1\n" {
			t.Errorf("previous snapshot changed under its reader: b.yaml = %q", got)
		}

		t.Run("the snapshot before the previous one is removed", func(t *testing.T) {
			srv.put(t, bucket, map[string][]byte{"state/releases/a.yaml": []byte("a: 2\n")})
			third := mustFetch(t, s)
			if _, err := os.Stat(first.Path); !os.IsNotExist(err) {
				t.Errorf("oldest snapshot %s still there: %v", first.Path, err)
			}
			if _, err := os.Stat(second.Path); err != nil {
				t.Errorf("previous snapshot removed too early: %v", err)
			}
			if got := readFile(t, third, "releases/a.yaml"); got != "a: 2\n" {
				t.Errorf("a.yaml = %q", got)
			}
		})
	})
}

func TestFetchAfterRestartReusesTheCache(t *testing.T) {
	srv := startServer(t)
	bucket := srv.newBucket(t)
	srv.put(t, bucket, map[string][]byte{"state/releases/a.yaml": []byte("a: 1\n"), "state/values/v.yaml": []byte("v: 1\n")})
	cache := t.TempDir()
	s1, _ := newTestSource(t, srv, bucket, source.Options{CacheDir: cache})
	a1 := mustFetch(t, s1)

	s2, rt := newTestSource(t, srv, bucket, source.Options{CacheDir: cache})
	a2 := mustFetch(t, s2)
	if a2.Revision != a1.Revision || a2.Path != a1.Path {
		t.Errorf("after restart: %+v, want %+v", a2, a1)
	}
	if gets := rt.objectGets(); len(gets) != 0 {
		t.Errorf("restarted source downloaded %v, want nothing", gets)
	}

	srv.put(t, bucket, map[string][]byte{"state/values/v.yaml": []byte("v: 2\n")})
	a3 := mustFetch(t, s2)
	if gets := rt.objectGets(); len(gets) != 1 {
		t.Errorf("restarted source downloaded %v after one change, want one object", gets)
	}
	if got := readFile(t, a3, "values/v.yaml"); got != "v: 2\n" {
		t.Errorf("v.yaml = %q", got)
	}
}

func TestFetchRefusesUnsafeKeys(t *testing.T) {
	srv := startServer(t)
	// Each case lists one key AWS S3 would store; the proxy puts it in
	// MinIO's listing in place of state/placeholder.yaml.
	cases := map[string]struct {
		key     string // full key, as listed
		also    string // another object stored as it is
		wantKey string // the key the error names (relative to the prefix)
	}{
		"dot-dot segments":          {key: "state/releases/../../evil.yaml", wantKey: "releases/../../evil.yaml"},
		"dot segment":               {key: "state/releases/./a.yaml", wantKey: "releases/./a.yaml"},
		"empty segment":             {key: "state/releases//a.yaml", wantKey: "releases//a.yaml"},
		"absolute after the prefix": {key: "state//etc/passwd", wantKey: "/etc/passwd"},
		"backslash":                 {key: `state/releases\..\a.yaml`, wantKey: `releases\..\a.yaml`},
		"control character":         {key: "state/releases/a\x1b.yaml", wantKey: "releases/a\x1b.yaml"},
		"file and folder":           {key: "state/releases/a.yaml", also: "state/releases", wantKey: "releases/a.yaml"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			bucket := srv.newBucket(t)
			objects := map[string][]byte{"state/placeholder.yaml": []byte("x"), "state/values/ok.yaml": []byte("ok")}
			if tc.also != "" {
				objects[tc.also] = []byte("y")
			}
			srv.put(t, bucket, objects)
			host := srv.listingRewriter(t, map[string]string{"state/placeholder.yaml": tc.key})
			s, rt := newTestSourceAt(t, srv, host, bucket, source.Options{})
			_, err := s.Fetch(testContext(t))
			if err == nil {
				t.Fatal("fetch succeeded")
			}
			if !errors.Is(err, ErrUnsafeKey) || !strings.Contains(err.Error(), strconv.Quote(tc.wantKey)) {
				t.Errorf("error %q: want ErrUnsafeKey naming %q", err, tc.wantKey)
			}
			if gets := rt.objectGets(); len(gets) != 0 {
				t.Errorf("downloaded %v before refusing", gets)
			}
			if entries, _ := filepath.Glob(filepath.Join(s.dir, "snap-*")); len(entries) != 0 {
				t.Errorf("left %v in the cache", entries)
			}
		})
	}
	t.Run("the proxy itself passes safe keys", func(t *testing.T) {
		bucket := srv.newBucket(t)
		srv.put(t, bucket, map[string][]byte{"state/placeholder.yaml": []byte("x")})
		host := srv.listingRewriter(t, map[string]string{"state/other.yaml": "state/../never-listed"})
		s, _ := newTestSourceAt(t, srv, host, bucket, source.Options{})
		if got := readFile(t, mustFetch(t, s), "placeholder.yaml"); got != "x" {
			t.Errorf("placeholder.yaml = %q", got)
		}
	})
}

func TestFetchSkipsFolderMarkers(t *testing.T) {
	srv := startServer(t)
	bucket := srv.newBucket(t)
	srv.put(t, bucket, map[string][]byte{
		"state/":                []byte{},
		"state/releases/":       []byte{},
		"state/releases/a.yaml": []byte("a: 1\n"),
	})
	s, _ := newTestSource(t, srv, bucket, source.Options{})
	a := mustFetch(t, s)
	if got := readFile(t, a, "releases/a.yaml"); got != "a: 1\n" {
		t.Errorf("a.yaml = %q", got)
	}
}

func TestFetchRefusesOversizeObjectsWithoutReadingThem(t *testing.T) {
	srv := startServer(t)
	bucket := srv.newBucket(t)
	const size = 20 << 20
	srv.put(t, bucket, map[string][]byte{
		"state/charts/big-1.0.0.tgz": bytes.Repeat([]byte{'x'}, size),
		"state/releases/a.yaml":      []byte("a: 1\n"),
	})
	s, rt := newTestSource(t, srv, bucket, source.Options{MaxFileSize: 10 << 20})
	_, err := s.Fetch(testContext(t))
	if err == nil {
		t.Fatal("fetch succeeded")
	}
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `"charts/big-1.0.0.tgz"`) || !strings.Contains(err.Error(), strconv.Itoa(size)) {
		t.Errorf("error %q: want ErrTooLarge naming the key and its size %d", err, size)
	}
	if gets := rt.objectGets(); len(gets) != 0 {
		t.Errorf("requested %v, want no download at all", gets)
	}
}

func TestFetchNeverMixesVersionsOfAnObjectRewrittenMeanwhile(t *testing.T) {
	srv := startServer(t)
	bucket := srv.newBucket(t)
	srv.put(t, bucket, map[string][]byte{"state/releases/a.yaml": []byte("a: 1\n")})
	s, rt := newTestSource(t, srv, bucket, source.Options{})
	var once sync.Once
	rt.before = func(req *http.Request) {
		if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/state/releases/a.yaml") {
			// Between the listing and the download, someone rewrites the object.
			once.Do(func() { srv.put(t, bucket, map[string][]byte{"state/releases/a.yaml": []byte("a: 2\n")}) })
		}
	}
	a := mustFetch(t, s)
	if got := readFile(t, a, "releases/a.yaml"); got != "a: 2\n" {
		t.Errorf("a.yaml = %q, want the rewritten content", got)
	}
	// The revision must describe the content returned: an idle poll agrees.
	rt.before = nil
	if b := mustFetch(t, s); b.Revision != a.Revision {
		t.Errorf("revision %q does not describe the snapshot: next poll says %q", a.Revision, b.Revision)
	}
}

func TestFetchFromUnreachableEndpointFailsWithoutSecret(t *testing.T) {
	secret := "very-secret-key-123"
	// Port 1 on loopback: nothing listens there.
	s, err := New("s3+http://127.0.0.1:1/bucket/state", source.Options{CacheDir: t.TempDir(), Credentials: source.Credentials{AccessKey: "charter", SecretKey: secret}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	_, err = s.Fetch(ctx)
	if err == nil {
		t.Fatal("fetch from a closed port succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks the secret: %v", err)
	}
	if !strings.Contains(err.Error(), "s3+http://127.0.0.1:1/bucket/state") {
		t.Errorf("error %q does not name the source", err)
	}
}

func TestCredentialsFromEnvironment(t *testing.T) {
	srv := startServer(t)
	bucket := srv.newBucket(t)
	srv.put(t, bucket, map[string][]byte{"releases/a.yaml": []byte("a: 1\n")})
	t.Setenv(EnvAccessKey, srv.accessKey)
	t.Setenv(EnvSecretKey, srv.secretKey)
	s, err := New("s3+http://"+srv.host+"/"+bucket, source.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a := mustFetch(t, s)
	if got := readFile(t, a, "releases/a.yaml"); got != "a: 1\n" {
		t.Errorf("a.yaml = %q", got)
	}

	t.Setenv(EnvSecretKey, "wrong-secret")
	s, err = New("s3+http://"+srv.host+"/"+bucket, source.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(testContext(t)); err == nil || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("fetch with a wrong secret from the environment: %v, want an error without the secret", err)
	}
}

func TestDownloadStopsAtTheCapWhenAnObjectGrew(t *testing.T) {
	// The listing said small, the object is now large: the download stops
	// at the cap and leaves no file behind.
	srv := startServer(t)
	bucket := srv.newBucket(t)
	srv.put(t, bucket, map[string][]byte{"state/values/v.yaml": bytes.Repeat([]byte{'x'}, 3<<20)})
	s, rt := newTestSource(t, srv, bucket, source.Options{})
	objs, _, err := List(testContext(t), s.client, s.loc, 0)
	if err != nil || len(objs) != 1 {
		t.Fatalf("list: %v %v", objs, err)
	}
	dir := t.TempDir()
	dst := filepath.Join(dir, "values", "v.yaml")
	err = Download(testContext(t), s.client, s.loc, objs[0], dst, 1<<20)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `"values/v.yaml"`) {
		t.Errorf("Download = %v, want ErrTooLarge naming the key", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "values"))
	if len(entries) != 0 {
		t.Errorf("left %d files behind", len(entries))
	}
	if gets := rt.objectGets(); len(gets) != 1 {
		t.Errorf("object GETs %v, want one", gets)
	}
}
