package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/reconcile"
	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/state"
)

// lastRecord returns the newest record of a release, with the message users
// expect for unknown names.
func (g *globalOptions) lastRecord(ctx context.Context, name string) (*record.Revision, error) {
	recs, err := g.records()
	if err != nil {
		return nil, err
	}
	rev, err := recs.Last(ctx, name)
	if errors.Is(err, record.ErrNotFound) {
		return nil, fmt.Errorf("release %q not found", name)
	}
	if err != nil {
		return nil, reconcile.ServerError(g.cluster.Config.Host, err)
	}
	return rev, nil
}

// ObjectStatus is one object of a release as the cluster reports it.
type ObjectStatus struct {
	Object  string `json:"object"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// StatusView is what `charter status` prints.
type StatusView struct {
	Name           string         `json:"name"`
	Namespace      string         `json:"namespace"`
	Status         string         `json:"status"`
	Message        string         `json:"message,omitempty"`
	Revision       int            `json:"revision"`
	Chart          string         `json:"chart"`
	ChartVersion   string         `json:"chartVersion"`
	ChartRef       string         `json:"chartRef"`
	AppVersion     string         `json:"appVersion,omitempty"`
	LastApplied    time.Time      `json:"lastApplied"`
	Source         string         `json:"source,omitempty"`
	SourceRevision string         `json:"sourceRevision,omitempty"`
	Declared       bool           `json:"declared"`
	Objects        []ObjectStatus `json:"objects"`
	LocatedAt      []string       `json:"locatedAt,omitempty"`
	// LastDrift is the newest drift recorded on any kept revision.
	LastDrift *record.Drift `json:"lastDrift,omitempty"`
}

type statusOptions struct{ output string }

func newStatusCmd(g *globalOptions) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a release's status, revision, chart, objects and where it is reachable",
		Example: `  charter status taco-tuesday
  charter status taco-tuesday -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.showStatus(cmd.Context(), args[0], o.output)
		},
	}
	addOutputFlag(cmd, &o.output)
	return cmd
}

func (g *globalOptions) status(ctx context.Context, name string) (*StatusView, error) {
	st, _, stErr := g.openState(ctx)
	declared := false
	if stErr == nil {
		if _, err := st.Get(ctx, name); err == nil {
			declared = true
		}
	}
	rev, err := g.lastRecord(ctx, name)
	if err != nil {
		if declared && strings.Contains(err.Error(), "not found") {
			return &StatusView{Name: name, Status: "declared (not applied yet)", Declared: true}, nil
		}
		return nil, err
	}
	v := &StatusView{
		Name: rev.Release, Namespace: rev.Namespace, Status: string(rev.Status), Message: rev.Message,
		Revision: rev.Revision, Chart: rev.ChartName, ChartVersion: rev.ChartVersion, ChartRef: rev.Chart,
		AppVersion: rev.AppVersion, LastApplied: rev.LastDeployed, Source: rev.Source, SourceRevision: rev.SourceRevision, Declared: declared,
	}
	v.Objects, v.LocatedAt = g.objectStatuses(ctx, rev.Inventory)
	v.LastDrift = g.lastDrift(ctx, name)
	return v, nil
}

// lastDrift returns the newest drift recorded on the release's revisions
// (it is kept on the revision that was deployed when it happened).
func (g *globalOptions) lastDrift(ctx context.Context, name string) *record.Drift {
	recs, err := g.records()
	if err != nil {
		return nil
	}
	h, err := recs.History(ctx, name)
	if err != nil {
		return nil
	}
	var last *record.Drift
	for _, r := range h {
		if d := r.LastDrift; d != nil && (last == nil || d.Time.After(last.Time)) {
			last = d
		}
	}
	return last
}

// objectStatuses reads each inventory object and computes its kstatus, plus
// where Services and Ingresses are reachable.
func (g *globalOptions) objectStatuses(ctx context.Context, inventory []record.ObjectRef) ([]ObjectStatus, []string) {
	var out []ObjectStatus
	var located []string
	for _, ref := range inventory {
		u := ref.Object()
		os := ObjectStatus{Object: ref.String()}
		err := g.cluster.Client.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, u)
		switch {
		case apierrors.IsNotFound(err):
			os.Status = "NotFound"
		case err != nil:
			os.Status, os.Message = "Unknown", err.Error()
		default:
			if res, err := status.Compute(u); err == nil {
				os.Status, os.Message = string(res.Status), res.Message
			}
			located = append(located, locations(u)...)
		}
		out = append(out, os)
	}
	return out, located
}

// locations says where a Service or Ingress is reachable.
func locations(u *unstructured.Unstructured) []string {
	var out []string
	switch u.GetKind() {
	case "Service":
		ip, _, _ := unstructured.NestedString(u.Object, "spec", "clusterIP")
		ports, _, _ := unstructured.NestedSlice(u.Object, "spec", "ports")
		ingress, _, _ := unstructured.NestedSlice(u.Object, "status", "loadBalancer", "ingress")
		for _, p := range ports {
			pm, _ := p.(map[string]any)
			port := fmt.Sprint(pm["port"])
			for _, in := range ingress {
				im, _ := in.(map[string]any)
				host := firstNonEmpty(fmt.Sprint(orEmpty(im["ip"])), fmt.Sprint(orEmpty(im["hostname"])))
				if host != "" {
					out = append(out, host+":"+port)
				}
			}
			if ip != "" && ip != "None" {
				out = append(out, ip+":"+port)
			}
		}
	case "Ingress":
		rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		tls, _, _ := unstructured.NestedSlice(u.Object, "spec", "tls")
		scheme := "http://"
		if len(tls) > 0 {
			scheme = "https://"
		}
		for _, r := range rules {
			rm, _ := r.(map[string]any)
			if h, ok := rm["host"].(string); ok && h != "" {
				out = append(out, scheme+h)
			}
		}
	}
	return out
}

func orEmpty(v any) any {
	if v == nil {
		return ""
	}
	return v
}

// showStatus prints one release's status in the chosen format.
func (g *globalOptions) showStatus(ctx context.Context, name, format string) error {
	v, err := g.status(ctx, name)
	if err != nil {
		return err
	}
	if format == "json" || format == "yaml" {
		return printData(g.out, format, v)
	}
	printStatus(g.out, v)
	return nil
}

func printStatus(w io.Writer, v *StatusView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Name:\t%s\n", v.Name)
	if v.Namespace != "" {
		fmt.Fprintf(tw, "Namespace:\t%s\n", v.Namespace)
	}
	fmt.Fprintf(tw, "Status:\t%s\n", v.Status)
	if v.Message != "" {
		fmt.Fprintf(tw, "Message:\t%s\n", oneLine(v.Message))
	}
	if v.Revision > 0 {
		fmt.Fprintf(tw, "Revision:\t%d\n", v.Revision)
		fmt.Fprintf(tw, "Chart:\t%s#%s (%s)\n", v.Chart, v.ChartVersion, v.ChartRef)
		fmt.Fprintf(tw, "Last applied:\t%s\n", v.LastApplied.Local().Format(time.RFC3339))
	}
	if v.Source != "" {
		fmt.Fprintf(tw, "Source:\t%s\n", v.Source)
	}
	if v.SourceRevision != "" {
		fmt.Fprintf(tw, "Source revision:\t%s\n", v.SourceRevision)
	}
	if !v.Declared && v.Revision > 0 {
		fmt.Fprintf(tw, "Declared:\tno (will be uninstalled)\n")
	}
	tw.Flush()
	if len(v.Objects) > 0 {
		fmt.Fprintln(w, "Objects:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, o := range v.Objects {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", o.Object, o.Status, o.Message)
		}
		tw.Flush()
	}
	for _, l := range v.LocatedAt {
		fmt.Fprintf(w, "Located at: %s\n", l)
	}
	if d := v.LastDrift; d != nil {
		fmt.Fprintf(w, "Last drift: %s, %s\n", d.Time.Local().Format(time.RFC3339), d.Action)
		if d.Message != "" {
			fmt.Fprintf(w, "  %s\n", oneLine(d.Message))
		}
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, o := range d.Objects {
			what := strings.Join(o.Fields, ", ")
			if o.Deleted {
				what = "deleted"
			}
			by := ""
			if len(o.Managers) > 0 {
				by = "by " + strings.Join(o.Managers, ", ")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", o.Object, what, by)
		}
		tw.Flush()
	}
}

type getValuesOptions struct {
	output string
	all    bool
}

func newGetValuesCmd(g *globalOptions) *cobra.Command {
	o := &getValuesOptions{}
	cmd := &cobra.Command{
		Use:   "get-values NAME [NAME...]",
		Short: "Print the values a release was applied with",
		Long: `Print the user-supplied values recorded for the release's newest revision (--all: coalesced
with the chart defaults). Several names print one document keyed by release name.
-o yaml|json chooses the format; any other -o value is a file to write (YAML).`,
		Example: `  charter get-values taco-tuesday
  charter get-values taco-tuesday -o values.yaml
  charter get-values taco-tuesday wonky-panda -o json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGetValues(cmd.Context(), g, o, args)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "yaml", "yaml, json, or a file to write")
	cmd.Flags().BoolVarP(&o.all, "all", "a", false, "include the chart's default values")
	return cmd
}

func runGetValues(ctx context.Context, g *globalOptions, o *getValuesOptions, names []string) error {
	docs := map[string]any{}
	for _, n := range names {
		rev, err := g.lastRecord(ctx, n)
		if err != nil {
			return err
		}
		vals := rev.Values
		if o.all {
			vals = rev.ComputedValues
		}
		if vals == nil {
			vals = map[string]any{}
		}
		docs[n] = vals
	}
	var doc any = docs
	if len(names) == 1 {
		doc = docs[names[0]]
	}
	switch o.output {
	case "yaml", "json", "":
		return printData(g.out, firstNonEmpty(o.output, "yaml"), doc)
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(o.output, b); err != nil {
		return err
	}
	fmt.Fprintf(g.out, "Created: %s\n", o.output)
	return nil
}

// writeFileAtomic writes via a temp file in the same folder and a rename,
// so an interrupted write never leaves a partial file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".charter-tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func newManifestCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Read the manifests the cluster recorded",
	}
	cmd.AddCommand(&cobra.Command{
		Use:     "get NAME [NAME...]",
		Short:   "Print the rendered manifest of a release's newest revision",
		Example: `  charter manifest get taco-tuesday`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, n := range args {
				rev, err := g.lastRecord(cmd.Context(), n)
				if err != nil {
					return err
				}
				fmt.Fprint(g.out, rev.Manifest)
			}
			return nil
		},
	})
	return cmd
}

// DeploymentRow is one release in `deployment list`.
type DeploymentRow struct {
	Name           string    `json:"name"`
	Namespace      string    `json:"namespace"`
	Chart          string    `json:"chart"`
	Status         string    `json:"status"`
	Revision       int       `json:"revision"`
	Updated        time.Time `json:"updated,omitempty"`
	Source         string    `json:"source,omitempty"`
	SourceRevision string    `json:"sourceRevision,omitempty"`
	Declared       bool      `json:"declared"`
}

// deployments joins declarations and records: declared-but-not-applied and
// applied-but-no-longer-declared releases both show.
func (g *globalOptions) deployments(ctx context.Context) ([]DeploymentRow, error) {
	rows := map[string]*DeploymentRow{}
	if st, _, err := g.openState(ctx); err == nil {
		decls, errs := st.Scan(ctx)
		for _, d := range decls {
			rows[d.Name] = &DeploymentRow{Name: d.Name, Namespace: d.Namespace, Chart: d.Chart, Status: "declared", Declared: true}
		}
		for _, e := range errs {
			var re *state.ReleaseError
			if !errors.As(e, &re) {
				return nil, e
			}
			g.progress("Warning: %s", oneLine(e.Error()))
			rows[re.Release] = &DeploymentRow{Name: re.Release, Status: "declaration unreadable", Declared: true}
		}
	}
	recs, err := g.records()
	if err != nil {
		return nil, err
	}
	live, err := recs.List(ctx)
	if err != nil {
		return nil, reconcile.ServerError(g.cluster.Config.Host, err)
	}
	for _, r := range live {
		row, ok := rows[r.Release]
		if !ok {
			row = &DeploymentRow{Name: r.Release}
			rows[r.Release] = row
		}
		row.Namespace, row.Chart, row.Revision = r.Namespace, r.ChartName+"#"+r.ChartVersion, r.Revision
		if row.Status != "declaration unreadable" {
			row.Status = string(r.Status)
		}
		row.Updated, row.Source, row.SourceRevision = r.LastDeployed, r.Source, r.SourceRevision
	}
	out := make([]DeploymentRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func newDeploymentCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "deployment",
		Aliases: []string{"deployments"},
		Short:   "List and inspect releases (declared and live)",
	}
	var output string
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List every release: declared, applied, or both",
		Example: `  charter deployment list
  charter deployment list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rows, err := g.deployments(cmd.Context())
			if err != nil {
				return err
			}
			return g.show(output, rows, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tNAMESPACE\tCHART\tSTATUS\tREVISION\tUPDATED\tSOURCE REVISION")
				for _, r := range rows {
					upd := ""
					if !r.Updated.IsZero() {
						upd = r.Updated.Local().Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Name, r.Namespace, r.Chart, r.Status, r.Revision, upd, shortRev(r.SourceRevision))
				}
			})
		},
	}
	addOutputFlag(list, &output)
	var getOutput string
	get := &cobra.Command{
		Use:     "get NAME",
		Short:   "Show one release (same as status)",
		Example: `  charter deployment get taco-tuesday`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.showStatus(cmd.Context(), args[0], getOutput)
		},
	}
	addOutputFlag(get, &getOutput)
	cmd.AddCommand(list, get)
	return cmd
}

func shortRev(s string) string {
	if strings.HasPrefix(s, "sha256:") && len(s) > 19 {
		return s[:19]
	}
	return s
}

// ChartUse is one chart#version and the releases running it.
type ChartUse struct {
	Chart    string   `json:"chart"`
	Releases []string `json:"releases"`
}

func (g *globalOptions) chartUses(ctx context.Context) ([]ChartUse, error) {
	recs, err := g.records()
	if err != nil {
		return nil, err
	}
	live, err := recs.List(ctx)
	if err != nil {
		return nil, reconcile.ServerError(g.cluster.Config.Host, err)
	}
	by := map[string][]string{}
	for _, r := range live {
		if r.ChartName == "" {
			continue
		}
		k := chartLabel(r.Chart, r.ChartName) + "#" + r.ChartVersion
		by[k] = append(by[k], r.Release)
	}
	out := make([]ChartUse, 0, len(by))
	for k, v := range by {
		sort.Strings(v)
		out = append(out, ChartUse{Chart: k, Releases: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Chart < out[j].Chart })
	return out, nil
}

func newChartCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "chart", Short: "Charts in use by releases"}
	var output string
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List chart#version in use, with how many releases run each",
		Example: `  charter chart list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			uses, err := g.chartUses(cmd.Context())
			if err != nil {
				return err
			}
			return g.show(output, uses, func(w io.Writer) {
				fmt.Fprintln(w, "CHART\tRELEASES")
				for _, u := range uses {
					fmt.Fprintf(w, "%s\t%d\n", u.Chart, len(u.Releases))
				}
			})
		},
	}
	addOutputFlag(list, &output)
	var getOutput string
	get := &cobra.Command{
		Use:   "get CHART[#VERSION]",
		Short: "List the releases running a chart (any version unless #VERSION is given)",
		Example: `  charter chart get mychart
  charter chart get mychart#0.1.0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			uses, err := g.chartUses(cmd.Context())
			if err != nil {
				return err
			}
			var match []ChartUse
			for _, u := range uses {
				name, _, _ := strings.Cut(u.Chart, "#")
				if u.Chart == args[0] || name == args[0] || path.Base(name) == args[0] {
					match = append(match, u)
				}
			}
			if len(match) == 0 {
				return fmt.Errorf("chart %q is not used by any release", args[0])
			}
			return g.show(getOutput, match, func(w io.Writer) {
				fmt.Fprintln(w, "CHART\tRELEASE")
				for _, u := range match {
					for _, r := range u.Releases {
						fmt.Fprintf(w, "%s\t%s\n", u.Chart, r)
					}
				}
			})
		},
	}
	addOutputFlag(get, &getOutput)
	cmd.AddCommand(list, get)
	return cmd
}

// chartLabel names a chart as users refer to it: repo/chart for charts
// from a repository, the chart's name for charts kept in the state.
func chartLabel(ref, name string) string {
	if ref == "" || strings.HasPrefix(ref, "charts/") || strings.HasPrefix(ref, ".") || strings.HasPrefix(ref, "/") || strings.Contains(ref, "://") {
		return name
	}
	ref, _, _ = strings.Cut(ref, "#")
	return strings.TrimPrefix(strings.TrimPrefix(ref, "helm:"), "charter:")
}
