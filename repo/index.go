package repo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"
	"go.yaml.in/yaml/v3"
)

// DefaultMaxIndexSize caps an index.yaml when the caller gives no cap.
const DefaultMaxIndexSize = 64 << 20

// maxSkippedListed bounds Index.Skipped so a hostile index cannot grow it
// without limit; SkippedCount keeps the true count.
const maxSkippedListed = 100

// ChartVersion is one version of a chart as a repository index lists it.
// Only the fields charter uses are kept.
type ChartVersion struct {
	Name        string
	Version     string
	AppVersion  string
	Description string
	Keywords    []string
	URLs        []string
	Digest      string // hex sha256 of the archive as the index states it ("" when absent)
	Created     time.Time
	Deprecated  bool

	sv *semver.Version
}

// SemVer is the parsed Version (never nil for a version in an Index).
func (cv *ChartVersion) SemVer() *semver.Version { return cv.sv }

// Index is a loaded repository index: every chart's versions, newest first.
// It is never modified after LoadIndex returns it.
type Index struct {
	// Name is the repository's name, used in errors ("" until a Client or
	// the caller sets it; set it before sharing the Index).
	Name       string
	APIVersion string

	// Skipped lists (at most 100) entries that were dropped, with why;
	// SkippedCount counts all of them.
	Skipped      []string
	SkippedCount int

	charts map[string][]*ChartVersion
	names  []string // sorted
}

// Charts returns the chart names, sorted.
func (i *Index) Charts() []string { return slices.Clone(i.names) }

// Versions returns a chart's versions, newest first (nil if unknown). The
// slice must not be modified.
func (i *Index) Versions(name string) []*ChartVersion { return i.charts[name] }

// Len is the number of chart versions in the index.
func (i *Index) Len() int {
	n := 0
	for _, v := range i.charts {
		n += len(v)
	}
	return n
}

func (i *Index) repoName() string {
	if i.Name == "" {
		return "(unnamed)"
	}
	return i.Name
}

// Find returns the newest version of chart name that satisfies constraint:
// "" is the latest stable version (no prerelease); otherwise a
// Masterminds/semver constraint ("^1.2", "1.2.3" for exactly that version,
// ">=1.0.0-0" to allow prereleases, following semver's rules).
func (i *Index) Find(name, constraint string) (*ChartVersion, error) {
	versions, ok := i.charts[name]
	if !ok {
		return nil, fmt.Errorf("chart %q not found in repository %s", name, i.repoName())
	}
	if constraint == "" {
		for _, cv := range versions {
			if cv.sv.Prerelease() == "" {
				return cv, nil
			}
		}
		return nil, fmt.Errorf("no stable version of %s in repository %s (give a constraint like >=0.0.0-0 to allow prereleases)", name, i.repoName())
	}
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return nil, fmt.Errorf("version constraint %q: %w", constraint, err)
	}
	for _, cv := range versions {
		if c.Check(cv.sv) {
			return cv, nil
		}
	}
	return nil, fmt.Errorf("no version of %s matches %s", name, constraint)
}

// regexpMeta are the characters that make a search pattern a regular
// expression; "." alone does not, so "nginx.io" stays a plain substring.
const regexpMeta = `^$*+?()[]{}|\`

// Search returns chart versions whose name, description or a keyword
// contains pattern, case-insensitively. A pattern with any of ^$*+?()[]{}|\
// is a regular expression (Go syntax, case-insensitive) instead; one that
// does not compile is matched as a plain substring. "" matches everything.
// Only the newest matching version per chart is returned unless all is
// set; with a constraint (see Find; invalid ones match nothing) only
// versions satisfying it count, and without one prereleases do not. The
// result is sorted by name, then newest first.
func (i *Index) Search(pattern string, all bool, constraint string) []*ChartVersion {
	match := substringMatcher(pattern)
	if strings.ContainsAny(pattern, regexpMeta) {
		if re, err := regexp.Compile("(?i)" + pattern); err == nil {
			match = re.MatchString
		}
	}
	var c *semver.Constraints
	if constraint != "" {
		var err error
		if c, err = semver.NewConstraint(constraint); err != nil {
			return nil
		}
	}
	var out []*ChartVersion
	for _, name := range i.names {
		for _, cv := range i.charts[name] {
			if c != nil && !c.Check(cv.sv) || c == nil && !all && cv.sv.Prerelease() != "" {
				continue
			}
			if !match(cv.Name) && !match(cv.Description) && !slices.ContainsFunc(cv.Keywords, match) {
				continue
			}
			out = append(out, cv)
			if !all {
				break
			}
		}
	}
	return out
}

func substringMatcher(pattern string) func(string) bool {
	p := strings.ToLower(pattern)
	return func(s string) bool { return strings.Contains(strings.ToLower(s), p) }
}

// LoadIndex reads a Helm repository index (index.yaml, apiVersion v1, YAML
// or JSON) of at most max bytes (max <= 0: DefaultMaxIndexSize); a larger
// one is refused once max+1 bytes have been read. The block-style YAML
// written by Helm and similar tools is streamed; anything else falls back to
// a full YAML parse, which needs r to be an io.Seeker (files, bytes.Reader)
// or the input to be buffered, which LoadIndex does for other readers.
//
// Malformed YAML is an error naming the line. Duplicate keys inside a chart
// version skip that version (it is listed in Skipped); a chart listed twice
// under entries, or a duplicate top-level key, is an error.
func LoadIndex(r io.Reader, max int64) (*Index, error) {
	if max <= 0 {
		max = DefaultMaxIndexSize
	}
	seeker, _ := r.(io.Seeker)
	var start int64
	if seeker != nil {
		var err error
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			seeker = nil
		}
	}
	var tee *bytes.Buffer
	src := r
	if seeker == nil {
		tee = new(bytes.Buffer)
		src = io.TeeReader(r, tee)
	}
	lr := &capReader{r: src, left: max + 1}
	br := bufio.NewReaderSize(lr, 64<<10)

	first, err := firstByte(br)
	if err != nil {
		return nil, err
	}
	if first == '{' {
		return loadJSON(br, lr, max)
	}
	p := newParser(br)
	idx, err := p.parse()
	if err == nil && lr.over() {
		err = tooLarge(max)
	}
	var fb *fallbackError
	if !errors.As(err, &fb) {
		return idx, err
	}
	// Rewind and parse everything.
	var data []byte
	if seeker != nil {
		if _, err := seeker.Seek(start, io.SeekStart); err != nil {
			return nil, fmt.Errorf("load index: rewind: %w", err)
		}
		data, err = io.ReadAll(io.LimitReader(r, max+1))
		if err != nil {
			return nil, fmt.Errorf("load index: read: %w", err)
		}
	} else {
		rest, err := io.ReadAll(io.LimitReader(r, max+1-int64(tee.Len())))
		if err != nil {
			return nil, fmt.Errorf("load index: read: %w", err)
		}
		data = append(tee.Bytes(), rest...)
	}
	if int64(len(data)) > max {
		return nil, tooLarge(max)
	}
	return loadFull(data)
}

func tooLarge(max int64) error {
	return fmt.Errorf("load index: larger than the %d byte limit", max)
}

// firstByte peeks the first byte that is not white space or a BOM.
func firstByte(br *bufio.Reader) (byte, error) {
	if b, err := br.Peek(3); err == nil && string(b) == "\uFEFF" {
		br.Discard(3)
	}
	for {
		b, err := br.Peek(1)
		if err == io.EOF {
			return 0, errors.New("load index: empty")
		}
		if err != nil {
			return 0, fmt.Errorf("load index: read: %w", err)
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			br.Discard(1)
		default:
			return b[0], nil
		}
	}
}

// capReader reads at most left bytes; over reports whether the cap was hit.
type capReader struct {
	r    io.Reader
	left int64
	hit  bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.hit = true
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left <= 0 {
		c.hit = true
	}
	return n, err
}

func (c *capReader) over() bool { return c.hit }

// rawIndex is the full-parse shape of an index (YAML fallback and JSON).
type rawIndex struct {
	APIVersion string                       `json:"apiVersion" yaml:"apiVersion"`
	Entries    map[string][]rawChartVersion `json:"entries" yaml:"entries"`
}

type rawChartVersion struct {
	Name        string   `json:"name" yaml:"name"`
	Version     string   `json:"version" yaml:"version"`
	AppVersion  string   `json:"appVersion" yaml:"appVersion"`
	Description string   `json:"description" yaml:"description"`
	Keywords    []string `json:"keywords" yaml:"keywords"`
	URLs        []string `json:"urls" yaml:"urls"`
	Digest      string   `json:"digest" yaml:"digest"`
	Created     string   `json:"created" yaml:"created"`
	Deprecated  any      `json:"deprecated" yaml:"deprecated"`
}

func loadJSON(br *bufio.Reader, lr *capReader, max int64) (*Index, error) {
	var raw rawIndex
	if err := json.NewDecoder(br).Decode(&raw); err != nil {
		if lr.over() {
			return nil, tooLarge(max)
		}
		return nil, fmt.Errorf("load index: json: %w", err)
	}
	if lr.over() {
		return nil, tooLarge(max)
	}
	return fromRaw(&raw)
}

func loadFull(data []byte) (*Index, error) {
	var raw rawIndex
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("load index: %w", err)
	}
	return fromRaw(&raw)
}

func fromRaw(raw *rawIndex) (*Index, error) {
	if raw.APIVersion == "" {
		return nil, errors.New("load index: no apiVersion")
	}
	b := newBuilder()
	b.idx.APIVersion = raw.APIVersion
	names := make([]string, 0, len(raw.Entries))
	for name := range raw.Entries {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, r := range raw.Entries[name] {
			cv := &ChartVersion{
				Name: r.Name, Version: r.Version, AppVersion: r.AppVersion, Description: r.Description,
				Keywords: r.Keywords, URLs: r.URLs, Digest: r.Digest,
			}
			switch d := r.Deprecated.(type) {
			case bool:
				cv.Deprecated = d
			case string:
				cv.Deprecated = parseBool(d)
			}
			if r.Created != "" {
				cv.Created, _ = time.Parse(time.RFC3339Nano, r.Created)
			}
			b.add(name, cv, 0)
		}
	}
	return b.finish(), nil
}

func parseBool(s string) bool {
	switch s {
	case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y":
		return true
	}
	return false
}

// builder collects versions, interning repeated strings.
type builder struct {
	idx  *Index
	strs map[string]string
	keep []ChartVersion // slab the versions are allocated from
}

func newBuilder() *builder {
	return &builder{idx: &Index{charts: map[string][]*ChartVersion{}}, strs: map[string]string{}}
}

func (b *builder) intern(s string) string {
	if v, ok := b.strs[s]; ok {
		return v
	}
	b.strs[s] = s
	return s
}

// internBytes returns the interned string for p without allocating when it
// is already known.
func (b *builder) internBytes(p []byte) string {
	if v, ok := b.strs[string(p)]; ok {
		return v
	}
	s := string(p)
	b.strs[s] = s
	return s
}

func (b *builder) skip(line int, format string, args ...any) {
	b.idx.SkippedCount++
	if len(b.idx.Skipped) < maxSkippedListed {
		msg := fmt.Sprintf(format, args...)
		if line > 0 {
			msg = fmt.Sprintf("line %d: %s", line, msg)
		}
		b.idx.Skipped = append(b.idx.Skipped, msg)
	}
}

// alloc returns a zeroed ChartVersion from the slab.
func (b *builder) alloc() *ChartVersion {
	if len(b.keep) == cap(b.keep) {
		b.keep = make([]ChartVersion, 0, 256)
	}
	b.keep = b.keep[:len(b.keep)+1]
	return &b.keep[len(b.keep)-1]
}

// add validates, cleans and records a copy of one version listed under
// chart key.
func (b *builder) add(key string, cv *ChartVersion, line int) {
	key = b.intern(cleanText(key))
	cv.Name = b.intern(cleanText(cv.Name))
	if cv.Name == "" {
		cv.Name = key
	}
	if key == "" {
		b.skip(line, "entry without a chart name")
		return
	}
	cv.Version = b.intern(cleanText(cv.Version))
	sv, err := semver.StrictNewVersion(cv.Version)
	if err != nil {
		sv, err = semver.NewVersion(cv.Version)
	}
	if err != nil {
		b.skip(line, "chart %s: version %q is not a semantic version", key, cv.Version)
		return
	}
	cv.sv = sv
	cv.AppVersion = b.intern(cleanText(cv.AppVersion))
	cv.Description = b.intern(cleanText(cv.Description))
	for k, kw := range cv.Keywords {
		cv.Keywords[k] = b.intern(cleanText(kw))
	}
	cv.Digest = strings.TrimPrefix(cv.Digest, "sha256:")
	slot := b.alloc()
	*slot = *cv
	b.idx.charts[key] = append(b.idx.charts[key], slot)
}

func (b *builder) finish() *Index {
	idx := b.idx
	idx.names = make([]string, 0, len(idx.charts))
	for name, versions := range idx.charts {
		idx.names = append(idx.names, name)
		slices.SortStableFunc(versions, func(x, y *ChartVersion) int { return y.sv.Compare(x.sv) })
	}
	slices.Sort(idx.names)
	return idx
}

// cleanText removes control characters, C1 controls and whole terminal
// escape sequences (CSI, OSC, two-byte ESC sequences); tabs and newlines
// become spaces; invalid UTF-8 is replaced.
func cleanText(s string) string {
	dirty, high := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == 0xc2 { // 0xc2 starts the C1 controls (and some harmless characters)
			dirty = true
			break
		}
		high = high || c >= 0x80
	}
	if !dirty && (!high || utf8.ValidString(s)) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var out strings.Builder
	out.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b || r == 0x9b: // ESC, or the one-character CSI
			i += size
			if r == 0x9b || i < len(s) && s[i] == '[' {
				if r == 0x1b {
					i++
				}
				for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) { // parameters up to the final byte
					i++
				}
				i++
			} else if i < len(s) && s[i] == ']' { // OSC: up to BEL or ESC \
				for i < len(s) && s[i] != 0x07 && s[i] != 0x1b {
					i++
				}
				if i < len(s) && s[i] == 0x1b {
					i++
				}
				i++
			} else {
				i++ // ESC + one character
			}
			continue
		case r == '\t' || r == '\n' || r == '\r':
			out.WriteByte(' ')
		case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f:
		default:
			out.WriteString(s[i : i+size])
		}
		i += size
	}
	return strings.TrimSpace(out.String())
}
