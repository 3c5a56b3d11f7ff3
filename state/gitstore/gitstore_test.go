package gitstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/git/gittest"
	"github.com/charter-sh/charter/state"
)

// remote is a repository served one way, with the location a Store opens.
type remote struct {
	repo     *gittest.Repo
	location string
	opts     Options
	http     *gittest.HTTPServer
}

const httpPass = "store-http-secret"

// remotes returns the transports every behaviour is checked on.
func remotes(t *testing.T) map[string]func(t *testing.T) *remote {
	return map[string]func(t *testing.T) *remote{
		"file": func(t *testing.T) *remote {
			repo := gittest.NewRepo(t, t.TempDir(), "state")
			return &remote{repo: repo, location: repo.URL}
		},
		"http": func(t *testing.T) *remote {
			root := t.TempDir()
			repo := gittest.NewRepo(t, root, "state")
			srv := gittest.ServeHTTP(t, root, "ci", httpPass)
			return &remote{repo: repo, location: srv.RepoURL(repo), http: srv,
				opts: Options{Options: source.Options{Credentials: source.Credentials{Username: "ci", Password: httpPass}}}}
		},
	}
}

func (r *remote) open(t *testing.T, opts Options) *Store {
	t.Helper()
	o := r.opts
	o.CacheDir = opts.CacheDir
	if o.CacheDir == "" {
		o.CacheDir = t.TempDir()
	}
	o.AuthorName, o.AuthorEmail, o.NoPush = "Ada Lovelace", "ada@example.com", opts.NoPush
	if opts.AuthorName != "" {
		o.AuthorName, o.AuthorEmail = opts.AuthorName, opts.AuthorEmail
	}
	s, err := Open(ctx(t), r.location, o)
	if err != nil {
		t.Fatalf("open %s: %v", r.location, err)
	}
	return s
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func release(name, msg string) *state.Release {
	return &state.Release{Name: name, Chart: "oci://registry.example.com/charts/hello", Version: "1.0.0", Values: map[string]any{"message": msg}}
}

func create(name, msg string) func(*state.Dir) error {
	return func(d *state.Dir) error { return d.Create(context.Background(), release(name, msg)) }
}

// log returns "subject|author name|author email" of the branch's commits,
// newest first.
func log(t *testing.T, r *remote) []string {
	t.Helper()
	out := gittest.Git(t, r.repo.Bare, "log", "--format=%s|%an|%ae", "main")
	return strings.Split(out, "\n")
}

func TestEditCommitsAndPushes(t *testing.T) {
	for name, newRemote := range remotes(t) {
		t.Run(name, func(t *testing.T) {
			r := newRemote(t)
			s := r.open(t, Options{}) // empty repository: the first edit creates main

			d, err := s.Dir(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if rels, err := d.List(ctx(t)); err != nil || len(rels) != 0 {
				t.Fatalf("empty repository lists %v, %v", rels, err)
			}
			rev, err := s.Edit(ctx(t), "deploy web: hello 1.0.0", create("web", "one"))
			if err != nil {
				t.Fatal(err)
			}
			if head := r.repo.RemoteHead(t, "main"); rev != head || head == "" {
				t.Errorf("Edit returned %s, remote main is %s", rev, head)
			}
			if got, want := log(t, r), []string{"deploy web: hello 1.0.0|Ada Lovelace|ada@example.com"}; strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("remote log %q, want %q", got, want)
			}
			if got := r.repo.Show(t, "main", "releases/web.yaml"); !strings.Contains(got, "message: one") {
				t.Errorf("pushed releases/web.yaml = %q", got)
			}
			if got := r.repo.Show(t, "main", "charter.yaml"); !strings.Contains(got, "kind: State") {
				t.Errorf("new repository got no state marker: %q", got)
			}
			files := gittest.Git(t, r.repo.Bare, "ls-tree", "-r", "--name-only", "main")
			if strings.Contains(files, ".charter") {
				t.Errorf("lock or temporary files committed: %s", files)
			}

			// A change by someone else, then an update and a delete.
			r.repo.Commit(t, map[string][]byte{"values/common.yaml": []byte("a: 1\n")}, "team commit")
			if _, err := s.Edit(ctx(t), "deploy api", create("api", "x")); err != nil {
				t.Fatal(err)
			}
			_, err = s.Edit(ctx(t), "redeploy web", func(d *state.Dir) error {
				_, err := d.Update(context.Background(), "web", func(r *state.Release) error { r.Values["message"] = "two"; return nil })
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Edit(ctx(t), "uninstall api", func(d *state.Dir) error { return d.Delete(context.Background(), "api") }); err != nil {
				t.Fatal(err)
			}
			got := log(t, r)
			want := []string{"uninstall api|Ada Lovelace|ada@example.com", "redeploy web|Ada Lovelace|ada@example.com", "deploy api|Ada Lovelace|ada@example.com", "team commit|Test Author|author@example.com"}
			if strings.Join(got[:4], "\n") != strings.Join(want, "\n") {
				t.Errorf("remote log %q, want %q first", got, want)
			}
			files = gittest.Git(t, r.repo.Bare, "ls-tree", "-r", "--name-only", "main")
			if strings.Contains(files, "releases/api.yaml") || !strings.Contains(files, "values/common.yaml") {
				t.Errorf("remote files after the delete: %s", files)
			}
			if got := r.repo.Show(t, "main", "releases/web.yaml"); !strings.Contains(got, "message: two") {
				t.Errorf("update not pushed: %q", got)
			}
			if r.http != nil && r.http.Requests().Unauthorized != 0 {
				t.Errorf("%d unauthorised requests", r.http.Requests().Unauthorized)
			}
		})
	}
}

func TestDirFollowsTheRemote(t *testing.T) {
	r := remotes(t)["http"](t)
	r.repo.Commit(t, map[string][]byte{"releases/web.yaml": []byte("apiVersion: charter.sh/v1\nkind: Release\nname: web\nchart: oci://x/y\n")}, "one")
	s := r.open(t, Options{})
	d, err := s.Dir(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx(t), "web"); err != nil {
		t.Fatal(err)
	}
	// Stray changes in the clone are dropped by the next refresh.
	if err := os.WriteFile(filepath.Join(d.Root(), "releases", "stray.yaml"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.repo.Commit(t, map[string][]byte{"releases/web.yaml": nil}, "remove web")
	d, err = s.Dir(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web", "stray"} {
		if _, err := d.Get(ctx(t), name); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("Get(%s) after the refresh: %v, want ErrNotFound", name, err)
		}
	}
}

// barrier lets the first call of each of n functions wait until all n
// reached it, so concurrent edits really race.
func barrier(n int) func() {
	var wg sync.WaitGroup
	wg.Add(n)
	return func() {
		wg.Done()
		wg.Wait()
	}
}

func TestConcurrentEditsOfDifferentReleasesBothLand(t *testing.T) {
	for name, newRemote := range remotes(t) {
		t.Run(name, func(t *testing.T) {
			r := newRemote(t)
			r.repo.Commit(t, map[string][]byte{"charter.yaml": []byte("apiVersion: charter.sh/v1\nkind: State\n")}, "init")
			stores := []*Store{r.open(t, Options{}), r.open(t, Options{})}
			wait := barrier(2)
			var calls atomic.Int32
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, s := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					first := true
					name := []string{"alpha", "beta"}[i]
					_, errs[i] = s.Edit(ctx(t), "deploy "+name, func(d *state.Dir) error {
						calls.Add(1)
						if err := d.Create(context.Background(), release(name, "x")); err != nil {
							return err
						}
						if first {
							first = false
							wait() // both have applied their edit before either pushes
						}
						return nil
					})
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("edit %d: %v", i, err)
				}
			}
			if calls.Load() != 3 {
				t.Errorf("fn called %d times, want 3 (the loser retries once)", calls.Load())
			}
			files := gittest.Git(t, r.repo.Bare, "ls-tree", "-r", "--name-only", "main")
			for _, f := range []string{"releases/alpha.yaml", "releases/beta.yaml"} {
				if !strings.Contains(files, f) {
					t.Errorf("remote lacks %s: %s", f, files)
				}
			}
			if got := log(t, r); len(got) != 3 {
				t.Errorf("remote log %q: want init and one commit per edit", got)
			}
		})
	}
}

func TestConcurrentCreateOfTheSameNameOneWins(t *testing.T) {
	for name, newRemote := range remotes(t) {
		t.Run(name, func(t *testing.T) {
			r := newRemote(t)
			r.repo.Commit(t, map[string][]byte{"charter.yaml": []byte("apiVersion: charter.sh/v1\nkind: State\n")}, "init")
			stores := []*Store{r.open(t, Options{}), r.open(t, Options{})}
			wait := barrier(2)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, s := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					first := true
					_, errs[i] = s.Edit(ctx(t), "deploy web", func(d *state.Dir) error {
						if err := d.Create(context.Background(), release("web", []string{"first", "second"}[i])); err != nil {
							return err
						}
						if first {
							first = false
							wait()
						}
						return nil
					})
				}()
			}
			wg.Wait()
			won, lost := 0, 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case errors.Is(err, state.ErrExists):
					lost++
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}
			if won != 1 || lost != 1 {
				t.Fatalf("%d won, %d got ErrExists (%v), want one each", won, lost, errs)
			}
			if got := log(t, r); len(got) != 2 {
				t.Errorf("remote log %q: want init and the winner's commit", got)
			}
			winner := map[bool]string{true: "first", false: "second"}[errs[0] == nil]
			if got := r.repo.Show(t, "main", "releases/web.yaml"); !strings.Contains(got, "message: "+winner) {
				t.Errorf("remote web.yaml = %q, want the winner's (%s)", got, winner)
			}
		})
	}
}

func TestNoPush(t *testing.T) {
	r := remotes(t)["file"](t)
	before := r.repo.Commit(t, map[string][]byte{"charter.yaml": []byte("apiVersion: charter.sh/v1\nkind: State\n")}, "init")
	cache := t.TempDir()
	local := r.open(t, Options{Options: source.Options{CacheDir: cache}, NoPush: true})
	c1, err := local.Edit(ctx(t), "deploy one", create("one", "x"))
	if err != nil {
		t.Fatal(err)
	}
	if head := r.repo.RemoteHead(t, "main"); head != before {
		t.Fatalf("NoPush changed the remote: %s → %s", before, head)
	}
	// The next edit and refresh keep the local commit.
	if _, err := local.Edit(ctx(t), "deploy two", create("two", "y")); err != nil {
		t.Fatal(err)
	}
	d, err := local.Dir(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"one", "two"} {
		if _, err := d.Get(ctx(t), n); err != nil {
			t.Errorf("local commit lost: %v", err)
		}
	}
	if head := r.repo.RemoteHead(t, "main"); head != before {
		t.Fatalf("NoPush changed the remote: %s → %s", before, head)
	}
	// A pushing store on the same clone publishes them with its own edit.
	pusher := r.open(t, Options{Options: source.Options{CacheDir: cache}})
	if _, err := pusher.Edit(ctx(t), "deploy three", create("three", "z")); err != nil {
		t.Fatal(err)
	}
	got := log(t, r)
	if len(got) != 4 || !strings.HasPrefix(got[3], "init|") || !strings.HasPrefix(got[2], "deploy one|") {
		t.Errorf("remote log %q: want init, one, two, three", got)
	}
	if !strings.Contains(gittest.Git(t, r.repo.Bare, "rev-list", "main"), c1) {
		t.Errorf("the NoPush commit %s was not published as made", c1)
	}

	// Local commits and a remote that moved: refused, not dropped.
	local2 := r.open(t, Options{Options: source.Options{CacheDir: cache}, NoPush: true})
	if _, err := local2.Edit(ctx(t), "deploy four", create("four", "w")); err != nil {
		t.Fatal(err)
	}
	r.repo.Commit(t, map[string][]byte{"values/team.yaml": []byte("t: 1\n")}, "team moves on")
	_, err = pusher.Edit(ctx(t), "deploy five", create("five", "v"))
	if !errors.Is(err, ErrRejected) {
		t.Errorf("push with diverged local commits: %v, want ErrRejected", err)
	}
	d, err = local2.Dir(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx(t), "four"); err != nil {
		t.Errorf("the unpushed commit was dropped: %v", err)
	}
}

func TestNothingChangedMakesNoCommit(t *testing.T) {
	r := remotes(t)["file"](t)
	head := r.repo.Commit(t, map[string][]byte{"charter.yaml": []byte("apiVersion: charter.sh/v1\nkind: State\n")}, "init")
	s := r.open(t, Options{})
	rev, err := s.Edit(ctx(t), "nothing", func(d *state.Dir) error {
		// Writes that change nothing, and files git never gets.
		_ = os.WriteFile(filepath.Join(d.Root(), ".charter.lock"), nil, 0o644)
		return os.WriteFile(filepath.Join(d.Root(), "charter.yaml"), []byte("apiVersion: charter.sh/v1\nkind: State\n"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rev != head || r.repo.RemoteHead(t, "main") != head {
		t.Errorf("Edit returned %s, remote %s, want both %s", rev, r.repo.RemoteHead(t, "main"), head)
	}
}

func TestFnErrorPublishesNothing(t *testing.T) {
	r := remotes(t)["file"](t)
	head := r.repo.Commit(t, map[string][]byte{"charter.yaml": []byte("apiVersion: charter.sh/v1\nkind: State\n")}, "init")
	s := r.open(t, Options{})
	boom := errors.New("boom")
	_, err := s.Edit(ctx(t), "half", func(d *state.Dir) error {
		if err := d.Create(context.Background(), release("half", "x")); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Errorf("Edit returned %v, want fn's error unchanged", err)
	}
	if r.repo.RemoteHead(t, "main") != head {
		t.Error("a failed edit was pushed")
	}
	d, err := s.Dir(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx(t), "half"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("the failed edit stayed in the clone: %v", err)
	}
}

func TestSubPath(t *testing.T) {
	r := remotes(t)["file"](t)
	r.repo.Commit(t, map[string][]byte{"README.md": []byte("hi\n"), "clusters/dev/releases/x.yaml": []byte("not ours\n")}, "init")
	r.location += "//clusters/prod?ref=main"
	s := r.open(t, Options{})
	d, err := s.Dir(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	// Junk outside the state folder is never committed.
	if err := os.WriteFile(filepath.Join(d.Root(), "..", "..", "outside.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Edit(ctx(t), "deploy web", func(d *state.Dir) error {
		_ = os.WriteFile(filepath.Join(d.Root(), "..", "..", "outside.txt"), []byte("x"), 0o644)
		return d.Create(context.Background(), release("web", "prod"))
	}); err != nil {
		t.Fatal(err)
	}
	files := gittest.Git(t, r.repo.Bare, "ls-tree", "-r", "--name-only", "main")
	want := "README.md\nclusters/dev/releases/x.yaml\nclusters/prod/charter.yaml\nclusters/prod/releases/web.yaml"
	if files != want {
		t.Errorf("remote files:\n%s\nwant\n%s", files, want)
	}
}

func TestWrongCredentials(t *testing.T) {
	root := t.TempDir()
	repo := gittest.NewRepo(t, root, "state")
	repo.Commit(t, map[string][]byte{"a": []byte("1\n")}, "init")
	srv := gittest.ServeHTTP(t, root, "ci", httpPass)
	creds := source.Credentials{Username: "ci", Password: "wrong-" + httpPass}

	// Without ?ref= Open asks the remote for its HEAD and fails there.
	_, err := Open(ctx(t), srv.RepoURL(repo), Options{Options: source.Options{CacheDir: t.TempDir(), Credentials: creds}})
	check := func(err error) {
		t.Helper()
		if err == nil {
			t.Fatal("no error with wrong credentials")
		}
		if !errors.Is(err, transport.ErrAuthenticationRequired) {
			t.Errorf("error %v: want ErrAuthenticationRequired", err)
		}
		if strings.Contains(err.Error(), httpPass) {
			t.Errorf("error leaks the secret: %v", err)
		}
		if !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("error %q does not name the location", err)
		}
	}
	check(err)

	s, err := Open(ctx(t), srv.RepoURL(repo)+"?ref=main", Options{Options: source.Options{CacheDir: t.TempDir(), Credentials: creds}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Edit(ctx(t), "x", create("web", "x"))
	check(err)
	_, err = s.Dir(ctx(t))
	check(err)

	// Credentials in the URL are redacted too.
	s, err = Open(ctx(t), strings.Replace(srv.RepoURL(repo), "http://", "http://ci:wrong-"+httpPass+"@", 1)+"?ref=main", Options{Options: source.Options{CacheDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), httpPass) {
		t.Errorf("String() = %s", s)
	}
	_, err = s.Dir(ctx(t))
	check(err)
}

func TestPushFailureTakesTheCommitBack(t *testing.T) {
	r := remotes(t)["file"](t)
	head := r.repo.Commit(t, map[string][]byte{"charter.yaml": []byte("apiVersion: charter.sh/v1\nkind: State\n")}, "init")
	s := r.open(t, Options{})
	// A hook refusing every push: not a race, so no retry.
	hook := filepath.Join(r.repo.Bare, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho refused by policy >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var calls int
	_, err := s.Edit(ctx(t), "deploy web", func(d *state.Dir) error { calls++; return create("web", "x")(d) })
	if err == nil || calls != 1 {
		t.Fatalf("Edit: err %v after %d calls, want an error after one", err, calls)
	}
	os.Remove(hook)
	if r.repo.RemoteHead(t, "main") != head {
		t.Fatal("remote changed")
	}
	// Retrying the same edit works: the failed commit did not stay behind.
	if _, err := s.Edit(ctx(t), "deploy web", create("web", "x")); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func TestOpenRefusesNonBranchRefs(t *testing.T) {
	for _, q := range []string{"?tag=v1", "?semver=^1", "?commit=0123456789012345678901234567890123456789"} {
		_, err := Open(context.Background(), "https://git.example.com/org/state.git"+q, Options{Options: source.Options{CacheDir: t.TempDir()}})
		if err == nil || !strings.Contains(err.Error(), "branch") {
			t.Errorf("Open(%s): %v, want a refusal", q, err)
		}
	}
}

func TestAuthorDefaults(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	if n, e := author("", ""); n != "charter" || e != "charter@localhost" {
		t.Errorf("without git config: %s <%s>", n, e)
	}
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte("[user]\n\tname = Grace Hopper\n\temail = grace@example.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, e := author("", ""); n != "Grace Hopper" || e != "grace@example.com" {
		t.Errorf("from ~/.gitconfig: %s <%s>", n, e)
	}
	if n, e := author("Flag Name", "flag@example.com"); n != "Flag Name" || e != "flag@example.com" {
		t.Errorf("from flags: %s <%s>", n, e)
	}
}

func TestBranchCreatedOnFirstEdit(t *testing.T) {
	r := remotes(t)["http"](t)
	main := r.repo.Commit(t, map[string][]byte{"README.md": []byte("hi\n")}, "init")
	r.location += "?ref=staging"
	s := r.open(t, Options{})
	if s.Branch() != "staging" {
		t.Fatalf("Branch() = %s", s.Branch())
	}
	rev, err := s.Edit(ctx(t), "deploy web", create("web", "staging"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.repo.RemoteHead(t, "staging"); got != rev {
		t.Errorf("staging is %q, Edit returned %s", got, rev)
	}
	if got := r.repo.RemoteHead(t, "main"); got != main {
		t.Errorf("main moved: %s → %s", main, got)
	}
	files := gittest.Git(t, r.repo.Bare, "ls-tree", "-r", "--name-only", "staging")
	if files != "charter.yaml\nreleases/web.yaml" {
		t.Errorf("staging holds:\n%s", files)
	}
}
