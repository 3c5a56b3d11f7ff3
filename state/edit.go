package state

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// editDeclaration returns orig — the bytes of a declaration that reads as
// old — edited so that it reads as want (both with defaults applied). Only
// the fields that differ are touched, through kyaml, so comments and key
// order survive; then the edit is replayed onto the original text so that
// blank lines and comment spacing survive too and only the changed lines
// differ. Every candidate is parsed back and compared with want before it is
// returned; when the careful edit does not read back right, a coarser one
// (whole values mapping replaced) is tried, then an error is returned.
func editDeclaration(name string, orig []byte, old, want *Release) ([]byte, error) {
	var lastErr error
	for _, fine := range []bool{true, false} {
		out, err := editOnce(name, orig, old, want, fine)
		if err == nil {
			return out, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func editOnce(name string, orig []byte, old, want *Release, fine bool) ([]byte, error) {
	src := string(orig)
	indent := deriveIndent(src)
	seq := deriveSeqStyle(src)

	before, err := kyaml.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	after, err := kyaml.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	if err := applyEdits(after.YNode(), old, want, fine); err != nil {
		return nil, fmt.Errorf("edit %s: %w", name, err)
	}
	return replayed(name, orig, before.Document(), after.Document(), indent, seq,
		func(data []byte) error { return readsAs(name, data, want) })
}

// replayed turns an edit of a parsed document (before → after) into the
// new file text: the difference is replayed onto orig so that its layout
// survives, provided the result passes check; otherwise the plain encoding
// of after is used if it passes check.
func replayed(name string, orig []byte, before, after *yaml.Node, indent int, seq kyaml.SequenceIndentStyle, check func([]byte) error) ([]byte, error) {
	r0, err := encodeNode(before, indent, seq)
	if err != nil {
		return nil, fmt.Errorf("edit %s: %w", name, err)
	}
	r1, err := encodeNode(after, indent, seq)
	if err != nil {
		return nil, fmt.Errorf("edit %s: %w", name, err)
	}
	if patched, ok := replayEdit(orig, r0, r1); ok && check(patched) == nil {
		return patched, nil
	}
	if err := check(r1); err != nil {
		return nil, err
	}
	return r1, nil
}

// readsAs checks that data parses to want (after defaults are applied).
func readsAs(name string, data []byte, want *Release) error {
	got, err := Parse(name, data)
	if err != nil {
		return fmt.Errorf("edit %s: edited file does not parse: %w", name, err)
	}
	if got.Name == "" {
		got.Name = want.Name
	}
	got.applyDefaults()
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("edit %s: edited file does not read back as the updated release", name)
	}
	return nil
}

// applyEdits changes the top-level mapping root, which reads as old, so
// that it reads as want. With fine set, a changed values mapping is edited
// key by key; otherwise it is replaced whole.
func applyEdits(root *yaml.Node, old, want *Release, fine bool) error {
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("want a mapping at the top level")
	}
	for _, f := range fieldOrder {
		switch f {
		case "valuesFiles", "dependsOn":
			if f == "valuesFiles" && slices.Equal(old.ValuesFiles, want.ValuesFiles) ||
				f == "dependsOn" && slices.Equal(old.DependsOn, want.DependsOn) {
				continue
			}
			nv, _ := fieldNode(want, f)
			setField(root, f, nv)
		case "values":
			if reflect.DeepEqual(old.Values, want.Values) {
				continue
			}
			if cur := fieldValue(root, f); fine && cur != nil && len(want.Values) > 0 && syncable(cur) {
				if err := syncMapping(cur, old.Values, want.Values); err != nil {
					return err
				}
				continue
			}
			nv, err := fieldNode(want, f)
			if err != nil {
				return err
			}
			setField(root, f, nv)
		default:
			if stringField(old, f) == stringField(want, f) {
				continue
			}
			nv, _ := fieldNode(want, f)
			setField(root, f, nv)
		}
	}
	return nil
}

// fieldValue returns the value node of key f in mapping m, or nil.
func fieldValue(m *yaml.Node, f string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == f {
			return m.Content[i+1]
		}
	}
	return nil
}

// setField sets top-level field f of root to nv, removing it when nv is nil.
// An existing field keeps its place and comments (a scalar keeps its quote
// style); a new field goes where charter's field order puts it.
func setField(root *yaml.Node, f string, nv *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != f {
			continue
		}
		if nv == nil {
			if i+2 < len(root.Content) && root.Content[i+2].HeadComment == "" {
				// Keep a comment that heads the removed field for the next one.
				root.Content[i+2].HeadComment = root.Content[i].HeadComment
			}
			root.Content = slices.Delete(root.Content, i, i+2)
			return
		}
		root.Content[i+1] = replaceNode(root.Content[i+1], nv)
		return
	}
	if nv == nil {
		return
	}
	// Insert after the last present field that comes before f.
	rank := slices.Index(fieldOrder, f)
	at := 0
	for i := 0; i+1 < len(root.Content); i += 2 {
		if r := slices.Index(fieldOrder, root.Content[i].Value); r >= 0 && r < rank {
			at = i + 2
		}
	}
	k := stringNode(f)
	if at == 0 && len(root.Content) > 0 {
		// The file's header comment stays at the top of the file.
		k.HeadComment, root.Content[0].HeadComment = root.Content[0].HeadComment, ""
	}
	root.Content = slices.Insert(root.Content, at, k, nv)
}

// replaceNode returns nv dressed like cur: same comments and, for two
// scalars, cur's quoting when it still reads the same; for two lists, cur's
// flow or block style.
func replaceNode(cur, nv *yaml.Node) *yaml.Node {
	nv.HeadComment, nv.LineComment, nv.FootComment = cur.HeadComment, cur.LineComment, cur.FootComment
	switch {
	case cur.Kind == yaml.ScalarNode && nv.Kind == yaml.ScalarNode && nv.Tag == "!!str":
		if cur.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 && !strings.Contains(nv.Value, "\n") {
			nv.Style = cur.Style & (yaml.SingleQuotedStyle | yaml.DoubleQuotedStyle)
		}
	case cur.Kind == yaml.SequenceNode && nv.Kind == yaml.SequenceNode,
		cur.Kind == yaml.MappingNode && nv.Kind == yaml.MappingNode:
		if cur.Style&yaml.FlowStyle != 0 {
			nv.Style |= yaml.FlowStyle
		}
	}
	return nv
}

// syncable reports whether mapping n can be edited key by key: its keys are
// plain scalars and it uses no merge keys, aliases or anchors whose meaning
// an edit could change.
func syncable(n *yaml.Node) bool {
	if n.Kind != yaml.MappingNode || n.Anchor != "" {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode || k.Value == "<<" || k.Anchor != "" {
			return false
		}
	}
	return true
}

// syncMapping edits mapping n, which reads as old, to read as want: keys
// gone from want are deleted, changed values replaced (nested mappings
// edited recursively), untouched keys keep their text and comments, and new
// keys are appended at the end in sorted order.
func syncMapping(n *yaml.Node, old, want map[string]any) error {
	var content []*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		nv, keep := want[k.Value]
		if !keep || seen[k.Value] {
			continue
		}
		seen[k.Value] = true
		ov, had := old[k.Value]
		switch {
		case had && reflect.DeepEqual(ov, nv):
		case isMap(ov) && isMap(nv) && syncable(v) && v.Style&yaml.FlowStyle == 0:
			if err := syncMapping(v, ov.(map[string]any), nv.(map[string]any)); err != nil {
				return fmt.Errorf("%s: %w", k.Value, err)
			}
		default:
			node, err := valueNode(nv)
			if err != nil {
				return fmt.Errorf("%s: %w", k.Value, err)
			}
			v = replaceNode(v, node)
		}
		content = append(content, k, v)
	}
	var added []string
	for k := range want {
		if !seen[k] {
			added = append(added, k)
		}
	}
	sort.Strings(added)
	for _, k := range added {
		node, err := valueNode(want[k])
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		content = append(content, stringNode(k), node)
	}
	n.Content = content
	if len(content) == 0 {
		n.Style |= yaml.FlowStyle // an empty block mapping cannot be written
	}
	return nil
}

func isMap(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

// deriveIndent guesses the indentation step of a YAML file from the first
// line that is indented more than the line above it (ignoring comments, list
// items and blank lines); 2 when nothing is indented.
func deriveIndent(src string) int {
	prev := -1
	for _, line := range strings.Split(src, "\n") {
		t := strings.TrimLeft(line, " ")
		if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, "- ") || t == "-" {
			continue
		}
		ind := len(line) - len(t)
		if prev >= 0 && ind > prev && ind-prev <= 8 {
			return ind - prev
		}
		prev = ind
	}
	return kyaml.DefaultIndent
}

// deriveSeqStyle tells whether the file indents list items under their key
// ("wide") or not ("compact", also the default) from the first block list
// it finds. kyaml's DeriveSeqIndentStyle only knows two-space indentation.
func deriveSeqStyle(src string) kyaml.SequenceIndentStyle {
	lines := strings.Split(src, "\n")
	for i, line := range lines {
		t := strings.TrimLeft(line, " ")
		if !strings.HasPrefix(t, "- ") && t != "-" {
			continue
		}
		for j := i - 1; j >= 0; j-- {
			k := strings.TrimLeft(lines[j], " ")
			if k == "" || strings.HasPrefix(k, "#") {
				continue
			}
			if key, _, _ := strings.Cut(k, " #"); !strings.HasSuffix(strings.TrimRight(key, " "), ":") {
				break // not a "key:" line: a nested or flow list
			}
			if len(line)-len(t) > len(lines[j])-len(k) {
				return kyaml.WideSequenceStyle
			}
			return kyaml.CompactSequenceStyle
		}
	}
	return kyaml.CompactSequenceStyle
}

// replayEdit applies the line edits that turn r0 into r1 to orig, where r0
// is orig re-serialised without changes and r1 is the edited document
// serialised the same way. orig's lines that r0 lost or reformatted (blank
// lines, comment spacing) are kept as they were. It reports false when an
// edit touches a line of r0 that cannot be found in orig.
func replayEdit(orig, r0, r1 []byte) ([]byte, bool) {
	eol := "\n"
	if bytes.Contains(orig, []byte("\r\n")) {
		eol = "\r\n"
	}
	o := splitLines(string(orig))
	a := splitLines(string(r0))
	b := splitLines(string(r1))

	// Match r0's lines to orig's, comparing them with whitespace collapsed.
	on, an := make([]string, len(o)), make([]string, len(a))
	for i, l := range o {
		on[i] = strings.Join(strings.Fields(l), " ")
	}
	for i, l := range a {
		an[i] = strings.Join(strings.Fields(l), " ")
	}
	match, ok := diffLines(on, an)
	if !ok {
		return nil, false
	}
	aToO := make([]int, len(a))
	for i := range aToO {
		aToO[i] = -1
	}
	for _, op := range match {
		if op.kind == '=' {
			aToO[op.b] = op.a
		}
	}

	edit, ok := diffLines(a, b)
	if !ok {
		return nil, false
	}
	deleted := make([]bool, len(o))
	// inserts[i+1] holds the lines that go right after orig line i;
	// inserts[0] those that go before the first line.
	inserts := make([][]string, len(o)+1)
	slot := 0 // where an insert goes: after orig line slot-1
	for i, op := range edit {
		switch op.kind {
		case '=':
			if aToO[op.a] >= 0 {
				slot = aToO[op.a] + 1
			}
		case '-':
			oi := aToO[op.a]
			if oi < 0 {
				return nil, false
			}
			deleted[oi] = true
			slot = oi + 1
		case '+':
			if slot == 0 && len(a) > 0 && aToO[0] >= 0 {
				slot = aToO[0] // before the first line r0 kept
			}
			line := b[op.b]
			// A line replaced by exactly one line keeps its comment column.
			if i > 0 && edit[i-1].kind == '-' && (i < 2 || edit[i-2].kind != '-') &&
				(i+1 == len(edit) || edit[i+1].kind == '=') {
				line = keepCommentColumn(o[aToO[edit[i-1].a]], a[edit[i-1].a], line)
			}
			inserts[slot] = append(inserts[slot], line)
		}
	}
	dropOrphanedBlanks(o, aToO, deleted)

	var out strings.Builder
	for _, l := range inserts[0] {
		out.WriteString(l + eol)
	}
	for i, l := range o {
		if !deleted[i] {
			out.WriteString(l + eol)
		}
		for _, ins := range inserts[i+1] {
			out.WriteString(ins + eol)
		}
	}
	res := out.String()
	if !strings.HasSuffix(string(orig), "\n") && len(orig) > 0 {
		res = strings.TrimSuffix(res, eol)
	}
	return []byte(res), true
}

// keepCommentColumn returns line, the new text of orig (which r0 wrote as
// was), with its trailing comment moved to the column it had in orig. It
// only acts when was and line end in the same comment and the code before
// it holds no quotes (so the '#' cannot be inside a string).
func keepCommentColumn(orig, was, line string) string {
	at := strings.LastIndex(was, " #")
	if at < 0 {
		return line
	}
	comment := was[at+1:]
	code, ok := strings.CutSuffix(line, " "+comment)
	if !ok || strings.ContainsAny(code, "\"'") || strings.ContainsAny(was[:at], "\"'") {
		return line
	}
	col := strings.LastIndex(orig, comment)
	if col < 0 || !strings.HasSuffix(orig, comment) {
		return line
	}
	pad := col - len(code)
	if pad < 1 {
		pad = 1
	}
	return code + strings.Repeat(" ", pad) + comment
}

// dropOrphanedBlanks marks for deletion the blank lines of orig that lie
// between two deleted lines, so removing a block does not leave a gap.
func dropOrphanedBlanks(o []string, aToO []int, deleted []bool) {
	matched := make([]bool, len(o))
	for _, oi := range aToO {
		if oi >= 0 {
			matched[oi] = true
		}
	}
	for i, l := range o {
		if matched[i] || strings.TrimSpace(l) != "" {
			continue
		}
		p := i - 1
		for p >= 0 && !matched[p] {
			p--
		}
		n := i + 1
		for n < len(o) && !matched[n] {
			n++
		}
		if p >= 0 && n < len(o) && deleted[p] && deleted[n] {
			deleted[i] = true
		}
	}
}

// splitLines splits s into lines without their line ends.
func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}
