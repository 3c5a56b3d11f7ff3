package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/charter-sh/charter/internal/testenv"
)

// helloChart is the example chart the OCI tests package and push.
const helloChart = "../examples/state/charts/hello"

// pushed is a chart archive pushed to a registry: its version and bytes.
type pushed struct {
	version string
	archive []byte
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// pushCharts packages the hello chart at each version with the real helm
// CLI and pushes it to oci://host/charts (with user/pass when set). A
// version listed in withProv gets a .prov file next to its archive, which
// helm pushes as the provenance layer.
func pushCharts(t *testing.T, host, user, pass string, withProv map[string]string, versions ...string) map[string]pushed {
	t.Helper()
	helm := filepath.Join(testenv.ToolsDir(), "helm")
	if _, err := os.Stat(helm); err != nil {
		if os.Getenv(testenv.E2EEnv) == "1" {
			t.Fatalf("no helm CLI at %s; run `make tools`", helm)
		}
		t.Skipf("no helm CLI at %s", helm)
	}
	work := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(helm, args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+work+"/.c", "HELM_CONFIG_HOME="+work+"/.f", "HELM_DATA_HOME="+work+"/.d")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helm %v: %v\n%s", args, err, out)
		}
	}
	chartDir, err := filepath.Abs(helloChart)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]pushed{}
	for _, v := range versions {
		run("package", chartDir, "-d", work, "--version", v)
		tgz := filepath.Join(work, "hello-"+v+".tgz")
		if prov, ok := withProv[v]; ok {
			if err := os.WriteFile(tgz+".prov", []byte(prov), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		args := []string{"push", tgz, "oci://" + host + "/charts", "--plain-http"}
		if user != "" {
			args = append(args, "--username", user, "--password", pass)
		}
		run(args...)
		data, err := os.ReadFile(tgz)
		if err != nil {
			t.Fatal(err)
		}
		out[v] = pushed{version: v, archive: data}
	}
	return out
}

func mustRef(t *testing.T, s string) Ref {
	t.Helper()
	r, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolveOCI(t *testing.T) {
	host := testenv.StartRegistry(t)
	const prov = "-----BEGIN PGP SIGNED MESSAGE-----\nnot a real signature\n"
	charts := pushCharts(t, host, "", "", map[string]string{"0.2.0": prov},
		"0.1.0", "0.2.0", "0.2.1+build.5", "0.3.0-rc.1")
	client := newClient(t)
	base := "oci://" + host + "/charts/hello"

	for _, tt := range []struct {
		name, ref, constraint string
		want                  string // version
		wantTag               string // tag in the resolved URL
	}{
		{"latest stable (a +build version, pushed as _build)", base, "", "0.2.1+build.5", "0.2.1_build.5"},
		{"constraint", base, "~0.1", "0.1.0", "0.1.0"},
		{"constraint with prereleases", base, ">=0.0.0-0", "0.3.0-rc.1", "0.3.0-rc.1"},
		{"constraint below a prerelease", base, "<0.3.0", "0.2.1+build.5", "0.2.1_build.5"},
		{"exact :TAG", base + ":0.2.0", "", "0.2.0", "0.2.0"},
		{"exact #VERSION", base + "#0.1.0", "", "0.1.0", "0.1.0"},
		{"exact prerelease :TAG", base + ":0.3.0-rc.1", "", "0.3.0-rc.1", "0.3.0-rc.1"},
		{"exact version as constraint", base, "0.2.0", "0.2.0", "0.2.0"},
		{"pinned =VERSION as the daemon asks", base, "=0.1.0", "0.1.0", "0.1.0"},
		{"exact +build version by #VERSION", base + "#0.2.1+build.5", "", "0.2.1+build.5", "0.2.1_build.5"},
		{"exact +build version by its tag", base + ":0.2.1_build.5", "", "0.2.1+build.5", "0.2.1_build.5"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Resolve(context.Background(), client, mustRef(t, tt.ref), tt.constraint, nil)
			if err != nil {
				t.Fatal(err)
			}
			p := charts[tt.want]
			if res.Version != tt.want || res.Chart == nil || res.Chart.Version != tt.want || res.Chart.Name != "hello" {
				t.Errorf("version %q (chart %+v), want hello %s", res.Version, res.Chart, tt.want)
			}
			if res.Digest != sha(p.archive) || string(res.Archive) != string(p.archive) {
				t.Errorf("digest %s, want %s, the sha256 of the pushed archive (archive equal: %v)",
					res.Digest, sha(p.archive), string(res.Archive) == string(p.archive))
			}
			if want := base + ":" + tt.wantTag; res.URL != want {
				t.Errorf("URL %s, want %s", res.URL, want)
			}
			if res.Repo != nil {
				t.Errorf("repository %v, want none", res.Repo)
			}
			if wantProv := map[string]string{"0.2.0": prov}[tt.want]; string(res.Prov) != wantProv {
				t.Errorf("prov %q, want %q", res.Prov, wantProv)
			}
		})
	}

	for _, tt := range []struct {
		name, ref, constraint string
		notFound              bool
		want                  []string // in the error
	}{
		{"missing chart", "oci://" + host + "/charts/nope", "", true, []string{"oci://" + host + "/charts/nope", "not found in registry " + host}},
		{"missing chart, exact version", "oci://" + host + "/charts/nope:1.0.0", "", true, []string{"version 1.0.0", "not found"}},
		{"missing version", base + ":9.9.9", "", true, []string{"version 9.9.9", "not found in registry " + host}},
		{"no version matches", base, ">=5", false, []string{"no version matches >=5"}},
		{"bad constraint", base, "not a constraint", false, []string{`version constraint "not a constraint"`}},
		{"tag and constraint conflict", base + ":0.1.0", "0.2.0", false, []string{"conflicts"}},
		{"digest references", base + "@sha256:" + strings.Repeat("a", 64), "", false, []string{"digest references"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve(context.Background(), client, mustRef(t, tt.ref), tt.constraint, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrOCINotFound) != tt.notFound {
				t.Errorf("errors.Is(ErrOCINotFound) = %v, want %v: %v", !tt.notFound, tt.notFound, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error: %q", err)
			}
		})
	}

	t.Run("archive over the size cap is refused before download", func(t *testing.T) {
		small, err := NewClient(ClientOptions{CacheDir: t.TempDir(), MaxChartSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Resolve(context.Background(), small, mustRef(t, base+":0.1.0"), "", nil)
		if err == nil || !strings.Contains(err.Error(), "size limit") {
			t.Fatalf("err = %v, want the size limit", err)
		}
	})
	t.Run("a cancelled context stops the pull", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Resolve(ctx, client, mustRef(t, base), "", nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

// recordingProxy forwards to a registry and records the Authorization
// header of every request. With user set it requires those basic
// credentials itself; with blobsTo set it redirects blob downloads there.
type recordingProxy struct {
	*httptest.Server
	user, pass, blobsTo string

	mu    sync.Mutex
	auths []string
}

func newRecordingProxy(t *testing.T, registryHost, user, pass, blobsTo string) *recordingProxy {
	p := &recordingProxy{user: user, pass: pass, blobsTo: blobsTo}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: registryHost})
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.auths = append(p.auths, r.Header.Get("Authorization"))
		p.mu.Unlock()
		if p.user != "" {
			if u, pw, ok := r.BasicAuth(); !ok || u != p.user || pw != p.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="proxy"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		if p.blobsTo != "" && strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, p.blobsTo+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		r.Header.Del("Authorization")
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *recordingProxy) authorizations() (with, without int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.auths {
		if a != "" {
			with++
		} else {
			without++
		}
	}
	return with, without
}

func TestResolveOCICredentials(t *testing.T) {
	const user, pass = "ci-bot", "Sup3r-s3cret-pw"
	private := testenv.StartRegistryWithAuth(t, user, pass)
	charts := pushCharts(t, private, user, pass, nil, "1.0.0", "1.1.0")
	client := newClient(t)
	ref := mustRef(t, "oci://"+private+"/charts/hello")
	repoFor := func(host, password string) Repository {
		return Repository{Name: "private", URL: "oci://" + host, Username: user, Password: password}
	}

	t.Run("the added repository's credentials pull", func(t *testing.T) {
		for _, u := range []string{"oci://" + private, "oci://" + private + "/charts", "oci://" + strings.ToUpper(private) + "/"} {
			repos := []Repository{{Name: "other", URL: "oci://127.0.0.2:1/x", Username: "x", Password: "y"}, {Name: "private", URL: u, Username: user, Password: pass}}
			res, err := Resolve(context.Background(), client, ref, "", repos)
			if err != nil {
				t.Fatalf("repository %s: %v", u, err)
			}
			if res.Version != "1.1.0" || res.Digest != sha(charts["1.1.0"].archive) || res.Repo == nil || res.Repo.Name != "private" {
				t.Errorf("repository %s: got %s %s from %v, want 1.1.0 %s from private", u, res.Version, res.Digest, res.Repo, sha(charts["1.1.0"].archive))
			}
		}
	})
	for _, tt := range []struct {
		name  string
		repos []Repository
		want  string
	}{
		{"wrong password", []Repository{repoFor(private, "wrong-password")}, "with the credentials of repository private (oci://" + private + ")"},
		{"no repository", nil, "without credentials (no added repository is oci://" + private + ")"},
		{"a repository of another registry", []Repository{repoFor("127.0.0.1:1", pass)}, "without credentials (no added repository is oci://" + private + ")"},
		{"an https repository on the same host", []Repository{{Name: "web", URL: "http://" + private, Username: user, Password: pass}}, "without credentials (no added repository is oci://" + private + ")"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve(context.Background(), client, ref, "", tt.repos)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range []string{"registry " + private + " refused access (401 Unauthorized)", tt.want} {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, pass) || strings.Contains(msg, "wrong-password") {
				t.Errorf("secret in error: %q", msg)
			}
		})
	}

	// The same charts, anonymously, behind proxies that record what they get.
	public := testenv.StartRegistry(t)
	pushCharts(t, public, "", "", nil, "1.0.0")
	t.Run("credentials are not sent to another registry", func(t *testing.T) {
		other := newRecordingProxy(t, public, "", "", "")
		otherHost := strings.TrimPrefix(other.URL, "http://")
		res, err := Resolve(context.Background(), client, mustRef(t, "oci://"+otherHost+"/charts/hello"), "", []Repository{repoFor(private, pass)})
		if err != nil {
			t.Fatal(err)
		}
		if res.Repo != nil {
			t.Errorf("repository %v, want none", res.Repo)
		}
		if with, without := other.authorizations(); with != 0 || without == 0 {
			t.Errorf("%d requests with Authorization, %d without; want none with", with, without)
		}
	})
	t.Run("credentials are not forwarded on a redirect to another origin", func(t *testing.T) {
		blobs := newRecordingProxy(t, public, "", "", "")
		front := newRecordingProxy(t, public, user, pass, blobs.URL)
		frontHost := strings.TrimPrefix(front.URL, "http://")
		res, err := Resolve(context.Background(), client, mustRef(t, "oci://"+frontHost+"/charts/hello:1.0.0"), "", []Repository{repoFor(frontHost, pass)})
		if err != nil {
			t.Fatal(err)
		}
		if res.Digest != sha(charts["1.0.0"].archive) {
			t.Errorf("digest %s, want %s", res.Digest, sha(charts["1.0.0"].archive))
		}
		if with, _ := front.authorizations(); with == 0 {
			t.Errorf("the registry got no credentials")
		}
		if with, without := blobs.authorizations(); with != 0 || without == 0 {
			t.Errorf("redirect target: %d requests with Authorization, %d without; want none with", with, without)
		}
	})
}

func TestOCIHelpers(t *testing.T) {
	t.Run("pickTag", func(t *testing.T) {
		tags := []string{"2.0.0-rc.1", "1.2.0+build.1", "1.1.0", "1.0.0", "0.9.0-beta"}
		for _, tt := range []struct{ constraint, want string }{
			{"", "1.2.0+build.1"},
			{"~1.1", "1.1.0"},
			{"<1.1.0", "1.0.0"},
			{">=0.0.0-0", "2.0.0-rc.1"},
			{"<0.9.0", ""},
		} {
			got, err := pickTag(tags, tt.constraint)
			if got != tt.want || (err == nil) != (tt.want != "") {
				t.Errorf("pickTag(%q) = %q, %v; want %q", tt.constraint, got, err, tt.want)
			}
		}
		if _, err := pickTag([]string{"1.0.0-rc.1"}, ""); err == nil || !strings.Contains(err.Error(), "no stable version") {
			t.Errorf("only prereleases: %v", err)
		}
	})
	t.Run("exactTag", func(t *testing.T) {
		for in, want := range map[string]string{"1.2.3": "1.2.3", "=1.2.3": "1.2.3", " = 1.2.3-rc.1+b ": "1.2.3-rc.1+b",
			"1.2": "", "^1.2.3": "", ">=1.0.0": "", "v1.2.3": "", "": ""} {
			if got := exactTag(in); got != want {
				t.Errorf("exactTag(%q) = %q, want %q", in, got, want)
			}
		}
	})
	t.Run("plainHTTP", func(t *testing.T) {
		for host, want := range map[string]bool{"127.0.0.1:5000": true, "127.1.2.3": true, "localhost:5000": true, "LOCALHOST": true,
			"[::1]:5000": true, "ghcr.io": false, "10.0.0.1:5000": false, "localhost.example.com": false, "127.0.0.1.nip.io": false} {
			if got := plainHTTP(host); got != want {
				t.Errorf("plainHTTP(%q) = %v, want %v", host, got, want)
			}
		}
	})
	t.Run("ociRepo", func(t *testing.T) {
		repos := []Repository{
			{Name: "https", URL: "https://r.io/charts"},
			{Name: "other-path", URL: "oci://r.io/team-b"},
			{Name: "host", URL: "oci://r.io"},
			{Name: "team", URL: "oci://R.io/team-a/"},
			{Name: "other-host", URL: "oci://r.io:5000/team-a"},
		}
		for ref, want := range map[string]string{
			"oci://r.io/team-a/web":        "team",
			"oci://r.io/team-a/sub/web":    "team",
			"oci://r.io/team-b/web":        "other-path",
			"oci://r.io/team-c/web":        "host",
			"oci://r.io/team-ab/web":       "host",
			"oci://r.io:5000/team-a/web":   "other-host",
			"oci://r.io:5000/team-b/web":   "other-host",
			"oci://s.io/team-a/web":        "",
			"oci://r.io.evil.com/team-a/x": "",
		} {
			r, err := parseOCI(mustRef(t, ref))
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if repo := ociRepo(r, repos); repo != nil {
				got = repo.Name
			}
			if got != want {
				t.Errorf("ociRepo(%s) = %q, want %q", ref, got, want)
			}
		}
		if got := ociRepo(ociRef{host: "r.io", repo: "x/web"}, repos[4:]); got != nil {
			t.Errorf("another port matched: %v", got)
		}
	})
}
