package state

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/path, rewriting the file under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	path = filepath.Join("testdata", path)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func sub(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

func TestUpdateKeepsHandWrittenLayout(t *testing.T) {
	cases := map[string]struct {
		in string // file under testdata/update
		fn func(*Release)
	}{
		"change one value":              {"hand.yaml", func(r *Release) { r.Values["replicaCount"] = 3 }},
		"change nested quoted value":    {"hand.yaml", func(r *Release) { sub(r.Values, "image")["tag"] = "1.26" }},
		"add values key":                {"hand.yaml", func(r *Release) { r.Values["resources"] = map[string]any{"limits": map[string]any{"cpu": "100m"}} }},
		"delete values key":             {"hand.yaml", func(r *Release) { delete(r.Values, "ports") }},
		"replace list":                  {"hand.yaml", func(r *Release) { r.Values["ports"] = []any{8080} }},
		"set string that reads as bool": {"hand.yaml", func(r *Release) { r.Values["mode"] = "on" }},
		"set null to drop a default":    {"hand.yaml", func(r *Release) { sub(r.Values, "image")["pullPolicy"] = nil }},
		"set version":                   {"hand.yaml", func(r *Release) { r.Version = ">=1.0.0" }},
		"remove values files":           {"hand.yaml", func(r *Release) { r.ValuesFiles = nil }},
		"add values file":               {"hand.yaml", func(r *Release) { r.ValuesFiles = append(r.ValuesFiles, "values/prod.yaml") }},
		"change namespace":              {"hand.yaml", func(r *Release) { r.Namespace = "dinner" }},
		"remove all values":             {"hand.yaml", func(r *Release) { r.Values = nil }},
		"four-space file add nested key": {"wide.yaml", func(r *Release) {
			sub(r.Values, "service")["name"] = "web"
			sub(r.Values, "service")["ports"] = []any{80, 443}
		}},
		"four-space file set empty list": {"wide.yaml", func(r *Release) { r.Values["tolerations"] = []any{map[string]any{"key": "a"}} }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			d := newTestDir(t)
			orig := readTestdata(t, "update/"+tc.in)
			writeRelease(t, d, "taco-tuesday", orig)

			// The release the edited file must read as, computed without the store.
			want, err := Parse("orig", orig)
			if err != nil {
				t.Fatal(err)
			}
			want.applyDefaults()
			tc.fn(want)
			if want, err = d.prepare(want); err != nil {
				t.Fatal(err)
			}

			got, err := d.Update(ctx, "taco-tuesday", func(r *Release) error { tc.fn(r); return nil })
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Update returned (-want +got):\n%s", diff)
			}
			reread, err := d.Get(ctx, "taco-tuesday")
			if err != nil {
				t.Fatalf("Get after Update: %v", err)
			}
			if diff := cmp.Diff(want, reread); diff != "" {
				t.Errorf("file reads back as (-want +got):\n%s", diff)
			}
			golden(t, "update/"+slug(name)+".golden.yaml", readFile(t, d, "releases/taco-tuesday.yaml"))
		})
	}
}

func TestUpdateOfOneValueChangesOnlyThatLine(t *testing.T) {
	d := newTestDir(t)
	orig := readTestdata(t, "update/hand.yaml")
	writeRelease(t, d, "taco-tuesday", orig)
	if _, err := d.Update(context.Background(), "taco-tuesday", func(r *Release) error {
		r.Values["replicaCount"] = 5
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before := strings.Split(string(orig), "\n")
	after := strings.Split(string(readFile(t, d, "releases/taco-tuesday.yaml")), "\n")
	if len(before) != len(after) {
		t.Fatalf("line count changed from %d to %d", len(before), len(after))
	}
	var changed []string
	for i := range before {
		if before[i] != after[i] {
			changed = append(changed, after[i])
		}
	}
	if diff := cmp.Diff([]string{"  replicaCount: 5     # bump on tuesdays"}, changed); diff != "" {
		t.Errorf("changed lines (-want +got):\n%s", diff)
	}
}

func TestUpdateWithoutChangeDoesNotWrite(t *testing.T) {
	d := newTestDir(t)
	orig := readTestdata(t, "update/hand.yaml")
	writeRelease(t, d, "taco-tuesday", orig)
	path := filepath.Join(d.Root(), "releases", "taco-tuesday.yaml")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Setting what is already there (in other Go types) is no change.
	if _, err := d.Update(context.Background(), "taco-tuesday", func(r *Release) error {
		r.Values["replicaCount"] = int64(2)
		r.Namespace = "food"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("file was replaced although nothing changed")
	}
	if diff := cmp.Diff(string(orig), string(readFile(t, d, "releases/taco-tuesday.yaml"))); diff != "" {
		t.Errorf("file changed (-want +got):\n%s", diff)
	}
}

func TestDiffLines(t *testing.T) {
	cases := map[string]struct{ a, b string }{
		"equal":             {"a b c", "a b c"},
		"empty to some":     {"", "a b"},
		"some to empty":     {"a b", ""},
		"replace middle":    {"a b c d", "a x c d"},
		"insert and delete": {"a b c d e f", "x a c d f y"},
		"repeated lines":    {"- - a - -", "- a - - - b"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a, b := strings.Fields(tc.a), strings.Fields(tc.b)
			ops, ok := diffLines(a, b)
			if !ok {
				t.Fatal("diffLines gave up")
			}
			// Replaying the script on a must give b, and keep only equal lines.
			var got []string
			ai := 0
			for _, op := range ops {
				switch op.kind {
				case '=':
					if a[op.a] != b[op.b] || op.a != ai {
						t.Fatalf("bad keep %+v", op)
					}
					got = append(got, a[op.a])
					ai++
				case '-':
					if op.a != ai {
						t.Fatalf("out-of-order delete %+v", op)
					}
					ai++
				case '+':
					got = append(got, b[op.b])
				}
			}
			if ai != len(a) {
				t.Fatalf("script consumed %d of %d lines", ai, len(a))
			}
			if diff := cmp.Diff(b, got); diff != "" && !(len(b) == 0 && len(got) == 0) {
				t.Errorf("replayed script (-want +got):\n%s", diff)
			}
		})
	}
}

func slug(s string) string { return strings.ReplaceAll(s, " ", "-") }

func TestUpdateEdgeCases(t *testing.T) {
	cases := map[string]struct {
		in   string
		fn   func(*Release)
		want string
	}{
		"windows line ends are kept": {
			in:   "chart: c\r\nvalues:\r\n  a: 1   # x\r\n\r\n  b: 2\r\n",
			fn:   func(r *Release) { r.Values["a"] = 5; r.Values["z"] = 1 },
			want: "chart: c\r\nvalues:\r\n  a: 5   # x\r\n\r\n  b: 2\r\n  z: 1\r\n",
		},
		"document marker is kept": {
			in:   "---\n# head\nchart: c\nvalues:\n  a: 1\n",
			fn:   func(r *Release) { r.Values["a"] = 5 },
			want: "---\n# head\nchart: c\nvalues:\n  a: 5\n",
		},
		"missing final newline stays missing": {
			in:   "chart: c\nvalues:\n  a: 1",
			fn:   func(r *Release) { r.Values["a"] = 5 },
			want: "chart: c\nvalues:\n  a: 5",
		},
		"anchors untouched by the edit are kept": {
			in:   "chart: c\nvalues:\n  base: &b\n    x: 1\n  copy: *b\n  other: 1\n",
			fn:   func(r *Release) { r.Values["other"] = 2 },
			want: "chart: c\nvalues:\n  base: &b\n    x: 1\n  copy: *b\n  other: 2\n",
		},
		"editing an anchored mapping leaves its copies alone": {
			in:   "chart: c\nvalues:\n  base: &b\n    x: 1\n  copy: *b\n",
			fn:   func(r *Release) { sub(r.Values, "base")["x"] = 2 },
			want: "chart: c\nvalues:\n  base:\n    x: 2\n  copy:\n    x: 1\n",
		},
		"new fields go in charter's order below the header comment": {
			in:   "# header comment\n\nchart: c # the chart\n",
			fn:   func(r *Release) { r.Values = map[string]any{"a": 1}; r.ValuesFiles = []string{"v.yaml"}; r.Name = "x" },
			want: "# header comment\n\nchart: c # the chart\nvaluesFiles:\n- v.yaml\nvalues:\n  a: 1\n",
		},
		"defaults are not written out": {
			in:   "chart: c\n",
			fn:   func(r *Release) { r.APIVersion, r.Kind, r.Namespace = APIVersion, KindRelease, "default" },
			want: "chart: c\n",
		},
		"flow mapping stays flow": {
			in:   "chart: c\nvalues: {a: 1, b: 2}\n",
			fn:   func(r *Release) { r.Values["a"] = 5 },
			want: "chart: c\nvalues: {a: 5, b: 2}\n",
		},
		"multi-line string": {
			in:   "chart: c\nvalues:\n  a: 1\n",
			fn:   func(r *Release) { r.Values["a"] = "multi\nline\n" },
			want: "chart: c\nvalues:\n  a: |\n    multi\n    line\n",
		},
		"emptied mapping": {
			in:   "chart: c\nvalues:\n  a:\n    b: 1\n",
			fn:   func(r *Release) { delete(sub(r.Values, "a"), "b") },
			want: "chart: c\nvalues:\n  a: {}\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := newTestDir(t)
			writeRelease(t, d, "x", []byte(tc.in))
			if _, err := d.Update(context.Background(), "x", func(r *Release) error { tc.fn(r); return nil }); err != nil {
				t.Fatalf("Update: %v", err)
			}
			if diff := cmp.Diff(tc.want, string(readFile(t, d, "releases/x.yaml"))); diff != "" {
				t.Errorf("file after Update (-want +got):\n%s", diff)
			}
		})
	}
}
