package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"
)

// Param is one settable value of a chart.
type Param struct {
	Path        string // dotted path as --set takes it (a "." inside a key is written "\.")
	Type        string // string, int, float, bool, null, list or map
	Default     string // the chart's default, as compact JSON
	Description string
}

// Params lists every leaf of the chart's values.yaml - scalars, lists, and
// empty maps - in file order (keys only reachable through YAML merge keys
// follow, sorted). Defaults and types are Helm's reading of values.yaml.
// A description is, in this order of preference: the comment lines directly
// above the key (with helm-docs' "# -- text" convention the text starts at
// that marker and may continue on following "#" lines; lines starting with
// "@", like "# @default -- x", are left out), a "# -- text" comment at the
// end of the key's line, the key's values.schema.json description, and a
// Bitnami-style "## @param path text" line anywhere in values.yaml.
func Params(ch *Chart) ([]Param, error) {
	if ch == nil || ch.Chart == nil {
		return nil, errors.New("params: no chart")
	}
	vals := ch.Chart.Values
	raw := rawFile(ch.Chart, "values.yaml")
	var root *kyaml.RNode
	if strings.TrimSpace(string(raw)) != "" {
		var err error
		if root, err = kyaml.Parse(string(raw)); err != nil {
			return nil, fmt.Errorf("params %s: values.yaml: %s", ch.Chart.Name(), trimYAMLErr(err.Error()))
		}
	}
	var schema map[string]any
	if len(ch.Chart.Schema) > 0 {
		if err := json.Unmarshal(ch.Chart.Schema, &schema); err != nil {
			return nil, fmt.Errorf("params %s: values.schema.json: %w", ch.Chart.Name(), err)
		}
	}
	w := paramWalker{seen: map[string]bool{}, schema: schema, bitnami: bitnamiParams(string(raw))}
	if root != nil && root.YNode().Kind == kyaml.MappingNode {
		w.walkNode(root.YNode(), nil, vals)
	}
	// Keys the file walk did not reach (merge keys, multi-document files).
	w.walkValues(vals, nil)
	return w.out, nil
}

type paramWalker struct {
	out     []Param
	seen    map[string]bool
	schema  map[string]any
	bitnami map[string]string
}

func (w *paramWalker) walkNode(n *kyaml.Node, path []string, vals map[string]any) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" {
			continue
		}
		val, ok := vals[k.Value]
		if !ok {
			continue // not in Helm's reading of the file (e.g. overridden by a later document)
		}
		p := append(append([]string(nil), path...), k.Value)
		if sub, isMap := val.(map[string]any); isMap && len(sub) > 0 && v.Kind == kyaml.MappingNode {
			w.walkNode(v, p, sub)
			continue
		}
		w.add(p, val, commentText(strings.Join(p, "."), k.HeadComment, v.LineComment, k.LineComment))
	}
}

func (w *paramWalker) walkValues(vals map[string]any, path []string) {
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := append(append([]string(nil), path...), k)
		if sub, ok := vals[k].(map[string]any); ok && len(sub) > 0 {
			w.walkValues(sub, p)
			continue
		}
		w.add(p, vals[k], "")
	}
}

func (w *paramWalker) add(path []string, val any, desc string) {
	dotted := dottedPath(path)
	if w.seen[dotted] {
		return
	}
	w.seen[dotted] = true
	if desc == "" {
		desc = schemaDescription(w.schema, path)
	}
	if desc == "" {
		desc = w.bitnami[strings.Join(path, ".")]
	}
	def, err := json.Marshal(val)
	if err != nil {
		def = []byte(fmt.Sprint(val))
	}
	w.out = append(w.out, Param{Path: dotted, Type: valueType(val), Default: string(def), Description: desc})
}

func dottedPath(path []string) string {
	esc := make([]string, len(path))
	for i, p := range path {
		esc[i] = strings.ReplaceAll(p, ".", `\.`)
	}
	return strings.Join(esc, ".")
}

func valueType(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case string:
		return "string"
	case int, int64, int32, uint64:
		return "int"
	case float64:
		if t == float64(int64(t)) {
			return "int"
		}
		return "float"
	case float32:
		return "float"
	case []any:
		return "list"
	case map[string]any:
		return "map"
	}
	return reflect.TypeOf(v).String()
}

// commentText turns the comment above a key (or, failing that, a helm-docs
// "# --" comment at the end of its line) into a description.
func commentText(key, head string, lineComments ...string) string {
	if d := describe(key, head); d != "" {
		return d
	}
	for _, lc := range lineComments {
		if t := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(lc), "#")); strings.HasPrefix(t, "--") {
			return strings.TrimSpace(strings.TrimPrefix(t, "--"))
		}
	}
	return ""
}

func describe(key, head string) string {
	if strings.TrimSpace(head) == "" {
		return ""
	}
	lines := strings.Split(head, "\n")
	// Only the block directly above the key: after the last blank line.
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) == "" {
			lines = lines[i+1:]
			break
		}
	}
	var text []string
	for _, l := range lines {
		// A Bitnami "## @param <this key> text" line is the description.
		if m := bitnamiParam.FindStringSubmatch(l); m != nil && m[1] == key {
			return bitnamiText(m[2])
		}
		t := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "#"))
		if strings.HasPrefix(t, "-- ") || t == "--" {
			text = text[:0] // helm-docs: the description starts here
			t = strings.TrimSpace(strings.TrimPrefix(t, "--"))
		}
		if strings.HasPrefix(t, "@") || t == "" {
			continue
		}
		text = append(text, t)
	}
	return strings.Join(text, " ")
}

func schemaDescription(schema map[string]any, path []string) string {
	node := schema
	for _, p := range path {
		props, _ := node["properties"].(map[string]any)
		next, ok := props[p].(map[string]any)
		if !ok {
			return ""
		}
		node = next
	}
	d, _ := node["description"].(string)
	return strings.TrimSpace(d)
}

var bitnamiParam = regexp.MustCompile(`^\s*#+\s*@(?:param|extra)\s+(\S+)\s+(.*)$`)

// bitnamiParams reads "## @param key.path description" lines (the Bitnami
// readme-generator convention), dropping leading "[modifier]" tags.
func bitnamiParams(src string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(src, "\n") {
		m := bitnamiParam.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		d := bitnamiText(m[2])
		out[m[1]] = d
	}
	return out
}

// bitnamiText drops leading "[modifier]" tags such as "[string]" or
// "[default: x]" from a Bitnami @param description.
func bitnamiText(d string) string {
	d = strings.TrimSpace(d)
	for strings.HasPrefix(d, "[") {
		end := strings.Index(d, "]")
		if end < 0 {
			break
		}
		d = strings.TrimSpace(d[end+1:])
	}
	return d
}

func rawFile(c *chartv2.Chart, name string) []byte {
	for _, f := range c.Raw {
		if f.Name == name {
			return f.Data
		}
	}
	return nil
}

// ParamsFile returns the chart's values.yaml as its author wrote it -
// comments, order and formatting kept - re-indented under a "values:" key,
// ready to be appended to a document that starts with "chart: <ref>".
// The result is checked to parse to exactly the chart's default values; if
// the file cannot be re-indented as text (several YAML documents, say),
// the values are re-serialised with kyaml, which keeps most comments.
func ParamsFile(ch *Chart) ([]byte, error) {
	if ch == nil || ch.Chart == nil {
		return nil, errors.New("params file: no chart")
	}
	raw := string(rawFile(ch.Chart, "values.yaml"))
	want := map[string]any{"values": ch.Chart.Values}
	if ch.Chart.Values == nil {
		want["values"] = map[string]any{}
	}
	if out, ok := indentValues(raw); ok && sameValues(out, want) {
		return out, nil
	}
	// Fallbacks: the file's nodes (comments kept), then the bare values.
	var nodes []*kyaml.RNode
	if strings.TrimSpace(raw) != "" {
		if n, err := kyaml.Parse(raw); err == nil && n.YNode().Kind == kyaml.MappingNode {
			nodes = append(nodes, n)
		}
	}
	n, err := kyaml.FromMap(ch.Chart.Values)
	if err != nil {
		return nil, fmt.Errorf("params file %s: %w", ch.Chart.Name(), err)
	}
	nodes = append(nodes, n)
	for _, n := range nodes {
		wrapper := kyaml.NewMapRNode(nil)
		if err := wrapper.PipeE(kyaml.SetField("values", n)); err != nil {
			return nil, fmt.Errorf("params file %s: %w", ch.Chart.Name(), err)
		}
		s, err := wrapper.String()
		if err != nil {
			return nil, fmt.Errorf("params file %s: %w", ch.Chart.Name(), err)
		}
		if sameValues([]byte(s), want) {
			return []byte(s), nil
		}
	}
	return nil, fmt.Errorf("params file %s: values.yaml cannot be rewritten under a values: key without changing its meaning", ch.Chart.Name())
}

func indentValues(raw string) ([]byte, bool) {
	raw = strings.TrimPrefix(raw, "\ufeff")
	lines := strings.Split(strings.ReplaceAll(raw, "\r\n", "\n"), "\n")
	var b strings.Builder
	b.WriteString("values:\n")
	content := false
	for _, l := range lines {
		if strings.HasPrefix(l, "%") || strings.TrimRight(l, " \t") == "---" {
			if content {
				return nil, false // a second document
			}
			continue
		}
		if strings.HasPrefix(l, "...") {
			return nil, false
		}
		if l == "" {
			b.WriteString("\n")
			continue
		}
		if t := strings.TrimSpace(l); !strings.HasPrefix(t, "#") {
			content = true
		}
		b.WriteString("  " + l + "\n")
	}
	if !content {
		return []byte("values: {}\n"), true
	}
	return []byte(strings.TrimRight(b.String(), "\n") + "\n"), true
}

func sameValues(doc []byte, want map[string]any) bool {
	var got map[string]any
	if err := yaml.Unmarshal(doc, &got); err != nil {
		return false
	}
	if got["values"] == nil {
		got["values"] = map[string]any{}
	}
	wj, err1 := json.Marshal(want)
	gj, err2 := json.Marshal(got)
	return err1 == nil && err2 == nil && string(wj) == string(gj)
}
