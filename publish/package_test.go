package publish

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/charter-sh/charter/render"
)

// archiveFiles reads a chart archive into name → content, checking the
// gzip header on the way.
func archiveFiles(t testing.TB, path string) (names []string, files map[string]string, headers []*tar.Header, gz gzip.Header) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(readFile(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	gz = zr.Header
	tr := tar.NewReader(zr)
	files = map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		files[h.Name] = string(data)
		headers = append(headers, h)
	}
	return names, files, headers, gz
}

func TestPackageIsDeterministic(t *testing.T) {
	ctx := testContext(t)
	src := filepath.Join(t.TempDir(), "foo")
	copyDir(t, testChart, src)

	first, err := Package(ctx, src, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(first) != "foo-1.1.2.tgz" {
		t.Errorf("archive name = %s, want foo-1.1.2.tgz", filepath.Base(first))
	}

	// Touch every file and folder and change permissions: no byte may change.
	old := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil {
			if !d.IsDir() {
				os.Chmod(p, 0o755)
			}
			os.Chtimes(p, old, old)
		}
		return err
	})
	second, err := Package(ctx, src, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, first), readFile(t, second)) {
		t.Fatal("packaging the same chart twice gave different archives")
	}

	// A content change must change the archive (the comparison can fail).
	writeFile(t, filepath.Join(src, "values.yaml"), "greeting: bye\n")
	third, err := Package(ctx, src, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(readFile(t, first), readFile(t, third)) {
		t.Fatal("a changed chart gave the same archive")
	}
}

func TestPackageNormalisesMetadata(t *testing.T) {
	path := packageChart(t, testChart)
	names, files, headers, gz := archiveFiles(t, path)

	if gz.Name != "" || !gz.ModTime.IsZero() || gz.Comment != "" || gz.Extra != nil {
		t.Errorf("gzip header = name %q mtime %v comment %q extra %q, want all empty", gz.Name, gz.ModTime, gz.Comment, gz.Extra)
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %v", names)
	}
	for _, h := range headers {
		if h.Typeflag != tar.TypeReg || h.Mode != 0o644 || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(ArchiveModTime) {
			t.Errorf("entry %s: type %c mode %o uid %d gid %d uname %q gname %q mtime %v; want regular 0644 0 0 \"\" \"\" %v",
				h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime, ArchiveModTime)
		}
	}
	want := []string{
		"foo/.helmignore",
		"foo/Chart.yaml",
		"foo/charts/sub/Chart.yaml",
		"foo/charts/sub/templates/cm.yaml",
		"foo/charts/sub/values.yaml",
		"foo/files/config.txt",
		"foo/templates/NOTES.txt",
		"foo/templates/_helpers.tpl",
		"foo/templates/configmap.yaml",
		"foo/values.yaml",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if !strings.Contains(files["foo/values.yaml"], "# Greeting shown") {
		t.Errorf("values.yaml lost its comments:\n%s", files["foo/values.yaml"])
	}
	if _, err := render.Load(path); err != nil {
		t.Errorf("render.Load of the archive: %v", err)
	}
}

// TestPackageMatchesHelm compares the archive's files with those of `helm
// package` and runs `helm lint` and `helm template` on it.
func TestPackageMatchesHelm(t *testing.T) {
	home := t.TempDir()
	ours := packageChart(t, testChart)
	helmDir := t.TempDir()
	mustHelm(t, home, "package", testChart, "-d", helmDir)
	_, want, _, _ := archiveFiles(t, filepath.Join(helmDir, "foo-1.1.2.tgz"))
	_, got, _, _ := archiveFiles(t, ours)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files differ from helm package's (-helm +charter):\n%s", diff)
	}

	mustHelm(t, home, "lint", ours)
	out := mustHelm(t, home, "template", "rel", ours)
	for _, s := range []string{"name: foo", "greeting: \"hello\"", "config.txt: \"key=value\\n\"", "name: sub"} {
		if !strings.Contains(out, s) {
			t.Errorf("helm template output lacks %q:\n%s", s, out)
		}
	}
}

func TestPackageRefuses(t *testing.T) {
	tests := map[string]struct {
		setup   func(t *testing.T, dir string)
		wantErr string
	}{
		"a symbolic link leaving the chart": {
			setup: func(t *testing.T, dir string) {
				outside := filepath.Join(t.TempDir(), "secret")
				writeFile(t, outside, "s3cr3t")
				if err := os.Symlink(outside, filepath.Join(dir, "files", "leak.txt")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "points outside the chart directory",
		},
		"a dependency missing from charts/": {
			setup: func(t *testing.T, dir string) {
				if err := os.RemoveAll(filepath.Join(dir, "charts")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "dependencies in Chart.yaml missing from charts/: sub",
		},
		"a version that is not semver": {
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "Chart.yaml"), "apiVersion: v2\nname: foo\nversion: latest\n")
				os.RemoveAll(filepath.Join(dir, "charts"))
			},
			wantErr: "validation",
		},
		"a file instead of a directory": {
			setup:   func(t *testing.T, dir string) {},
			wantErr: "not a chart directory",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "foo")
			copyDir(t, testChart, dir)
			tc.setup(t, dir)
			arg := dir
			if name == "a file instead of a directory" {
				arg = filepath.Join(dir, "Chart.yaml")
			}
			dest := t.TempDir()
			_, err := Package(testContext(t), arg, dest)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if entries, _ := os.ReadDir(dest); len(entries) != 0 {
				t.Errorf("the destination holds %d files after a refusal", len(entries))
			}
		})
	}
}
