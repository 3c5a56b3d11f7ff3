package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"

	"github.com/charter-sh/charter/credential"
	"github.com/charter-sh/charter/reconcile"
	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/repo"
	"github.com/charter-sh/charter/state"
)

// valueOptions are the Helm-style value flags shared by deploy, redeploy,
// template and diff.
type valueOptions struct {
	files     []string
	set       []string
	setString []string
	setJSON   []string
}

func (v *valueOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVarP(&v.files, "values", "f", nil, "values file or params file (repeatable; later files win)")
	f.StringArrayVar(&v.set, "set", nil, "set a value: key=value (repeatable, Helm syntax)")
	f.StringArrayVar(&v.setString, "set-string", nil, "set a STRING value: key=value (repeatable)")
	f.StringArrayVar(&v.setJSON, "set-json", nil, "set a JSON value: key=jsonvalue (repeatable)")
}

// input is what -f files and --set flags amount to: values, plus the chart
// and settings a params file names.
type input struct {
	values    map[string]any
	chart     string // from a params file, resolved against its folder
	namespace string
	version   string
}

// read loads the -f files in order (params files and plain values files)
// and applies the --set family on top.
func (v *valueOptions) read() (*input, error) {
	in := &input{values: map[string]any{}}
	for _, f := range v.files {
		rel, isDecl, err := state.ParseFile(f)
		if err != nil {
			return nil, err
		}
		if !isDecl {
			vals, err := render.ReadValuesFile(f)
			if err != nil {
				return nil, err
			}
			in.values = render.MergeValues(in.values, vals)
			continue
		}
		if rel.Chart != "" {
			in.chart = rel.Chart
			if !filepath.IsAbs(rel.Chart) && looksLocal(rel.Chart) {
				in.chart = filepath.Join(filepath.Dir(f), rel.Chart)
			}
		}
		if rel.Namespace != "" {
			in.namespace = rel.Namespace
		}
		if rel.Version != "" {
			in.version = rel.Version
		}
		for _, vf := range rel.ValuesFiles {
			p := vf
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(f), vf)
			}
			vals, err := render.ReadValuesFile(p)
			if err != nil {
				return nil, err
			}
			in.values = render.MergeValues(in.values, vals)
		}
		in.values = render.MergeValues(in.values, rel.Values)
	}
	if err := render.ApplySet(in.values, v.set, v.setString, v.setJSON); err != nil {
		return nil, err
	}
	return in, nil
}

// looksLocal reports whether a chart reference is a path on this machine
// rather than a reference inside the state.
func looksLocal(ref string) bool {
	return ref == "." || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") || filepath.IsAbs(ref)
}

// chartChoice is a resolved chart: where it is recorded in the state and
// the loaded chart.
type chartChoice struct {
	ref       string // reference written into the declaration
	localPath string // absolute path of a bundled local chart
	chart     *render.Chart
	archive   []byte // bytes to bundle into the state, when local
	// version and digest pin a chart resolved from a repository.
	version string
	digest  string
}

// resolveChart finds a chart given on the command line or in a params file:
// a local chart directory or archive (bundled into the state), or a
// reference to a chart already in the state.
//
// Anything else is a repository reference (stable/web, example.com/charts/web,
// https://…/web-1.2.3.tgz, with an optional #VERSION) resolved with the
// state's repositories: constraint picks the version ("" = latest stable),
// and the choice is pinned by exact version and archive digest.
func (g *globalOptions) resolveChart(ctx context.Context, st *state.Dir, ref, constraint string) (*chartChoice, error) {
	if ref == "" {
		return nil, errors.New("no chart given: pass CHART or a params file (-f) that names one")
	}
	if _, err := os.Stat(ref); err == nil && (looksLocal(ref) || !insideState(st, ref)) {
		return loadLocalChart(ref)
	}
	if p, err := st.ResolveChart(ref); err == nil {
		if _, err := os.Stat(p); err == nil {
			ch, err := render.Load(p)
			if err != nil {
				return nil, err
			}
			return &chartChoice{ref: ref, chart: ch}, nil
		}
	}
	if looksLocal(ref) {
		return nil, fmt.Errorf("chart %q not found (no such folder or archive)", ref)
	}
	d, err := g.declared()
	if err != nil {
		return nil, err
	}
	res, err := d.Resolve(ctx, st, ref, constraint)
	if err != nil {
		return nil, err
	}
	if res.Archive == nil {
		return nil, fmt.Errorf("chart %q: not an archive", ref)
	}
	ch, err := render.LoadArchive(ref, bytes.NewReader(res.Archive))
	if err != nil {
		return nil, err
	}
	name, _, _ := strings.Cut(ref, "#") // the version is pinned separately
	if strings.HasPrefix(name, "oci://") {
		if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
			name = name[:i] // oci://…/chart:TAG → oci://…/chart
		}
	}
	return &chartChoice{ref: name, chart: ch, version: res.Version, digest: res.Digest}, nil
}

// declared resolves repository references with the state's repositories
// and the cluster's credentials (read only when a repository names one).
func (g *globalOptions) declared() (*repo.Declared, error) {
	cache, err := defaultCacheDir()
	if err != nil {
		return nil, err
	}
	client, err := repo.NewClient(repo.ClientOptions{CacheDir: filepath.Join(filepath.Dir(cache), "repos"),
		BucketOptions: g.src.sourceOptions(cache)})
	if err != nil {
		return nil, err
	}
	return &repo.Declared{Client: client, Credentials: lazyCredentials{g}}, nil
}

// lazyCredentials connects to the cluster only when a credential is needed.
type lazyCredentials struct{ g *globalOptions }

func (l lazyCredentials) Get(ctx context.Context, name string) (*credential.Credential, error) {
	st, err := l.g.credentials()
	if err != nil {
		return nil, err
	}
	return st.Get(ctx, name)
}

// loadLocalChart loads a chart directory or archive on this machine and
// the archive bytes to bundle into the state.
func loadLocalChart(ref string) (*chartChoice, error) {
	abs, err := filepath.Abs(ref)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("chart %q: %w", ref, err)
	}
	ch, err := render.Load(abs)
	if err != nil {
		return nil, err
	}
	var data []byte
	if fi.IsDir() {
		data, err = packageChart(ch)
	} else {
		data, err = os.ReadFile(abs)
	}
	if err != nil {
		return nil, err
	}
	return &chartChoice{localPath: abs, chart: ch, archive: data}, nil
}

func insideState(st *state.Dir, ref string) bool {
	p, err := st.ResolveChart(ref)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// packageChart archives a loaded chart directory with Helm's own writer.
func packageChart(ch *render.Chart) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "charter-package-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	p, err := chartutil.Save(ch.Chart, tmp)
	if err != nil {
		return nil, fmt.Errorf("package chart %s: %w", ch.Chart.Metadata.Name, err)
	}
	return os.ReadFile(p)
}

// bundle writes a local chart into the state d and sets c.ref to its
// reference. It is called inside a store edit.
func bundle(ctx context.Context, d *state.Dir, c *chartChoice) error {
	if c.archive == nil {
		return nil
	}
	meta := c.chart.Chart.Metadata
	ref, err := d.PutChart(ctx, meta.Name, meta.Version, c.archive)
	if err != nil {
		return err
	}
	c.ref = ref
	return nil
}

// bundledRef is where bundle puts a local chart.
func bundledRef(c *chartChoice) string {
	meta := c.chart.Chart.Metadata
	return "charts/" + meta.Name + "-" + meta.Version + ".tgz"
}

// checkRender renders the would-be declaration offline so that a broken
// chart or invalid values are refused before anything is written.
func (g *globalOptions) checkRender(c *chartChoice, name, namespace string, values map[string]any, offline bool) error {
	if namespace == "" {
		namespace = "default"
	}
	opts := render.Options{ReleaseName: name, Namespace: namespace}
	if !offline {
		cl, err := g.clusterClient()
		if err != nil {
			return err
		}
		caps, err := cl.Capabilities()
		if err != nil {
			return err
		}
		opts = caps.RenderOptions(opts)
	}
	_, err := render.Render(c.chart, values, opts)
	return err
}

// waitOptions are the convergence flags of commands that change releases.
type waitOptions struct {
	noWait  bool
	timeout time.Duration
}

func (w *waitOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&w.noWait, "no-wait", false, "only change the declared state; do not wait for convergence")
	cmd.Flags().DurationVar(&w.timeout, "timeout", 5*time.Minute, "how long to wait for releases to converge")
}

// releaseFlags set a release's behaviour fields: health timeout,
// remediation, force and adopt.
type releaseFlags struct {
	healthTimeout time.Duration
	remediation   string
	force         bool
	adopt         bool
	// changed reports whether a flag was given (redeploy changes only those).
	changed func(name string) bool
}

func (f *releaseFlags) addFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.DurationVar(&f.healthTimeout, "health-timeout", 0, "declare how long the release may take to become healthy (default: the daemon's or --timeout)")
	fs.StringVar(&f.remediation, "remediation", "", "declare what to do when an upgrade never becomes healthy: rollback or none")
	fs.BoolVar(&f.force, "force", false, "declare force: replace objects whose immutable fields change")
	fs.BoolVar(&f.adopt, "adopt", false, "declare adopt: take over existing objects no release owns")
	f.changed = fs.Changed
}

// check refuses bad flag values before anything is written.
func (f *releaseFlags) check() error {
	if f.changed("health-timeout") && f.healthTimeout <= 0 {
		return fmt.Errorf("--health-timeout %s: must be positive", f.healthTimeout)
	}
	switch f.remediation {
	case "", state.RemediationRollback, state.RemediationNone:
	default:
		return fmt.Errorf("--remediation %q: want %s or %s", f.remediation, state.RemediationRollback, state.RemediationNone)
	}
	return nil
}

// apply writes the given flags into r.
func (f *releaseFlags) apply(r *state.Release) {
	if f.changed("health-timeout") {
		r.Timeout = shortDuration(f.healthTimeout)
	}
	if f.changed("remediation") {
		switch f.remediation {
		case "":
			r.Remediation = nil
		case state.RemediationRollback, state.RemediationNone:
			retries := 0
			if r.Remediation != nil {
				retries = r.Remediation.Retries
			}
			r.Remediation = &state.Remediation{Strategy: f.remediation, Retries: retries}
		}
	}
	if f.changed("force") {
		r.Force = f.force
	}
	if f.changed("adopt") {
		r.Adopt = f.adopt
	}
}

// shortDuration formats d without zero units: 5m, 1h30m, 90s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

type deployOptions struct {
	dependsOn []string
	name      string
	namespace string
	version   string
	values    valueOptions
	release   releaseFlags
	waitOptions
}

func newDeployCmd(g *globalOptions) *cobra.Command {
	o := &deployOptions{}
	cmd := &cobra.Command{
		Use:   "deploy [-f CONFIG] [-n NAME] [CHART]",
		Short: "Declare a new release and wait until the cluster runs it",
		Long: `Deploy declares a new release in the declared state and, unless --no-wait, waits until the
cluster has converged to it (reconciling in-process when no daemon serves the state).

CHART is a chart directory or archive on this machine (bundled into the state, so the daemon
never reads your disk) or a chart reference inside the state. With a params file (-f) written
by gen-params, CHART may be omitted: the file names the chart.`,
		Example: `  charter deploy ./mychart
  charter deploy -n taco-tuesday --set replicaCount=2 ./mychart
  charter gen-params ./mychart && charter deploy -f values.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDeploy(cmd.Context(), g, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.name, "name", "n", "", "release name (default: a random adjective-noun)")
	f.StringVar(&o.namespace, "namespace", "", "target namespace (default: default)")
	f.StringVar(&o.version, "version", "", "chart version constraint (semver)")
	f.StringSliceVar(&o.dependsOn, "depends-on", nil, "releases that must be deployed before this one (repeatable)")
	o.release.addFlags(cmd)
	o.waitOptions.addFlags(cmd)
	o.values.addFlags(cmd)
	return cmd
}

func runDeploy(ctx context.Context, g *globalOptions, o *deployOptions, args []string) error {
	if o.name != "" {
		if err := state.ValidateName(o.name); err != nil {
			return err
		}
	}
	if err := o.release.check(); err != nil {
		return err
	}
	in, err := o.values.read()
	if err != nil {
		return err
	}
	chartRef := in.chart
	if len(args) == 1 {
		chartRef = args[0]
	}
	store, err := g.openStore(ctx, true)
	if err != nil {
		return err
	}
	st, err := store.Dir(ctx)
	if err != nil {
		return err
	}
	c, err := g.resolveChart(ctx, st, chartRef, firstNonEmpty(o.version, in.version))
	if err != nil {
		return err
	}
	ns := firstNonEmpty(o.namespace, in.namespace, "default")
	name := o.name
	if name == "" {
		name, err = g.freeName(ctx, st)
		if err != nil {
			return err
		}
	} else if _, err := st.Get(ctx, name); err == nil {
		return fmt.Errorf("release %q already exists; use `charter redeploy %s` to change it", name, name)
	}
	if err := g.reachable(ctx, o.noWait); err != nil {
		return err
	}
	if err := g.checkRender(c, name, ns, in.values, o.noWait); err != nil {
		return err
	}
	if c.archive != nil {
		g.progress("Uploading %s as %s", chartRef, bundledRef(c))
	}
	meta := c.chart.Chart.Metadata
	_, err = store.Edit(ctx, fmt.Sprintf("deploy %s: %s %s", name, meta.Name, meta.Version), func(d *state.Dir) error {
		if err := bundle(ctx, d, c); err != nil {
			return err
		}
		rel := &state.Release{
			APIVersion: "charter.sh/v1", Kind: "Release",
			Name: name, Namespace: ns, Chart: c.ref,
			Version:   firstNonEmpty(c.version, o.version, in.version),
			Digest:    c.digest,
			ChartPath: c.localPath, DependsOn: o.dependsOn, Values: in.values,
		}
		o.release.apply(rel)
		return d.Create(ctx, rel)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.out, "Created %s\n", name)
	if o.noWait {
		return nil
	}
	return g.converge(ctx, store, []string{name}, o.timeout)
}

// reachable checks the API server before a command that will wait writes
// anything, so an unreachable cluster leaves the declared state untouched.
func (g *globalOptions) reachable(ctx context.Context, noWait bool) error {
	if noWait {
		return nil
	}
	c, err := g.clusterClient()
	if err != nil {
		return err
	}
	return c.Ping(ctx)
}

// freeName picks a random name unused among declared and live releases.
func (g *globalOptions) freeName(ctx context.Context, st *state.Dir) (string, error) {
	taken := map[string]bool{}
	decls, err := st.List(ctx)
	if err != nil {
		return "", err
	}
	for _, d := range decls {
		taken[d.Name] = true
	}
	if recs, err := g.records(); err == nil {
		if live, err := recs.List(ctx); err == nil {
			for _, r := range live {
				taken[r.Release] = true
			}
		}
	}
	return randomName(func(n string) bool { return taken[n] }), nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

type redeployOptions struct {
	values  valueOptions
	version string
	release releaseFlags
	waitOptions
}

func newRedeployCmd(g *globalOptions) *cobra.Command {
	o := &redeployOptions{}
	cmd := &cobra.Command{
		Use:   "redeploy [-f CONFIG] [--set k=v] NAME",
		Short: "Change a release's values (and re-bundle its local chart) and wait until converged",
		Long: `Redeploy coalesces new values into a release's declaration and waits until the cluster has
converged. For a release deployed from a local chart, the chart is bundled again — from the
current folder when it holds that chart, else from the path recorded at deploy time — so an
edit to the chart is picked up.`,
		Example: `  charter redeploy --set replicaCount=3 taco-tuesday
  charter redeploy -f more-values.yaml taco-tuesday`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRedeploy(cmd.Context(), g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.version, "version", "", "new chart version constraint (semver)")
	o.release.addFlags(cmd)
	o.waitOptions.addFlags(cmd)
	o.values.addFlags(cmd)
	return cmd
}

func runRedeploy(ctx context.Context, g *globalOptions, o *redeployOptions, name string) error {
	if err := o.release.check(); err != nil {
		return err
	}
	store, err := g.openStore(ctx, false)
	if err != nil {
		return err
	}
	st, err := store.Dir(ctx)
	if err != nil {
		return err
	}
	decl, err := st.Get(ctx, name)
	if err != nil {
		return err
	}
	in, err := o.values.read()
	if err != nil {
		return err
	}
	var c *chartChoice
	newVersion := firstNonEmpty(o.version, in.version)
	switch {
	case in.chart != "":
		c, err = g.resolveChart(ctx, st, in.chart, newVersion)
	case decl.ChartPath != "":
		c, err = g.resolveChart(ctx, st, localChartSource(decl), "")
	case decl.Digest != "" && newVersion == "":
		// A pinned repository chart stays exactly what was resolved.
		c, err = g.pinnedChart(ctx, st, decl)
	default:
		c, err = g.resolveChart(ctx, st, decl.Chart, firstNonEmpty(newVersion, decl.Version))
	}
	if err != nil {
		return err
	}
	check := *decl
	check.Values = render.MergeValues(decl.Values, in.values)
	all, err := st.ValuesFor(ctx, &check)
	if err != nil {
		return err
	}
	if err := g.reachable(ctx, o.noWait); err != nil {
		return err
	}
	if err := g.checkRender(c, name, firstNonEmpty(in.namespace, decl.Namespace), all, o.noWait); err != nil {
		return err
	}
	if c.archive != nil {
		g.progress("Uploading %s as %s", displayPath(c.localPath), bundledRef(c))
	}
	meta := c.chart.Chart.Metadata
	_, err = store.Edit(ctx, fmt.Sprintf("redeploy %s: %s %s", name, meta.Name, meta.Version), func(d *state.Dir) error {
		if err := bundle(ctx, d, c); err != nil {
			return err
		}
		_, err := d.Update(ctx, name, func(r *state.Release) error {
			r.Values = render.MergeValues(r.Values, in.values)
			r.Chart = c.ref
			if c.localPath != "" {
				r.ChartPath = c.localPath
			}
			switch {
			case c.digest != "":
				r.Version, r.Digest = c.version, c.digest
			case newVersion != "":
				r.Version, r.Digest = newVersion, ""
			}
			if in.namespace != "" {
				r.Namespace = in.namespace
			}
			o.release.apply(r)
			return nil
		})
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.out, "Redeployed %s\n", name)
	if o.noWait {
		return nil
	}
	return g.converge(ctx, store, []string{name}, o.timeout)
}

// pinnedChart loads a declaration's repository chart at its pinned version
// and digest.
func (g *globalOptions) pinnedChart(ctx context.Context, st *state.Dir, decl *state.Release) (*chartChoice, error) {
	d, err := g.declared()
	if err != nil {
		return nil, err
	}
	ch, err := d.Load(ctx, st, decl.Chart, decl.Version, decl.Digest)
	if err != nil {
		return nil, err
	}
	return &chartChoice{ref: decl.Chart, chart: ch, version: decl.Version, digest: decl.Digest}, nil
}

// localChartSource picks where to re-bundle a local chart from: the current
// folder when it holds the same chart, else the path recorded at deploy.
func localChartSource(decl *state.Release) string {
	if cf, err := chartutil.LoadChartfile("Chart.yaml"); err == nil {
		if orig, err := chartutil.LoadChartfile(filepath.Join(decl.ChartPath, "Chart.yaml")); err != nil || orig.Name == cf.Name {
			return "."
		}
	}
	if _, err := os.Stat(decl.ChartPath); err != nil {
		return decl.Chart // the source is gone: keep the bundled copy
	}
	return decl.ChartPath
}

func displayPath(p string) string {
	if p == "" {
		return p
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
			if rel == "." {
				return "."
			}
			return "./" + rel
		}
	}
	return p
}

type uninstallOptions struct {
	waitOptions
}

func newUninstallCmd(g *globalOptions) *cobra.Command {
	o := &uninstallOptions{}
	cmd := &cobra.Command{
		Use:     "uninstall NAME [NAME...]",
		Aliases: []string{"delete"},
		Short:   "Remove releases from the declared state and wait until their objects are gone",
		Example: `  charter uninstall taco-tuesday`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUninstall(cmd.Context(), g, o, args)
		},
	}
	o.waitOptions.addFlags(cmd)
	return cmd
}

func runUninstall(ctx context.Context, g *globalOptions, o *uninstallOptions, names []string) error {
	for _, n := range names {
		if err := state.ValidateName(n); err != nil {
			return err
		}
	}
	store, err := g.openStore(ctx, false)
	if err != nil {
		return err
	}
	st, err := store.Dir(ctx)
	if err != nil {
		return err
	}
	var declared []string
	for _, n := range names {
		if _, err := st.Get(ctx, n); err == nil {
			declared = append(declared, n)
			continue
		} else if !errors.Is(err, state.ErrNotFound) {
			return err
		}
		// Not declared: still uninstall what the cluster recorded.
		if !g.isLive(ctx, n) {
			return fmt.Errorf("release %q not found", n)
		}
	}
	if len(declared) > 0 {
		_, err = store.Edit(ctx, "uninstall "+strings.Join(declared, ", "), func(d *state.Dir) error {
			for _, n := range declared {
				if err := d.Delete(ctx, n); err != nil && !errors.Is(err, state.ErrNotFound) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if !o.noWait {
		if err := g.converge(ctx, store, names, o.timeout); err != nil {
			return err
		}
	}
	for _, n := range names {
		fmt.Fprintf(g.out, "Destroyed %s\n", n)
	}
	return nil
}

// isLive reports whether the cluster has records of release n.
func (g *globalOptions) isLive(ctx context.Context, n string) bool {
	recs, err := g.records()
	if err != nil {
		return false
	}
	_, err = recs.Last(ctx, n)
	return err == nil
}

// converge waits until the cluster matches the declarations of names: by
// watching the records when a daemon follows this store, else by
// reconciling in-process from the store's local view.
func (g *globalOptions) converge(ctx context.Context, store state.Store, names []string, timeout time.Duration) error {
	ctx, cancel := withTimeout(ctx, timeout+30*time.Second)
	defer cancel()
	c, err := g.clusterClient()
	if err != nil {
		return err
	}
	if err := c.Ping(ctx); err != nil {
		return err
	}
	st, err := store.Dir(ctx)
	if err != nil {
		return err
	}
	if reconcile.DaemonServes(ctx, c.Typed, g.recordsNS, store.String()) {
		g.progress("Waiting for the daemon to converge %s", strings.Join(names, ", "))
		return g.waitForDaemon(ctx, st, names)
	}
	r, err := g.reconciler(st, store, timeout)
	if err != nil {
		return err
	}
	for _, n := range names {
		res, err := r.Reconcile(ctx, n, reconcile.Options{})
		if err != nil {
			return fmt.Errorf("release %s: %w", n, err)
		}
		switch res.Action {
		case "uninstalled":
		default:
			g.progress("%s: %s, revision %d", n, res.Action, res.Revision)
		}
	}
	return nil
}

// waitForDaemon polls the records until each release shows the desired
// state deployed (or failed), or is gone when its declaration was removed.
func (g *globalOptions) waitForDaemon(ctx context.Context, st *state.Dir, names []string) error {
	recs, err := g.records()
	if err != nil {
		return err
	}
	want := map[string]string{}
	for _, n := range names {
		d, err := st.Get(ctx, n)
		if errors.Is(err, state.ErrNotFound) {
			want[n] = "" // removed: wait until the records are gone
			continue
		}
		if err != nil {
			return err
		}
		chartDigest := d.Digest // a pinned repository chart: the archive's digest
		if chartDigest == "" {
			path, err := st.ResolveChart(d.Chart)
			if err != nil {
				return err
			}
			ch, err := render.Load(path)
			if err != nil {
				return err
			}
			chartDigest = ch.Digest
		}
		vals, err := st.ValuesFor(ctx, d)
		if err != nil {
			return err
		}
		want[n] = reconcile.DesiredDigest(d, chartDigest, vals)
	}
	last := map[string]string{}
	ready := map[string]bool{}
	for len(want) > 0 {
		for n, digest := range want {
			rev, err := recs.Last(ctx, n)
			if digest == "" {
				if errors.Is(err, record.ErrNotFound) {
					delete(want, n)
				}
				continue
			}
			if err == nil && rev.RolledBack != nil && rev.RolledBack.DesiredDigest == digest {
				// The daemon tried this desired state and remediation undid it.
				return fmt.Errorf("release %s failed: %s", n, rev.Message)
			}
			if err != nil || rev.DesiredDigest != digest {
				continue
			}
			if s := string(rev.Status); s != last[n] {
				g.progress("%s: %s", n, s)
				last[n] = s
			}
			if rev.Status.Pending() || rev.Status == record.StatusDeployed {
				// A line per object as it becomes ready, as in-process.
				objs, _ := g.objectStatuses(ctx, rev.Inventory)
				for _, o := range objs {
					if o.Status == "Current" && !ready[o.Object] {
						ready[o.Object] = true
						g.progress("  %-10s %s", "ready", o.Object)
					}
				}
			}
			switch rev.Status {
			case record.StatusDeployed:
				delete(want, n)
			case record.StatusFailed:
				return fmt.Errorf("release %s failed: %s", n, rev.Message)
			}
		}
		if len(want) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for the daemon to converge: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
	return nil
}
