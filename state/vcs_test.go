package state

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// vcsRequire skips the test when a tool is missing, or fails it when
// CHARTER_E2E=1 says every test must run.
func vcsRequire(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CHARTER_E2E") == "1" {
				t.Fatalf("%s not installed (CHARTER_E2E=1 requires it; .ci/run installs it)", n)
			}
			t.Skipf("%s not installed", n)
		}
	}
}

// vcsTest runs a tool for the test (in dir when set) and returns its output.
func vcsTest(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANGUAGE=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// vcsBackend is one kind of working copy: a place where CommitVCS commits
// (wc) and a second copy that sees the commits after update.
type vcsBackend struct {
	name string
	// setup returns the working copy charter commits in and a second
	// working copy of the same repository or branch.
	setup func(t *testing.T) (wc, other string)
	// update brings a working copy up to date.
	update func(t *testing.T, wc string)
	// changes returns the message of revision rev and the paths it changed,
	// relative to the working copy root, by action ("A", "M", "D").
	changes func(t *testing.T, wc, rev string) (msg string, paths map[string][]string)
	first   string // revision of the first commit
}

var vcsBackends = []vcsBackend{
	{
		name: "svn",
		setup: func(t *testing.T) (string, string) {
			vcsRequire(t, "svn", "svnadmin")
			tmp := t.TempDir()
			repo := filepath.Join(tmp, "repo")
			vcsTest(t, "", "svnadmin", "create", repo)
			vcsTest(t, "", "svn", "checkout", "-q", "file://"+repo, filepath.Join(tmp, "wc"))
			vcsTest(t, "", "svn", "checkout", "-q", "file://"+repo, filepath.Join(tmp, "other"))
			return filepath.Join(tmp, "wc"), filepath.Join(tmp, "other")
		},
		update: func(t *testing.T, wc string) { vcsTest(t, wc, "svn", "update", "-q") },
		changes: func(t *testing.T, wc, rev string) (string, map[string][]string) {
			var log struct {
				Entries []struct {
					Msg   string `xml:"msg"`
					Paths []struct {
						Action string `xml:"action,attr"`
						Kind   string `xml:"kind,attr"`
						Path   string `xml:",chardata"`
					} `xml:"paths>path"`
				} `xml:"logentry"`
			}
			out := vcsTest(t, wc, "svn", "log", "--xml", "-v", "-r", strings.TrimPrefix(rev, "r"), "^/")
			if err := xml.Unmarshal([]byte(out), &log); err != nil || len(log.Entries) != 1 {
				t.Fatalf("svn log -r %s: %v\n%s", rev, err, out)
			}
			paths := map[string][]string{}
			for _, p := range log.Entries[0].Paths {
				if p.Kind == "file" {
					paths[p.Action] = append(paths[p.Action], strings.TrimPrefix(p.Path, "/"))
				}
			}
			return log.Entries[0].Msg, paths
		},
		first: "r1",
	},
	{
		name: "brz",
		setup: func(t *testing.T) (string, string) {
			vcsRequire(t, "brz")
			t.Setenv("BRZ_EMAIL", "Charter Test <test@example.com>")
			tmp := t.TempDir()
			vcsTest(t, "", "brz", "init", "-q", filepath.Join(tmp, "trunk"))
			// charter commits in a checkout bound to the branch, as a team
			// sharing a branch would; the other copy is a second checkout.
			vcsTest(t, "", "brz", "checkout", "-q", filepath.Join(tmp, "trunk"), filepath.Join(tmp, "wc"))
			vcsTest(t, "", "brz", "checkout", "-q", filepath.Join(tmp, "trunk"), filepath.Join(tmp, "other"))
			return filepath.Join(tmp, "wc"), filepath.Join(tmp, "other")
		},
		update: func(t *testing.T, wc string) { vcsTest(t, wc, "brz", "update", "-q") },
		changes: func(t *testing.T, wc, rev string) (string, map[string][]string) {
			out := vcsTest(t, wc, "brz", "log", "-v", "-r", rev)
			var msg strings.Builder
			paths := map[string][]string{}
			section := ""
			for _, line := range strings.Split(out, "\n") {
				switch {
				case line == "message:":
					section = "msg"
				case line == "added:":
					section = "A"
				case line == "modified:":
					section = "M"
				case line == "removed:":
					section = "D"
				case !strings.HasPrefix(line, "  "):
					section = ""
				case section == "msg":
					msg.WriteString(strings.TrimPrefix(line, "  "))
				case section != "" && !strings.HasSuffix(line, "/"):
					paths[section] = append(paths[section], strings.TrimSpace(line))
				}
			}
			return msg.String(), paths
		},
		first: "revno:1",
	},
}

func TestCommitVCS(t *testing.T) {
	ctx := context.Background()
	for _, b := range vcsBackends {
		for _, layout := range []struct {
			name string
			sub  string // the state folder inside the working copy
		}{
			{"state at the working copy root", ""},
			{"state in a new sub-folder", "deploy/state"},
		} {
			t.Run(b.name+"/"+layout.name, func(t *testing.T) {
				wc, other := b.setup(t)
				root := filepath.Join(wc, filepath.FromSlash(layout.sub))
				prefix := ""
				if layout.sub != "" {
					prefix = layout.sub + "/"
				}
				d, err := Init(root)
				if err != nil {
					t.Fatal(err)
				}
				chart, err := d.PutChart(ctx, "hello", "0.1.0", gzipBytes(t, "chart"))
				if err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"web", "api"} {
					if err := d.Create(ctx, &Release{Name: name, Chart: chart, Values: map[string]any{"replicas": 1}}); err != nil {
						t.Fatal(err)
					}
				}
				// Files charter must never commit; .charter.lock exists already.
				writeFileIn(t, d, ".charter-tmp-12345", []byte("half"))
				writeFileIn(t, d, "releases/web.yaml~", []byte("backup"))
				writeFileIn(t, d, "releases/.web.yaml.swp", []byte("swap"))

				rev, err := CommitVCS(ctx, root, "deploy web, api: hello 0.1.0")
				if err != nil {
					t.Fatalf("first commit: %v", err)
				}
				if rev != b.first {
					t.Errorf("first commit revision %q, want %q", rev, b.first)
				}
				msg, paths := b.changes(t, wc, rev)
				if msg != "deploy web, api: hello 0.1.0" {
					t.Errorf("log message %q", msg)
				}
				wantAdded := []string{prefix + "charter.yaml", prefix + "charts/hello-0.1.0.tgz", prefix + "releases/api.yaml", prefix + "releases/web.yaml"}
				sort.Strings(paths["A"])
				if diff := cmp.Diff(wantAdded, paths["A"]); diff != "" {
					t.Errorf("files added by the first commit (-want +got):\n%s", diff)
				}

				if _, err := d.Update(ctx, "web", func(r *Release) error { r.Values["replicas"] = 3; return nil }); err != nil {
					t.Fatal(err)
				}
				rev2, err := CommitVCS(ctx, root, "redeploy web")
				if err != nil {
					t.Fatalf("second commit: %v", err)
				}
				msg, paths = b.changes(t, wc, rev2)
				if msg != "redeploy web" || !cmp.Equal(paths, map[string][]string{"M": {prefix + "releases/web.yaml"}}) {
					t.Errorf("second commit %s: message %q, changes %v; want only releases/web.yaml modified", rev2, msg, paths)
				}

				if err := d.Delete(ctx, "api"); err != nil {
					t.Fatal(err)
				}
				rev3, err := CommitVCS(ctx, root, "uninstall api")
				if err != nil {
					t.Fatalf("third commit: %v", err)
				}
				msg, paths = b.changes(t, wc, rev3)
				if msg != "uninstall api" || !cmp.Equal(paths, map[string][]string{"D": {prefix + "releases/api.yaml"}}) {
					t.Errorf("third commit %s: message %q, changes %v; want only releases/api.yaml removed", rev3, msg, paths)
				}

				again, err := CommitVCS(ctx, root, "nothing")
				if err != nil || again != rev3 {
					t.Errorf("commit without change: %q, %v; want %q and no new commit", again, err, rev3)
				}

				b.update(t, other)
				od, err := Open(filepath.Join(other, filepath.FromSlash(layout.sub)))
				if err != nil {
					t.Fatal(err)
				}
				list, err := od.List(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(list) != 1 || list[0].Name != "web" || list[0].Values["replicas"] != 3.0 {
					t.Errorf("the other working copy after update lists %+v, want web with replicas 3", list)
				}
			})
		}
	}
}

func TestCommitVCSErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("a plain folder is not a working copy", func(t *testing.T) {
		root := t.TempDir()
		_, err := CommitVCS(ctx, root, "x")
		if err == nil || !strings.Contains(err.Error(), root+" is not an SVN or Bazaar working copy") {
			t.Errorf("CommitVCS on a plain folder: %v", err)
		}
	})
	for _, b := range vcsBackends {
		t.Run(b.name+": an out-of-date working copy is one line with the tool's reason", func(t *testing.T) {
			wc, other := b.setup(t)
			d, err := Init(wc)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Create(ctx, &Release{Name: "web", Chart: "charts/hello-0.1.0.tgz"}); err != nil {
				t.Fatal(err)
			}
			if _, err := CommitVCS(ctx, wc, "deploy web"); err != nil {
				t.Fatal(err)
			}
			b.update(t, other)
			od, err := Open(other)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range []struct {
				d    *Dir
				root string
				n    int
			}{{d, wc, 2}, {od, other, 3}} {
				if _, err := x.d.Update(ctx, "web", func(r *Release) error { r.Values = map[string]any{"n": x.n}; return nil }); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := CommitVCS(ctx, wc, "first"); err != nil {
				t.Fatal(err)
			}
			_, err = CommitVCS(ctx, other, "second")
			if err == nil {
				t.Fatal("commit from an out-of-date working copy succeeded")
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "out of date; run `"+b.name+" update`, then retry") {
				t.Errorf("error %q: want one line saying the working copy is out of date and what to do", err)
			}
		})
	}
}

func TestDirStoreCommitsWithCommitVCS(t *testing.T) {
	ctx := context.Background()
	wc, other := vcsBackends[0].setup(t)
	s, err := NewDirStore(wc, true)
	if err != nil {
		t.Fatal(err)
	}
	s.Commit = CommitVCS
	rev, err := s.Edit(ctx, "deploy web: hello 0.1.0", func(d *Dir) error {
		return d.Create(ctx, &Release{Name: "web", Chart: "charts/hello-0.1.0.tgz"})
	})
	if err != nil || rev != "r1" {
		t.Fatalf("Edit: %q, %v; want r1", rev, err)
	}
	vcsBackends[0].update(t, other)
	if _, err := os.Stat(filepath.Join(other, "releases", "web.yaml")); err != nil {
		t.Errorf("the commit did not reach another checkout: %v", err)
	}
}

func TestVCSErrorRedactsAndIsOneLine(t *testing.T) {
	stderr := "svn: E170013: Unable to connect to a repository at URL 'https://alice:s3cret@svn.example.com/repo/trunk'\n" +
		"svn: E215004: No more credentials or we tried too many times.\nAuthentication failed"
	exit := exec.Command("false").Run()
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"tool failed", exit, "svn commit: svn: E170013: Unable to connect to a repository at URL 'https://alice:xxxxx@svn.example.com/repo/trunk' svn: E215004: No more credentials or we tried too many times. Authentication failed"},
		{"tool missing", exec.ErrNotFound, "svn commit: executable file not found in $PATH (install it to commit the state)"},
		{"killed by timeout", context.DeadlineExceeded, "svn commit: " + strings.Join(strings.Fields(strings.ReplaceAll(stderr, "s3cret", "xxxxx")), " ") + ": context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := vcsError("svn commit", stderr, tc.err).Error()
			if got != tc.want {
				t.Errorf("vcsError:\n got %q\nwant %q", got, tc.want)
			}
			if strings.Contains(got, "s3cret") || strings.Contains(got, "\n") {
				t.Errorf("error leaks the password or spans lines: %q", got)
			}
			if !errors.Is(vcsError("x", "", tc.err), tc.err) && tc.err != exit {
				t.Errorf("error does not wrap %v", tc.err)
			}
		})
	}
}
