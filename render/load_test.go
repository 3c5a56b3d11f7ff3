package render

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name     string
	typ      byte
	body     string
	linkname string
	size     int64 // when > 0, body is that many zero bytes
}

func makeTgz(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hd := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Linkname: e.linkname}
		body := []byte(e.body)
		if e.size > 0 {
			body = make([]byte, e.size)
		}
		if typ == tar.TypeReg {
			hd.Size = int64(len(body))
		}
		if err := tw.WriteHeader(hd); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write(body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var minimalChart = []tarEntry{
	{name: "mini/Chart.yaml", body: "apiVersion: v2\nname: mini\nversion: 0.1.0\n"},
	{name: "mini/values.yaml", body: "name: world\n"},
	{name: "mini/templates/cm.yaml", body: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  hello: {{ .Values.name }}\n"},
}

func withEntries(extra ...tarEntry) []tarEntry {
	return append(append([]tarEntry(nil), minimalChart...), extra...)
}

func TestLoadArchive(t *testing.T) {
	raw := makeTgz(t, minimalChart...)
	ch, err := LoadArchive("mini.tgz", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if want := "sha256:" + hex.EncodeToString(sum[:]); ch.Digest != want {
		t.Errorf("digest = %s, want %s", ch.Digest, want)
	}
	if ch.Chart.Name() != "mini" || ch.Path != "mini.tgz" || len(ch.Chart.Templates) != 1 {
		t.Errorf("loaded %s from %s with %d templates", ch.Chart.Name(), ch.Path, len(ch.Chart.Templates))
	}
	res, err := Render(ch, nil, Options{ReleaseName: "r", Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Objects[0].Object["data"]; !cmp.Equal(got, map[string]any{"hello": "world"}) {
		t.Errorf("rendered data %v", got)
	}
}

func TestLoadArchiveRefusesUnsafeEntries(t *testing.T) {
	nestedBad := makeTgz(t,
		tarEntry{name: "sub/Chart.yaml", body: "apiVersion: v2\nname: sub\nversion: 0.1.0\n"},
		tarEntry{name: "sub/templates/link.yaml", typ: tar.TypeSymlink, linkname: "/etc/passwd"},
	)
	tests := map[string]struct {
		entries []tarEntry
		raw     []byte
		want    string
	}{
		"parent directory":      {entries: withEntries(tarEntry{name: "mini/../../evil.yaml", body: "x"}), want: `entry "mini/../../evil.yaml" refers to a parent directory`},
		"parent at start":       {entries: withEntries(tarEntry{name: "../evil.yaml", body: "x"}), want: `entry "../evil.yaml" refers to a parent directory`},
		"absolute path":         {entries: withEntries(tarEntry{name: "/etc/cron.d/evil", body: "x"}), want: `entry "/etc/cron.d/evil" has an absolute path`},
		"windows absolute path": {entries: withEntries(tarEntry{name: `C:\evil`, body: "x"}), want: `entry "C:\\evil" has an absolute path`},
		"symlink":               {entries: withEntries(tarEntry{name: "mini/templates/passwd", typ: tar.TypeSymlink, linkname: "/etc/passwd"}), want: `entry "mini/templates/passwd" is a symbolic link (to "/etc/passwd")`},
		"hard link":             {entries: withEntries(tarEntry{name: "mini/templates/copy.yaml", typ: tar.TypeLink, linkname: "mini/templates/cm.yaml"}), want: `entry "mini/templates/copy.yaml" is a hard link`},
		"char device":           {entries: withEntries(tarEntry{name: "mini/null", typ: tar.TypeChar}), want: `entry "mini/null" is a device file`},
		"block device":          {entries: withEntries(tarEntry{name: "mini/sda", typ: tar.TypeBlock}), want: `entry "mini/sda" is a device file`},
		"fifo":                  {entries: withEntries(tarEntry{name: "mini/pipe", typ: tar.TypeFifo}), want: `entry "mini/pipe" is a fifo`},
		"file over entry cap":   {entries: withEntries(tarEntry{name: "mini/files/big", size: 20<<20 + 1}), want: `entry "mini/files/big" is 20971521 bytes, larger than the 20971520 byte limit per file`},
		"chart over total cap": {entries: withEntries(
			tarEntry{name: "mini/files/a", size: 20 << 20}, tarEntry{name: "mini/files/b", size: 20 << 20},
			tarEntry{name: "mini/files/c", size: 20 << 20}, tarEntry{name: "mini/files/d", size: 20 << 20},
			tarEntry{name: "mini/files/e", size: 20 << 20}), want: `entry "mini/files/e": chart is larger than the 104857600 byte limit`},
		"symlink in subchart archive": {entries: withEntries(tarEntry{name: "mini/charts/sub-0.1.0.tgz", body: string(nestedBad)}), want: `charts/sub-0.1.0.tgz: entry "sub/templates/link.yaml" is a symbolic link`},
		"entry outside chart dir":     {entries: withEntries(tarEntry{name: "Chart.yaml", body: "x"}), want: `entry "Chart.yaml" is not inside the chart's directory`},
		"no Chart.yaml":               {entries: []tarEntry{{name: "x/values.yaml", body: "a: 1\n"}}, want: "no Chart.yaml found"},
		"not gzip":                    {raw: []byte("apiVersion: v2\n"), want: "not a gzipped tar archive"},
		"chart apiVersion v3":         {entries: []tarEntry{{name: "x/Chart.yaml", body: "apiVersion: v3\nname: x\nversion: 1.0.0\n"}}, want: `apiVersion "v3" is not supported`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			raw := tc.raw
			if raw == nil {
				raw = makeTgz(t, tc.entries...)
			}
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			ch, err := LoadArchive("bad.tgz", bytes.NewReader(raw))
			if err == nil {
				t.Fatalf("loaded %s, want error containing %q", ch.Chart.Name(), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "load chart bad.tgz: ") {
				t.Errorf("error = %q, want it to start with the archive name and contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("loading wrote %d files to TMPDIR", len(left))
			}
		})
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := writeChart(t, map[string]string{
		"Chart.yaml":         "apiVersion: v2\nname: d\nversion: 0.1.0\n",
		"values.yaml":        "a: 1\n",
		"templates/cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
		"ignored/secret.txt": "not for the chart",
		".helmignore":        "ignored/\n",
	})
	ch, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ch.Chart.Files {
		if strings.HasPrefix(f.Name, "ignored/") {
			t.Errorf(".helmignore'd file %s was loaded", f.Name)
		}
	}
	again, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Digest != again.Digest || !strings.HasPrefix(ch.Digest, "sha256:") {
		t.Errorf("digest not stable: %s then %s", ch.Digest, again.Digest)
	}
	if err := os.WriteFile(filepath.Join(dir, "values.yaml"), []byte("a: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if changed.Digest == ch.Digest {
		t.Error("digest did not change when values.yaml changed")
	}
}

func TestLoadDirectoryLinks(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("top secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		setup func(t *testing.T, dir string)
		want  string // error substring; "" means it loads
	}{
		"link to a file inside is followed": {setup: func(t *testing.T, dir string) {
			mustSymlink(t, "../values.yaml", filepath.Join(dir, "files", "copy.yaml"))
		}},
		"link outside the chart": {setup: func(t *testing.T, dir string) {
			mustSymlink(t, outside, filepath.Join(dir, "files", "secret"))
		}, want: "symbolic link files/secret points outside the chart directory"},
		"link to a directory": {setup: func(t *testing.T, dir string) {
			mustSymlink(t, "../templates", filepath.Join(dir, "files", "tpl"))
		}, want: "symbolic link files/tpl points to a directory"},
		"fifo": {setup: func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "files", "pipe"), 0o644); err != nil {
				t.Skip("mkfifo:", err)
			}
		}, want: "files/pipe is not a regular file"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := writeChart(t, map[string]string{
				"Chart.yaml":        "apiVersion: v2\nname: d\nversion: 0.1.0\n",
				"values.yaml":       "a: 1\n",
				"files/keep":        "x",
				"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
			})
			tc.setup(t, dir)
			_, err := Load(dir)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// writeChart writes files (relative path -> content) into a new temporary
// chart directory and returns it.
func writeChart(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
