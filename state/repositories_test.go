package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRepositoryValidate(t *testing.T) {
	ok := Repository{Name: "stable", URL: "https://charts.example.com"}
	with := func(f func(*Repository)) Repository { r := ok; f(&r); return r }
	tests := map[string]struct {
		repo    Repository
		wantErr string
	}{
		"https":    {ok, ""},
		"http":     {with(func(r *Repository) { r.URL = "http://127.0.0.1:8080/charts" }), ""},
		"s3":       {with(func(r *Repository) { r.URL = "s3://bucket/prefix" }), ""},
		"gs":       {with(func(r *Repository) { r.URL = "gs://bucket" }), ""},
		"s3+http":  {with(func(r *Repository) { r.URL = "s3+http://127.0.0.1:9000/bucket/charts" }), ""},
		"s3+https": {with(func(r *Repository) { r.URL = "s3+https://minio.example.com/bucket" }), ""},
		"file":     {with(func(r *Repository) { r.URL = "file:///srv/charts" }), ""},
		"all fields": {with(func(r *Repository) {
			r.Credential = "token-foo"
			r.RequireSignatures = true
			r.Keyring = "keys/stable.gpg"
			r.AllowCrossOrigin = true
		}), ""},
		"keyring alone":          {with(func(r *Repository) { r.Keyring = "keys/k.gpg" }), ""},
		"empty name":             {with(func(r *Repository) { r.Name = "" }), "repository name is empty"},
		"upper-case name":        {with(func(r *Repository) { r.Name = "Stable" }), `repository name "Stable" is invalid`},
		"name with slash":        {with(func(r *Repository) { r.Name = "a/b" }), `repository name "a/b" is invalid`},
		"name too long":          {with(func(r *Repository) { r.Name = strings.Repeat("a", 64) }), "must be at most 63"},
		"empty URL":              {with(func(r *Repository) { r.URL = "" }), `repository "stable": repository URL is empty`},
		"no scheme":              {with(func(r *Repository) { r.URL = "charts.example.com/foo" }), "has no scheme"},
		"oci registry":           {with(func(r *Repository) { r.URL = "oci://registry/charts" }), ""},
		"unknown scheme":         {with(func(r *Repository) { r.URL = "ftp://registry/charts" }), `scheme "ftp" is not supported`},
		"upper-case scheme":      {with(func(r *Repository) { r.URL = "HTTPS://charts.example.com" }), ""},
		"user info":              {with(func(r *Repository) { r.URL = "https://alice:hunter2@charts.example.com" }), "holds credentials: store them with `charter credential add`"},
		"fragment":               {with(func(r *Repository) { r.URL = "https://charts.example.com#1.2.3" }), "has a #fragment"},
		"space":                  {with(func(r *Repository) { r.URL = "https://charts.example.com/a b" }), "holds a space or control character"},
		"https without host":     {with(func(r *Repository) { r.URL = "https:///charts" }), "names no host"},
		"s3 without bucket":      {with(func(r *Repository) { r.URL = "s3:///prefix" }), "names no bucket"},
		"s3+http without bucket": {with(func(r *Repository) { r.URL = "s3+http://127.0.0.1:9000" }), "want s3+http://HOST[:PORT]/BUCKET[/PREFIX]"},
		"file without folder":    {with(func(r *Repository) { r.URL = "file:///" }), "names no folder"},
		"bad credential":         {with(func(r *Repository) { r.Credential = "Token_Foo" }), `credential name "Token_Foo" is invalid`},
		"signatures no keyring":  {with(func(r *Repository) { r.RequireSignatures = true }), "requireSignatures needs a keyring"},
		"absolute keyring":       {with(func(r *Repository) { r.Keyring = "/etc/keys.gpg" }), `keyring "/etc/keys.gpg" is an absolute path`},
		"climbing keyring":       {with(func(r *Repository) { r.Keyring = "../keys.gpg" }), `keyring "../keys.gpg" points outside the state directory`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := tt.repo.Validate()
			checkErr(t, err, tt.wantErr)
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestDefaultRepoName(t *testing.T) {
	tests := map[string]string{
		"https://charts.example.com":                       "example",
		"https://charts.bitnami.com/bitnami":               "bitnami",
		"https://charts.helm.sh/stable/":                   "stable",
		"https://example.com":                              "example",
		"https://www.example.co.uk":                        "example",
		"https://charts.io":                                "charts",
		"https://kubernetes-charts.storage.googleapis.com": "kubernetes-charts",
		"https://example.com/Team_Charts/index.yaml":       "team-charts",
		"http://127.0.0.1:8080":                            "127-0-0-1",
		"http://localhost:8879/":                           "localhost",
		"s3://team-charts":                                 "team-charts",
		"s3://bucket/releases/stable":                      "stable",
		"gs://My.Bucket":                                   "my-bucket",
		"s3+http://127.0.0.1:9000/private":                 "private",
		"s3+http://127.0.0.1:9000/private/snapshots":       "snapshots",
		"file:///srv/www/charts":                           "charts",
		"https://example.com/" + strings.Repeat("x", 80):   strings.Repeat("x", 63),
		"https://example.com/___":                          "example",
		"::not a url":                                      "repo",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			got := DefaultRepoName(in)
			if got != want {
				t.Errorf("DefaultRepoName(%q) = %q, want %q", in, got, want)
			}
			if err := validateLabel("name", got, MaxRepoNameLength); err != nil {
				t.Errorf("DefaultRepoName(%q) = %q is not a valid name: %v", in, got, err)
			}
		})
	}
}

func TestRepositoriesRoundTrip(t *testing.T) {
	d := newTestDir(t)
	ctx := t.Context()

	got, err := d.Repositories(ctx)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Repositories without a file = %#v, %v: want an empty list", got, err)
	}

	writeFileIn(t, d, "keys/stable.gpg", []byte("keyring"))
	stable := Repository{Name: "stable", URL: "https://charts.example.com", Credential: "token-foo",
		RequireSignatures: true, Keyring: "keys/stable.gpg"}
	private := Repository{Name: "private", URL: "s3+http://127.0.0.1:9000/private", Credential: "ci"}
	public := Repository{Name: "public", URL: "gs://public-charts", AllowCrossOrigin: true}
	for _, r := range []Repository{stable, private, public} {
		if err := d.AddRepository(ctx, r); err != nil {
			t.Fatalf("AddRepository(%s): %v", r.Name, err)
		}
	}
	got, err = d.Repositories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Repository{stable, private, public}, got); diff != "" {
		t.Errorf("Repositories (-want +got):\n%s", diff)
	}
	wantFile := repositoriesHeader + `apiVersion: charter.sh/v1
kind: Repositories
repositories:
  - name: stable
    url: https://charts.example.com
    credential: token-foo
    requireSignatures: true
    keyring: keys/stable.gpg
  - name: private
    url: s3+http://127.0.0.1:9000/private
    credential: ci
  - name: public
    url: gs://public-charts
    allowCrossOrigin: true
`
	if diff := cmp.Diff(wantFile, string(readFile(t, d, RepositoriesFile))); diff != "" {
		t.Errorf("repositories.yaml (-want +got):\n%s", diff)
	}

	t.Run("lookup by name and URL", func(t *testing.T) {
		for _, key := range []string{"private", "s3+http://127.0.0.1:9000/private/", "S3+HTTP://127.0.0.1:9000/private"} {
			r, err := d.Repository(ctx, key)
			if err != nil || r.Name != "private" {
				t.Errorf("Repository(%q) = %v, %v: want private", key, r, err)
			}
		}
		_, err := d.Repository(ctx, "nope")
		if !errors.Is(err, ErrNotFound) || err.Error() != `repository "nope" not found` {
			t.Errorf("Repository(nope) = %v, want `repository \"nope\" not found`", err)
		}
	})

	t.Run("clashes are refused and change nothing", func(t *testing.T) {
		before := readFile(t, d, RepositoriesFile)
		tests := map[string]struct {
			repo    Repository
			wantErr string
		}{
			"same name":       {Repository{Name: "stable", URL: "https://other.example.com"}, `repository "stable" already exists (with URL https://charts.example.com)`},
			"same URL":        {Repository{Name: "other", URL: "https://charts.example.com"}, `repository URL https://charts.example.com already exists as "stable"`},
			"same URL, slash": {Repository{Name: "other", URL: "https://Charts.Example.com/"}, `already exists as "stable"`},
			"invalid":         {Repository{Name: "Bad", URL: "https://x.example.com"}, `add repository name "Bad" is invalid`},
			"keyring missing": {Repository{Name: "k", URL: "https://k.example.com", RequireSignatures: true}, "requireSignatures needs a keyring"},
		}
		for name, tt := range tests {
			t.Run(name, func(t *testing.T) {
				err := d.AddRepository(ctx, tt.repo)
				checkErr(t, err, tt.wantErr)
				if strings.Contains(name, "same") && !errors.Is(err, ErrExists) {
					t.Errorf("error %v does not wrap ErrExists", err)
				}
			})
		}
		if diff := cmp.Diff(string(before), string(readFile(t, d, RepositoriesFile))); diff != "" {
			t.Errorf("refused adds changed the file (-before +after):\n%s", diff)
		}
	})

	t.Run("remove by name and by URL", func(t *testing.T) {
		if err := d.RemoveRepository(ctx, "private"); err != nil {
			t.Fatalf("RemoveRepository(private): %v", err)
		}
		if err := d.RemoveRepository(ctx, "gs://public-charts/"); err != nil {
			t.Fatalf("RemoveRepository(gs://public-charts/): %v", err)
		}
		err := d.RemoveRepository(ctx, "private")
		checkErr(t, err, `repository "private" not found`)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("error %v does not wrap ErrNotFound", err)
		}
		checkErr(t, d.RemoveRepository(ctx, "https://user:pw@gone.example.com"), "repository https://user:xxxxx@gone.example.com not found")
		got, err := d.Repositories(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]Repository{stable}, got); diff != "" {
			t.Errorf("Repositories after removal (-want +got):\n%s", diff)
		}
		if err := d.RemoveRepository(ctx, "stable"); err != nil {
			t.Fatal(err)
		}
		got, err = d.Repositories(ctx)
		if err != nil || len(got) != 0 {
			t.Errorf("Repositories after removing all = %v, %v: want none", got, err)
		}
		if !strings.Contains(string(readFile(t, d, RepositoriesFile)), "repositories: []\n") {
			t.Errorf("empty list written as:\n%s", readFile(t, d, RepositoriesFile))
		}
		if err := d.AddRepository(ctx, private); err != nil {
			t.Fatalf("AddRepository to an empty list: %v", err)
		}
		if got, err := d.Repositories(ctx); err != nil || len(got) != 1 {
			t.Errorf("Repositories = %v, %v: want private", got, err)
		}
	})
	assertNoTempFiles(t, d)
}

// A hand-written file keeps its comments, blank lines, key order and
// indentation; only the added or removed entry changes.
func TestRepositoriesEditKeepsHandWrittenLayout(t *testing.T) {
	d := newTestDir(t)
	ctx := t.Context()
	orig := `# Our chart repositories.
kind: Repositories   # kind first, on purpose
apiVersion: charter.sh/v1

repositories:
# The public one.
- url: https://charts.example.com    # no credential needed
  name: stable

# Team charts: ask #platform for access.
- name: team
  url: s3://team-charts
  credential: token-team
# end of list
`
	writeFileIn(t, d, RepositoriesFile, []byte(orig))
	if err := d.AddRepository(ctx, Repository{Name: "extra", URL: "https://extra.example.com"}); err != nil {
		t.Fatalf("AddRepository: %v", err)
	}
	got := string(readFile(t, d, RepositoriesFile))
	for _, line := range strings.Split(strings.TrimSuffix(orig, "\n"), "\n") {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("line %q lost after add; file:\n%s", line, got)
		}
	}
	if !strings.Contains(got, "- name: extra\n  url: https://extra.example.com\n") {
		t.Errorf("new entry not written in the file's list style; file:\n%s", got)
	}
	if strings.Count(got, "\n") != strings.Count(orig, "\n")+2 {
		t.Errorf("add changed more than two lines:\n%s", got)
	}

	if err := d.RemoveRepository(ctx, "extra"); err != nil {
		t.Fatalf("RemoveRepository: %v", err)
	}
	if got := string(readFile(t, d, RepositoriesFile)); got != orig {
		t.Errorf("add then remove did not restore the file (-orig +got):\n%s", cmp.Diff(orig, got))
	}

	if err := d.RemoveRepository(ctx, "stable"); err != nil {
		t.Fatalf("RemoveRepository: %v", err)
	}
	got = string(readFile(t, d, RepositoriesFile))
	for _, kept := range []string{"# Our chart repositories.\n", "kind: Repositories   # kind first, on purpose\n", "# Team charts: ask #platform for access.\n- name: team\n  url: s3://team-charts\n  credential: token-team\n"} {
		if !strings.Contains(got, kept) {
			t.Errorf("%q lost after removing another entry; file:\n%s", kept, got)
		}
	}
	if strings.Contains(got, "stable") {
		t.Errorf("removed entry still in the file:\n%s", got)
	}
	repos, err := d.Repositories(ctx)
	if err != nil || len(repos) != 1 || repos[0].Name != "team" {
		t.Errorf("Repositories = %v, %v: want team", repos, err)
	}
}

func TestAddRepositoryFollowsTheFileLayout(t *testing.T) {
	tests := map[string]struct{ orig, want string }{
		"comments only":   {"# nothing yet\n", "# nothing yet\napiVersion: charter.sh/v1\nkind: Repositories\nrepositories:\n  - name: a\n    url: https://a.example.com\n"},
		"no list key":     {"apiVersion: charter.sh/v1\nkind: Repositories\n", "apiVersion: charter.sh/v1\nkind: Repositories\nrepositories:\n  - name: a\n    url: https://a.example.com\n"},
		"null list":       {"apiVersion: charter.sh/v1\nkind: Repositories\nrepositories:\n", "apiVersion: charter.sh/v1\nkind: Repositories\nrepositories:\n  - name: a\n    url: https://a.example.com\n"},
		"compact list":    {"repositories:\n- name: b\n  url: https://b.example.com\n", "repositories:\n- name: b\n  url: https://b.example.com\n- name: a\n  url: https://a.example.com\n"},
		"four-space list": {"repositories:\n    - name: b\n      url: https://b.example.com\n", "repositories:\n    - name: b\n      url: https://b.example.com\n    - name: a\n      url: https://a.example.com\n"},
		"quoted strings":  {"repositories:\n  - name: 'b'\n    url: \"https://b.example.com\"\n", "repositories:\n  - name: 'b'\n    url: \"https://b.example.com\"\n  - name: a\n    url: https://a.example.com\n"},
		"empty list":      {"kind: Repositories\nrepositories: [] # none\n", "kind: Repositories\nrepositories: # none\n  - name: a\n    url: https://a.example.com\n"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			d := newTestDir(t)
			writeFileIn(t, d, RepositoriesFile, []byte(tt.orig))
			if err := d.AddRepository(t.Context(), Repository{Name: "a", URL: "https://a.example.com"}); err != nil {
				t.Fatalf("AddRepository: %v", err)
			}
			if diff := cmp.Diff(tt.want, string(readFile(t, d, RepositoriesFile))); diff != "" {
				t.Errorf("file (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRepositoriesStrictReading(t *testing.T) {
	const head = "apiVersion: charter.sh/v1\nkind: Repositories\n"
	tests := map[string]struct{ file, wantErr string }{
		"not YAML":              {"repositories: [", "not valid YAML"},
		"not a mapping":         {"- a\n", "want a mapping with apiVersion, kind and repositories, got a list"},
		"two documents":         {head + "---\n" + head, "holds 2 YAML documents"},
		"wrong kind":            {"kind: Release\n", "line 1: kind must be Repositories"},
		"wrong apiVersion":      {"apiVersion: v2\n", "line 1: apiVersion must be charter.sh/v1"},
		"unknown top field":     {head + "repos: []\n", `line 3: unknown field "repos" (known fields: apiVersion, kind, repositories)`},
		"duplicate top key":     {head + "kind: Repositories\n", `line 3: duplicate key "kind" (first at line 2)`},
		"list not a list":       {head + "repositories: {}\n", "repositories must be a list, got a mapping"},
		"entry not a mapping":   {head + "repositories:\n- stable\n", `line 4: want a repository (a mapping with name and url), got the scalar "stable"`},
		"unknown entry field":   {head + "repositories:\n- name: a\n  url: https://a.example.com\n  password: x\n", `line 4: unknown repository field "password"`},
		"duplicate entry key":   {head + "repositories:\n- name: a\n  name: b\n  url: https://a.example.com\n", `line 5: duplicate key "name" (first at line 4)`},
		"bool as string":        {head + "repositories:\n- name: a\n  url: https://a.example.com\n  allowCrossOrigin: yes\n", `field allowCrossOrigin must be true or false, got the scalar "yes"`},
		"string as number":      {head + "repositories:\n- name: 1\n  url: https://a.example.com\n", `field name must be a string, got the scalar "1"`},
		"invalid entry":         {head + "repositories:\n- name: a\n  url: ftp://a.example.com\n", `line 4: repository "a": repository URL ftp://a.example.com: scheme "ftp" is not supported`},
		"secret in URL":         {head + "repositories:\n- name: a\n  url: https://u:hunter2@a.example.com\n", "https://u:xxxxx@a.example.com holds credentials"},
		"duplicate name":        {head + "repositories:\n- name: a\n  url: https://a.example.com\n- name: a\n  url: https://b.example.com\n", `line 6: repository "a" is declared twice`},
		"duplicate URL":         {head + "repositories:\n- name: a\n  url: https://a.example.com\n- name: b\n  url: https://a.example.com/\n", `line 6: repository "b" has the URL of repository "a"`},
		"signatures no keyring": {head + "repositories:\n- name: a\n  url: https://a.example.com\n  requireSignatures: true\n", "requireSignatures needs a keyring"},
		"keyring outside":       {head + "repositories:\n- name: a\n  url: https://a.example.com\n  keyring: link/k.gpg\n", `repository "a": keyring: path "link/k.gpg" resolves to`},
		"too large":             {head + "# " + strings.Repeat("x", MaxFileSize) + "\n", "larger than the 10 MiB limit"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			d := newTestDir(t)
			mustSymlink(t, t.TempDir(), filepath.Join(d.Root(), "link"))
			writeFileIn(t, d, RepositoriesFile, []byte(tt.file))
			_, err := d.Repositories(t.Context())
			checkErr(t, err, tt.wantErr)
			if !strings.Contains(err.Error(), RepositoriesFile) {
				t.Errorf("error %q does not name the file", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
			// A broken file is never overwritten by an edit.
			err = d.AddRepository(t.Context(), Repository{Name: "z", URL: "https://z.example.com"})
			checkErr(t, err, tt.wantErr)
			if got := string(readFile(t, d, RepositoriesFile)); got != tt.file {
				t.Errorf("AddRepository changed a broken file")
			}
		})
	}
}

func TestRepositoriesKeyringMustStayInside(t *testing.T) {
	d := newTestDir(t)
	outside := t.TempDir()
	mustSymlink(t, outside, filepath.Join(d.Root(), "keys"))
	err := d.AddRepository(t.Context(), Repository{Name: "a", URL: "https://a.example.com", RequireSignatures: true, Keyring: "keys/a.gpg"})
	checkErr(t, err, `add repository "a": keyring: path "keys/a.gpg" resolves to`)
	if _, err := os.Stat(filepath.Join(d.Root(), RepositoriesFile)); err == nil {
		t.Errorf("repositories.yaml written despite the error")
	}
}

func TestConcurrentAddRepositoriesAllLand(t *testing.T) {
	d := newTestDir(t)
	// A second Dir value on the same folder: its lock is a separate open
	// file, as in another process.
	d2, err := Open(d.Root())
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := d
			if i%2 == 1 {
				dir = d2
			}
			errs[i] = dir.AddRepository(t.Context(), Repository{Name: fmt.Sprintf("repo-%02d", i), URL: fmt.Sprintf("https://r%d.example.com", i)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("AddRepository %d: %v", i, err)
		}
	}
	got, err := d.Repositories(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d repositories declared after %d concurrent adds: %v", len(got), n, got)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.Name] = true
	}
	for i := range n {
		if !seen[fmt.Sprintf("repo-%02d", i)] {
			t.Errorf("repo-%02d lost", i)
		}
	}
	assertNoTempFiles(t, d)
}

func TestAddRepositoryHonoursCancellation(t *testing.T) {
	d := newTestDir(t)
	unlock, err := d.lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = d.AddRepository(ctx, Repository{Name: "a", URL: "https://a.example.com"})
	checkErr(t, err, `add repository "a": lock state: context canceled`)
}
