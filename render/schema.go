package render

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
)

// validateSchemas checks values against the chart's values.schema.json and,
// for every subchart that has values, the subchart's schema against its
// part of the values - the walk Helm's ValidateAgainstSchema does. Unlike
// Helm it never reads $ref targets from files or the network: such a
// reference is an error ("urn:" references stay permissive, as in Helm).
// The error names every failing key.
func validateSchemas(c *chartv2.Chart, values map[string]any) error {
	var problems []string
	walkSchemas(c, values, "", &problems)
	if len(problems) > 0 {
		return fmt.Errorf("values do not match the chart's values.schema.json: %s", strings.Join(problems, "; "))
	}
	return nil
}

func walkSchemas(c *chartv2.Chart, values map[string]any, prefix string, problems *[]string) {
	if len(c.Schema) > 0 {
		for _, p := range validateSchema(c.Schema, values) {
			*problems = append(*problems, fmt.Sprintf("chart %s: %s", c.Name(), prefixKey(prefix, p)))
		}
	}
	for _, sub := range c.Dependencies() {
		raw, ok := values[sub.Name()]
		if !ok || raw == nil {
			continue
		}
		subVals, ok := raw.(map[string]any)
		if !ok {
			*problems = append(*problems, fmt.Sprintf("chart %s: %s: want a map of values for subchart, got %T", c.Name(), joinKey(prefix, sub.Name()), raw))
			continue
		}
		walkSchemas(sub, subVals, joinKey(prefix, sub.Name()), problems)
	}
}

func prefixKey(prefix, p string) string {
	if prefix == "" {
		return p
	}
	if strings.HasPrefix(p, "(top level)") {
		return prefix + strings.TrimPrefix(p, "(top level)")
	}
	return prefix + "." + p
}

// validateSchema returns one "key: problem" line per failing value.
func validateSchema(schemaJSON []byte, values map[string]any) []string {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return []string{fmt.Sprintf("values.schema.json is not valid JSON: %v", err)}
	}
	comp := jsonschema.NewCompiler()
	comp.UseLoader(jsonschema.SchemeURLLoader{"urn": permissiveLoader{}})
	if err := comp.AddResource("file:///values.schema.json", doc); err != nil {
		return []string{fmt.Sprintf("values.schema.json: %s", oneLine(err.Error()))}
	}
	sch, err := comp.Compile("file:///values.schema.json")
	if err != nil {
		return []string{fmt.Sprintf("values.schema.json cannot be compiled (render reads no files or URLs for $ref): %s", oneLine(err.Error()))}
	}
	err = sch.Validate(values)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []string{oneLine(err.Error())}
	}
	var out []string
	leaves(ve, &out)
	sort.Strings(out)
	return dedupe(out)
}

// leaves collects the innermost causes, which name the values at fault.
func leaves(e *jsonschema.ValidationError, out *[]string) {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			leaves(c, out)
		}
		return
	}
	msg := e.Error()
	// A leaf prints as "at '/a/b': message".
	if strings.HasPrefix(msg, "at '") {
		if i := strings.Index(msg, "': "); i >= 0 {
			msg = msg[i+3:]
		}
	}
	key := strings.Join(e.InstanceLocation, ".")
	if key == "" {
		key = "(top level)"
	}
	*out = append(*out, key+": "+oneLine(msg))
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// permissiveLoader resolves "urn:" references to the schema `true`, as
// Helm does when no URN resolver is configured.
type permissiveLoader struct{}

func (permissiveLoader) Load(string) (any, error) {
	return jsonschema.UnmarshalJSON(strings.NewReader("true"))
}
