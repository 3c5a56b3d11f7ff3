package state

import (
	"context"
	"fmt"

	"github.com/charter-sh/charter/render"
)

// ValuesFor returns the user-supplied values of r: the files in
// r.ValuesFiles merged in order, then r.Values on top. Merging follows
// `helm -f a.yaml -f b.yaml`: a later value wins, nested mappings are merged
// key by key, lists are replaced whole, and null values are kept (so that
// Helm can use them to delete a chart default). Chart defaults and --set
// values are not included; they are the renderer's business.
//
// Each values file must resolve inside the state directory (see ResolvePath)
// and be a valid values file (see render.ReadValuesFile). The result shares no
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
		vals, err := render.ReadValuesFile(path)
		if err != nil {
			return nil, fmt.Errorf("values file of release %q: %w", r.Name, err)
		}
		out = render.MergeValues(out, vals)
	}
	return render.MergeValues(out, r.Values), nil
}
