package repo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The streaming scanner reads the block-style YAML subset that Helm's
// encoder (and ChartMuseum, chart-releaser) writes, line by line, without
// building a node tree. It keeps only the fields of ChartVersion and walks
// over everything else by indentation. Whatever it does not understand —
// flow collections other than [] / {} / one-line lists, anchors, aliases,
// tags, tabs in indentation, quoted keys, several documents, or malformed
// lines — makes it give up with a fallbackError, and LoadIndex parses the
// whole input with a full YAML parser instead (which reports malformed input
// with its line).

// fallbackError says the scanner met YAML it does not handle.
type fallbackError struct {
	line int
	why  string
}

func (e *fallbackError) Error() string {
	return fmt.Sprintf("line %d: %s: needs the full YAML parser", e.line, e.why)
}

type line struct {
	indent int    // leading spaces
	text   []byte // after the indentation, trailing white space removed
	blank  bool   // empty or only a comment
	tab    bool   // text starts with a tab
	no     int    // 1-based line number
}

type parser struct {
	br   *bufio.Reader
	cur  line
	have bool // cur is peeked and not consumed
	no   int
	long []byte // holds a line longer than the reader's buffer
	buf  []byte // scratch for the scalar being read
	err  error  // read error

	b      *builder
	seen   []string // keys of the current chart version
	charts map[string]bool
	cv     ChartVersion
}

func newParser(br *bufio.Reader) *parser {
	return &parser{br: br, b: newBuilder(), charts: map[string]bool{}}
}

func (p *parser) fallback(why string) error {
	return &fallbackError{line: p.no, why: why}
}

// read reads the next line into p.cur; false at the end or on error. The
// text stays valid until the next read.
func (p *parser) read() bool {
	b, err := p.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		p.long = append(p.long[:0], b...)
		for err == bufio.ErrBufferFull {
			b, err = p.br.ReadSlice('\n')
			p.long = append(p.long, b...)
		}
		b = p.long
	}
	if err != nil && err != io.EOF {
		p.err = err
		return false
	}
	if len(b) == 0 {
		return false
	}
	p.no++
	end := len(b)
	for end > 0 && (b[end-1] == '\n' || b[end-1] == '\r' || b[end-1] == ' ' || b[end-1] == '\t') {
		end--
	}
	i := 0
	for i < end && b[i] == ' ' {
		i++
	}
	t := b[i:end]
	l := line{indent: i, text: t, no: p.no}
	l.tab = len(t) > 0 && t[0] == '\t'
	tt := t
	for len(tt) > 0 && tt[0] == '\t' {
		tt = tt[1:]
	}
	l.blank = len(tt) == 0 || tt[0] == '#'
	p.cur = l
	return true
}

func (p *parser) peek() (*line, bool) {
	if p.have {
		return &p.cur, true
	}
	if !p.read() {
		return nil, false
	}
	p.have = true
	return &p.cur, true
}

func (p *parser) consume() { p.have = false }

// peekContent skips blank and comment lines and peeks the next other one.
func (p *parser) peekContent() (*line, bool) {
	for {
		l, ok := p.peek()
		if !ok || !l.blank {
			return l, ok
		}
		p.consume()
	}
}

func (p *parser) parse() (*Index, error) {
	var top []string
	started := false
	for {
		l, ok := p.peekContent()
		if !ok {
			break
		}
		if l.indent != 0 || l.tab {
			return nil, p.fallback("unexpected indentation")
		}
		if string(l.text) == "---" && !started {
			started = true
			p.consume()
			continue
		}
		started = true
		key, rest, ok := splitKey(l.text)
		if !ok {
			return nil, p.fallback("not a key: value line")
		}
		k := p.b.internBytes(key)
		if slices.Contains(top, k) {
			return nil, fmt.Errorf("load index: line %d: key %q defined twice", l.no, k)
		}
		top = append(top, k)
		p.consume()
		var err error
		switch k {
		case "apiVersion":
			var v []byte
			v, err = p.scalar(rest, 0)
			p.b.idx.APIVersion = string(v)
		case "entries":
			err = p.entries(rest)
		default:
			err = p.skipValue(rest, 0)
		}
		if err != nil {
			return nil, err
		}
	}
	if p.err != nil {
		return nil, fmt.Errorf("load index: read: %w", p.err)
	}
	if p.b.idx.APIVersion == "" {
		return nil, errors.New("load index: no apiVersion")
	}
	return p.b.finish(), nil
}

func (p *parser) entries(rest []byte) error {
	if rest = trimComment(rest); len(rest) > 0 {
		if string(rest) == "{}" || isNull(rest) {
			return nil
		}
		return p.fallback("entries is not a block mapping")
	}
	l, ok := p.peekContent()
	if !ok || l.indent == 0 {
		return nil
	}
	e := l.indent
	for {
		l, ok := p.peekContent()
		if !ok || l.indent < e {
			return nil
		}
		if l.indent > e || l.tab {
			return p.fallback("unexpected indentation")
		}
		key, rest, ok := splitKey(l.text)
		if !ok {
			return p.fallback("not a chart name")
		}
		name := p.b.internBytes(key)
		if p.charts[name] {
			return fmt.Errorf("load index: line %d: chart %q listed twice under entries", l.no, name)
		}
		p.charts[name] = true
		p.consume()
		if err := p.versions(name, rest, e); err != nil {
			return err
		}
	}
}

func isDash(t []byte) bool { return len(t) > 0 && t[0] == '-' && (len(t) == 1 || t[1] == ' ') }

func (p *parser) versions(name string, rest []byte, e int) error {
	if rest = trimComment(rest); len(rest) > 0 {
		if string(rest) == "[]" || isNull(rest) {
			return nil
		}
		return p.fallback("versions are not a block sequence")
	}
	l, ok := p.peekContent()
	if !ok || l.indent < e || !isDash(l.text) {
		if ok && l.indent > e {
			return p.fallback("versions are not a block sequence")
		}
		return nil
	}
	s := l.indent
	for {
		l, ok := p.peekContent()
		if !ok || l.indent < s || l.indent == s && !isDash(l.text) {
			return nil
		}
		if l.indent > s || l.tab {
			return p.fallback("unexpected indentation")
		}
		if err := p.item(name, s); err != nil {
			return err
		}
	}
}

// item reads one chart version: a mapping that starts on the "- " line.
func (p *parser) item(name string, s int) error {
	l := &p.cur
	no := l.no
	t := l.text[1:]
	sp := 0
	for sp < len(t) && t[sp] == ' ' {
		sp++
	}
	var k int
	var first []byte
	p.consume()
	if sp == len(t) {
		nl, ok := p.peekContent()
		if !ok || nl.indent <= s {
			p.b.skip(no, "chart %s: empty entry", name)
			return nil
		}
		k = nl.indent
	} else {
		k = s + 1 + sp
		first = t[sp:]
	}
	cv := &p.cv
	*cv = ChartVersion{}
	p.seen = p.seen[:0]
	dup := ""
	for {
		var text []byte
		if first != nil {
			text, first = first, nil
		} else {
			l, ok := p.peekContent()
			if !ok || l.indent < k {
				break
			}
			if l.indent > k || l.tab {
				return p.fallback("unexpected indentation")
			}
			text = l.text
			p.consume()
		}
		key, rest, ok := splitKey(text)
		if !ok {
			return p.fallback("not a key: value line")
		}
		kk := p.b.internBytes(key)
		if slices.Contains(p.seen, kk) {
			dup = kk
		} else {
			p.seen = append(p.seen, kk)
		}
		var err error
		var v []byte
		switch kk {
		case "name":
			v, err = p.scalar(rest, k)
			cv.Name = p.b.internBytes(v)
		case "version":
			v, err = p.scalar(rest, k)
			cv.Version = p.b.internBytes(v)
		case "appVersion":
			v, err = p.scalar(rest, k)
			cv.AppVersion = p.b.internBytes(v)
		case "description":
			v, err = p.scalar(rest, k)
			cv.Description = p.b.internBytes(v)
		case "digest":
			v, err = p.scalar(rest, k)
			cv.Digest = string(v)
		case "created":
			v, err = p.scalar(rest, k)
			if len(v) > 0 {
				cv.Created, _ = time.Parse(time.RFC3339Nano, string(v))
			}
		case "deprecated":
			v, err = p.scalar(rest, k)
			cv.Deprecated = parseBool(string(v))
		case "urls":
			cv.URLs = cv.URLs[:0]
			err = p.list(rest, k, func(v []byte) { cv.URLs = append(cv.URLs, string(v)) })
		case "keywords":
			cv.Keywords = cv.Keywords[:0]
			err = p.list(rest, k, func(v []byte) { cv.Keywords = append(cv.Keywords, p.b.internBytes(v)) })
		default:
			err = p.skipValue(rest, k)
		}
		if err != nil {
			return err
		}
	}
	if dup != "" {
		p.b.skip(no, "chart %s: key %q appears twice in one version", name, dup)
		return nil
	}
	p.b.add(name, cv, no)
	return nil
}

// skipValue walks over the value of a key at indentation k: rest, the lines
// indented more than k, and a sequence at k itself when rest is empty.
func (p *parser) skipValue(rest []byte, k int) error {
	compact := len(trimComment(rest)) == 0
	for {
		l, ok := p.peek()
		if !ok {
			return nil
		}
		if l.blank || l.indent > k || compact && l.indent == k && isDash(l.text) {
			p.consume()
			continue
		}
		return nil
	}
}

// list reads a sequence of scalars: [a, b] on the line, or "- x" lines.
func (p *parser) list(rest []byte, k int, add func([]byte)) error {
	if len(rest) > 0 && rest[0] == '[' {
		return p.flowList(rest, add)
	}
	if rest = trimComment(rest); len(rest) > 0 {
		if isNull(rest) {
			return nil
		}
		return p.fallback("a scalar where a list is expected")
	}
	l, ok := p.peekContent()
	if !ok || l.indent < k || !isDash(l.text) {
		if ok && l.indent > k {
			return p.fallback("a mapping where a list is expected")
		}
		return nil
	}
	s := l.indent
	for {
		l, ok := p.peekContent()
		if !ok || l.indent < s || l.indent == s && !isDash(l.text) {
			return nil
		}
		if l.indent > s || l.tab {
			return p.fallback("unexpected indentation")
		}
		t := bytes.TrimLeft(l.text[1:], " ")
		p.consume()
		if len(t) == 0 {
			return p.fallback("nested list item")
		}
		v, err := p.scalar(t, s)
		if err != nil {
			return err
		}
		add(v)
	}
}

// flowList reads a one-line [a, "b", 'c'] of scalars.
func (p *parser) flowList(rest []byte, add func([]byte)) error {
	s := rest[1:]
	for {
		s = bytes.TrimLeft(s, " ")
		if len(s) == 0 {
			return p.fallback("flow list over several lines")
		}
		if s[0] == ']' {
			if t := bytes.TrimLeft(s[1:], " "); len(t) > 0 && t[0] != '#' {
				return p.fallback("text after a flow list")
			}
			return nil
		}
		var v []byte
		switch s[0] {
		case '"', '\'':
			end := closingQuote(s)
			if end < 0 {
				return p.fallback("quoted item")
			}
			var err error
			if v, err = p.quotedOneLine(s[:end+1]); err != nil {
				return err
			}
			s = s[end+1:]
		case '[', '{', '&', '*', '!', ',':
			return p.fallback("flow list item")
		default:
			i := bytes.IndexAny(s, ",]")
			if i < 0 {
				return p.fallback("flow list over several lines")
			}
			v = append(p.buf[:0], bytes.TrimRight(s[:i], " ")...)
			p.buf = v
			s = s[i:]
		}
		add(v)
		s = bytes.TrimLeft(s, " ")
		if len(s) > 0 && s[0] == ',' {
			s = s[1:]
		}
	}
}

// closingQuote is the index of the quote closing s[0], or -1.
func closingQuote(s []byte) int {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q && q == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

func (p *parser) quotedOneLine(s []byte) ([]byte, error) {
	if s[0] == '"' {
		return p.doubleQuoted(s)
	}
	return p.singleQuoted(s)
}

// scalar reads the scalar value of a key (or list item) at indentation k
// whose text after "key:" is rest. The result is valid until the next call.
func (p *parser) scalar(rest []byte, k int) ([]byte, error) {
	if len(rest) == 0 || rest[0] == '#' {
		l, ok := p.peekContent()
		if !ok || l.indent <= k {
			if ok && l.indent == k && isDash(l.text) {
				return nil, p.fallback("a list where a scalar is expected")
			}
			return nil, nil
		}
		if l.tab || isDash(l.text) || isIndicator(l.text[0]) {
			return nil, p.fallback("a collection where a scalar is expected")
		}
		if _, _, isKey := splitKey(l.text); isKey {
			return nil, p.fallback("a mapping where a scalar is expected")
		}
		p.buf = p.buf[:0]
		return p.plain(k)
	}
	switch rest[0] {
	case '"':
		return p.doubleQuoted(rest)
	case '\'':
		return p.singleQuoted(rest)
	case '|', '>':
		return p.block(rest, k)
	case '-', '?', ':':
		if len(rest) == 1 || rest[1] == ' ' {
			return nil, p.fallback("a collection where a scalar is expected")
		}
	default:
		if isIndicator(rest[0]) {
			return nil, p.fallback("unsupported scalar")
		}
	}
	v := trimComment(rest)
	if bytes.Contains(v, []byte(": ")) || v[len(v)-1] == ':' {
		return nil, p.fallback("mapping value in a plain scalar")
	}
	if isNull(v) {
		if l, ok := p.peek(); !ok || l.blank || l.indent <= k {
			return nil, nil
		}
	}
	p.buf = append(p.buf[:0], v...)
	return p.plain(k)
}

func isIndicator(c byte) bool {
	switch c {
	case '[', ']', '{', '}', '&', '*', '!', '%', '@', '`', '|', '>', '\'', '"', ',', '#':
		return true
	}
	return false
}

func isNull(v []byte) bool {
	switch string(v) {
	case "~", "null", "Null", "NULL":
		return true
	}
	return false
}

// plain appends the continuation lines (indented more than k) of a plain
// scalar to p.buf, folding line breaks into spaces.
func (p *parser) plain(k int) ([]byte, error) {
	empty := 0
	for {
		l, ok := p.peek()
		if !ok {
			return p.buf, nil
		}
		if len(l.text) == 0 {
			empty++
			p.consume()
			continue
		}
		if l.indent <= k {
			return p.buf, nil
		}
		if l.blank || l.tab {
			return nil, p.fallback("comment or tab inside a plain scalar")
		}
		t := l.text
		if bytes.Contains(t, []byte(": ")) || t[len(t)-1] == ':' || bytes.Contains(t, []byte(" #")) {
			return nil, p.fallback("mapping value or comment in a plain scalar")
		}
		if len(p.buf) > 0 {
			if empty > 0 {
				for range empty {
					p.buf = append(p.buf, '\n')
				}
			} else {
				p.buf = append(p.buf, ' ')
			}
		}
		empty = 0
		p.buf = append(p.buf, t...)
		p.consume()
	}
}

// nextQuotedLine moves to the next line of a multi-line quoted scalar and
// returns its text without leading white space and how many empty lines
// were passed.
func (p *parser) nextQuotedLine() ([]byte, int, error) {
	empty := 0
	for {
		l, ok := p.peek()
		if !ok {
			return nil, 0, p.fallback("unterminated quoted scalar")
		}
		t := bytes.TrimLeft(l.text, " \t")
		p.consume()
		if len(t) == 0 {
			empty++
			continue
		}
		return t, empty, nil
	}
}

func (p *parser) afterQuote(s []byte) error {
	t := bytes.TrimLeft(s, " \t")
	if len(t) > 0 && (t[0] != '#' || len(t) == len(s)) {
		return p.fallback("text after a quoted scalar")
	}
	return nil
}

func (p *parser) singleQuoted(rest []byte) ([]byte, error) {
	p.buf = p.buf[:0]
	s := rest[1:]
	for {
		for i := 0; i < len(s); i++ {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					p.buf = append(p.buf, '\'')
					i++
					continue
				}
				return p.buf, p.afterQuote(s[i+1:])
			}
			p.buf = append(p.buf, s[i])
		}
		p.buf = bytes.TrimRight(p.buf, " \t")
		t, empty, err := p.nextQuotedLine()
		if err != nil {
			return nil, err
		}
		p.foldBreak(empty, false)
		s = t
	}
}

func (p *parser) foldBreak(empty int, escaped bool) {
	switch {
	case empty > 0:
		for range empty {
			p.buf = append(p.buf, '\n')
		}
	case !escaped:
		p.buf = append(p.buf, ' ')
	}
}

func (p *parser) doubleQuoted(rest []byte) ([]byte, error) {
	p.buf = p.buf[:0]
	s := rest[1:]
	for {
		escaped := false
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '"' {
				return p.buf, p.afterQuote(s[i+1:])
			}
			if c != '\\' {
				p.buf = append(p.buf, c)
				continue
			}
			if i+1 == len(s) {
				escaped = true
				break
			}
			n, err := p.escape(s[i+1:])
			if err != nil {
				return nil, err
			}
			i += n
		}
		if !escaped {
			p.buf = bytes.TrimRight(p.buf, " \t")
		}
		t, empty, err := p.nextQuotedLine()
		if err != nil {
			return nil, err
		}
		p.foldBreak(empty, escaped)
		s = t
	}
}

var (
	simpleEscapes = map[byte]string{
		'0': "\x00", 'a': "\a", 'b': "\b", 't': "\t", '\t': "\t", 'n': "\n", 'v': "\v", 'f': "\f",
		'r': "\r", 'e': "\x1b", ' ': " ", '"': "\"", '/': "/", '\\': "\\", 'N': "\u0085",
		'_': "\u00a0", 'L': "\u2028", 'P': "\u2029",
	}
	escapeWidths = map[byte]int{'x': 2, 'u': 4, 'U': 8}
)

// escape appends the character of the escape sequence starting at s (after
// the backslash) and returns how many bytes of s it used.
func (p *parser) escape(s []byte) (int, error) {
	if r, ok := simpleEscapes[s[0]]; ok {
		p.buf = append(p.buf, r...)
		return 1, nil
	}
	width := escapeWidths[s[0]]
	if width == 0 || len(s) < 1+width {
		return 0, p.fallback("bad escape in a quoted scalar")
	}
	n, err := strconv.ParseUint(string(s[1:1+width]), 16, 32)
	if err != nil || !utf8.ValidRune(rune(n)) {
		return 0, p.fallback("bad escape in a quoted scalar")
	}
	p.buf = utf8.AppendRune(p.buf, rune(n))
	return 1 + width, nil
}

// block reads a literal (|) or folded (>) block scalar of a key at
// indentation k.
func (p *parser) block(rest []byte, k int) ([]byte, error) {
	literal := rest[0] == '|'
	chomp := byte(0)
	ind := 0
	h := rest[1:]
	for len(h) > 0 && h[0] != ' ' {
		switch c := h[0]; {
		case (c == '-' || c == '+') && chomp == 0:
			chomp = c
		case c >= '1' && c <= '9' && ind == 0:
			ind = int(c - '0')
		default:
			return nil, p.fallback("bad block scalar header")
		}
		h = h[1:]
	}
	if t := bytes.TrimLeft(h, " "); len(t) > 0 && t[0] != '#' {
		return nil, p.fallback("text after a block scalar header")
	}
	ci := 0
	if ind > 0 {
		ci = k + ind
	}
	p.buf = p.buf[:0]
	empty := 0
	started := false
	prevMore := false
	for {
		l, ok := p.peek()
		if !ok {
			break
		}
		if len(l.text) == 0 {
			empty++
			p.consume()
			continue
		}
		if ci == 0 {
			if l.indent <= k {
				break
			}
			ci = l.indent
		}
		if l.indent < ci {
			if l.indent > k && !l.blank {
				return nil, p.fallback("block scalar indentation")
			}
			break
		}
		more := l.indent > ci || l.tab
		if started {
			switch {
			case literal || more || prevMore:
				for range empty + 1 {
					p.buf = append(p.buf, '\n')
				}
			case empty > 0:
				for range empty {
					p.buf = append(p.buf, '\n')
				}
			default:
				p.buf = append(p.buf, ' ')
			}
		} else {
			for range empty {
				p.buf = append(p.buf, '\n')
			}
		}
		for range l.indent - ci {
			p.buf = append(p.buf, ' ')
		}
		p.buf = append(p.buf, l.text...)
		started, prevMore, empty = true, more, 0
		p.consume()
	}
	if started {
		switch chomp {
		case 0:
			p.buf = append(p.buf, '\n')
		case '+':
			for range empty + 1 {
				p.buf = append(p.buf, '\n')
			}
		}
	}
	return p.buf, nil
}

// splitKey splits "key: value" (or "key:"); ok is false for anything else,
// including quoted or complex keys.
func splitKey(t []byte) (key, rest []byte, ok bool) {
	if len(t) == 0 || isIndicator(t[0]) || (t[0] == '-' || t[0] == '?' || t[0] == ':') && (len(t) == 1 || t[1] == ' ') {
		return nil, nil, false
	}
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case ':':
			if i+1 == len(t) || t[i+1] == ' ' || t[i+1] == '\t' {
				key = bytes.TrimRight(t[:i], " \t")
				return key, bytes.TrimLeft(t[i+1:], " \t"), len(key) > 0
			}
		case '#':
			if t[i-1] == ' ' || t[i-1] == '\t' {
				return nil, nil, false
			}
		}
	}
	return nil, nil, false
}

// trimComment removes a trailing " # comment" from a plain value.
func trimComment(v []byte) []byte {
	if len(v) > 0 && v[0] == '#' {
		return nil
	}
	for i := 1; i < len(v); i++ {
		if v[i] == '#' && (v[i-1] == ' ' || v[i-1] == '\t') {
			return bytes.TrimRight(v[:i], " \t")
		}
	}
	return v
}
