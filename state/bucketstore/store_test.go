package bucketstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/bucket"
	"github.com/charter-sh/charter/state"
)

func release(name, message string) *state.Release {
	return &state.Release{
		Name:   name,
		Chart:  "oci://registry.example.com/charts/hello",
		Values: map[string]any{"message": message},
	}
}

func create(r *state.Release) func(*state.Dir) error {
	return func(d *state.Dir) error { return d.Create(context.Background(), r) }
}

func setValue(name, key, value string) func(*state.Dir) error {
	return func(d *state.Dir) error {
		_, err := d.Update(context.Background(), name, func(r *state.Release) error {
			if r.Values == nil {
				r.Values = map[string]any{}
			}
			r.Values[key] = value
			return nil
		})
		return err
	}
}

func values(t *testing.T, s *Store, name string) map[string]any {
	t.Helper()
	d, err := s.Dir(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return r.Values
}

// forms are the location forms the store is tested through: plain S3
// conditional writes, and the gs:// path that checks with a stat first.
func forms(srv *server) map[string]func(bucket string) (string, source.Options) {
	return map[string]func(bucket string) (string, source.Options){
		"s3": func(bucket string) (string, source.Options) {
			return "s3+http://" + srv.host + "/" + bucket + "/prod", source.Options{}
		},
		"gs": func(bucket string) (string, source.Options) {
			return "gs://" + bucket + "/prod", source.Options{Endpoint: srv.endpoint}
		},
	}
}

func TestEditLands(t *testing.T) {
	srv := startServer(t)
	for name, form := range forms(srv) {
		t.Run(name, func(t *testing.T) {
			b := srv.newBucket(t)
			location, opts := form(b)
			s, g := openStore(t, srv, location, opts)
			ctx := testContext(t)

			d, err := s.Dir(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(d.Root(), "charter.yaml")); err != nil {
				t.Errorf("empty prefix not initialised: %v", err)
			}

			rev, err := s.Edit(ctx, "deploy web: hello 1.0.0", create(release("web", "one")))
			if err != nil {
				t.Fatal(err)
			}
			data, meta, ok := srv.get(t, b, "prod/releases/web.yaml")
			if !ok || !strings.Contains(data, "message: one") {
				t.Fatalf("releases/web.yaml after create: %q (exists %v)", data, ok)
			}
			if got := meta["Charter-Change"]; got != "deploy web: hello 1.0.0" {
				t.Errorf("x-amz-meta-charter-change = %q (metadata %v)", got, meta)
			}
			if _, _, ok := srv.get(t, b, "prod/charter.yaml"); !ok {
				t.Error("the state marker was not published with the first edit")
			}

			t.Run("the revision is the one the bucket source reports", func(t *testing.T) {
				src, err := bucket.New(location, source.Options{CacheDir: t.TempDir(), Endpoint: opts.Endpoint,
					Credentials: source.Credentials{AccessKey: srv.accessKey, SecretKey: srv.secretKey}})
				if err != nil {
					t.Fatal(err)
				}
				a, err := src.Fetch(testContext(t))
				if err != nil {
					t.Fatal(err)
				}
				if a.Revision != rev {
					t.Errorf("Edit returned %q, the source reports %q", rev, a.Revision)
				}
			})

			if _, err := s.Edit(ctx, "redeploy web: message=two", setValue("web", "message", "two")); err != nil {
				t.Fatal(err)
			}
			if data, _, _ := srv.get(t, b, "prod/releases/web.yaml"); !strings.Contains(data, "message: two") {
				t.Errorf("releases/web.yaml after update: %q", data)
			}

			puts := g.puts
			if _, err := s.Edit(ctx, "nothing", func(*state.Dir) error { return nil }); err != nil {
				t.Fatal(err)
			}
			if g.puts != puts {
				t.Errorf("an edit changing nothing made %d writes", g.puts-puts)
			}

			if _, err := s.Edit(ctx, "delete web", func(d *state.Dir) error { return d.Delete(context.Background(), "web") }); err != nil {
				t.Fatal(err)
			}
			if _, _, ok := srv.get(t, b, "prod/releases/web.yaml"); ok {
				t.Error("releases/web.yaml still exists after delete")
			}
			g.check(t)
		})
	}
}

func TestEditErrorFromFnPublishesNothing(t *testing.T) {
	srv := startServer(t)
	b := srv.newBucket(t)
	s, g := openStore(t, srv, "s3+http://"+srv.host+"/"+b+"/prod", source.Options{})
	ctx := testContext(t)
	if _, err := s.Edit(ctx, "create", create(release("web", "one"))); err != nil {
		t.Fatal(err)
	}
	puts, deletes := g.puts, g.deletes
	boom := errors.New("boom")
	_, err := s.Edit(ctx, "half an edit", func(d *state.Dir) error {
		if err := d.Create(ctx, release("other", "x")); err != nil {
			return err
		}
		if err := d.Delete(ctx, "web"); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Errorf("Edit returned %v, want fn's error unchanged", err)
	}
	if g.puts != puts || g.deletes != deletes {
		t.Errorf("a failed fn published %d writes and %d removals", g.puts-puts, g.deletes-deletes)
	}
	d, err := s.Dir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rels, errs := d.Scan(ctx)
	if len(errs) != 0 || len(rels) != 1 || rels[0].Name != "web" {
		t.Errorf("after a failed edit the working folder holds %v (%v), want the bucket's web only", rels, errs)
	}
}

// barrier makes n stores reach the publish step of their first attempt
// together, so they race on the same listing.
func barrier(n int) func(attempt int) {
	var wg sync.WaitGroup
	wg.Add(n)
	return func(attempt int) {
		if attempt == 1 {
			wg.Done()
			wg.Wait()
		}
	}
}

func TestRacingCreatesOfOneRelease(t *testing.T) {
	srv := startServer(t)
	for name, form := range forms(srv) {
		t.Run(name, func(t *testing.T) {
			b := srv.newBucket(t)
			location, opts := form(b)
			// Both start from a published state, so only the release races.
			seed, _ := openStore(t, srv, location, opts)
			if _, err := seed.Edit(testContext(t), "init", func(*state.Dir) error { return nil }); err != nil {
				t.Fatal(err)
			}
			stores := make([]*Store, 2)
			guards := make([]*guard, 2)
			meet := barrier(2)
			for i := range stores {
				stores[i], guards[i] = openStore(t, srv, location, opts)
				stores[i].beforePublish = meet
			}
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, s := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = s.Edit(testContext(t), "deploy web", create(release("web", []string{"alice", "bob"}[i])))
				}()
			}
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil:
					winner = i
				case !errors.Is(err, state.ErrExists):
					t.Errorf("store %d: %v, want success or ErrExists", i, err)
				}
			}
			if winner < 0 || errs[1-winner] == nil {
				t.Fatalf("results %v: want exactly one winner and one ErrExists", errs)
			}
			data, _, _ := srv.get(t, b, "prod/releases/web.yaml")
			if want := []string{"alice", "bob"}[winner]; !strings.Contains(data, "message: "+want) {
				t.Errorf("releases/web.yaml = %q, want the winner's (%s)", data, want)
			}
			for _, g := range guards {
				g.check(t)
			}
		})
	}
}

func TestRacingUpdatesBothLand(t *testing.T) {
	srv := startServer(t)
	cases := map[string]struct {
		edits [2]func(*state.Dir) error
		check func(t *testing.T, s *Store)
	}{
		"different releases": {
			edits: [2]func(*state.Dir) error{setValue("a", "message", "A2"), setValue("b", "message", "B2")},
			check: func(t *testing.T, s *Store) {
				if v := values(t, s, "a")["message"]; v != "A2" {
					t.Errorf("a message = %v, want A2", v)
				}
				if v := values(t, s, "b")["message"]; v != "B2" {
					t.Errorf("b message = %v, want B2", v)
				}
			},
		},
		"the same release (the loser re-applies its edit)": {
			edits: [2]func(*state.Dir) error{setValue("a", "x", "1"), setValue("a", "y", "2")},
			check: func(t *testing.T, s *Store) {
				v := values(t, s, "a")
				if v["x"] != "1" || v["y"] != "2" || v["message"] != "A1" {
					t.Errorf("a values = %v, want message A1, x 1 and y 2", v)
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := srv.newBucket(t)
			location := "s3+http://" + srv.host + "/" + b + "/prod"
			seed, _ := openStore(t, srv, location, source.Options{})
			if _, err := seed.Edit(testContext(t), "seed", func(d *state.Dir) error {
				if err := d.Create(context.Background(), release("a", "A1")); err != nil {
					return err
				}
				return d.Create(context.Background(), release("b", "B1"))
			}); err != nil {
				t.Fatal(err)
			}
			meet := barrier(2)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range 2 {
				s, g := openStore(t, srv, location, source.Options{})
				s.beforePublish = meet
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = s.Edit(testContext(t), "edit", tc.edits[i])
					g.check(t)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("store %d: %v", i, err)
				}
			}
			tc.check(t, seed)
		})
	}
}

func TestConcurrentOverwriteIsDetectedAndRetried(t *testing.T) {
	srv := startServer(t)
	for name, form := range forms(srv) {
		t.Run(name, func(t *testing.T) {
			b := srv.newBucket(t)
			location, opts := form(b)
			s, g := openStore(t, srv, location, opts)
			ctx := testContext(t)
			if _, err := s.Edit(ctx, "seed", create(release("web", "one"))); err != nil {
				t.Fatal(err)
			}
			// Someone else rewrites the declaration between our refresh and our write.
			other := release("web", "theirs")
			other.Values["owner"] = "them"
			theirs, err := state.Marshal(other)
			if err != nil {
				t.Fatal(err)
			}
			var calls atomic.Int32
			s.beforePublish = func(attempt int) {
				if attempt == 1 {
					srv.put(t, b, "prod/releases/web.yaml", theirs)
				}
			}
			if _, err := s.Edit(ctx, "ours", func(d *state.Dir) error {
				calls.Add(1)
				return setValue("web", "mine", "yes")(d)
			}); err != nil {
				t.Fatal(err)
			}
			if calls.Load() != 2 {
				t.Errorf("fn called %d times, want 2 (the first publish must fail)", calls.Load())
			}
			v := values(t, s, "web")
			if v["owner"] != "them" || v["mine"] != "yes" {
				t.Errorf("values %v: want both their change (owner) and ours (mine)", v)
			}

			t.Run("a delete of a rewritten release is retried too", func(t *testing.T) {
				calls.Store(0)
				s.beforePublish = func(attempt int) {
					if attempt == 1 {
						srv.put(t, b, "prod/releases/web.yaml", theirs)
					}
				}
				if _, err := s.Edit(ctx, "delete", func(d *state.Dir) error {
					calls.Add(1)
					return d.Delete(context.Background(), "web")
				}); err != nil {
					t.Fatal(err)
				}
				if calls.Load() != 2 {
					t.Errorf("fn called %d times, want 2", calls.Load())
				}
				if _, _, ok := srv.get(t, b, "prod/releases/web.yaml"); ok {
					t.Error("releases/web.yaml still exists")
				}
			})

			t.Run("gives up after MaxAttempts", func(t *testing.T) {
				calls.Store(0)
				busy := func(n int) []byte {
					return []byte("apiVersion: charter.sh/v1\nkind: Release\nname: busy\nchart: oci://x/y\nvalues:\n  n: " + strings.Repeat("1", n) + "\n")
				}
				srv.put(t, b, "prod/releases/busy.yaml", busy(0))
				s.beforePublish = func(attempt int) { srv.put(t, b, "prod/releases/busy.yaml", busy(attempt)) }
				_, err := s.Edit(ctx, "never lands", func(d *state.Dir) error {
					calls.Add(1)
					return d.Delete(context.Background(), "busy")
				})
				if err == nil || !strings.Contains(err.Error(), "gave up") {
					t.Errorf("Edit = %v, want it to give up", err)
				}
				if calls.Load() != MaxAttempts {
					t.Errorf("fn called %d times, want %d", calls.Load(), MaxAttempts)
				}
				s.beforePublish = nil
			})
			g.check(t)
		})
	}
}

func TestWrongSecretFailsWithoutLeakingIt(t *testing.T) {
	srv := startServer(t)
	b := srv.newBucket(t)
	const secret = "wrong-secret-do-not-print"
	s, err := Open(context.Background(), "s3+http://"+srv.host+"/"+b+"/prod", source.Options{CacheDir: t.TempDir(),
		Credentials: source.Credentials{AccessKey: srv.accessKey, SecretKey: secret}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	if _, err := s.Dir(ctx); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Dir = %v, want an error without the secret", err)
	}
	called := false
	_, err = s.Edit(ctx, "create", func(*state.Dir) error { called = true; return nil })
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Edit = %v, want an error without the secret", err)
	}
	if called {
		t.Error("fn ran although the state could not be read")
	}
	if strings.Contains(s.String(), secret) {
		t.Errorf("String() = %q shows the secret", s)
	}
}

func TestMissingBucketIsNamed(t *testing.T) {
	srv := startServer(t)
	s, _ := openStore(t, srv, "s3+http://"+srv.host+"/no-such-bucket/prod", source.Options{})
	_, err := s.Dir(testContext(t))
	if err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Errorf("Dir = %v, want an error naming the missing bucket", err)
	}
}

func TestLocalEditsAreReplacedByTheBucket(t *testing.T) {
	srv := startServer(t)
	b := srv.newBucket(t)
	location := "s3+http://" + srv.host + "/" + b + "/prod"
	cache := t.TempDir()
	s, _ := openStore(t, srv, location, source.Options{CacheDir: cache})
	ctx := testContext(t)
	if _, err := s.Edit(ctx, "seed", create(release("web", "one"))); err != nil {
		t.Fatal(err)
	}
	d, err := s.Dir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Someone edits the cached copy by hand, and adds a stray file.
	path := filepath.Join(d.Root(), "releases", "web.yaml")
	if err := os.WriteFile(path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Root(), "releases", "stray.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A second store on the same cache (another CLI run) sees the bucket.
	s2, g := openStore(t, srv, location, source.Options{CacheDir: cache})
	if v := values(t, s2, "web")["message"]; v != "one" {
		t.Errorf("message = %v, want the bucket's", v)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), "releases", "stray.yaml")); !os.IsNotExist(err) {
		t.Errorf("stray local file kept: %v", err)
	}
	if g.puts != 0 {
		t.Errorf("reading made %d writes", g.puts)
	}
}

func TestEncodeMessage(t *testing.T) {
	cases := map[string]string{
		"deploy web: hello 1.0.0":   "deploy web: hello 1.0.0",
		"two\nlines":                "two lines",
		"déploiement":               "=?utf-8?q?d=C3=A9ploiement?=",
		strings.Repeat("x", 5000):   strings.Repeat("x", maxMessage),
		"tab\tand  spaces squeezed": "tab and spaces squeezed",
	}
	for in, want := range cases {
		if got := encodeMessage(in); got != want {
			t.Errorf("encodeMessage(%.20q) = %.40q, want %.40q", in, got, want)
		}
	}
}

func TestManyWritersOnOneReleaseAllLand(t *testing.T) {
	srv := startServer(t)
	b := srv.newBucket(t)
	location := "s3+http://" + srv.host + "/" + b + "/prod"
	seed, _ := openStore(t, srv, location, source.Options{})
	if _, err := seed.Edit(testContext(t), "seed", create(release("web", "one"))); err != nil {
		t.Fatal(err)
	}
	const writers = 4
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		s, g := openStore(t, srv, location, source.Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Edit(testContext(t), "edit", setValue("web", "w"+string(rune('0'+i)), "yes"))
			g.check(t)
		}()
	}
	wg.Wait()
	v := values(t, seed, "web")
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
		if k := "w" + string(rune('0'+i)); v[k] != "yes" {
			t.Errorf("writer %d's change (%s) lost: values %v", i, k, v)
		}
	}
}
