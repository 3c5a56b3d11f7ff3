package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/reconcile"
	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/state"
)

type diffOptions struct {
	name      string
	namespace string
	values    valueOptions
}

func newDiffCmd(g *globalOptions) *cobra.Command {
	o := &diffOptions{}
	cmd := &cobra.Command{
		Use:   "diff NAME | diff -f CONFIG [-n NAME] [CHART]",
		Short: "Show what deploy or redeploy would change in the cluster, per object",
		Long: `Diff renders the release as deploy (or redeploy, for a declared NAME with extra -f/--set)
would declare it, asks the API server for a server-side apply dry-run of every object, and
prints per object whether it would be created, configured, deleted or left unchanged, with
a unified diff of the fields. Secret data is masked.

Exit code: 0 no changes, 2 changes pending, 1 error.`,
		Example: `  charter diff taco-tuesday
  charter diff taco-tuesday --set replicaCount=3
  charter diff -f values.yaml -n taco-tuesday`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			changed, err := runDiff(cmd.Context(), g, o, args)
			if err != nil {
				return err
			}
			if changed {
				return &exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.name, "name", "n", "", "release name (for a release not declared yet)")
	cmd.Flags().StringVar(&o.namespace, "namespace", "", "target namespace")
	o.values.addFlags(cmd)
	return cmd
}

func runDiff(ctx context.Context, g *globalOptions, o *diffOptions, args []string) (bool, error) {
	// No state yet is fine for a release not declared yet: diff writes nothing.
	st, _, stErr := g.openState(ctx)
	in, err := o.values.read()
	if err != nil {
		return false, err
	}
	name := o.name
	var decl *state.Release
	chartRef := in.chart
	if stErr == nil {
		if len(args) == 1 {
			if d, err := st.Get(ctx, args[0]); err == nil && name == "" {
				decl, name = d, args[0]
			} else {
				chartRef = args[0]
			}
		}
		if decl == nil && name != "" {
			if d, err := st.Get(ctx, name); err == nil {
				decl = d
			}
		}
	} else if len(args) == 1 {
		chartRef = args[0]
	}
	if name == "" {
		return false, errors.New("name the release: diff NAME, or -n NAME with a chart or params file")
	}
	if err := state.ValidateName(name); err != nil {
		return false, err
	}
	// The would-be declaration.
	want := &state.Release{Name: name, Namespace: firstNonEmpty(o.namespace, in.namespace, "default")}
	if decl != nil {
		w := *decl
		want = &w
		want.Values = render.MergeValues(decl.Values, in.values)
		if o.namespace != "" {
			want.Namespace = o.namespace
		}
		if chartRef == "" {
			chartRef = decl.Chart
			if decl.ChartPath != "" {
				chartRef = localChartSource(decl)
			}
		}
	} else {
		want.Values = in.values
	}
	var c *chartChoice
	vals := want.Values
	if stErr == nil {
		if decl != nil && decl.Digest != "" && chartRef == decl.Chart {
			c, err = g.pinnedChart(ctx, st, decl)
		} else {
			c, err = g.resolveChart(ctx, st, chartRef, "")
		}
		if err != nil {
			return false, err
		}
		if vals, err = st.ValuesFor(ctx, want); err != nil {
			return false, err
		}
	} else if c, err = loadLocalChart(chartRef); err != nil {
		return false, fmt.Errorf("%w (and %w)", err, stErr)
	}
	cl, err := g.clusterClient()
	if err != nil {
		return false, err
	}
	caps, err := cl.Capabilities()
	if err != nil {
		return false, err
	}
	res, err := render.Render(c.chart, vals, caps.RenderOptions(render.Options{
		ReleaseName: name, Namespace: firstNonEmpty(want.Namespace, "default"),
	}))
	if err != nil {
		return false, err
	}
	objs := append(append([]*unstructured.Unstructured{}, res.Objects...), res.Hooks...)

	changed := false
	desired := map[string]bool{}
	for _, obj := range objs {
		desired[ssautils.FmtUnstructured(obj)] = true
		entry, live, merged, err := cl.Manager.Diff(ctx, obj.DeepCopy(), ssa.DefaultDiffOptions())
		if err != nil {
			return false, reconcile.ServerError(cl.Config.Host, err)
		}
		switch entry.Action {
		case ssa.UnchangedAction, ssa.SkippedAction:
			continue
		}
		changed = true
		fmt.Fprintf(g.out, "%s %s\n", ssautils.FmtUnstructured(obj), entry.Action)
		if entry.Action == ssa.CreatedAction && live == nil {
			shown := obj.DeepCopy()
			if shown.GetKind() == "Secret" {
				maskSecret(shown)
			}
			fmt.Fprint(g.out, unifiedDiff(nil, shown))
			continue
		}
		fmt.Fprint(g.out, unifiedDiff(live, merged))
	}
	// Objects the last revision applied that would be pruned.
	if recs, err := g.records(); err == nil {
		if last, err := recs.Last(ctx, name); err == nil {
			for _, ref := range last.Inventory {
				u := ref.Object()
				if !desired[ssautils.FmtUnstructured(u)] {
					changed = true
					fmt.Fprintf(g.out, "%s deleted\n", ssautils.FmtUnstructured(u))
				}
			}
		} else if !errors.Is(err, record.ErrNotFound) {
			return false, err
		}
	}
	if !changed {
		fmt.Fprintf(g.errOut, "%s: no changes\n", name)
	}
	return changed, nil
}

func maskSecret(u *unstructured.Unstructured) {
	for _, field := range []string{"data", "stringData"} {
		m, ok, _ := unstructured.NestedMap(u.Object, field)
		if !ok {
			continue
		}
		for k := range m {
			m[k] = "***"
		}
		_ = unstructured.SetNestedMap(u.Object, m, field)
	}
}

// unifiedDiff shows the field changes between the live object and the
// object after apply, as YAML.
func unifiedDiff(live, merged *unstructured.Unstructured) string {
	toLines := func(u *unstructured.Unstructured) []string {
		if u == nil {
			return nil
		}
		c := u.DeepCopy()
		unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
		unstructured.RemoveNestedField(c.Object, "metadata", "resourceVersion")
		unstructured.RemoveNestedField(c.Object, "metadata", "generation")
		b, _ := yaml.Marshal(c.Object)
		return difflib.SplitLines(string(b))
	}
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: toLines(live), B: toLines(merged), FromFile: "live", ToFile: "desired", Context: 3,
	})
	var b strings.Builder
	for _, l := range strings.SplitAfter(d, "\n") {
		if l != "" {
			b.WriteString("  " + l)
		}
	}
	return b.String()
}
