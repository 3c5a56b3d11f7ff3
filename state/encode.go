package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"

	yamlv2 "go.yaml.in/yaml/v2"
	yaml "go.yaml.in/yaml/v3"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// Marshal returns the canonical YAML form of r, as charter writes a new
// declaration or params file: the fields in the order apiVersion, kind, name,
// namespace, chart, version, digest, chartPath, valuesFiles, dependsOn,
// timeout, remediation, force, adopt, drift, values; empty fields
// left out; values keys sorted; two-space indentation. It neither validates
// r nor fills in defaults. The output is checked to parse back (with Parse)
// to r, so a value is never written in a form that reads differently (for
// example the string "yes" is quoted, because Helm reads a bare yes as true).
func Marshal(r *Release) ([]byte, error) {
	want := r.DeepCopy()
	vals, err := normalizeValues(want.Values)
	if err != nil {
		return nil, fmt.Errorf("marshal release %q: values: %w", r.Name, err)
	}
	want.Values = vals
	if len(want.ValuesFiles) == 0 {
		want.ValuesFiles = nil
	}

	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, f := range fieldOrder {
		v, err := fieldNode(want, f)
		if err != nil {
			return nil, fmt.Errorf("marshal release %q: %s: %w", r.Name, f, err)
		}
		if v != nil {
			root.Content = append(root.Content, stringNode(f), v)
		}
	}
	out, err := encodeNode(root, kyaml.DefaultIndent, kyaml.CompactSequenceStyle)
	if err != nil {
		return nil, fmt.Errorf("marshal release %q: %w", r.Name, err)
	}
	got, err := Parse("marshalled release", out)
	if err != nil {
		return nil, fmt.Errorf("marshal release %q: output does not parse back: %w", r.Name, err)
	}
	if !reflect.DeepEqual(got, want) {
		return nil, fmt.Errorf("marshal release %q: output does not read back as the same release", r.Name)
	}
	return out, nil
}

// fieldNode returns the YAML node for field f of r, or nil when it is empty.
func fieldNode(r *Release, f string) (*yaml.Node, error) {
	switch f {
	case "valuesFiles":
		if len(r.ValuesFiles) == 0 {
			return nil, nil
		}
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, p := range r.ValuesFiles {
			seq.Content = append(seq.Content, stringNode(p))
		}
		return seq, nil
	case "dependsOn":
		if len(r.DependsOn) == 0 {
			return nil, nil
		}
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, n := range r.DependsOn {
			seq.Content = append(seq.Content, stringNode(n))
		}
		return seq, nil
	case "values":
		if len(r.Values) == 0 {
			return nil, nil
		}
		return valueNode(r.Values)
	case "remediation":
		if r.Remediation == nil {
			return nil, nil
		}
		if r.Remediation.Retries == 0 {
			return stringNode(r.Remediation.Strategy), nil
		}
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
			stringNode("strategy"), stringNode(r.Remediation.Strategy),
			stringNode("retries"), {Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(r.Remediation.Retries)},
		}}, nil
	case "force", "adopt":
		if stringField(r, f) == "" {
			return nil, nil
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"}, nil
	case "drift":
		if r.Drift == nil || len(r.Drift.Ignore) == 0 {
			return nil, nil
		}
		return driftNode(r.Drift), nil
	}
	s := stringField(r, f)
	if s == "" {
		return nil, nil
	}
	return stringNode(s), nil
}

func stringField(r *Release, f string) string {
	switch f {
	case "apiVersion":
		return r.APIVersion
	case "kind":
		return r.Kind
	case "name":
		return r.Name
	case "namespace":
		return r.Namespace
	case "chart":
		return r.Chart
	case "version":
		return r.Version
	case "digest":
		return r.Digest
	case "chartPath":
		return r.ChartPath
	case "timeout":
		return r.Timeout
	// The fields below are not strings: their text here only serves to
	// compare two releases (an edit touches a field only when it differs).
	case "remediation":
		if r.Remediation == nil {
			return ""
		}
		return r.Remediation.Strategy + "/" + strconv.Itoa(r.Remediation.Retries)
	case "force":
		if r.Force {
			return "true"
		}
	case "adopt":
		if r.Adopt {
			return "true"
		}
	case "drift":
		if r.Drift == nil || len(r.Drift.Ignore) == 0 {
			return ""
		}
		b, _ := json.Marshal(r.Drift)
		return string(b)
	}
	return ""
}

// driftNode writes drift rules as
//
//	ignore:
//	  - paths: [/spec/replicas]
//	    target: {kind: Deployment, name: web}
func driftNode(d *Drift) *yaml.Node {
	rules := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, ig := range d.Ignore {
		paths := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, p := range ig.Paths {
			paths.Content = append(paths.Content, stringNode(p))
		}
		rule := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{stringNode("paths"), paths}}
		if t := ig.Target; t != nil {
			tn := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
			for _, kv := range [][2]string{{"group", t.Group}, {"kind", t.Kind}, {"namespace", t.Namespace}, {"name", t.Name}} {
				if kv[1] != "" {
					tn.Content = append(tn.Content, stringNode(kv[0]), stringNode(kv[1]))
				}
			}
			if len(tn.Content) > 0 {
				rule.Content = append(rule.Content, stringNode("target"), tn)
			}
		}
		rules.Content = append(rules.Content, rule)
	}
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{stringNode("ignore"), rules}}
}

// valueNode builds the YAML node for a normalized value (see normalizeValues).
func valueNode(v any) (*yaml.Node, error) {
	switch v := v.(type) {
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("number %v cannot be written", v)
		}
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(int64(v), 10)}, nil
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(v, 'g', -1, 64)}, nil
	case string:
		return stringNode(v), nil
	case []any:
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range v {
			n, err := valueNode(e)
			if err != nil {
				return nil, err
			}
			seq.Content = append(seq.Content, n)
		}
		return seq, nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range keys {
			n, err := valueNode(v[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m.Content = append(m.Content, stringNode(k), n)
		}
		return m, nil
	}
	return nil, fmt.Errorf("value of type %T cannot be written", v)
}

// stringNode builds a string scalar that reads back as a string both for
// YAML 1.2 readers (kyaml) and for the YAML 1.1 reader Helm uses for values,
// which takes bare yes/no/on/off for booleans.
func stringNode(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if b, err := yamlv2.Marshal(s); err != nil || (len(b) > 0 && (b[0] == '"' || b[0] == '\'')) {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// encodeNode serialises n with the given indentation and list style.
func encodeNode(n *yaml.Node, indent int, seq kyaml.SequenceIndentStyle) ([]byte, error) {
	var buf bytes.Buffer
	enc := kyaml.NewEncoderWithOptions(&buf, &kyaml.EncoderOptions{SeqIndent: seq})
	enc.SetIndent(indent)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
