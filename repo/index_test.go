package repo

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// flat is an Index as plain data, for comparisons.
func flat(idx *Index) map[string][]ChartVersion {
	out := map[string][]ChartVersion{}
	for _, name := range idx.Charts() {
		for _, cv := range idx.Versions(name) {
			c := *cv
			c.sv = nil
			if len(c.Keywords) == 0 {
				c.Keywords = nil
			}
			if len(c.URLs) == 0 {
				c.URLs = nil
			}
			out[name] = append(out[name], c)
		}
	}
	return out
}

func mustLoad(t *testing.T, data string) *Index {
	t.Helper()
	idx, err := LoadIndex(strings.NewReader(data), 0)
	if err != nil {
		t.Fatalf("LoadIndex: %v", err)
	}
	return idx
}

// scanOnly runs the streaming scanner alone; ok is false when it fell back.
func scanOnly(t *testing.T, data string) (*Index, bool) {
	t.Helper()
	idx, err := newParser(bufioReader(data)).parse()
	if _, fb := err.(*fallbackError); fb {
		return nil, false
	}
	if err != nil {
		t.Fatalf("scanner: %v", err)
	}
	return idx, true
}

func fullOnly(t *testing.T, data string) *Index {
	t.Helper()
	idx, err := loadFull([]byte(data))
	if err != nil {
		t.Fatalf("full parse: %v", err)
	}
	return idx
}

func TestScannerMatchesFullParserOnHelmOutput(t *testing.T) {
	data := string(genIndex(t, 40, 12))
	got, ok := scanOnly(t, data)
	if !ok {
		t.Fatal("scanner fell back on Helm's own output")
	}
	want := fullOnly(t, data)
	if diff := cmp.Diff(flat(want), flat(got), cmpopts.IgnoreUnexported(ChartVersion{})); diff != "" {
		t.Errorf("scanner differs from full parse (-want +got):\n%s", diff)
	}
	if got.Len() != 40*12 {
		t.Errorf("Len = %d, want %d", got.Len(), 40*12)
	}
}

func TestLoadIndexStyles(t *testing.T) {
	const head = "apiVersion: v1\nentries:\n"
	tests := map[string]struct {
		yaml     string
		scanned  bool // the streaming scanner handles it (else: full parser)
		name     string
		want     ChartVersion
		versions int
	}{
		"helm style": {
			yaml:    head + "  a:\n  - name: a\n    version: 1.0.0\n    description: plain text\n    urls:\n    - https://x/a-1.0.0.tgz\n    keywords:\n    - k1\n    digest: abc\n    created: \"2026-01-02T03:04:05.5Z\"\n",
			scanned: true, name: "a", versions: 1,
			want: ChartVersion{Name: "a", Version: "1.0.0", Description: "plain text", URLs: []string{"https://x/a-1.0.0.tgz"}, Keywords: []string{"k1"}, Digest: "abc", Created: time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC)},
		},
		"indented sequences and comments": {
			yaml:    "# top comment\n---\napiVersion: v1\nentries:\n    a:\n        # a comment\n        -   name: a   # trailing\n            version: \"1.0.0\"\n            keywords:\n              - 'it''s'\n              - \"q\\\"x\"\n\n            deprecated: true\n",
			scanned: true, name: "a", versions: 1,
			want: ChartVersion{Name: "a", Version: "1.0.0", Keywords: []string{"it's", `q"x`}, Deprecated: true},
		},
		"folded plain and quoted multi-line": {
			yaml:    head + "  a:\n  - name: a\n    version: 1.0.0\n    appVersion: \"2.0\"\n    description: a long plain\n      description over\n      three lines\n    urls: [\"https://x/a.tgz\", b.tgz]\n  b:\n  - name: b\n    version: 1.0.0\n    description: \"quoted over \\\n      two\n      lines\"\n",
			scanned: true, name: "a", versions: 1,
			want: ChartVersion{Name: "a", Version: "1.0.0", AppVersion: "2.0", Description: "a long plain description over three lines", URLs: []string{"https://x/a.tgz", "b.tgz"}},
		},
		"block scalars": {
			yaml:    head + "  a:\n  - name: a\n    version: 1.0.0\n    description: |\n      line one\n      line two\n    annotations:\n      x: |-\n        - not: an entry\n    urls:\n    - >-\n      https://x/\n      a.tgz\n",
			scanned: true, name: "a", versions: 1,
			want: ChartVersion{Name: "a", Version: "1.0.0", Description: "line one line two", URLs: []string{"https://x/ a.tgz"}},
		},
		"crlf line ends": {
			yaml: "apiVersion: v1\r\nentries:\r\n  a:\r\n  - name: a\r\n    version: 1.0.0\r\n", scanned: true, name: "a", versions: 1,
			want: ChartVersion{Name: "a", Version: "1.0.0"},
		},
		"flow style falls back": {
			yaml: "apiVersion: v1\nentries: {a: [{name: a, version: 1.0.0, description: flow}]}\n", name: "a", versions: 1,
			want: ChartVersion{Name: "a", Version: "1.0.0", Description: "flow"},
		},
		"anchors fall back": {
			yaml: head + "  a:\n  - name: a\n    version: 1.0.0\n    description: &d shared\n  b:\n  - name: b\n    version: 1.0.0\n    description: *d\n", name: "b", versions: 1,
			want: ChartVersion{Name: "b", Version: "1.0.0", Description: "shared"},
		},
		"json": {
			yaml: `{"apiVersion":"v1","entries":{"a":[{"name":"a","version":"1.0.0","urls":["u"],"deprecated":true}]}}`, name: "a", versions: 1,
			want: ChartVersion{Name: "a", Version: "1.0.0", URLs: []string{"u"}, Deprecated: true},
		},
		"invalid semver skipped, name from the key": {
			yaml: head + "  a:\n  - version: not-a-version\n  - version: 2.0.0\n", scanned: true, name: "a", versions: 1,
			want: ChartVersion{Name: "a", Version: "2.0.0"},
		},
		"duplicate key in a version skips it": {
			yaml: head + "  a:\n  - name: a\n    version: 9.0.0\n    version: 9.0.1\n  - name: a\n    version: 1.0.0\n", scanned: true, name: "a", versions: 1,
			want: ChartVersion{Name: "a", Version: "1.0.0"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			idx := mustLoad(t, tt.yaml)
			vs := idx.Versions(tt.name)
			if len(vs) != tt.versions {
				t.Fatalf("%d versions of %s, want %d (skipped: %v)", len(vs), tt.name, tt.versions, idx.Skipped)
			}
			got := *vs[0]
			got.sv = nil
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(ChartVersion{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			scanned, ok := scanOnly(t, tt.yaml)
			if ok != tt.scanned {
				t.Fatalf("scanner handled it: %v, want %v", ok, tt.scanned)
			}
			if ok && !strings.HasPrefix(tt.yaml, "{") && !strings.Contains(name, "duplicate") {
				if diff := cmp.Diff(flat(fullOnly(t, tt.yaml)), flat(scanned), cmpopts.IgnoreUnexported(ChartVersion{})); diff != "" {
					t.Errorf("scanner differs from full parse (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestLoadIndexBadInput(t *testing.T) {
	tests := map[string]struct {
		data string
		max  int64
		want string
	}{
		"malformed names the line":   {data: "apiVersion: v1\nentries:\n  a:\n  - name: a\n    version: 1.0.0\n   bad: [\n", want: "line "},
		"mapping in plain scalar":    {data: "apiVersion: v1\nentries:\n  a:\n  - name: a\n    description: x: y\n", want: "line 5"},
		"duplicate chart":            {data: "apiVersion: v1\nentries:\n  a: []\n  a: []\n", want: `line 4: chart "a" listed twice`},
		"duplicate top-level key":    {data: "apiVersion: v1\napiVersion: v1\n", want: `line 2: key "apiVersion" defined twice`},
		"no apiVersion":              {data: "entries: {}\n", want: "no apiVersion"},
		"empty":                      {data: "\n\n", want: "empty"},
		"over the cap":               {data: "apiVersion: v1\nentries: {}\n" + strings.Repeat("# pad\n", 100), max: 100, want: "larger than the 100 byte limit"},
		"over the cap, falling back": {data: "apiVersion: v1\nentries: {a: []}\n" + strings.Repeat("# pad\n", 100), max: 100, want: "larger than the 100 byte limit"},
		"over the cap, json":         {data: `{"apiVersion":"v1","entries":{}}` + strings.Repeat(" ", 100), max: 50, want: "larger than the 50 byte limit"},
		"unterminated quote":         {data: "apiVersion: v1\nentries:\n  a:\n  - name: \"a\n", want: "line"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := LoadIndex(strings.NewReader(tt.data), tt.max)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// onlyReader hides Seek, so LoadIndex must buffer to fall back.
type onlyReader struct{ io.Reader }

func TestLoadIndexFallsBackOnAStream(t *testing.T) {
	data := "apiVersion: v1\nentries:\n  a:\n  - {name: a, version: 1.0.0}\n"
	idx, err := LoadIndex(onlyReader{strings.NewReader(data)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cv, err := idx.Find("a", ""); err != nil || cv.Version != "1.0.0" {
		t.Fatalf("Find = %v, %v", cv, err)
	}
}

func TestLoadIndexCapStopsReading(t *testing.T) {
	r := &countingReader{r: io.MultiReader(strings.NewReader("apiVersion: v1\nentries:\n"), zeros{})}
	_, err := LoadIndex(r, 1<<20)
	if err == nil {
		t.Fatal("no error for an endless index")
	}
	if r.n > 2<<20 {
		t.Errorf("read %d bytes with a 1 MiB cap", r.n)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '#'
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestLoadIndexStripsTerminalEscapes(t *testing.T) {
	data := "apiVersion: v1\nentries:\n  \"evil\\e[2J\":\n  - name: \"evil\\e[2J\"\n    version: 1.0.0\n" +
		"    description: \"red \\e[31mtext\\e[0m \\e]0;title\\a bell\\a and \\u009b1mC1\"\n    keywords:\n    - \"k\\x07w\"\n"
	for name, r := range map[string]io.Reader{"seekable": strings.NewReader(data), "stream": onlyReader{bytes.NewBufferString(data)}} {
		t.Run(name, func(t *testing.T) {
			idx, err := LoadIndex(r, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][]ChartVersion{"evil": {{Name: "evil", Version: "1.0.0", Description: "red text  bell and C1", Keywords: []string{"kw"}}}}
			if diff := cmp.Diff(want, flat(idx), cmpopts.IgnoreUnexported(ChartVersion{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCleanText(t *testing.T) {
	tests := map[string]string{
		"plain":                "plain",
		"\x1b[1;31mbold\x1b[m": "bold",
		"a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\": "alink",
		"tab\there\nnl": "tab here nl",
		"\xff bad utf8": "\uFFFD bad utf8",
		"keep é ©":      "keep é ©",
	}
	for in, want := range tests {
		if got := cleanText(in); got != want {
			t.Errorf("cleanText(%q) = %q, want %q", in, got, want)
		}
	}
}

func testIndex(t *testing.T) *Index {
	t.Helper()
	idx := mustLoad(t, `apiVersion: v1
entries:
  nginx:
  - {name: nginx, version: 2.0.0-rc.1, description: Web server, keywords: [http, proxy]}
  - {name: nginx, version: 1.10.0, description: Web server, keywords: [http, proxy]}
  - {name: nginx, version: 1.2.3, description: Web server, keywords: [http, proxy]}
  - {name: nginx, version: 1.9.0, description: Web server, keywords: [http, proxy]}
  postgres:
  - {name: postgres, version: 0.1.0, description: SQL Database, keywords: [db]}
  beta:
  - {name: beta, version: 0.1.0-alpha, description: only prereleases}
`)
	idx.Name = "stable"
	return idx
}

func TestFind(t *testing.T) {
	idx := testIndex(t)
	tests := map[string]struct{ chart, constraint, want, err string }{
		"latest stable":          {chart: "nginx", want: "1.10.0"},
		"caret":                  {chart: "nginx", constraint: "^1.2", want: "1.10.0"},
		"exact":                  {chart: "nginx", constraint: "1.2.3", want: "1.2.3"},
		"tilde":                  {chart: "nginx", constraint: "~1.9", want: "1.9.0"},
		"prereleases when asked": {chart: "nginx", constraint: ">=1.0.0-0", want: "2.0.0-rc.1"},
		"unknown chart":          {chart: "nope", err: `chart "nope" not found in repository stable`},
		"no match":               {chart: "nginx", constraint: "^9", err: "no version of nginx matches ^9"},
		"only prereleases":       {chart: "beta", err: "no stable version of beta"},
		"bad constraint":         {chart: "nginx", constraint: "><", err: `version constraint "><"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cv, err := idx.Find(tt.chart, tt.constraint)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || cv.Version != tt.want {
				t.Fatalf("Find = %v, %v; want %s", cv, err, tt.want)
			}
		})
	}
}

func TestSearch(t *testing.T) {
	idx := testIndex(t)
	tests := map[string]struct {
		pattern, constraint string
		all                 bool
		want                []string
	}{
		"substring in name":         {pattern: "NGI", want: []string{"nginx-1.10.0"}},
		"description":               {pattern: "sql", want: []string{"postgres-0.1.0"}},
		"keyword":                   {pattern: "proxy", want: []string{"nginx-1.10.0"}},
		"dot is not a regexp":       {pattern: "1.10", want: nil},
		"regexp":                    {pattern: "^(post|ng)", want: []string{"nginx-1.10.0", "postgres-0.1.0"}},
		"all versions":              {pattern: "nginx", all: true, want: []string{"nginx-2.0.0-rc.1", "nginx-1.10.0", "nginx-1.9.0", "nginx-1.2.3"}},
		"constraint":                {pattern: "nginx", constraint: "<1.10", want: []string{"nginx-1.9.0"}},
		"everything, stable only":   {pattern: "", want: []string{"nginx-1.10.0", "postgres-0.1.0"}},
		"bad regexp is a substring": {pattern: "(", want: nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, cv := range idx.Search(tt.pattern, tt.all, tt.constraint) {
				got = append(got, cv.Name+"-"+cv.Version)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
