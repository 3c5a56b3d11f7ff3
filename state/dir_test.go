package state

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// newTestDir returns an initialised state directory in a temporary folder.
func newTestDir(t *testing.T) *Dir {
	t.Helper()
	d, err := Init(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFileIn writes a file by hand (as a human would) under the state dir.
func writeFileIn(t *testing.T, d *Dir, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(d.Root(), filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeRelease(t *testing.T, d *Dir, name string, data []byte) {
	t.Helper()
	writeFileIn(t, d, "releases/"+name+".yaml", data)
}

func readFile(t *testing.T, d *Dir, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.Root(), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpen(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	badMarker := filepath.Join(tmp, "bad")
	if err := os.MkdirAll(badMarker, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(badMarker, "charter.yaml"), []byte("apiVersion: charter.sh/v1\nkind: Release\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		root    string
		wantErr string
	}{
		"existing folder without marker": {root: tmp},
		"missing folder":                 {root: filepath.Join(tmp, "nope"), wantErr: "open state directory " + filepath.Join(tmp, "nope") + ": it does not exist"},
		"a file":                         {root: file, wantErr: "it is not a directory"},
		"marker of another kind":         {root: badMarker, wantErr: filepath.Join(badMarker, "charter.yaml") + ": want kind: State"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d, err := Open(tc.root)
			checkErr(t, err, tc.wantErr)
			if err == nil && d.Root() != tc.root {
				t.Errorf("Root() = %q, want %q", d.Root(), tc.root)
			}
		})
	}
}

func TestInitIsIdempotent(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b", "state")
	if _, err := Init(root); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"charter.yaml", "releases", "charts"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("Init did not create %s: %v", p, err)
		}
	}
	// A user's edit of the marker survives a second Init.
	custom := []byte("# mine\napiVersion: charter.sh/v1\nkind: State\n")
	if err := os.WriteFile(filepath.Join(root, "charter.yaml"), custom, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Init(root)
	if err != nil {
		t.Fatalf("second Init: %v", err)
	}
	if diff := cmp.Diff(string(custom), string(readFile(t, d, "charter.yaml"))); diff != "" {
		t.Errorf("charter.yaml changed (-want +got):\n%s", diff)
	}
	if _, err := Open(root); err != nil {
		t.Errorf("Open after Init: %v", err)
	}
}

func TestCreateGetListDelete(t *testing.T) {
	ctx := context.Background()
	d := newTestDir(t)
	in := &Release{Name: "taco", Chart: "charts/taco-1.0.0.tgz", Values: map[string]any{"replicaCount": 2}}
	if err := d.Create(ctx, in); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if in.Namespace != "" || in.APIVersion != "" {
		t.Error("Create modified its argument")
	}
	want := &Release{APIVersion: APIVersion, Kind: KindRelease, Name: "taco", Namespace: "default", Chart: "charts/taco-1.0.0.tgz", Values: map[string]any{"replicaCount": 2.0}}
	got, err := d.Get(ctx, "taco")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	golden(t, "create/taco.golden.yaml", readFile(t, d, "releases/taco.yaml"))

	err = d.Create(ctx, &Release{Name: "taco", Chart: "other"})
	if !errors.Is(err, ErrExists) || err.Error() != `release "taco" already exists` {
		t.Errorf("second Create error = %v, want ErrExists", err)
	}
	if err := d.Create(ctx, &Release{Name: "burrito", Chart: "charts/b-1.0.0.tgz"}); err != nil {
		t.Fatal(err)
	}
	list, err := d.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var names []string
	for _, r := range list {
		names = append(names, r.Name)
	}
	if diff := cmp.Diff([]string{"burrito", "taco"}, names); diff != "" {
		t.Errorf("List names (-want +got):\n%s", diff)
	}

	if err := d.Delete(ctx, "taco"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := d.Get(ctx, "taco"); !errors.Is(err, ErrNotFound) || err.Error() != `release "taco" not found` {
		t.Errorf("Get after Delete error = %v, want ErrNotFound", err)
	}
	if err := d.Delete(ctx, "taco"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete error = %v, want ErrNotFound", err)
	}
	if _, err := d.Update(ctx, "taco", func(*Release) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update of deleted release error = %v, want ErrNotFound", err)
	}
}

func TestCreateRefusesBadReleases(t *testing.T) {
	ctx := context.Background()
	d := newTestDir(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(d.Root(), "values")); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		r       *Release
		wantErr string
	}{
		"invalid name":                    {r: &Release{Name: "Taco", Chart: "c"}, wantErr: `create release name "Taco" is invalid`},
		"no chart":                        {r: &Release{Name: "taco"}, wantErr: `create release "taco": chart is empty`},
		"values file through symlink out": {r: &Release{Name: "taco", Chart: "c", ValuesFiles: []string{"values/a.yaml"}}, wantErr: "outside the state directory"},
		"values file with dot-dot":        {r: &Release{Name: "taco", Chart: "c", ValuesFiles: []string{"../a.yaml"}}, wantErr: "points outside the state directory"},
		"unrepresentable values":          {r: &Release{Name: "taco", Chart: "c", Values: map[string]any{"c": make(chan int)}}, wantErr: "cannot be represented as YAML"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			checkErr(t, d.Create(ctx, tc.r), tc.wantErr)
			entries, _ := os.ReadDir(filepath.Join(d.Root(), "releases"))
			if len(entries) != 0 {
				t.Errorf("releases/ holds %d files after a refused Create", len(entries))
			}
		})
	}
}

func TestGetRefusesInvalidNames(t *testing.T) {
	d := newTestDir(t)
	writeFileIn(t, d, "secret.yaml", []byte("apiVersion: charter.sh/v1\nkind: Release\nname: secret\nchart: c\n"))
	for _, name := range []string{"../secret", "", "a/b"} {
		if _, err := d.Get(context.Background(), name); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want an invalid-name error", name, err)
		}
	}
}

func TestScanReportsBrokenFilesAndSkipsTemporaryOnes(t *testing.T) {
	ctx := context.Background()
	d := newTestDir(t)
	good := []byte("apiVersion: charter.sh/v1\nkind: Release\nname: good\nchart: c\n")
	writeRelease(t, d, "good", good)
	// name may be left out: it is the file's name.
	writeRelease(t, d, "noname", []byte("chart: c\n"))
	writeRelease(t, d, "broken", []byte("chart: [\n"))
	writeRelease(t, d, "mismatch", []byte("name: other\nchart: c\n"))
	writeRelease(t, d, "unknown", []byte("chart: c\nvalue: {}\n"))
	writeRelease(t, d, "Bad_Name", []byte("chart: c\n"))
	writeFileIn(t, d, "releases/old.yml", []byte("chart: c\n"))
	// Files List must ignore: temporary, editor backup/swap/lock files, hidden
	// files, other extensions and folders.
	for _, name := range []string{".charter-tmp-123", ".charter-tmp-x.yaml", "good.yaml~", ".good.yaml.swp", "#good.yaml#", ".#good.yaml", ".hidden.yaml", "README.md"} {
		writeFileIn(t, d, "releases/"+name, []byte("{{ not yaml"))
	}
	writeFileIn(t, d, "releases/sub/x.yaml", []byte("{{ not yaml"))

	rels, errs := d.Scan(ctx)
	var names []string
	for _, r := range rels {
		names = append(names, r.Name)
	}
	if diff := cmp.Diff([]string{"good", "noname"}, names); diff != "" {
		t.Errorf("Scan releases (-want +got):\n%s", diff)
	}
	rd := filepath.Join(d.Root(), "releases")
	wantErrs := []string{
		filepath.Join(rd, "Bad_Name.yaml") + `: release name "Bad_Name" is invalid`,
		filepath.Join(rd, "broken.yaml") + ": not valid YAML",
		filepath.Join(rd, "mismatch.yaml") + `: name "other" does not match the file name: want "mismatch"`,
		filepath.Join(rd, "old.yml") + ": release files must end in .yaml",
		filepath.Join(rd, "unknown.yaml") + `: line 2: unknown field "value"`,
	}
	if len(errs) != len(wantErrs) {
		t.Fatalf("Scan errors = %v, want %d", errs, len(wantErrs))
	}
	for i, err := range errs {
		checkErr(t, err, wantErrs[i])
	}

	if _, err := d.List(ctx); err == nil || !strings.Contains(err.Error(), "(and 4 more broken release files)") {
		t.Errorf("List error = %v, want the first broken file and a count", err)
	}
	if _, err := d.Get(ctx, "mismatch"); err == nil || !strings.Contains(err.Error(), "does not match the file name") {
		t.Errorf("Get(mismatch) error = %v", err)
	}
}

func TestResolvePath(t *testing.T) {
	d := newTestDir(t)
	outside := t.TempDir()
	writeFileIn(t, d, "values/common.yaml", []byte("a: 1\n"))
	mustSymlink(t, outside, filepath.Join(d.Root(), "escape"))
	mustSymlink(t, "/etc/passwd", filepath.Join(d.Root(), "values", "passwd.yaml"))
	mustSymlink(t, "common.yaml", filepath.Join(d.Root(), "values", "alias.yaml"))
	mustSymlink(t, filepath.Join(outside, "missing"), filepath.Join(d.Root(), "dangling"))
	cases := map[string]struct {
		ref     string
		want    string // relative to the root
		wantErr string
	}{
		"existing file":                 {ref: "values/common.yaml", want: "values/common.yaml"},
		"file that does not exist yet":  {ref: "charts/new/x.tgz", want: "charts/new/x.tgz"},
		"symlink that stays inside":     {ref: "values/alias.yaml", want: "values/alias.yaml"},
		"dot segments that stay inside": {ref: "values/../charts/./x.tgz", want: "charts/x.tgz"},
		"empty":                         {ref: "", wantErr: "path is empty"},
		"parent":                        {ref: "../x", wantErr: `path "../x" points outside the state directory`},
		"sneaky parent":                 {ref: "values/../../x", wantErr: "points outside the state directory"},
		"absolute":                      {ref: "/etc/passwd", wantErr: `path "/etc/passwd" is an absolute path`},
		"through a symlinked folder":    {ref: "escape/x.yaml", wantErr: `path "escape/x.yaml" resolves to ` + outside + ", outside the state directory"},
		"symlinked folder itself":       {ref: "escape", wantErr: "outside the state directory"},
		"symlinked file pointing out":   {ref: "values/passwd.yaml", wantErr: "outside the state directory"},
		"through a broken symlink":      {ref: "dangling/x", wantErr: "broken symbolic link"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := d.ResolvePath(tc.ref)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && got != filepath.Join(d.Root(), tc.want) {
				t.Errorf("ResolvePath(%q) = %q, want %q", tc.ref, got, filepath.Join(d.Root(), tc.want))
			}
		})
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestPutChart(t *testing.T) {
	ctx := context.Background()
	d := newTestDir(t)
	tgz := gzipBytes(t, "chart v1")
	ref, err := d.PutChart(ctx, "mychart", "0.0.1", tgz)
	if err != nil {
		t.Fatalf("PutChart: %v", err)
	}
	if ref != "charts/mychart-0.0.1.tgz" {
		t.Errorf("ref = %q", ref)
	}
	if diff := cmp.Diff(tgz, readFile(t, d, ref)); diff != "" {
		t.Errorf("stored archive differs (-want +got):\n%s", diff)
	}
	// Same name and version again replaces the archive.
	tgz2 := gzipBytes(t, "chart v1, rebuilt")
	if _, err := d.PutChart(ctx, "mychart", "0.0.1", tgz2); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tgz2, readFile(t, d, ref)); diff != "" {
		t.Errorf("replaced archive differs (-want +got):\n%s", diff)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.Root(), "charts")); len(entries) != 1 {
		t.Errorf("charts/ holds %d files, want 1 (no temporary files left)", len(entries))
	}

	cases := map[string]struct {
		name, version string
		archive       []byte
		wantErr       string
	}{
		"name with slash":    {name: "../evil", version: "1.0.0", archive: tgz, wantErr: `chart name "../evil" is invalid`},
		"name with dot-dot":  {name: "a..b", version: "1.0.0", archive: tgz, wantErr: "is invalid"},
		"empty name":         {name: "", version: "1.0.0", archive: tgz, wantErr: "is invalid"},
		"version with slash": {name: "c", version: "1.0.0/../../x", archive: tgz, wantErr: "is not a semantic version"},
		"not a version":      {name: "c", version: "latest", archive: tgz, wantErr: `version "latest" is not a semantic version`},
		"not gzip":           {name: "c", version: "1.0.0", archive: []byte("PK zip"), wantErr: "archive is not a gzip file"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := d.PutChart(ctx, tc.name, tc.version, tc.archive)
			checkErr(t, err, tc.wantErr)
		})
	}

	t.Run("charts folder symlinked outside", func(t *testing.T) {
		d := newTestDir(t)
		outside := t.TempDir()
		if err := os.Remove(filepath.Join(d.Root(), "charts")); err != nil {
			t.Fatal(err)
		}
		mustSymlink(t, outside, filepath.Join(d.Root(), "charts"))
		_, err := d.PutChart(ctx, "mychart", "0.0.1", tgz)
		checkErr(t, err, "outside the state directory")
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Errorf("PutChart wrote %d files outside the state directory", len(entries))
		}
	})
}

func gzipBytes(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestValuesFor(t *testing.T) {
	ctx := context.Background()
	d := newTestDir(t)
	writeFileIn(t, d, "values/common.yaml", []byte(`
image:
  repository: nginx
  tag: "1.0"
  pullPolicy: IfNotPresent
ports: [80, 443]
resources:
  limits: {cpu: 100m}
`))
	writeFileIn(t, d, "values/prod.yaml", []byte(`
image:
  tag: "2.0"        # later file wins
ports: [8443]       # lists are replaced, not merged
resources: null     # null is kept for Helm to drop the default
extra: yes
`))
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "x.yaml"), []byte("stolen: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, filepath.Join(outside, "x.yaml"), filepath.Join(d.Root(), "values", "link.yaml"))
	writeFileIn(t, d, "values/dup.yaml", []byte("a: 1\na: 2\n"))

	cases := map[string]struct {
		r       *Release
		want    map[string]any
		wantErr string
	}{
		"values only": {
			r:    &Release{Name: "r", Values: map[string]any{"a": map[string]any{"b": 1.0}}},
			want: map[string]any{"a": map[string]any{"b": 1.0}},
		},
		"files in order then values": {
			r: &Release{Name: "r", ValuesFiles: []string{"values/common.yaml", "values/prod.yaml"}, Values: map[string]any{
				"image": map[string]any{"pullPolicy": "Always"},
			}},
			want: map[string]any{
				"image":     map[string]any{"repository": "nginx", "tag": "2.0", "pullPolicy": "Always"},
				"ports":     []any{8443.0},
				"resources": nil,
				"extra":     true,
			},
		},
		"values override a file's mapping with a scalar": {
			r:    &Release{Name: "r", ValuesFiles: []string{"values/common.yaml"}, Values: map[string]any{"image": "none"}},
			want: map[string]any{"image": "none", "ports": []any{80.0, 443.0}, "resources": map[string]any{"limits": map[string]any{"cpu": "100m"}}},
		},
		"nothing":               {r: &Release{Name: "r"}, want: map[string]any{}},
		"missing file":          {r: &Release{Name: "r", ValuesFiles: []string{"values/nope.yaml"}}, wantErr: `values file of release "r": read values: open ` + filepath.Join(d.Root(), "values/nope.yaml") + ": no such file"},
		"file outside":          {r: &Release{Name: "r", ValuesFiles: []string{"values/link.yaml"}}, wantErr: "outside the state directory"},
		"file with dot-dot":     {r: &Release{Name: "r", ValuesFiles: []string{"../x.yaml"}}, wantErr: "points outside the state directory"},
		"file with a duplicate": {r: &Release{Name: "r", ValuesFiles: []string{"values/dup.yaml"}}, wantErr: `dup.yaml: line 2: duplicate key "a"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := tc.r.DeepCopy()
			got, err := d.ValuesFor(ctx, tc.r)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr != "" {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ValuesFor (-want +got):\n%s", diff)
			}
			// The result must not share memory with the release.
			if m, ok := got["a"].(map[string]any); ok {
				m["b"] = "changed"
			}
			if diff := cmp.Diff(before, tc.r); diff != "" {
				t.Errorf("ValuesFor changed the release (-before +after):\n%s", diff)
			}
		})
	}
}

func TestRevision(t *testing.T) {
	ctx := context.Background()
	d := newTestDir(t)
	writeRelease(t, d, "taco", []byte("chart: charts/t-1.0.0.tgz\n"))
	writeFileIn(t, d, "charts/t-1.0.0.tgz", gzipBytes(t, "t"))
	writeFileIn(t, d, "values/common.yaml", []byte("a: 1\n"))
	rev := func() string {
		t.Helper()
		r, err := d.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	base := rev()
	if !strings.HasPrefix(base, "sha256:") || len(base) != len("sha256:")+64 {
		t.Fatalf("Revision = %q, want sha256:<64 hex>", base)
	}
	if again := rev(); again != base {
		t.Fatalf("Revision not stable: %s then %s", base, again)
	}

	ignored := map[string]string{
		"temporary file":      "releases/.charter-tmp-42",
		"editor backup":       "releases/taco.yaml~",
		"vim swap file":       "releases/.taco.yaml.swp",
		"emacs autosave":      "releases/#taco.yaml#",
		"lock file":           ".charter.lock",
		"git metadata":        ".git/objects/ab/cdef",
		"nested svn metadata": "values/.svn/entries",
	}
	for name, p := range ignored {
		t.Run("ignores "+name, func(t *testing.T) {
			writeFileIn(t, d, p, []byte("noise"))
			defer os.Remove(filepath.Join(d.Root(), p))
			if got := rev(); got != base {
				t.Errorf("revision changed after writing %s", p)
			}
		})
	}

	changes := map[string]func(){
		"release edited":     func() { writeRelease(t, d, "taco", []byte("chart: charts/t-1.0.0.tgz\nnamespace: x\n")) },
		"chart replaced":     func() { writeFileIn(t, d, "charts/t-1.0.0.tgz", gzipBytes(t, "t2")) },
		"values file edited": func() { writeFileIn(t, d, "values/common.yaml", []byte("a: 2\n")) },
		"file renamed": func() {
			if err := os.Rename(filepath.Join(d.Root(), "values/common.yaml"), filepath.Join(d.Root(), "values/other.yaml")); err != nil {
				t.Fatal(err)
			}
		},
		"release added": func() { writeRelease(t, d, "burrito", []byte("chart: c\n")) },
		"symlink added": func() { mustSymlink(t, "common.yaml", filepath.Join(d.Root(), "values", "l.yaml")) },
	}
	seen := map[string]string{base: "base"}
	for _, name := range []string{"release edited", "chart replaced", "values file edited", "file renamed", "release added", "symlink added"} {
		changes[name]()
		got := rev()
		if prev, dup := seen[got]; dup {
			t.Errorf("after %s the revision equals the one after %s", name, prev)
		}
		seen[got] = name
	}
}

func TestResolveChartAllowsChartsBesideTheState(t *testing.T) {
	top := t.TempDir()
	d, err := Init(filepath.Join(top, "state"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(top, "charts", "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(top, "charts", "escape")); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ ref, wantErr string }{
		"inside":          {ref: "charts/hello"},
		"beside":          {ref: "../charts/web"},
		"climbing higher": {ref: "../../etc", wantErr: "outside the folder holding the state directory"},
		"absolute":        {ref: "/etc", wantErr: "absolute path"},
		"symlink escapes": {ref: "../charts/escape", wantErr: "outside " + top},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := d.ResolveChart(tc.ref)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ResolveChart(%q) = %q, %v; want error containing %q", tc.ref, p, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(d.Root(), filepath.FromSlash(tc.ref)); p != want {
				t.Errorf("ResolveChart(%q) = %q, want %q", tc.ref, p, want)
			}
		})
	}
	// valuesFiles stay inside STATE.
	if _, err := d.ResolvePath("../charts/web"); err == nil {
		t.Error("ResolvePath accepted a path beside the state directory")
	}
}
