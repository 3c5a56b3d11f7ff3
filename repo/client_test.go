package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/source"
)

// helmRepo builds a repository folder with the real Helm CLI: `helm create`,
// `helm package`, `helm repo index` (relative chart URLs).
func helmRepo(t *testing.T) string {
	t.Helper()
	helm := filepath.Join(testenv.ToolsDir(), "helm")
	if _, err := os.Stat(helm); err != nil {
		if os.Getenv(testenv.E2EEnv) == "1" {
			t.Fatalf("no helm CLI at %s", helm)
		}
		t.Skipf("no helm CLI at %s", helm)
	}
	dir, work := t.TempDir(), t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(helm, args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+work+"/.c", "HELM_CONFIG_HOME="+work+"/.f", "HELM_DATA_HOME="+work+"/.d")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helm %v: %v\n%s", args, err, out)
		}
	}
	run("create", "web")
	run("package", "web", "-d", dir, "--version", "1.0.0")
	run("package", "web", "-d", dir, "--version", "1.1.0")
	run("package", "web", "-d", dir, "--version", "2.0.0-beta.1")
	run("repo", "index", dir)
	return dir
}

// server serves a folder with ETags, optionally requiring basic auth, and
// counts requests.
type server struct {
	*httptest.Server
	dir              string
	user, pass       string
	requests, notMod atomic.Int32
	auths            []string
	redirectIndexTo  string
}

func newServer(t *testing.T, dir, user, pass string) *server {
	s := &server{dir: dir, user: user, pass: pass}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.auths = append(s.auths, r.Header.Get("Authorization"))
	if s.redirectIndexTo != "" && strings.HasSuffix(r.URL.Path, "/index.yaml") {
		http.Redirect(w, r, s.redirectIndexTo, http.StatusFound)
		return
	}
	if s.user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != s.user || p != s.pass {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
	}
	data, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(strings.TrimPrefix(r.URL.Path, "/"))))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256(data)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	if r.Header.Get("If-None-Match") == etag {
		s.notMod.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Write(data)
}

func newClient(t *testing.T) *Client {
	c, err := NewClient(ClientOptions{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientAgainstAHelmBuiltRepository(t *testing.T) {
	dir := helmRepo(t)
	srv := newServer(t, dir, "alice", "s3cret")
	repo := Repository{Name: "private", URL: srv.URL + "/", Username: "alice", Password: "s3cret"}
	c := newClient(t)
	ctx := context.Background()

	idx, err := c.Index(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := idx.Find("web", "")
	if err != nil || cv.Version != "1.1.0" {
		t.Fatalf("Find latest stable = %v, %v", cv, err)
	}
	archive, prov, err := c.Fetch(ctx, repo, cv)
	if err != nil {
		t.Fatal(err)
	}
	if prov != nil {
		t.Errorf("prov = %d bytes, want nil (none published)", len(prov))
	}
	if sum := sha256.Sum256(archive); hex.EncodeToString(sum[:]) != cv.Digest {
		t.Errorf("archive digest differs from the index")
	}

	t.Run("revalidates with the ETag", func(t *testing.T) {
		before := srv.notMod.Load()
		idx2, err := c.Index(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		if srv.notMod.Load() != before+1 {
			t.Errorf("304 answers: %d, want %d", srv.notMod.Load(), before+1)
		}
		if idx2 != idx {
			t.Error("unchanged index parsed again")
		}
		// A new client (a restart) reuses the files in the cache folder.
		c2, _ := NewClient(ClientOptions{CacheDir: c.opts.CacheDir})
		if _, err := c2.Index(ctx, repo); err != nil {
			t.Fatal(err)
		}
		if srv.notMod.Load() != before+2 {
			t.Errorf("after restart: 304 answers %d, want %d", srv.notMod.Load(), before+2)
		}
	})

	t.Run("resolves references", func(t *testing.T) {
		loc := strings.TrimPrefix(srv.URL, "http://")
		for _, r := range []string{"private/web", "helm:" + loc + "/web", loc + "/web#1.0.0"} {
			ref, err := ParseRef(r)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Resolve(ctx, c, ref, "", []Repository{repo})
			if err != nil {
				t.Fatalf("Resolve(%s): %v", r, err)
			}
			want := "1.1.0"
			if strings.HasSuffix(r, "#1.0.0") {
				want = "1.0.0"
			}
			if res.Version != want || res.Digest != "sha256:"+res.Chart.Digest || res.Repo.Name != "private" {
				t.Errorf("Resolve(%s) = version %s digest %s repo %v", r, res.Version, res.Digest, res.Repo)
			}
		}
		ref, _ := ParseRef(srv.URL + "/web-1.0.0.tgz")
		res, err := Resolve(ctx, c, ref, "", []Repository{repo})
		if err != nil || res.Version != "1.0.0" {
			t.Fatalf("Resolve(direct URL) = %v, %v", res, err)
		}
	})

	t.Run("wrong credentials are a 403 without the secret", func(t *testing.T) {
		bad := repo
		bad.Password = "wrong-secret"
		_, err := newClient(t).Index(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "repository private (") || !strings.Contains(err.Error(), "403 Forbidden") {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "wrong-secret") {
			t.Fatalf("secret in error: %v", err)
		}
	})

	t.Run("tampered archive is refused", func(t *testing.T) {
		f := filepath.Join(dir, "web-1.0.0.tgz")
		orig, _ := os.ReadFile(f)
		t.Cleanup(func() { os.WriteFile(f, orig, 0o644) })
		os.WriteFile(f, append(bytes.Clone(orig), 0), 0o644)
		cv, _ := idx.Find("web", "1.0.0")
		_, _, err := c.Fetch(ctx, repo, cv)
		if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("err = %v, want a digest mismatch", err)
		}
	})
}

func TestCredentialsStayWithTheirOrigin(t *testing.T) {
	dir := helmRepo(t)
	other := newServer(t, dir, "", "") // another port: another origin
	ctx := context.Background()

	t.Run("not forwarded on a redirect to another port", func(t *testing.T) {
		srv := newServer(t, dir, "", "")
		srv.redirectIndexTo = other.URL + "/index.yaml"
		other.auths = nil
		repo := Repository{Name: "r", URL: srv.URL, Username: "u", Password: "p"}
		if _, err := newClient(t).Index(ctx, repo); err != nil {
			t.Fatal(err)
		}
		if srv.auths[0] == "" {
			t.Error("credentials not sent to the repository itself")
		}
		if len(other.auths) != 1 || other.auths[0] != "" {
			t.Errorf("other origin got Authorization %q", other.auths)
		}
	})

	for _, allow := range []bool{false, true} {
		name := map[bool]string{false: "not sent to chart URLs elsewhere", true: "sent elsewhere when the repository allows it"}[allow]
		t.Run(name, func(t *testing.T) {
			idxDir := t.TempDir()
			data, _ := os.ReadFile(filepath.Join(dir, "index.yaml"))
			data = bytes.ReplaceAll(data, []byte("- web-"), []byte("- "+other.URL+"/web-"))
			os.WriteFile(filepath.Join(idxDir, "index.yaml"), data, 0o644)
			srv := newServer(t, idxDir, "", "")
			other.auths = nil
			repo := Repository{Name: "r", URL: srv.URL, Password: "tok", AllowCrossOrigin: allow}
			c := newClient(t)
			idx, err := c.Index(ctx, repo)
			if err != nil {
				t.Fatal(err)
			}
			cv, _ := idx.Find("web", "")
			if _, _, err := c.Fetch(ctx, repo, cv); err != nil {
				t.Fatal(err)
			}
			want := ""
			if allow {
				want = "Bearer tok"
			}
			if len(other.auths) == 0 || other.auths[0] != want {
				t.Errorf("chart host got Authorization %q, want %q", other.auths, want)
			}
		})
	}

	t.Run("not sent to plain http from https", func(t *testing.T) {
		tr := &authTransport{base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if a := r.Header.Get("Authorization"); a != "" && r.URL.Scheme == "http" {
				t.Errorf("Authorization sent to %s", r.URL)
			}
			return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
		}), allowed: map[string]bool{"https://example.com:443": true}, user: "u", pass: "p"}
		for _, u := range []string{"https://example.com/x", "http://example.com/x", "https://example.com:8443/x"} {
			req, _ := http.NewRequest("GET", u, nil)
			req.Header.Set("Authorization", "Basic stale")
			tr.RoundTrip(req)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestFileRepository(t *testing.T) {
	dir := helmRepo(t)
	repo := Repository{Name: "local", URL: "file://" + dir}
	c := newClient(t)
	idx, err := c.Index(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := idx.Find("web", ">=2.0.0-0")
	if err != nil || cv.Version != "2.0.0-beta.1" {
		t.Fatalf("Find = %v, %v", cv, err)
	}
	if _, _, err := c.Fetch(context.Background(), repo, cv); err != nil {
		t.Fatal(err)
	}
	// A file URL in an http index is refused.
	_, err = ChartURL(Repository{Name: "h", URL: "https://x"}, &ChartVersion{Name: "a", URLs: []string{"file:///etc/passwd"}})
	if err == nil {
		t.Error("file:// chart URL accepted from an https repository")
	}
}

func TestBucketRepository(t *testing.T) {
	dir := helmRepo(t)
	endpoint, ak, sk := testenv.StartMinIO(t)
	testenv.MakeBucket(t, endpoint, ak, sk, "charts")
	u, _ := url.Parse(endpoint)
	admin, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, "")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if _, err := admin.FPutObject(ctx, "charts", "stable/"+e.Name(), filepath.Join(dir, e.Name()), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	repo := Repository{Name: "s3", URL: "s3+http://" + u.Host + "/charts/stable", Username: ak, Password: sk}
	c := newClient(t)
	idx, err := c.Index(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := idx.Find("web", "^1")
	if err != nil {
		t.Fatal(err)
	}
	if _, prov, err := c.Fetch(ctx, repo, cv); err != nil || prov != nil {
		t.Fatalf("Fetch: prov %v, err %v", prov, err)
	}
	idx2, err := c.Index(ctx, repo)
	if err != nil || idx2 != idx {
		t.Fatalf("revalidation reloaded an unchanged index (err %v)", err)
	}
	bad := repo
	bad.Password = "nope-nope-nope"
	_, err = newClient(t).Index(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "nope-nope") {
		t.Fatalf("wrong secret: err = %v", err)
	}
	_ = source.Redact
}

func TestParseRef(t *testing.T) {
	tests := map[string]struct {
		want Ref
		err  string
	}{
		"stable/nginx":                       {want: Ref{Kind: RefRepoName, Repo: "stable", Chart: "nginx"}},
		"stable/nginx#1.2.3":                 {want: Ref{Kind: RefRepoName, Repo: "stable", Chart: "nginx", Version: "1.2.3"}},
		"example.com/foo/bar":                {want: Ref{Kind: RefLocation, Repo: "example.com/foo", Chart: "bar"}},
		"helm:example.com/foo/bar#0.1.0":     {want: Ref{Kind: RefLocation, Repo: "example.com/foo", Chart: "bar", Version: "0.1.0"}},
		"charter:localhost:8080/bar":         {want: Ref{Kind: RefLocation, Repo: "localhost:8080", Chart: "bar"}},
		"https://x.io/c/chart-1.2.3.tgz":     {want: Ref{Kind: RefURL, URL: "https://x.io/c/chart-1.2.3.tgz"}},
		"s3://bucket/chart.tgz":              {want: Ref{Kind: RefURL, URL: "s3://bucket/chart.tgz"}},
		"oci://registry.io/charts/nginx:1.0": {want: Ref{Kind: RefOCI, URL: "oci://registry.io/charts/nginx:1.0", Chart: "nginx", Version: "1.0"}},
		"./chart":                            {want: Ref{Kind: RefLocal, Path: "./chart"}},
		"/abs/chart":                         {want: Ref{Kind: RefLocal, Path: "/abs/chart"}},
		"chart-1.0.0.tgz":                    {want: Ref{Kind: RefLocal, Path: "chart-1.0.0.tgz"}},
		"https://u:pw@x.io/c.tgz":            {err: "credentials in the URL"},
		"https://x.io/charts":                {err: "must point at a chart archive"},
		"nginx":                              {err: "want NAME/CHART"},
		"stable/nginx#":                      {err: "empty #VERSION"},
		"ftp://x/c.tgz":                      {err: `scheme "ftp"`},
	}
	for in, tt := range tests {
		t.Run(in, func(t *testing.T) {
			got, err := ParseRef(in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), ":pw@") {
					t.Errorf("secret in error: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRef = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
