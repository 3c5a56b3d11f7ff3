package publish

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/source"
)

// TestReleaseRefusesBadInput: each case is refused before anything is
// written to the repository.
func TestReleaseRefusesBadInput(t *testing.T) {
	k := newKeyring(t, "Charter Test")
	foo := packageChart(t, testChart)
	otherBuild := func() string {
		src := filepath.Join(t.TempDir(), "foo")
		copyDir(t, testChart, src)
		writeFile(t, filepath.Join(src, "values.yaml"), "greeting: other\n")
		return packageChart(t, src)
	}()
	otherProv, err := Sign(otherBuild, k.Secret, "Charter Test")
	if err != nil {
		t.Fatal(err)
	}
	renamed := filepath.Join(t.TempDir(), "renamed.tgz")
	writeFile(t, renamed, string(readFile(t, foo)))
	renamedProv, err := Sign(renamed, k.Secret, "Charter Test")
	if err != nil {
		t.Fatal(err)
	}

	tests := map[string]struct {
		index   string // index.yaml already in the repository
		archive string
		prov    string
		wantErr string
	}{
		"a malformed index": {
			index: "apiVersion: v1\nentries: [oops\n", archive: foo, wantErr: "index.yaml: not a valid index",
		},
		"an index with duplicate keys": {
			index: "apiVersion: v1\nentries: {}\nentries: {}\n", archive: foo, wantErr: "index.yaml: not a valid index",
		},
		"an index without apiVersion": {
			index: "entries: {}\n", archive: foo, wantErr: "not a Helm repository index",
		},
		"an empty index": {
			index: "\n", archive: foo, wantErr: "index.yaml: empty",
		},
		"a provenance file of another build": {
			archive: foo, prov: otherProv, wantErr: "for another build of foo-1.1.2.tgz",
		},
		"a provenance file naming another file": {
			archive: foo, prov: renamedProv, wantErr: "does not name foo-1.1.2.tgz",
		},
		"an archive with a ../ entry": {
			archive: evilArchive(t, "foo/../../etc/passwd"), wantErr: "refers to a parent directory",
		},
		"a chart directory": {
			archive: testChart, wantErr: "not a chart archive",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := fileRepo(t)
			if tc.index != "" {
				r.write(t, IndexFile, []byte(tc.index))
			}
			_, err := Release(testContext(t), tc.archive, r.dest, Options{Prov: tc.prov})
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if got := string(r.read(t, IndexFile)); got != tc.index {
				t.Errorf("index.yaml changed to:\n%s", got)
			}
			if r.read(t, "foo-1.1.2.tgz") != nil {
				t.Error("the archive was uploaded")
			}
		})
	}

	t.Run("an unsupported destination", func(t *testing.T) {
		_, err := Release(testContext(t), foo, "ftp://user:hunter2@example.com/charts", Options{})
		if err == nil || !strings.Contains(err.Error(), "unsupported destination") || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("err = %v", err)
		}
	})
}

// evilArchive writes a gzipped tar holding one entry with the given name.
func evilArchive(t testing.TB, entry string) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	body := "apiVersion: v2\nname: foo\nversion: 1.1.2\n"
	tw.WriteHeader(&tar.Header{Name: "foo/Chart.yaml", Mode: 0o644, Size: int64(len(body))})
	tw.Write([]byte(body))
	tw.WriteHeader(&tar.Header{Name: entry, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "foo-1.1.2.tgz")
	writeFile(t, p, buf.String())
	return p
}

// TestReleaseKeepsExistingIndex releases into a repository made by `helm
// repo index`: its entries stay, and Helm reads the result.
func TestReleaseKeepsExistingIndex(t *testing.T) {
	r := fileRepo(t)
	dir := strings.TrimPrefix(r.dest, "file://")
	home := t.TempDir()
	mustHelm(t, home, "package", writeChart(t, "legacy", "0.9.0"), "-d", dir)
	mustHelm(t, home, "repo", "index", dir)
	before := indexOf(t, r).Entries["legacy"][0]

	if _, err := Release(testContext(t), packageChart(t, testChart), r.dest, Options{}); err != nil {
		t.Fatal(err)
	}
	idx := indexOf(t, r)
	after := idx.Entries["legacy"]
	if len(after) != 1 || after[0].Digest != before.Digest || !after[0].Created.Equal(before.Created) || after[0].URLs[0] != before.URLs[0] {
		t.Errorf("legacy entry changed: before %+v, after %+v", before, after)
	}
	mustHelm(t, home, "repo", "add", "team", r.helmURL)
	out := mustHelm(t, home, "search", "repo", "team/")
	if !strings.Contains(out, "team/legacy") || !strings.Contains(out, "team/foo") {
		t.Errorf("helm search repo:\n%s", out)
	}

	// Versions are kept newest first, as Helm orders them.
	for _, v := range []string{"1.2.0", "1.0.0", "1.10.0"} {
		if _, err := Release(testContext(t), packageChart(t, writeChart(t, "foo", v)), r.dest, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(versions(indexOf(t, r), "foo")); got != "[1.10.0 1.2.0 1.1.2 1.0.0]" {
		t.Errorf("foo versions = %s, want newest first", got)
	}
}

func TestReleaseHTTPCredentials(t *testing.T) {
	archive := packageChart(t, testChart)

	t.Run("sent to the destination", func(t *testing.T) {
		ps := newPutServer()
		ps.user, ps.pass = "ci", "s3cr3t"
		srv := httptest.NewServer(ps)
		defer srv.Close()
		if _, err := Release(testContext(t), archive, srv.URL, Options{Username: "ci", Password: "s3cr3t"}); err != nil {
			t.Fatal(err)
		}
		if ps.file(t, IndexFile) == nil {
			t.Error("no index written")
		}
	})

	t.Run("wrong ones are reported without the secret", func(t *testing.T) {
		ps := newPutServer()
		ps.user, ps.pass = "ci", "s3cr3t"
		srv := httptest.NewServer(ps)
		defer srv.Close()
		_, err := Release(testContext(t), archive, srv.URL+"/charts", Options{Username: "ci", Password: "wrong-pass"})
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), srv.URL+"/charts") ||
			strings.Contains(err.Error(), "wrong-pass") {
			t.Fatalf("err = %v, want a 403 naming %s without the password", err, srv.URL)
		}
	})

	t.Run("not forwarded on a redirect to another host", func(t *testing.T) {
		other := newPutServer()
		otherSrv := httptest.NewServer(other)
		defer otherSrv.Close()
		var seen []string
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.Header.Get("Authorization"))
			http.Redirect(w, r, otherSrv.URL+r.URL.Path, http.StatusTemporaryRedirect)
		}))
		defer front.Close()
		if _, err := Release(testContext(t), archive, front.URL, Options{Username: "ci", Password: "s3cr3t"}); err != nil {
			t.Fatal(err)
		}
		if len(seen) == 0 || seen[0] == "" {
			t.Errorf("the destination got no credentials: %q", seen)
		}
		if len(other.auths) == 0 {
			t.Fatal("the redirect was not followed")
		}
		for _, a := range other.auths {
			if a != "" {
				t.Errorf("the other host got Authorization %q", a)
			}
		}
		if other.file(t, IndexFile) == nil {
			t.Error("no index written at the redirect's target")
		}
	})
}

// TestReleaseHTTPWithoutETags: a server that sends no ETag and ignores
// conditions still gets a complete index when a race is lost.
func TestReleaseHTTPWithoutETags(t *testing.T) {
	ps := newPutServer()
	ps.noETag = true
	srv := httptest.NewServer(ps)
	defer srv.Close()
	ctx := testContext(t)
	foo := packageChart(t, writeChart(t, "foo", "1.0.0"))
	bar := packageChart(t, writeChart(t, "bar", "1.0.0"))
	if _, err := Release(ctx, foo, srv.URL, Options{}); err != nil {
		t.Fatal(err)
	}
	baz := packageChart(t, writeChart(t, "baz", "1.0.0"))
	var attempts []int
	_, err := release(ctx, baz, srv.URL, Options{}, func(attempt int) {
		attempts = append(attempts, attempt)
		if attempt == 1 {
			if _, err := Release(ctx, bar, srv.URL, Options{}); err != nil {
				t.Errorf("concurrent release: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := parseIndex(ps.file(t, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"foo", "bar", "baz"} {
		if versions(idx, name) == nil {
			t.Errorf("%s missing from the index (attempts %v)", name, attempts)
		}
	}
}

func TestReleaseBucketErrors(t *testing.T) {
	endpoint, ak, sk := testenv.StartMinIO(t)
	host := strings.TrimPrefix(endpoint, "http://")
	testenv.MakeBucket(t, endpoint, ak, sk, "charts")
	archive := packageChart(t, testChart)
	tests := map[string]struct {
		dest    string
		creds   source.Credentials
		wantErr string
	}{
		"wrong secret key":       {"s3+http://" + host + "/charts", source.Credentials{AccessKey: ak, SecretKey: "wrong-secret"}, "403 Forbidden: The request signature we calculated does not match"},
		"missing bucket":         {"s3+http://" + host + "/nope", source.Credentials{AccessKey: ak, SecretKey: sk}, `bucket "nope" does not exist`},
		"credentials in the URL": {"s3+http://" + ak + ":" + sk + "@" + host + "/charts", source.Credentials{}, "credentials in the URL are not accepted"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Release(testContext(t), archive, tc.dest, Options{Bucket: source.Options{Credentials: tc.creds}})
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			for _, secret := range []string{sk, "wrong-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a secret key: %v", err)
				}
			}
		})
	}
}
