package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"helm.sh/helm/v4/pkg/chart/common"
	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/strvals"
)

// MaxValuesBytes is the largest values file ParseValues and ReadValuesFile accept.
const MaxValuesBytes = 10 << 20

// ParseValues parses a YAML values file the way Helm's -f does (YAML 1.1
// scalars, several documents merged in order) and additionally refuses
// duplicate keys, non-mapping documents and files over 10 MiB. name (the
// file name) starts every error, followed by the line where one is known.
// An empty file gives an empty map.
func ParseValues(name string, data []byte) (map[string]any, error) {
	if len(data) > MaxValuesBytes {
		return nil, fmt.Errorf("%s: values file is %d bytes, larger than the %d byte limit", name, len(data), MaxValuesBytes)
	}
	docs, yerr := parseNodes(data)
	if yerr == nil {
		for _, doc := range docs {
			if err := checkDocument(doc); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	vals, herr := chartloader.LoadValues(bytes.NewReader(data))
	if herr != nil {
		// Helm's parser counts lines per document; yaml.v3 over the whole
		// file. Prefer Helm's wording unless there are several documents.
		if yerr != nil && bytes.Contains(data, []byte("\n---")) {
			return nil, fmt.Errorf("%s: %w", name, yerr)
		}
		return nil, fmt.Errorf("%s: not valid YAML: %s", name, trimYAMLErr(herr.Error()))
	}
	// A document Helm's parser accepts but yaml.v3 does not is accepted:
	// Helm's reading is the one that counts.
	if vals == nil {
		vals = map[string]any{}
	}
	return vals, nil
}

// ReadValuesFile reads and parses a values file, checking its size before
// reading it.
func ReadValuesFile(path string) (map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read values: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read values: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > MaxValuesBytes {
		return nil, fmt.Errorf("%s: values file is %d bytes, larger than the %d byte limit", path, fi.Size(), MaxValuesBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxValuesBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read values %s: %w", path, err)
	}
	return ParseValues(path, data)
}

// MergeValues merges values files the way repeated helm -f flags do: later
// overlays win, nested maps are merged key by key, anything else (lists,
// scalars, null) replaces. Nulls are kept, so that coalescing with the
// chart's defaults in Render deletes those keys, as in Helm. The inputs are
// not modified; the result shares no maps or lists with them.
func MergeValues(base map[string]any, overlays ...map[string]any) map[string]any {
	out := copyMap(base)
	if out == nil {
		out = map[string]any{}
	}
	for _, o := range overlays {
		out = chartloader.MergeMaps(out, copyMap(o))
	}
	return out
}

// ApplySet applies Helm's --set-json, --set and --set-string flags to vals,
// in that order (Helm's order), with Helm's own parser (pkg/strvals): dotted
// keys, list indexes like a[0]=x, commas separating assignments, "\," and
// "\." escapes, and --set's typed scalars (true, 1, null) versus
// --set-string's plain strings. vals is modified in place.
func ApplySet(vals map[string]any, set, setString, setJSON []string) error {
	if vals == nil {
		return errors.New("apply --set: values map is nil")
	}
	for _, s := range setJSON {
		t := strings.TrimSpace(s)
		if strings.HasPrefix(t, "{") {
			var obj map[string]any
			if err := json.Unmarshal([]byte(t), &obj); err != nil {
				return fmt.Errorf("--set-json %s: %w", s, err)
			}
			merged := chartloader.MergeMaps(vals, obj)
			for k, v := range merged {
				vals[k] = v
			}
			continue
		}
		if err := strvals.ParseJSON(s, vals); err != nil {
			return fmt.Errorf("--set-json %s: %w", s, err)
		}
	}
	for _, s := range set {
		if err := strvals.ParseInto(s, vals); err != nil {
			return fmt.Errorf("--set %s: %w", s, err)
		}
	}
	for _, s := range setString {
		if err := strvals.ParseIntoString(s, vals); err != nil {
			return fmt.Errorf("--set-string %s: %w", s, err)
		}
	}
	return nil
}

// parseNodes parses every document of data as YAML nodes (for line numbers
// and the duplicate key check, which Helm's parser does not do).
func parseNodes(data []byte) ([]*yamlv3.Node, error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var docs []*yamlv3.Node
	for {
		var n yamlv3.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not valid YAML: %s", trimYAMLErr(err.Error()))
		}
		docs = append(docs, &n)
	}
}

// checkDocument refuses a document whose top level is not a mapping, and
// duplicate keys anywhere in it.
func checkDocument(doc *yamlv3.Node) error {
	root := doc
	if root.Kind == yamlv3.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	switch {
	case root.Kind == yamlv3.MappingNode:
	case root.Kind == yamlv3.ScalarNode && root.Tag == "!!null":
		return nil
	default:
		return fmt.Errorf("line %d: top level must be a mapping of keys to values, got %s", root.Line, nodeKind(root))
	}
	return checkDuplicates(root, "")
}

func checkDuplicates(n *yamlv3.Node, prefix string) error {
	switch n.Kind {
	case yamlv3.MappingNode:
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := joinKey(prefix, k.Value)
			if k.Kind == yamlv3.ScalarNode && k.Value != "<<" {
				if first, dup := seen[k.Value]; dup {
					return fmt.Errorf("line %d: duplicate key %q (first defined on line %d)", k.Line, key, first)
				}
				seen[k.Value] = k.Line
			}
			if err := checkDuplicates(v, key); err != nil {
				return err
			}
		}
	case yamlv3.SequenceNode:
		for i, c := range n.Content {
			if err := checkDuplicates(c, fmt.Sprintf("%s[%d]", prefix, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func nodeKind(n *yamlv3.Node) string {
	switch n.Kind {
	case yamlv3.SequenceNode:
		return "a list"
	case yamlv3.ScalarNode:
		return fmt.Sprintf("the scalar %q", n.Value)
	case yamlv3.AliasNode:
		return "an alias"
	}
	return "something else"
}

// trimYAMLErr drops the parser's stacked prefixes ("error converting YAML to
// JSON: yaml: ...") so the message starts at the line number.
func trimYAMLErr(s string) string {
	if i := strings.LastIndex(s, "yaml: "); i >= 0 {
		s = s[i+len("yaml: "):]
	}
	return oneLine(s)
}

// copyMap deep-copies a values map (maps and lists; scalars are immutable).
func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return copyMap(t)
	case common.Values: // Helm's named map type; callers get plain maps
		return copyMap(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}
