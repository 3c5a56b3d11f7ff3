package dir

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/sourcetest"
	"github.com/charter-sh/charter/state"
)

func TestConformance(t *testing.T) {
	t.Run("plain folder", func(t *testing.T) {
		sourcetest.Run(t, func(t *testing.T) *sourcetest.Harness {
			root := t.TempDir()
			return &sourcetest.Harness{
				Source: newSource(t, root, source.Options{}),
				Write:  func(t testing.TB, files map[string][]byte) { writeFiles(t, root, files) },
				Broken: func(t testing.TB) source.Source {
					gone := t.TempDir()
					s := newSource(t, gone, source.Options{})
					if err := os.Remove(gone); err != nil {
						t.Fatal(err)
					}
					return s
				},
			}
		})
	})
	t.Run("svn checkout updated with svn up", func(t *testing.T) {
		sourcetest.Run(t, func(t *testing.T) *sourcetest.Harness {
			p := newSVNPair(t)
			return &sourcetest.Harness{
				Source: newSource(t, p.b, source.Options{}),
				Write: func(t testing.TB, files map[string][]byte) {
					p.commit(t, files)
					p.update(t)
				},
			}
		})
	})
	t.Run("brz checkout updated with brz update", func(t *testing.T) {
		sourcetest.Run(t, func(t *testing.T) *sourcetest.Harness {
			p := newBrzPair(t)
			return &sourcetest.Harness{
				Source: newSource(t, p.co, source.Options{}),
				Write: func(t testing.TB, files map[string][]byte) {
					p.commit(t, files)
					p.update(t)
				},
			}
		})
	})
}

func fetch(t testing.TB, s *Source) *source.Artifact {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := s.Fetch(ctx)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return a
}

var (
	svnRev   = regexp.MustCompile(`^r[0-9]+$`)
	brzRevno = regexp.MustCompile(`^revno:[0-9]+$`)
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

func TestRevision(t *testing.T) {
	release := map[string][]byte{"releases/web.yaml": []byte("name: web\n")}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) string // returns the folder to watch
		want  *regexp.Regexp
		exact string
	}{
		{name: "plain folder is its digest", want: digestRE, setup: func(t *testing.T) string {
			root := t.TempDir()
			writeFiles(t, root, release)
			return root
		}},
		{name: "svn checkout is its revision", exact: "r2", setup: func(t *testing.T) string {
			p := newSVNPair(t)
			p.commit(t, release)
			p.commit(t, map[string][]byte{"values/a.yaml": []byte("a: 1\n")})
			p.update(t)
			return p.b
		}},
		{name: "versioned sub-folder of an svn checkout is the checkout's revision", exact: "r1", setup: func(t *testing.T) string {
			p := newSVNPair(t)
			p.commit(t, map[string][]byte{"state/releases/web.yaml": []byte("name: web\n")})
			p.update(t)
			return filepath.Join(p.b, "state")
		}},
		{name: "unversioned folder inside an svn checkout is its digest", want: digestRE, setup: func(t *testing.T) string {
			p := newSVNPair(t)
			writeFiles(t, p.b, map[string][]byte{"loose/releases/web.yaml": []byte("name: web\n")})
			return filepath.Join(p.b, "loose")
		}},
		{name: "svn export is its digest", want: digestRE, setup: func(t *testing.T) string {
			p := newSVNPair(t)
			p.commit(t, release)
			out := filepath.Join(t.TempDir(), "export")
			run(t, p.a, "svn", "export", "-q", p.url, out)
			return out
		}},
		{name: "brz branch is its revno", exact: "revno:2", setup: func(t *testing.T) string {
			p := newBrzPair(t)
			p.commit(t, release)
			p.commit(t, map[string][]byte{"values/a.yaml": []byte("a: 1\n")})
			return p.branch
		}},
		{name: "brz checkout is its working tree's revno, not the branch's", exact: "revno:1", setup: func(t *testing.T) string {
			p := newBrzPair(t)
			p.commit(t, release)
			p.update(t)
			p.commit(t, map[string][]byte{"values/a.yaml": []byte("a: 1\n")}) // not yet updated
			return p.co
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSource(t, tc.setup(t), source.Options{})
			a := fetch(t, s)
			if tc.exact != "" && a.Revision != tc.exact {
				t.Errorf("revision %q, want %q", a.Revision, tc.exact)
			}
			if tc.want != nil && !tc.want.MatchString(a.Revision) {
				t.Errorf("revision %q, want one matching %s", a.Revision, tc.want)
			}
			if !digestRE.MatchString(a.Digest) {
				t.Errorf("digest %q", a.Digest)
			}
		})
	}
}

func TestRevisionFallsBackToDigestWithoutTheTool(t *testing.T) {
	p := newSVNPair(t)
	p.commit(t, map[string][]byte{"releases/web.yaml": []byte("name: web\n")})
	p.update(t)
	t.Setenv("PATH", t.TempDir()) // no svn, no brz
	a := fetch(t, newSource(t, p.b, source.Options{}))
	if a.Revision != a.Digest {
		t.Errorf("revision %q without svn installed, want the digest %q", a.Revision, a.Digest)
	}
}

func TestDigestEqualsStateRevision(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string][]byte{
		"releases/web.yaml":             []byte("name: web\n"),
		"charts/hello/Chart.yaml":       []byte("name: hello\n"),
		"charts/hello/templates/a.yaml": []byte("kind: ConfigMap\n"),
		"values/x.yaml":                 []byte("a: 1\n"),
		".charter.lock":                 []byte(""),
		"releases/.web.yaml.swp":        []byte("swap"),
	})
	a := fetch(t, newSource(t, root, source.Options{}))
	d, err := state.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	want, err := d.Revision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != want {
		t.Errorf("digest %s, state.Dir.Revision %s: want them equal", a.Digest, want)
	}
}
