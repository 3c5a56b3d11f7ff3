package state

import (
	"context"
	"fmt"
)

// ValuesFor returns the user-supplied values of r: the files in
// r.ValuesFiles merged in order, then r.Values on top. Merging follows
// `helm -f a.yaml -f b.yaml`: a later value wins, nested mappings are merged
// key by key, lists are replaced whole, and null values are kept (so that
// Helm can use them to delete a chart default). Chart defaults and --set
// values are not included; they are the renderer's business.
//
// Each values file must resolve inside the state directory (see ResolvePath)
// and be a valid values file (see ReadValuesFile). The result shares no
// memory with r.
func (d *Dir) ValuesFor(ctx context.Context, r *Release) (map[string]any, error) {
	out := map[string]any{}
	for _, ref := range r.ValuesFiles {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path, err := d.ResolvePath(ref)
		if err != nil {
			return nil, fmt.Errorf("values file of release %q: %w", r.Name, err)
		}
		vals, err := ReadValuesFile(path)
		if err != nil {
			return nil, fmt.Errorf("values file of release %q: %w", r.Name, err)
		}
		out = mergeValues(out, vals)
	}
	return mergeValues(out, r.Values), nil
}

// mergeValues returns a new map holding dst with src merged on top: src wins,
// except that two mappings under the same key are merged recursively. Neither
// input is modified and the result shares no memory with them.
func mergeValues(dst, src map[string]any) map[string]any {
	out := copyMap(dst)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(dm, sm)
				continue
			}
		}
		out[k] = copyValue(v)
	}
	return out
}

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
	switch v := v.(type) {
	case map[string]any:
		return copyMap(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}
