package git

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/git/gittest"
	"github.com/charter-sh/charter/source/sourcetest"
	"github.com/charter-sh/charter/state"
)

func newSource(t testing.TB, location string, opts source.Options) *Source {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	s, err := New(location, opts)
	if err != nil {
		t.Fatalf("New(%s): %v", source.Redact(location), err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fetch(t testing.TB, s source.Source) *source.Artifact {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := s.Fetch(ctx)
	if err != nil {
		t.Fatalf("fetch %s: %v", s, err)
	}
	return a
}

func fetchErr(t testing.TB, s source.Source) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := s.Fetch(ctx)
	if err == nil {
		t.Fatalf("fetch %s succeeded (revision %s), want an error", s, a.Revision)
	}
	return err
}

func readFile(t testing.TB, a *source.Artifact, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a.Path, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("snapshot %s: %v", a.Revision, err)
	}
	return string(b)
}

func TestConformanceFile(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T) *sourcetest.Harness {
		repo := gittest.NewRepo(t, t.TempDir(), "state")
		return &sourcetest.Harness{
			Source: newSource(t, repo.URL, source.Options{}),
			Write:  func(t testing.TB, files map[string][]byte) { repo.Commit(t, files, "change") },
		}
	})
}

func TestConformanceSubPath(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T) *sourcetest.Harness {
		repo := gittest.NewRepo(t, t.TempDir(), "mono")
		repo.Commit(t, map[string][]byte{"README": []byte("not state\n"), "deploy/other/x.yaml": []byte("x\n")}, "init")
		return &sourcetest.Harness{
			Source: newSource(t, "git+"+repo.URL+"//deploy/prod/?ref=main", source.Options{}),
			Write: func(t testing.TB, files map[string][]byte) {
				prefixed := map[string][]byte{}
				for k, v := range files {
					prefixed["deploy/prod/"+k] = v
				}
				repo.Commit(t, prefixed, "change")
			},
		}
	})
}

func TestConformanceHTTP(t *testing.T) {
	const user, pass = "alice", "s3cret-http-password"
	sourcetest.Run(t, func(t *testing.T) *sourcetest.Harness {
		root := t.TempDir()
		repo := gittest.NewRepo(t, root, "state")
		srv := gittest.ServeHTTP(t, root, user, pass)
		url := srv.RepoURL(repo)
		return &sourcetest.Harness{
			Source: newSource(t, url, source.Options{Credentials: source.Credentials{Username: user, Password: pass}}),
			Write:  func(t testing.TB, files map[string][]byte) { repo.Commit(t, files, "change") },
			Secret: pass,
			Broken: func(t testing.TB) source.Source {
				return newSource(t, url, source.Options{Credentials: source.Credentials{Username: user, Password: "wrong-" + pass[:4]}})
			},
		}
	})
}

func TestConformanceSSH(t *testing.T) {
	const passphrase = "key-passphrase-secret"
	sourcetest.Run(t, func(t *testing.T) *sourcetest.Harness {
		root := t.TempDir()
		repo := gittest.NewRepo(t, root, "state")
		keyFile, pub := gittest.NewSSHKey(t, t.TempDir(), passphrase)
		srv := gittest.ServeSSH(t, root, pub)
		kh := filepath.Join(t.TempDir(), "known_hosts")
		gittest.WriteKnownHosts(t, kh, srv.KnownHostsLine())
		creds := source.Credentials{SSHKeyFile: keyFile, SSHKeyPassphrase: passphrase, KnownHostsFile: kh}
		return &sourcetest.Harness{
			Source: newSource(t, srv.RepoURL(repo), source.Options{Credentials: creds}),
			Write:  func(t testing.TB, files map[string][]byte) { repo.Commit(t, files, "change") },
			Secret: passphrase,
			Broken: func(t testing.TB) source.Source {
				otherKey, _ := gittest.NewSSHKey(t, t.TempDir(), passphrase)
				c := creds
				c.SSHKeyFile = otherKey
				return newSource(t, srv.RepoURL(repo), source.Options{Credentials: c})
			},
		}
	})
}

func TestRefKinds(t *testing.T) {
	root := t.TempDir()
	repo := gittest.NewRepo(t, root, "refs")
	decl := func(v string) map[string][]byte {
		return map[string][]byte{"releases/web.yaml": []byte("version: " + v + "\n")}
	}
	c1 := repo.Commit(t, decl("1.0.0"), "one")
	repo.Git(t, "tag", "v1.0.0")
	c2 := repo.Commit(t, decl("1.2.0"), "two")
	repo.Git(t, "tag", "-a", "-m", "annotated", "v1.2.0")
	c3 := repo.Commit(t, decl("2.0.0"), "three")
	repo.Git(t, "tag", "v2.0.0")
	repo.Git(t, "tag", "not-a-version")
	repo.Git(t, "push", "-q", "origin", "--tags")
	repo.Git(t, "checkout", "-q", "-b", "feature", c1)
	c4 := repo.Commit(t, decl("feature"), "feature")
	repo.Git(t, "checkout", "-q", "main")
	c5 := repo.Commit(t, decl("2.1.0-dev"), "main moves on")

	for _, tc := range []struct {
		name, query, wantRev, want string
	}{
		{"default is the remote HEAD's branch", "", "main@sha1:" + c5, "2.1.0-dev"},
		{"branch", "?ref=feature", "feature@sha1:" + c4, "feature"},
		{"branch as full ref", "?ref=refs/heads/feature", "feature@sha1:" + c4, "feature"},
		{"lightweight tag", "?tag=v1.0.0", "v1.0.0@sha1:" + c1, "1.0.0"},
		{"annotated tag is peeled to its commit", "?tag=v1.2.0", "v1.2.0@sha1:" + c2, "1.2.0"},
		{"semver range picks the highest matching tag", "?semver=%3E%3D1.0.0%2C%3C2.0.0", "v1.2.0@sha1:" + c2, "1.2.0"},
		{"semver range across majors", "?semver=*", "v2.0.0@sha1:" + c3, "2.0.0"},
		{"commit at a branch tip", "?commit=" + c4, "sha1:" + c4, "feature"},
		{"commit no ref points to", "?commit=" + c3, "sha1:" + c3, "2.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSource(t, repo.URL+tc.query, source.Options{})
			a := fetch(t, s)
			if a.Revision != tc.wantRev {
				t.Errorf("revision = %s, want %s", a.Revision, tc.wantRev)
			}
			if got := readFile(t, a, "releases/web.yaml"); got != "version: "+tc.want+"\n" {
				t.Errorf("releases/web.yaml = %q, want version %s", got, tc.want)
			}
		})
	}

	t.Run("commit by id when the server allows it", func(t *testing.T) {
		gittest.Git(t, repo.Bare, "config", "uploadpack.allowReachableSHA1InWant", "true")
		defer gittest.Git(t, repo.Bare, "config", "--unset", "uploadpack.allowReachableSHA1InWant")
		s := newSource(t, repo.URL+"?commit="+c2, source.Options{})
		a := fetch(t, s)
		if a.Revision != "sha1:"+c2 || readFile(t, a, "releases/web.yaml") != "version: 1.2.0\n" {
			t.Errorf("revision %s, content %q", a.Revision, readFile(t, a, "releases/web.yaml"))
		}
		if _, err := os.Stat(filepath.Join(s.dir, "repo", "shallow")); err != nil {
			t.Errorf("want a shallow fetch of the one commit: %v", err)
		}
	})

	for _, tc := range []struct{ name, query, want string }{
		{"missing branch", "?ref=nope", `branch "nope" not found`},
		{"missing tag", "?tag=v9.9.9", `tag "v9.9.9" not found`},
		{"no tag in the semver range", "?semver=%3E%3D3", "no tag matching semver range"},
		{"unknown commit", "?commit=0123456789012345678901234567890123456789", "0123456789012345678901234567890123456789"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fetchErr(t, newSource(t, repo.URL+tc.query, source.Options{}))
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), repo.URL) {
				t.Errorf("error %q: want it to name %q and the location", err, tc.want)
			}
		})
	}
}

func TestIdlePollIsOneListAndNoFetch(t *testing.T) {
	root := t.TempDir()
	repo := gittest.NewRepo(t, root, "state")
	srv := gittest.ServeHTTP(t, root, "", "")
	repo.Commit(t, map[string][]byte{"releases/web.yaml": []byte("a\n")}, "one")
	s := newSource(t, srv.RepoURL(repo), source.Options{})

	first := fetch(t, s)
	before, stats := srv.Requests(), s.Stats()
	const polls = 5
	for i := 0; i < polls; i++ {
		a := fetch(t, s)
		if *a != *first {
			t.Fatalf("idle poll %d: artifact %+v, want %+v", i, a, first)
		}
	}
	after := srv.Requests()
	if got := after.InfoRefs - before.InfoRefs; got != polls {
		t.Errorf("%d idle polls made %d info/refs requests, want %d", polls, got, polls)
	}
	if after.UploadPack != before.UploadPack {
		t.Errorf("idle polls fetched: %d upload-pack requests", after.UploadPack-before.UploadPack)
	}
	if st := s.Stats(); st.Fetches != stats.Fetches || st.ListRemote != stats.ListRemote+polls {
		t.Errorf("stats %+v after %+v: want %d more ls-remote and no fetch", st, stats, polls)
	}

	// A change costs one ls-remote and one fetch (advertisement + pack).
	repo.Commit(t, map[string][]byte{"releases/web.yaml": []byte("b\n")}, "two")
	before = srv.Requests()
	a := fetch(t, s)
	after = srv.Requests()
	if readFile(t, a, "releases/web.yaml") != "b\n" {
		t.Fatal("change not fetched")
	}
	if after.UploadPack-before.UploadPack != 1 || after.InfoRefs-before.InfoRefs != 2 {
		t.Errorf("a change made %d info/refs and %d upload-pack requests, want 2 and 1",
			after.InfoRefs-before.InfoRefs, after.UploadPack-before.UploadPack)
	}
	t.Logf("idle poll: 1 request (GET info/refs); change: %d requests", (after.InfoRefs-before.InfoRefs)+(after.UploadPack-before.UploadPack))
}

func TestRevertToCachedCommitDownloadsNothing(t *testing.T) {
	repo := gittest.NewRepo(t, t.TempDir(), "state")
	c1 := repo.Commit(t, map[string][]byte{"a": []byte("1\n")}, "one")
	s := newSource(t, repo.URL, source.Options{})
	a1 := fetch(t, s)
	repo.Commit(t, map[string][]byte{"a": []byte("2\n")}, "two")
	fetch(t, s)
	fetches := s.Stats().Fetches
	gittest.Git(t, repo.Bare, "update-ref", "refs/heads/main", c1)
	a3 := fetch(t, s)
	if a3.Revision != a1.Revision || a3.Digest != a1.Digest || readFile(t, a3, "a") != "1\n" {
		t.Errorf("after moving main back: %s %s, want %s %s", a3.Revision, a3.Digest, a1.Revision, a1.Digest)
	}
	if s.Stats().Fetches != fetches {
		t.Errorf("moving back to a cached commit downloaded again")
	}
}

func TestDeletedBranch(t *testing.T) {
	const pass = "pw-for-deleted-branch"
	root := t.TempDir()
	repo := gittest.NewRepo(t, root, "state")
	srv := gittest.ServeHTTP(t, root, "bob", pass)
	repo.Commit(t, map[string][]byte{"a": []byte("1\n")}, "one")
	repo.Git(t, "push", "-q", "origin", "main:refs/heads/release")
	url := strings.Replace(srv.RepoURL(repo), "http://", "http://bob:"+pass+"@", 1) + "?ref=release"
	s := newSource(t, url, source.Options{})
	good := fetch(t, s)

	gittest.Git(t, repo.Bare, "branch", "-D", "release")
	err := fetchErr(t, s)
	if !errors.Is(err, ErrRefNotFound) {
		t.Errorf("error %v: want ErrRefNotFound", err)
	}
	for _, want := range []string{`branch "release" not found`, "bob:xxxxx@127.0.0.1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q: want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), pass) || strings.Contains(s.String(), pass) {
		t.Errorf("error or String leaks the password: %v / %s", err, s)
	}
	if _, err := os.Stat(filepath.Join(good.Path, "a")); err != nil {
		t.Errorf("the last good snapshot was removed after a failed fetch: %v", err)
	}
}

func TestCredentials(t *testing.T) {
	const token = "glpat-0123456789abcdef"
	root := t.TempDir()
	repo := gittest.NewRepo(t, root, "state")
	repo.Commit(t, map[string][]byte{"a": []byte("1\n")}, "one")
	tokenSrv := gittest.ServeHTTP(t, root, TokenUser, token)
	userSrv := gittest.ServeHTTP(t, root, "carol", token)

	for _, tc := range []struct {
		name     string
		location string
		creds    source.Credentials
		wantErr  error
	}{
		{"token is sent as the password of x-access-token", tokenSrv.RepoURL(repo), source.Credentials{Token: token}, nil},
		{"token with a user name", userSrv.RepoURL(repo), source.Credentials{Username: "carol", Token: token}, nil},
		{"user info in the URL", strings.Replace(userSrv.RepoURL(repo), "http://", "http://carol:"+token+"@", 1), source.Credentials{}, nil},
		{"options win over the URL", strings.Replace(userSrv.RepoURL(repo), "http://", "http://carol:wrong@", 1), source.Credentials{Password: token}, nil},
		{"wrong token", tokenSrv.RepoURL(repo), source.Credentials{Token: token + "x"}, transport.ErrAuthenticationRequired},
		{"no credentials", tokenSrv.RepoURL(repo), source.Credentials{}, transport.ErrAuthenticationRequired},
		{"wrong password in the URL", strings.Replace(userSrv.RepoURL(repo), "http://", "http://carol:"+token+"x@", 1), source.Credentials{}, transport.ErrAuthenticationRequired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSource(t, tc.location, source.Options{Credentials: tc.creds})
			if strings.Contains(s.String(), token) {
				t.Errorf("String() = %s shows the token", s)
			}
			if tc.wantErr == nil {
				if a := fetch(t, s); readFile(t, a, "a") != "1\n" {
					t.Error("wrong content")
				}
				return
			}
			err := fetchErr(t, s)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v: want %v", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error leaks the token: %v", err)
			}
			if !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "credentials") {
				t.Errorf("error %q: want the location and the reason", err)
			}
		})
	}
}

func TestUnreachableHost(t *testing.T) {
	for _, loc := range []string{
		"http://u:unreachable-secret@127.0.0.1:1/state.git",
		"file:///nonexistent/state.git",
	} {
		t.Run(source.Redact(loc), func(t *testing.T) {
			s := newSource(t, loc, source.Options{Timeout: 10 * time.Second})
			err := fetchErr(t, s)
			if strings.Contains(err.Error(), "unreachable-secret") {
				t.Errorf("error leaks the password: %v", err)
			}
			if !strings.Contains(err.Error(), source.Redact(strings.SplitN(loc, "?", 2)[0])) {
				t.Errorf("error %q does not name the location", err)
			}
		})
	}
}

func TestSSHHostKeys(t *testing.T) {
	root := t.TempDir()
	repo := gittest.NewRepo(t, root, "state")
	repo.Commit(t, map[string][]byte{"a": []byte("1\n")}, "one")
	keyFile, pub := gittest.NewSSHKey(t, t.TempDir(), "")
	srv := gittest.ServeSSH(t, root, pub)
	other := gittest.ServeSSH(t, root, pub) // a different host key
	dir := t.TempDir()
	good, wrong, empty := filepath.Join(dir, "good"), filepath.Join(dir, "wrong"), filepath.Join(dir, "empty")
	gittest.WriteKnownHosts(t, good, "# charter test", other.KnownHostsLine(), srv.KnownHostsLine())
	// The other server's key listed under this server's address.
	gittest.WriteKnownHosts(t, wrong, knownhosts.Line([]string{knownhosts.Normalize(srv.Addr)}, other.HostKey))
	gittest.WriteKnownHosts(t, empty, "")

	for _, tc := range []struct {
		name    string
		creds   source.Credentials
		wantErr string
	}{
		{"host key in known_hosts", source.Credentials{SSHKeyFile: keyFile, KnownHostsFile: good}, ""},
		{"host key does not match", source.Credentials{SSHKeyFile: keyFile, KnownHostsFile: wrong}, "does not match"},
		{"host not in known_hosts", source.Credentials{SSHKeyFile: keyFile, KnownHostsFile: empty}, "is not in"},
		{"insecure skips the check", source.Credentials{SSHKeyFile: keyFile, KnownHostsFile: empty, InsecureIgnoreHostKey: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSource(t, srv.RepoURL(repo), source.Options{Credentials: tc.creds})
			if tc.wantErr == "" {
				if a := fetch(t, s); readFile(t, a, "a") != "1\n" {
					t.Error("wrong content")
				}
				return
			}
			if err := fetchErr(t, s); !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q: want %q", err, tc.wantErr)
			}
		})
	}

	t.Run("missing known_hosts file is an error at New", func(t *testing.T) {
		_, err := New(srv.RepoURL(repo), source.Options{CacheDir: t.TempDir(), Credentials: source.Credentials{SSHKeyFile: keyFile, KnownHostsFile: filepath.Join(dir, "nope")}})
		if err == nil || !strings.Contains(err.Error(), "known_hosts") {
			t.Errorf("error %v: want it to name known_hosts", err)
		}
	})
	t.Run("encrypted key without passphrase", func(t *testing.T) {
		enc, _ := gittest.NewSSHKey(t, t.TempDir(), "pp")
		_, err := New(srv.RepoURL(repo), source.Options{CacheDir: t.TempDir(), Credentials: source.Credentials{SSHKeyFile: enc, KnownHostsFile: good}})
		if err == nil || !strings.Contains(err.Error(), "passphrase") {
			t.Errorf("error %v: want it to ask for the passphrase", err)
		}
	})
	t.Run("wrong passphrase does not leak", func(t *testing.T) {
		enc, _ := gittest.NewSSHKey(t, t.TempDir(), "right-pass")
		_, err := New(srv.RepoURL(repo), source.Options{CacheDir: t.TempDir(), Credentials: source.Credentials{SSHKeyFile: enc, SSHKeyPassphrase: "wrong-pass-secret", KnownHostsFile: good}})
		if err == nil || strings.Contains(err.Error(), "wrong-pass-secret") {
			t.Errorf("error %v: want an error without the passphrase", err)
		}
	})
}

func TestSymlinksAreNotMaterialised(t *testing.T) {
	repo := gittest.NewRepo(t, t.TempDir(), "links")
	repo.Commit(t, map[string][]byte{"releases/web.yaml": []byte("web\n"), "values/common.yaml": []byte("a: 1\n")}, "files")
	for name, target := range map[string]string{
		"values/escape.yaml": "../../../../etc/passwd",
		"values/inside.yaml": "common.yaml",
		"values/abs.yaml":    "/etc/passwd",
		"charts":             "/etc",
		"releases/dir-link":  "../values",
		"releases/dangling":  "nowhere",
	} {
		if err := os.Symlink(target, filepath.Join(repo.Work, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	repo.Commit(t, nil, "links")
	s := newSource(t, repo.URL, source.Options{})
	a := fetch(t, s)
	if readFile(t, a, "releases/web.yaml") != "web\n" || readFile(t, a, "values/common.yaml") != "a: 1\n" {
		t.Error("regular files missing")
	}
	err := filepath.WalkDir(a.Path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&os.ModeSymlink != 0 {
			t.Errorf("snapshot holds a symlink: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"values/escape.yaml", "values/inside.yaml", "charts", "releases/dir-link"} {
		if _, err := os.Lstat(filepath.Join(a.Path, name)); !os.IsNotExist(err) {
			t.Errorf("%s: want it absent, got %v", name, err)
		}
	}
}

func TestSubPathKeepsChartsBesideTheState(t *testing.T) {
	repo := gittest.NewRepo(t, t.TempDir(), "mono")
	repo.Commit(t, map[string][]byte{
		"deploy/state/releases/web.yaml": []byte("apiVersion: charter.sh/v1\nkind: Release\nname: web\nchart: ../charts/hello\n"),
		"deploy/charts/hello/Chart.yaml": []byte("apiVersion: v2\nname: hello\nversion: 0.1.0\n"),
		"src/main.go":                    []byte("package main\n"),
	}, "init")
	a := fetch(t, newSource(t, repo.URL+"//deploy/state", source.Options{}))
	d, err := state.Open(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	chart, err := d.ResolveChart("../charts/hello")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(chart, "Chart.yaml")); err != nil {
		t.Errorf("chart beside the state folder missing from the snapshot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a.Path, "..", "..", "src")); !os.IsNotExist(err) {
		t.Errorf("folders above the state folder's parent were written: %v", err)
	}

	// Without a sub-path, nothing but the state root is beside it: a
	// reference climbing out finds nothing, not another snapshot.
	b := fetch(t, newSource(t, repo.URL, source.Options{}))
	entries, err := os.ReadDir(filepath.Dir(b.Path))
	if err != nil || len(entries) != 1 {
		t.Errorf("the state root's parent holds %v (%v), want only the state root", entries, err)
	}
}

func TestFileSizeCap(t *testing.T) {
	repo := gittest.NewRepo(t, t.TempDir(), "big")
	repo.Commit(t, map[string][]byte{"releases/web.yaml": []byte("web\n"), "charts/big.tgz": make([]byte, 4097)}, "big")
	s := newSource(t, repo.URL, source.Options{MaxFileSize: 4096})
	err := fetchErr(t, s)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "charts/big.tgz") {
		t.Errorf("error %v: want ErrTooLarge naming charts/big.tgz", err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.dir, "snapshots"))
	if len(entries) != 0 {
		t.Errorf("a failed snapshot left %d folders", len(entries))
	}
	repo.Commit(t, map[string][]byte{"charts/big.tgz": make([]byte, 4096)}, "at the limit")
	if a := fetch(t, s); len(readFile(t, a, "charts/big.tgz")) != 4096 {
		t.Error("file at the limit not written whole")
	}
}

// TestCraftedTreeNamesAreRefused builds trees git itself would refuse to
// create, as a hostile server could send them.
func TestCraftedTreeNamesAreRefused(t *testing.T) {
	for _, name := range []string{"..", ".", ".git", ".GIT", "a/b", `a\b`} {
		t.Run(name, func(t *testing.T) {
			st := memory.NewStorage()
			store := func(o interface {
				Encode(plumbing.EncodedObject) error
			}) plumbing.Hash {
				obj := st.NewEncodedObject()
				if err := o.Encode(obj); err != nil {
					t.Fatal(err)
				}
				h, err := st.SetEncodedObject(obj)
				if err != nil {
					t.Fatal(err)
				}
				return h
			}
			blob := st.NewEncodedObject()
			blob.SetType(plumbing.BlobObject)
			w, _ := blob.Writer()
			w.Write([]byte("pwned\n"))
			w.Close()
			bh, err := st.SetEncodedObject(blob)
			if err != nil {
				t.Fatal(err)
			}
			th := store(&object.Tree{Entries: []object.TreeEntry{{Name: name, Mode: filemode.Regular, Hash: bh}}})
			sig := object.Signature{Name: "x", Email: "x@example.com", When: time.Now()}
			ch := store(&object.Commit{Author: sig, Committer: sig, Message: "evil", TreeHash: th})
			c, err := object.GetCommit(st, ch)
			if err != nil {
				t.Fatal(err)
			}
			dst := t.TempDir()
			_, _, err = writeSnapshot(context.Background(), c, "", dst, 1<<20)
			if err == nil || !strings.Contains(err.Error(), "unsafe file name") {
				t.Errorf("writeSnapshot: %v, want an unsafe-name error", err)
			}
			if _, err := os.Stat(filepath.Join(dst, "pwned")); !os.IsNotExist(err) {
				t.Error("wrote outside the snapshot")
			}
		})
	}
}

func TestLargeFilesAreStreamed(t *testing.T) {
	const size = 64 << 20
	repo := gittest.NewRepo(t, t.TempDir(), "big")
	repo.Commit(t, map[string][]byte{"charts/big.tgz": make([]byte, size)}, "big")
	s := newSource(t, repo.URL, source.Options{MaxFileSize: 2 * size})
	fetch(t, s) // go-git's fetch inflates each object once to index it
	for _, tc := range []struct {
		name    string
		maxSize int64
		wantErr bool
	}{
		{"over the cap: refused before reading", 1 << 20, true},
		{"under the cap: copied in small buffers", 2 * size, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repoDir := filepath.Join(s.dir, "repo")
			r, err := openCache(repoDir, s.spec.URL, 1<<20, false)
			if err != nil {
				t.Fatal(err)
			}
			c, err := cachedCommit(r, s.lastHash)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, _, err = writeSnapshot(context.Background(), c, "", t.TempDir(), tc.maxSize)
			runtime.ReadMemStats(&after)
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrTooLarge)) {
				t.Fatalf("writeSnapshot: %v, want error %v", err, tc.wantErr)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("writing a %d MiB file allocated %d MiB", size>>20, alloc>>20)
			}
		})
	}
}

func TestSnapshotsStayConsistentAndBounded(t *testing.T) {
	repo := gittest.NewRepo(t, t.TempDir(), "state")
	repo.Commit(t, map[string][]byte{"releases/web.yaml": []byte("v0\n"), "bin/run": []byte("#!/bin/sh\n")}, "v0")
	repo.Git(t, "update-index", "--chmod=+x", "bin/run")
	repo.Git(t, "commit", "-q", "-m", "exec")
	repo.Git(t, "push", "-q", "origin", "HEAD:main")
	s := newSource(t, repo.URL, source.Options{})
	prev := fetch(t, s)
	if fi, err := os.Stat(filepath.Join(prev.Path, "bin/run")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("executable bit lost: %v %v", fi.Mode(), err)
	}
	for i := 1; i <= 4; i++ {
		repo.Commit(t, map[string][]byte{"releases/web.yaml": []byte("v" + string(rune('0'+i)) + "\n")}, "change")
		a := fetch(t, s)
		if a.Path == prev.Path {
			t.Fatal("a new revision reused the snapshot folder")
		}
		// The previous snapshot is intact until the next Fetch returns.
		if got := readFile(t, prev, "releases/web.yaml"); got != "v"+string(rune('0'+i-1))+"\n" {
			t.Errorf("previous snapshot changed under its reader: %q", got)
		}
		entries, _ := os.ReadDir(filepath.Join(s.dir, "snapshots"))
		if len(entries) > 2 {
			t.Errorf("%d snapshot folders after change %d, want at most 2", len(entries), i)
		}
		prev = a
	}
	// The digest is the one the state package computes for the same tree.
	d, err := state.Open(prev.Path)
	if err != nil {
		t.Fatal(err)
	}
	if rev, err := d.Revision(context.Background()); err != nil || rev != prev.Digest {
		t.Errorf("state revision %s (%v), artifact digest %s", rev, err, prev.Digest)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(context.Background()); err == nil {
		t.Error("fetch after Close succeeded")
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
	}{
		{"https://github.com/org/repo", Spec{URL: "https://github.com/org/repo", Scheme: "https"}},
		{"git+https://alice:pw@git.example.com/org/repo.git//clusters/prod?ref=main",
			Spec{URL: "https://git.example.com/org/repo.git", Scheme: "https", SubPath: "clusters/prod", Branch: "main", Username: "alice", Password: "pw"}},
		{"http://127.0.0.1:8080/state.git?tag=v1.2.3", Spec{URL: "http://127.0.0.1:8080/state.git", Scheme: "http", Tag: "v1.2.3"}},
		{"ssh://git@host:2222/srv/repo.git?semver=~1.2", Spec{URL: "ssh://git@host:2222/srv/repo.git", Scheme: "ssh", Semver: "~1.2", Username: "git"}},
		{"ssh://host/srv/repo.git", Spec{URL: "ssh://git@host/srv/repo.git", Scheme: "ssh", Username: "git"}},
		{"git@github.com:org/repo.git", Spec{URL: "git@github.com:org/repo.git", Scheme: "ssh", Username: "git"}},
		{"deploy@github.com:org/repo.git//sub/dir/?commit=ABCDEF0123456789abcdef0123456789abcdef01",
			Spec{URL: "deploy@github.com:org/repo.git", Scheme: "ssh", Username: "deploy", SubPath: "sub/dir", Commit: "abcdef0123456789abcdef0123456789abcdef01"}},
		{"git+ssh://git@host/repo.git", Spec{URL: "ssh://git@host/repo.git", Scheme: "ssh", Username: "git"}},
		{"file:///srv/git/state.git", Spec{URL: "file:///srv/git/state.git", Scheme: "file"}},
		{"git+file:///srv/git/state.git//a/./b", Spec{URL: "file:///srv/git/state.git", Scheme: "file", SubPath: "a/b"}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseURL(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.location = tc.in
			if got != tc.want {
				t.Errorf("ParseURL(%q) =\n %+v\nwant\n %+v", tc.in, got, tc.want)
			}
		})
	}
	for _, tc := range []struct{ in, want string }{
		{"ftp://host/repo", "scheme"},
		{"https://host/repo?ref=a&tag=b", "only one"},
		{"https://host/repo?branch=x", "unknown query parameter"},
		{"https://host/repo?commit=abc", "40-digit"},
		{"https://host/repo?semver=not-a-range!", "semver"},
		{"https://host/repo//../etc", "leaves the repository"},
		{"https://host/repo?ref=a..b", "not a valid ref"},
		{"file://relative/path", "local path"},
		{"https://u:topsecret@host/repo?ref=a&tag=b", "xxxxx"},
		{"https://", "no host"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseURL(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseURL(%q) error %v, want %q", tc.in, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "topsecret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestIsRepository(t *testing.T) {
	repo := gittest.NewRepo(t, t.TempDir(), "state")
	for path, want := range map[string]bool{repo.Bare: true, repo.Work: true, t.TempDir(): false, "/nonexistent": false} {
		if got := IsRepository(path); got != want {
			t.Errorf("IsRepository(%s) = %v, want %v", path, got, want)
		}
	}
	if got := source.KindOf("file://"+repo.Bare, IsRepository); got != source.KindGit {
		t.Errorf("KindOf(file://bare repo) = %s", got)
	}
}
