package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseValues(t *testing.T) {
	tests := map[string]struct {
		data    string
		want    map[string]any
		wantErr string
	}{
		"nested map with YAML 1.1 scalars": {
			data: "a:\n  b: 1\n  c: yes\n  d: 1.5\n  e: ~\nlist: [x, 2]\n",
			want: map[string]any{"a": map[string]any{"b": float64(1), "c": true, "d": 1.5, "e": nil}, "list": []any{"x", float64(2)}},
		},
		"empty file":                           {data: "", want: map[string]any{}},
		"only comments":                        {data: "# nothing\n", want: map[string]any{}},
		"documents merged":                     {data: "a: 1\nb: {p: 1}\n---\nb: {q: 2}\n", want: map[string]any{"a": float64(1), "b": map[string]any{"p": float64(1), "q": float64(2)}}},
		"YAML 1.1 key y is a bool, as in Helm": {data: "y: 1\n", want: map[string]any{"true": float64(1)}},
		"not YAML":                             {data: "a: 1\nb: [unclosed\nc: 2\n", wantErr: "my-values.yaml: not valid YAML: line 2"},
		"bad indentation":                      {data: "a:\n  b: 1\n c: 2\n", wantErr: "my-values.yaml: not valid YAML: line 2: did not find expected key"},
		"duplicate key":                        {data: "a: 1\nb: 2\na: 3\n", wantErr: `my-values.yaml: line 3: duplicate key "a" (first defined on line 1)`},
		"nested duplicate":                     {data: "image:\n  tag: a\n  repo: r\n  tag: b\n", wantErr: `my-values.yaml: line 4: duplicate key "image.tag" (first defined on line 2)`},
		"top level is list":                    {data: "- a\n- b\n", wantErr: "my-values.yaml: line 1: top level must be a mapping of keys to values, got a list"},
		"top level scalar":                     {data: "hello\n", wantErr: `my-values.yaml: line 1: top level must be a mapping of keys to values, got the scalar "hello"`},
		"over 10 MiB":                          {data: "a: " + strings.Repeat("x", 10<<20) + "\n", wantErr: "my-values.yaml: values file is 10485764 bytes, larger than the 10485760 byte limit"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseValues("my-values.yaml", []byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want prefix %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans several lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadValuesFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse file: the size check must refuse it without reading it.
	if err := f.Truncate(11 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := ReadValuesFile(big); err == nil || !strings.Contains(err.Error(), big+": values file is 11534336 bytes, larger than") {
		t.Errorf("error = %v, want size error naming the file", err)
	}
	ok := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(ok, []byte("a: {b: c}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadValuesFile(ok)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"a": map[string]any{"b": "c"}}, got); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	if _, err := ReadValuesFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("error = %v, want one naming missing.yaml", err)
	}
}

func TestMergeValues(t *testing.T) {
	base := map[string]any{"a": map[string]any{"x": 1, "y": 2}, "list": []any{1, 2}, "keep": "k", "gone": "default"}
	over1 := map[string]any{"a": map[string]any{"y": 20, "z": 30}, "list": []any{3}}
	over2 := map[string]any{"a": map[string]any{"z": 300}, "gone": nil, "new": map[string]any{"n": 1}}
	got := MergeValues(base, over1, over2)
	want := map[string]any{
		"a":    map[string]any{"x": 1, "y": 20, "z": 300},
		"list": []any{3},
		"keep": "k",
		"gone": nil, // kept: coalescing with chart defaults deletes the key later
		"new":  map[string]any{"n": 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}
	// The inputs are untouched and share nothing with the result.
	got["a"].(map[string]any)["x"] = "changed"
	got["new"].(map[string]any)["n"] = "changed"
	if base["a"].(map[string]any)["x"] != 1 || over2["new"].(map[string]any)["n"] != 1 {
		t.Error("MergeValues result shares maps with its inputs")
	}
	if diff := cmp.Diff(map[string]any{"a": map[string]any{"y": 20, "z": 30}, "list": []any{3}}, over1); diff != "" {
		t.Errorf("overlay modified (-want +got):\n%s", diff)
	}
}

func TestApplySet(t *testing.T) {
	tests := map[string]struct {
		start                  map[string]any
		set, setString, setJSN []string
		want                   map[string]any
		wantErr                string
	}{
		"typed scalars": {
			set:  []string{"a.b=1", "c=true", "d=null", "e=text", "f=1.5"},
			want: map[string]any{"a": map[string]any{"b": int64(1)}, "c": true, "d": nil, "e": "text", "f": "1.5"},
		},
		"set-string keeps strings": {
			setString: []string{"a=1", "b=true"},
			want:      map[string]any{"a": "1", "b": "true"},
		},
		"commas, lists and escapes": {
			set:  []string{`a=1,b=2`, `list={x,y}`, `idx[1]=v`, `dotted\.key=d`, `comma=a\,b`},
			want: map[string]any{"a": int64(1), "b": int64(2), "list": []any{"x", "y"}, "idx": []any{nil, "v"}, "dotted.key": "d", "comma": "a,b"},
		},
		"merges into existing values": {
			start: map[string]any{"image": map[string]any{"repo": "r", "tag": "1"}},
			set:   []string{"image.tag=2"},
			want:  map[string]any{"image": map[string]any{"repo": "r", "tag": int64(2)}},
		},
		"set-json values and objects": {
			setJSN: []string{`a={"x":[1,2]}`, `{"b":{"c":true}}`},
			want:   map[string]any{"a": map[string]any{"x": []any{float64(1), float64(2)}}, "b": map[string]any{"c": true}},
		},
		"order is json, set, string": {
			setJSN:    []string{`a=1`},
			set:       []string{"a=2"},
			setString: []string{"a=3"},
			want:      map[string]any{"a": "3"},
		},
		"bad --set":      {set: []string{"a"}, wantErr: "--set a: key \"a\" has no value"},
		"bad --set-json": {setJSN: []string{`a={nope`}, wantErr: "--set-json a={nope:"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			vals := tc.start
			if vals == nil {
				vals = map[string]any{}
			}
			err := ApplySet(vals, tc.set, tc.setString, tc.setJSN)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want prefix %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, vals); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
		})
	}
	if err := ApplySet(nil, []string{"a=1"}, nil, nil); err == nil {
		t.Error("ApplySet on a nil map: want error")
	}
}
func TestParseValuesReadsLikeHelm(t *testing.T) {
	cases := map[string]struct {
		in      string
		want    map[string]any
		wantErr string
	}{
		"mapping":         {in: "a: 1\nb: {c: on}\n", want: map[string]any{"a": 1.0, "b": map[string]any{"c": true}}},
		"empty":           {in: "", want: map[string]any{}},
		"documents merge": {in: "a: {p: 1, q: 2}\n---\na: {q: 3}\nb: yes\n", want: map[string]any{"a": map[string]any{"p": 1.0, "q": 3.0}, "b": true}},
		// Helm reads values with YAML 1.1 rules, where a bare y is true.
		"yaml 1.1 booleans like helm": {in: "y: 1\nn: off\n", want: map[string]any{"true": 1.0, "false": false}},
		"anchors":                     {in: "base: &b {x: 1}\ncopy: *b\n", want: map[string]any{"base": map[string]any{"x": 1.0}, "copy": map[string]any{"x": 1.0}}},
		"duplicate key":               {in: "a: 1\na: 2\n", wantErr: `v.yaml: line 2: duplicate key "a" (first defined on line 1)`},
		"scalar document":             {in: "hello\n", wantErr: "v.yaml: line 1: top level must be a mapping of keys to values, got the scalar \"hello\""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseValues("v.yaml", []byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseValues (-want +got):\n%s", diff)
			}
		})
	}
}
