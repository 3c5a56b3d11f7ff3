package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/source"
)

// repoUnderTest is one destination of a release conformance test.
type repoUnderTest struct {
	dest string
	opts Options
	// helmURL is where a Helm client reads the repository.
	helmURL string
	// read returns a file of the repository, nil when absent.
	read func(t testing.TB, name string) []byte
	// write puts a file into the repository behind Release's back.
	write func(t testing.TB, name string, data []byte)
}

func fileRepo(t testing.TB) repoUnderTest {
	dir := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return repoUnderTest{
		dest:    "file://" + dir,
		helmURL: srv.URL,
		read: func(t testing.TB, name string) []byte {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			return data
		},
		write: func(t testing.TB, name string, data []byte) { writeFile(t, filepath.Join(dir, name), string(data)) },
	}
}

func httpRepo(t testing.TB) repoUnderTest {
	ps := newPutServer()
	srv := httptest.NewServer(ps)
	t.Cleanup(srv.Close)
	return repoUnderTest{
		dest:    srv.URL + "/charts",
		helmURL: srv.URL + "/charts",
		read:    func(t testing.TB, name string) []byte { return ps.file(t, "charts/"+name) },
		write:   func(t testing.TB, name string, data []byte) { ps.put("charts/"+name, data) },
	}
}

func minioRepo(t testing.TB) repoUnderTest {
	endpoint, ak, sk := testenv.StartMinIO(t)
	testenv.MakeBucket(t, endpoint, ak, sk, "charts")
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, "")})
	if err != nil {
		t.Fatal(err)
	}
	// Public read, as a public Helm repository in a bucket is set up.
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::charts/*"]}]}`
	if err := c.SetBucketPolicy(context.Background(), "charts", policy); err != nil {
		t.Fatal(err)
	}
	return repoUnderTest{
		dest:    "s3+http://" + u.Host + "/charts/stable",
		opts:    Options{Bucket: source.Options{Credentials: source.Credentials{AccessKey: ak, SecretKey: sk}}},
		helmURL: endpoint + "/charts/stable",
		read: func(t testing.TB, name string) []byte {
			obj, err := c.GetObject(context.Background(), "charts", "stable/"+name, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Close()
			data, err := io.ReadAll(obj)
			if err != nil {
				if minio.ToErrorResponse(err).Code == "NoSuchKey" {
					return nil
				}
				t.Fatal(err)
			}
			return data
		},
		write: func(t testing.TB, name string, data []byte) {
			_, err := c.PutObject(context.Background(), "charts", "stable/"+name, strings.NewReader(string(data)), int64(len(data)), minio.PutObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
		},
	}
}

var repoKinds = map[string]func(testing.TB) repoUnderTest{
	"file":  fileRepo,
	"http":  httpRepo,
	"minio": minioRepo,
}

// indexOf parses the repository's index.
func indexOf(t testing.TB, r repoUnderTest) *index {
	t.Helper()
	data := r.read(t, IndexFile)
	if data == nil {
		t.Fatal("the repository has no index.yaml")
	}
	idx, err := parseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// versions lists name's versions in index order.
func versions(idx *index, name string) []string {
	var vs []string
	for _, v := range idx.Entries[name] {
		vs = append(vs, v.Version)
	}
	return vs
}

func TestReleaseHelmInterop(t *testing.T) {
	k := newKeyring(t, "Charter Test")
	for kind, newRepo := range repoKinds {
		t.Run(kind, func(t *testing.T) {
			r := newRepo(t)
			ctx := testContext(t)
			archive := packageChart(t, testChart)
			prov, err := Sign(archive, k.Secret, "Charter Test")
			if err != nil {
				t.Fatal(err)
			}
			opts := r.opts
			opts.Prov = prov
			got, err := Release(ctx, archive, r.dest, opts)
			if err != nil {
				t.Fatal(err)
			}
			if want := r.dest + "/foo-1.1.2.tgz"; got != want {
				t.Errorf("Release = %s, want %s", got, want)
			}
			idx := indexOf(t, r)
			e := idx.Entries["foo"]
			if len(e) != 1 || e[0].Version != "1.1.2" || e[0].Digest != sha256Hex(readFile(t, archive)) ||
				len(e[0].URLs) != 1 || e[0].URLs[0] != "foo-1.1.2.tgz" || e[0].AppVersion != "2.0.0" ||
				e[0].Description != "A basic chart" || e[0].APIVersion != "v2" || e[0].Created.IsZero() {
				t.Errorf("index entry = %+v", e)
			}

			home := t.TempDir()
			mustHelm(t, home, "repo", "add", "team", r.helmURL)
			out := mustHelm(t, home, "search", "repo", "team/foo")
			if !strings.Contains(out, "team/foo") || !strings.Contains(out, "1.1.2") {
				t.Errorf("helm search repo:\n%s", out)
			}
			dl := t.TempDir()
			mustHelm(t, home, "pull", "team/foo", "--version", "1.1.2", "--verify", "--keyring", k.Public, "-d", dl)
			if string(readFile(t, filepath.Join(dl, "foo-1.1.2.tgz"))) != string(readFile(t, archive)) {
				t.Error("helm pull downloaded other bytes than were released")
			}
		})
	}
}

func TestReleaseForce(t *testing.T) {
	k := newKeyring(t, "Charter Test")
	for kind, newRepo := range repoKinds {
		t.Run(kind, func(t *testing.T) {
			r := newRepo(t)
			ctx := testContext(t)
			first := packageChart(t, testChart)
			prov, err := Sign(first, k.Secret, "Charter Test")
			if err != nil {
				t.Fatal(err)
			}
			withProv := r.opts
			withProv.Prov = prov
			if _, err := Release(ctx, first, r.dest, withProv); err != nil {
				t.Fatal(err)
			}
			if r.read(t, "foo-1.1.2.tgz.prov") == nil {
				t.Fatal("the .prov was not uploaded")
			}
			src := filepath.Join(t.TempDir(), "foo")
			copyDir(t, testChart, src)
			writeFile(t, filepath.Join(src, "values.yaml"), "greeting: rebuilt\n")
			second := packageChart(t, src)

			_, err = Release(ctx, second, r.dest, r.opts)
			want := fmt.Sprintf("foo 1.1.2 already released to %s; use --force", r.dest)
			if !errors.Is(err, ErrAlreadyReleased) || !strings.HasSuffix(err.Error(), want) {
				t.Fatalf("second release: err = %v, want one ending %q", err, want)
			}
			if got := r.read(t, "foo-1.1.2.tgz"); string(got) != string(readFile(t, first)) {
				t.Fatal("a refused release overwrote the archive")
			}

			opts := r.opts
			opts.Force = true
			if _, err := Release(ctx, second, r.dest, opts); err != nil {
				t.Fatal(err)
			}
			idx := indexOf(t, r)
			if vs := versions(idx, "foo"); len(vs) != 1 || idx.Entries["foo"][0].Digest != sha256Hex(readFile(t, second)) {
				t.Errorf("after --force the index has %v with digest %s, want one 1.1.2 with the new digest", vs, idx.Entries["foo"][0].Digest)
			}
			if got := r.read(t, "foo-1.1.2.tgz"); string(got) != string(readFile(t, second)) {
				t.Error("--force did not replace the archive")
			}
			if r.read(t, "foo-1.1.2.tgz.prov") == nil {
				return
			}
			t.Error("--force without a .prov left the replaced build's .prov, which cannot verify the new archive")
		})
	}
}

// TestReleaseAfterInterruptedRelease: an archive already uploaded but not
// in the index is accepted when identical and refused when not.
func TestReleaseAfterInterruptedRelease(t *testing.T) {
	for kind, newRepo := range repoKinds {
		t.Run(kind, func(t *testing.T) {
			r := newRepo(t)
			ctx := testContext(t)
			archive := packageChart(t, writeChart(t, "foo", "1.0.0"))
			r.write(t, "foo-1.0.0.tgz", readFile(t, archive))
			if _, err := Release(ctx, archive, r.dest, r.opts); err != nil {
				t.Fatalf("identical leftover archive: %v", err)
			}
			if vs := versions(indexOf(t, r), "foo"); len(vs) != 1 {
				t.Errorf("index versions = %v", vs)
			}

			other := packageChart(t, writeChart(t, "bar", "1.0.0"))
			r.write(t, "bar-1.0.0.tgz", []byte("someone else's archive"))
			if _, err := Release(ctx, other, r.dest, r.opts); !errors.Is(err, ErrAlreadyReleased) {
				t.Fatalf("different leftover archive: err = %v, want ErrAlreadyReleased", err)
			}
			if string(r.read(t, "bar-1.0.0.tgz")) != "someone else's archive" {
				t.Error("the other archive was overwritten")
			}
		})
	}
}

func TestReleaseConcurrently(t *testing.T) {
	for kind, newRepo := range repoKinds {
		t.Run(kind, func(t *testing.T) {
			r := newRepo(t)
			ctx := testContext(t)
			const n = 4
			archives := make([]string, n)
			for i := range n {
				archives[i] = packageChart(t, writeChart(t, fmt.Sprintf("chart%d", i), "0.1.0"))
			}
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() { _, errs[i] = Release(ctx, archives[i], r.dest, r.opts) })
			}
			wg.Wait()
			idx := indexOf(t, r)
			for i := range n {
				if errs[i] != nil {
					t.Errorf("release %d: %v", i, errs[i])
				}
				if vs := versions(idx, fmt.Sprintf("chart%d", i)); len(vs) != 1 {
					t.Errorf("chart%d in index: %v, want [0.1.0]", i, vs)
				}
			}
		})
	}
}

// TestReleaseRetriesLostRace makes another release win the race between
// the index's read and its write, and checks both end up in the index.
func TestReleaseRetriesLostRace(t *testing.T) {
	for kind, newRepo := range repoKinds {
		t.Run(kind, func(t *testing.T) {
			if kind == "file" {
				t.Skip("file:// releases hold a lock from read to write: there is no race to lose")
			}
			r := newRepo(t)
			ctx := testContext(t)
			foo := packageChart(t, writeChart(t, "foo", "1.0.0"))
			bar := packageChart(t, writeChart(t, "bar", "2.0.0"))
			var attempts []int
			_, err := release(ctx, foo, r.dest, r.opts, func(attempt int) {
				attempts = append(attempts, attempt)
				if attempt == 1 {
					if _, err := Release(ctx, bar, r.dest, r.opts); err != nil {
						t.Errorf("concurrent release: %v", err)
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(attempts) != "[1 2]" {
				t.Errorf("index write attempts = %v, want [1 2]", attempts)
			}
			idx := indexOf(t, r)
			if versions(idx, "foo") == nil || versions(idx, "bar") == nil {
				t.Errorf("index entries = %v, want foo and bar", idx.Entries)
			}

			// A writer that always wins makes Release give up.
			baz := packageChart(t, writeChart(t, "baz", "3.0.0"))
			n := 0
			_, err = release(ctx, baz, r.dest, r.opts, func(int) {
				n++
				if _, err := Release(ctx, packageChart(t, writeChart(t, fmt.Sprintf("other%d", n), "1.0.0")), r.dest, r.opts); err != nil {
					t.Errorf("concurrent release: %v", err)
				}
			})
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("gave up after %d attempts", MaxAttempts)) {
				t.Fatalf("err = %v, want a give-up after %d attempts", err, MaxAttempts)
			}
		})
	}
}
