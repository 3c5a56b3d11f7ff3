package state

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// Parse reads one release declaration or params file. name is the file name
// used in error messages. Parse is strict: the data must be a single YAML
// mapping of at most MaxFileSize bytes with no duplicate keys (at any depth)
// and no top-level keys other than the Release fields; apiVersion and kind,
// when present, must be charter.sh/v1 and Release. Parse does not fill in
// defaults and does not call Validate.
//
// values are decoded with Helm's YAML semantics (numbers become float64,
// `yes`/`on` are booleans), so they mean what they would mean to `helm -f`.
func Parse(name string, data []byte) (*Release, error) {
	if err := checkSize(name, int64(len(data))); err != nil {
		return nil, err
	}
	docs, err := decodeDocs(name, data)
	if err != nil {
		return nil, err
	}
	switch len(docs) {
	case 0:
		return nil, fmt.Errorf("%s: file is empty: want a release declaration (apiVersion: %s, kind: %s)", name, APIVersion, KindRelease)
	case 1:
	default:
		return nil, fmt.Errorf("%s: holds %d YAML documents: want exactly one release declaration", name, len(docs))
	}
	root := docs[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: line %d: want a mapping of release fields, got %s", name, root.Line, kindName(root))
	}
	if err := checkDuplicates(root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}

	r := &Release{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], resolveAlias(root.Content[i+1])
		if err := parseField(r, k, v); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", name, k.Line, err)
		}
	}
	if r.APIVersion != "" && r.APIVersion != APIVersion {
		return nil, fmt.Errorf("%s: apiVersion %q is not supported: want %q", name, r.APIVersion, APIVersion)
	}
	if r.Kind != "" && r.Kind != KindRelease {
		return nil, fmt.Errorf("%s: kind %q is not supported: want %q", name, r.Kind, KindRelease)
	}

	// Decode values the way Helm decodes a values file (sigs.k8s.io/yaml),
	// so `charter` and `helm -f` agree on what a value means.
	var body struct {
		Values map[string]any `json:"values"`
	}
	if err := sigsyaml.Unmarshal(data, &body); err != nil {
		return nil, fmt.Errorf("%s: values: %s", name, oneLine(err))
	}
	if len(body.Values) > 0 {
		r.Values = body.Values
	}
	return r, nil
}

func parseField(r *Release, k, v *yaml.Node) error {
	if k.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a field name, got %s", kindName(k))
	}
	key := k.Value
	if !knownField(key) {
		return fmt.Errorf("unknown field %q (known fields: %s)", key, strings.Join(fieldOrder, ", "))
	}
	switch key {
	case "valuesFiles":
		return stringList(&r.ValuesFiles, key, "path", "paths", v)
	case "dependsOn":
		return stringList(&r.DependsOn, key, "release name", "release names", v)
	case "values":
		if !isNull(v) && v.Kind != yaml.MappingNode {
			return fmt.Errorf("field values must be a mapping, got %s", kindName(v))
		}
		return nil // decoded as a whole by Parse
	case "remediation":
		if isNull(v) {
			return nil
		}
		rem, err := parseRemediation(v)
		if err != nil {
			return err
		}
		r.Remediation = rem
		return nil
	case "force", "adopt":
		if isNull(v) {
			return nil
		}
		b, err := parseBool(key, v)
		if err != nil {
			return err
		}
		if key == "force" {
			r.Force = b
		} else {
			r.Adopt = b
		}
		return nil
	case "drift":
		if isNull(v) {
			return nil
		}
		d, err := parseDrift(v)
		if err != nil {
			return err
		}
		r.Drift = d
		return nil
	}
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.ScalarNode {
		return fmt.Errorf("field %s must be a string, got %s", key, kindName(v))
	}
	s := v.Value
	switch key {
	case "apiVersion":
		r.APIVersion = s
	case "kind":
		r.Kind = s
	case "name":
		r.Name = s
	case "namespace":
		r.Namespace = s
	case "chart":
		r.Chart = s
	case "version":
		r.Version = s
	case "digest":
		r.Digest = s
	case "chartPath":
		r.ChartPath = s
	case "timeout":
		if err := validateTimeout(s); err != nil {
			return err
		}
		r.Timeout = s
	}
	return nil
}

func parseBool(field string, v *yaml.Node) (bool, error) {
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
		return false, fmt.Errorf("field %s must be true or false, got %s", field, kindName(v))
	}
	var b bool
	if err := v.Decode(&b); err != nil {
		return false, fmt.Errorf("field %s must be true or false, got %s", field, kindName(v))
	}
	return b, nil
}

// parseRemediation reads `rollback` or `{strategy: rollback, retries: N}`.
func parseRemediation(v *yaml.Node) (*Remediation, error) {
	rem := &Remediation{}
	switch v.Kind {
	case yaml.ScalarNode:
		rem.Strategy = v.Value
	case yaml.MappingNode:
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, e := v.Content[i], resolveAlias(v.Content[i+1])
			switch k.Value {
			case "strategy":
				if e.Kind != yaml.ScalarNode || isNull(e) {
					return nil, fmt.Errorf("field remediation.strategy must be a string, got %s", kindName(e))
				}
				rem.Strategy = e.Value
			case "retries":
				n, err := strconv.Atoi(e.Value)
				if e.Kind != yaml.ScalarNode || e.ShortTag() != "!!int" || err != nil {
					return nil, fmt.Errorf("field remediation.retries must be a whole number, got %s", kindName(e))
				}
				if n < 1 || n > MaxRetries {
					return nil, fmt.Errorf("field remediation.retries is %d: want 1 to %d", n, MaxRetries)
				}
				rem.Retries = n
			default:
				return nil, fmt.Errorf("unknown field remediation.%s (known fields: strategy, retries)", k.Value)
			}
		}
	default:
		return nil, fmt.Errorf("field remediation must be %s, %s or a mapping {strategy, retries}, got %s", RemediationRollback, RemediationNone, kindName(v))
	}
	if err := rem.validate(); err != nil {
		return nil, err
	}
	return rem, nil
}

// parseDrift reads `{ignore: [{paths: [...], target: {kind, name, ...}}]}`.
func parseDrift(v *yaml.Node) (*Drift, error) {
	if v.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("field drift must be a mapping {ignore: [...]}, got %s", kindName(v))
	}
	d := &Drift{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, e := v.Content[i], resolveAlias(v.Content[i+1])
		if k.Value != "ignore" {
			return nil, fmt.Errorf("unknown field drift.%s (known fields: ignore)", k.Value)
		}
		if isNull(e) {
			continue
		}
		if e.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("field drift.ignore must be a list of rules {paths, target}, got %s", kindName(e))
		}
		for j, rn := range e.Content {
			rule, err := parseIgnoreRule(fmt.Sprintf("drift.ignore[%d]", j), resolveAlias(rn))
			if err != nil {
				return nil, err
			}
			d.Ignore = append(d.Ignore, rule)
		}
	}
	if len(d.Ignore) == 0 {
		return nil, nil
	}
	return d, nil
}

func parseIgnoreRule(at string, n *yaml.Node) (DriftIgnore, error) {
	var rule DriftIgnore
	if n.Kind != yaml.MappingNode {
		return rule, fmt.Errorf("field %s must be a mapping {paths, target}, got %s at line %d", at, kindName(n), n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, e := n.Content[i], resolveAlias(n.Content[i+1])
		switch k.Value {
		case "paths":
			if e.Kind != yaml.SequenceNode {
				return rule, fmt.Errorf("field %s.paths must be a list of JSON pointers, got %s at line %d", at, kindName(e), e.Line)
			}
			for _, p := range e.Content {
				p = resolveAlias(p)
				if p.Kind != yaml.ScalarNode || isNull(p) {
					return rule, fmt.Errorf("field %s.paths: want a JSON pointer, got %s at line %d", at, kindName(p), p.Line)
				}
				if err := ValidatePointer(p.Value); err != nil {
					return rule, fmt.Errorf("field %s.paths: %w", at, err)
				}
				rule.Paths = append(rule.Paths, p.Value)
			}
		case "target":
			if isNull(e) {
				continue
			}
			if e.Kind != yaml.MappingNode {
				return rule, fmt.Errorf("field %s.target must be a mapping {group, kind, name, namespace}, got %s at line %d", at, kindName(e), e.Line)
			}
			t := &DriftTarget{}
			for j := 0; j+1 < len(e.Content); j += 2 {
				tk, tv := e.Content[j], resolveAlias(e.Content[j+1])
				if tv.Kind != yaml.ScalarNode {
					return rule, fmt.Errorf("field %s.target.%s must be a string, got %s at line %d", at, tk.Value, kindName(tv), tv.Line)
				}
				val := tv.Value
				if isNull(tv) {
					val = ""
				}
				switch tk.Value {
				case "group":
					t.Group = val
				case "kind":
					t.Kind = val
				case "name":
					t.Name = val
				case "namespace":
					t.Namespace = val
				default:
					return rule, fmt.Errorf("unknown field %s.target.%s at line %d (known fields: group, kind, name, namespace)", at, tk.Value, tk.Line)
				}
			}
			if *t != (DriftTarget{}) {
				rule.Target = t
			}
		default:
			return rule, fmt.Errorf("unknown field %s.%s at line %d (known fields: paths, target)", at, k.Value, k.Line)
		}
	}
	if len(rule.Paths) == 0 {
		return rule, fmt.Errorf("field %s.paths is empty at line %d: want JSON pointers such as /spec/replicas", at, n.Line)
	}
	return rule, nil
}

// ParseFile reads the file at path and tells a declaration or params file
// apart from a plain Helm values file. The file is a declaration iff its
// top-level mapping has `kind: Release`, or has both `chart` and `values`
// keys and no key that is not a Release field. A declaration is parsed
// strictly (see Parse) and returned with isDeclaration true; for a plain
// values file ParseFile returns (nil, false, nil) — read it with
// render.ReadValuesFile. A file whose kind is anything but Release is a plain values
// file too. An empty file is an (empty) plain values file.
func ParseFile(path string) (rel *Release, isDeclaration bool, err error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, false, err
	}
	docs, err := decodeDocs(path, data)
	if err != nil {
		return nil, false, err
	}
	if len(docs) == 0 {
		return nil, false, nil
	}
	root := docs[0]
	if root.Kind != yaml.MappingNode {
		return nil, false, fmt.Errorf("%s: line %d: want a mapping, got %s", path, root.Line, kindName(root))
	}
	if !looksLikeDeclaration(root) {
		return nil, false, nil
	}
	rel, err = Parse(path, data)
	if err != nil {
		return nil, true, err
	}
	return rel, true, nil
}

func looksLikeDeclaration(root *yaml.Node) bool {
	var hasChart, hasValues, allKnown = false, false, true
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], resolveAlias(root.Content[i+1])
		switch k.Value {
		case "kind":
			// kind names the document's type: Release is ours, any
			// other kind is not (whatever else the file holds).
			return v.Kind == yaml.ScalarNode && v.Value == KindRelease
		case "chart":
			hasChart = true
		case "values":
			hasValues = true
		}
		if !knownField(k.Value) {
			allKnown = false
		}
	}
	return hasChart && hasValues && allKnown
}

// decodeDocs returns the root node of each non-empty document in data.
func decodeDocs(name string, data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var roots []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return roots, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: not valid YAML: %s", name, oneLine(err))
		}
		if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if isNull(root) {
			continue // "---" with nothing after it, or a file of comments
		}
		roots = append(roots, root)
	}
}

// checkDuplicates reports the first mapping key, at any depth, that appears
// twice in the same mapping.
func checkDuplicates(n *yaml.Node) error {
	switch n.Kind {
	case yaml.MappingNode:
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode && k.Value != "<<" {
				if first, ok := seen[k.Value]; ok {
					return fmt.Errorf("line %d: duplicate key %q (first at line %d)", k.Line, k.Value, first)
				}
				seen[k.Value] = k.Line
			}
			if err := checkDuplicates(n.Content[i+1]); err != nil {
				return err
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkDuplicates(c); err != nil {
				return err
			}
		}
	}
	return nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return fmt.Sprintf("the scalar %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

func checkSize(name string, n int64) error {
	if n > MaxFileSize {
		return fmt.Errorf("%s: file is %.1f MiB, larger than the %d MiB limit", name, float64(n)/(1<<20), MaxFileSize>>20)
	}
	return nil
}

// readLimited reads a file, refusing files larger than MaxFileSize without
// reading them whole.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *fs.PathError already says "open PATH: ..."
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		if err := checkSize(path, fi.Size()); err != nil {
			return nil, err
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("read %s: is a directory", path)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if err := checkSize(path, int64(len(data))); err != nil {
		return nil, err
	}
	return data, nil
}

// oneLine turns a (possibly multi-line) decoder error into one line without
// the library's "yaml: " prefixes.
func oneLine(err error) string {
	s := err.Error()
	s = strings.ReplaceAll(s, "error converting YAML to JSON: ", "")
	s = strings.ReplaceAll(s, "yaml: ", "")
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
	return s
}

// stringList appends the scalars of a sequence field to dst; null is an
// empty list. what/whats name an element for errors.
func stringList(dst *[]string, field, what, whats string, v *yaml.Node) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		return fmt.Errorf("field %s must be a list of %s, got %s", field, whats, kindName(v))
	}
	for _, e := range v.Content {
		e = resolveAlias(e)
		if e.Kind != yaml.ScalarNode || isNull(e) {
			return fmt.Errorf("field %s: want a %s, got %s at line %d", field, what, kindName(e), e.Line)
		}
		*dst = append(*dst, e.Value)
	}
	return nil
}
