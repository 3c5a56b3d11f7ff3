package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/reconcile"
	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/source"
	sourcegit "github.com/charter-sh/charter/source/git"
	"github.com/charter-sh/charter/state"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// globalOptions are the flags every command shares.
type globalOptions struct {
	in              io.Reader
	out, errOut     io.Writer
	kubeconfig      string
	kubeContext     string
	statePath       string
	recordsNS       string
	quiet           bool
	requestTimeout  time.Duration
	kubeQPS         float32 // client-side rate limit of API requests
	kubeBurst       int
	commit          bool // dir stores: svn/brz commit each change
	noPush          bool // git stores: commit locally only
	authorName      string
	authorEmail     string
	stateCredential string      // a cluster credential for a git or bucket --state
	src             sourceFlags // git/bucket stores: endpoints, host keys

	cluster *reconcile.Cluster
}

func newRootCmd(in io.Reader, out, errOut io.Writer) *cobra.Command {
	g := &globalOptions{in: in, out: out, errOut: errOut}
	cmd := &cobra.Command{
		Use:   "charter",
		Short: "GitOps package manager and reconciler for Kubernetes",
		Long: `charter deploys Helm charts the GitOps way: commands that change things edit the
declared state (release declarations in a folder, an SVN or Bazaar checkout, a git
repository or a bucket), and a reconciler converges the cluster to it with server-side
apply, pruning and health checks. The cluster keeps the record of what was applied,
which status, get-values and manifest get read.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	cmd.SetIn(in)
	cmd.SetOut(out)
	cmd.SetErr(errOut)
	f := cmd.PersistentFlags()
	f.StringVar(&g.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&g.kubeContext, "context", "", "kubeconfig context to use")
	f.StringVar(&g.statePath, "state", "", "declared state directory (default: from `charter init`, else ./charter-state)")
	f.StringVar(&g.recordsNS, "records-namespace", record.DefaultNamespace, "namespace where release records are kept")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "print only results, no progress")
	f.DurationVar(&g.requestTimeout, "request-timeout", 30*time.Second, "timeout of a single API request")
	f.Float32Var(&g.kubeQPS, "kube-qps", reconcile.DefaultQPS, "API requests per second this process may send (client-side rate limit)")
	f.IntVar(&g.kubeBurst, "kube-burst", reconcile.DefaultBurst, "API requests this process may send at once above --kube-qps")
	f.BoolVar(&g.commit, "commit", false, "state in an SVN or Bazaar working copy: commit each change with svn/brz")
	f.BoolVar(&g.noPush, "no-push", false, "state in git: commit locally, do not push")
	f.StringVar(&g.authorName, "author-name", "", "state in git: commit author name (default: git config user.name)")
	f.StringVar(&g.authorEmail, "author-email", "", "state in git: commit author email (default: git config user.email)")
	f.StringVar(&g.stateCredential, "state-credential", "", "state in git or a bucket: authenticate with this cluster credential (charter credential add)")
	g.src.addFlags(f)

	cmd.AddCommand(
		newInitCmd(g),
		newTemplateCmd(g),
		newDeployCmd(g),
		newRedeployCmd(g),
		newUninstallCmd(g),
		newStatusCmd(g),
		newGetValuesCmd(g),
		newManifestCmd(g),
		newListParamsCmd(g),
		newGenParamsCmd(g),
		newDeploymentCmd(g),
		newChartCmd(g),
		newCreateCmd(g),
		newLintCmd(g),
		newDiffCmd(g),
		newReconcileCmd(g),
		newDaemonCmd(g),
		newCredentialCmd(g),
		newRepoCmd(g),
		newSearchCmd(g),
		newPackageCmd(g),
		newReleaseCmd(g),
		newHistoryCmd(g),
		newRollbackCmd(g),
		newDoctorCmd(g),
	)
	return cmd
}

// progress prints one human line to stderr unless --quiet.
func (g *globalOptions) progress(format string, args ...any) {
	if g.quiet {
		return
	}
	fmt.Fprintf(g.errOut, format+"\n", args...)
}

// restConfig loads the kubeconfig the way kubectl does.
func (g *globalOptions) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if g.kubeconfig != "" {
		rules.ExplicitPath = g.kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: g.kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.Timeout = g.requestTimeout
	cfg.QPS, cfg.Burst = g.kubeQPS, g.kubeBurst
	cfg.UserAgent = "charter/" + version
	return cfg, nil
}

// clusterClient connects once per command.
func (g *globalOptions) clusterClient() (*reconcile.Cluster, error) {
	if g.cluster != nil {
		return g.cluster, nil
	}
	cfg, err := g.restConfig()
	if err != nil {
		return nil, err
	}
	c, err := reconcile.NewCluster(cfg)
	if err != nil {
		return nil, err
	}
	g.cluster = c
	return c, nil
}

func (g *globalOptions) records() (*record.Store, error) {
	c, err := g.clusterClient()
	if err != nil {
		return nil, err
	}
	return record.NewStore(c.Typed, g.recordsNS, 0), nil
}

// configFile is where `charter init` remembers the default state.
func configFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find config dir: %w", err)
	}
	return filepath.Join(dir, "charter", "config.yaml"), nil
}

type userConfig struct {
	State string `json:"state"`
}

// stateLocation resolves --state, then the init config, then
// ./charter-state. Local folders are made absolute; URLs are kept.
func (g *globalOptions) stateLocation() (string, error) {
	p := g.statePath
	if p == "" {
		if cf, err := configFile(); err == nil {
			if b, err := os.ReadFile(cf); err == nil {
				var uc userConfig
				if err := yaml.Unmarshal(b, &uc); err != nil {
					return "", fmt.Errorf("read %s: %w", cf, err)
				}
				p = uc.State
			}
		}
	}
	if p == "" {
		p = "charter-state"
	}
	if source.KindOf(p, isGitRepo) == source.KindDir {
		return filepath.Abs(localPath(p))
	}
	return p, nil
}

// localPath strips the dir:// and file:// prefixes of a folder location.
func localPath(loc string) string {
	return strings.TrimPrefix(strings.TrimPrefix(loc, "dir://"), "file://")
}

// isGitRepo reports whether a local path is a git repository.
var isGitRepo = sourcegit.IsRepository

// openStore opens the declared state for editing, picking the backend from
// its location; create initialises a missing local folder.
func (g *globalOptions) openStore(ctx context.Context, create bool) (state.Store, error) {
	loc, err := g.stateLocation()
	if err != nil {
		return nil, err
	}
	switch source.KindOf(loc, isGitRepo) {
	case source.KindDir:
		if !create {
			if _, err := os.Stat(loc); errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("declared state %s does not exist (create it with charter init --state %s, or deploy something)", loc, loc)
			}
		}
		ds, err := state.NewDirStore(loc, create)
		if err != nil {
			return nil, err
		}
		if g.commit {
			ds.Commit = state.CommitVCS
		}
		return ds, nil
	}
	return g.openRemoteStore(ctx, loc)
}

// openState returns a local, up-to-date view of the declared state for
// reading, and the store it belongs to.
func (g *globalOptions) openState(ctx context.Context) (*state.Dir, state.Store, error) {
	st, err := g.openStore(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	d, err := st.Dir(ctx)
	if err != nil {
		return nil, nil, err
	}
	return d, st, nil
}

func (g *globalOptions) logger(jsonLogs bool) *slog.Logger {
	if jsonLogs {
		return slog.New(slog.NewJSONHandler(g.errOut, nil))
	}
	return slog.New(slog.NewTextHandler(g.errOut, nil))
}

// reconciler wires the in-process reconciler, with progress lines, to a
// local view of the store st.
func (g *globalOptions) reconciler(d *state.Dir, st state.Store, timeout time.Duration) (*reconcile.Reconciler, error) {
	c, err := g.clusterClient()
	if err != nil {
		return nil, err
	}
	recs, err := g.records()
	if err != nil {
		return nil, err
	}
	charts, err := g.declared()
	if err != nil {
		return nil, err
	}
	return &reconcile.Reconciler{
		State:   reconcile.DirDeclarations{Dir: d, Location: st.String()},
		Records: recs, Cluster: c, Charts: charts, Timeout: timeout,
		Progress: g.printEvent,
	}, nil
}

// printEvent renders reconcile progress: a line per object as it is applied,
// deleted and becomes ready.
func (g *globalOptions) printEvent(e reconcile.Event) {
	switch e.Action {
	case "unchanged", "skipped":
		return
	case "failed":
		if e.Object == "" {
			return // reported as the command's error
		}
	}
	msg := ""
	if e.Message != "" {
		msg = " (" + e.Message + ")"
	}
	if e.Object == "" {
		g.progress("%s: %s%s", e.Release, e.Action, msg)
		return
	}
	g.progress("  %-10s %s%s", e.Action, e.Object, msg)
}

// outputFlag is -o on read commands: table, json or yaml, checked when the
// flag is parsed.
type outputFlag struct{ p *string }

func newOutputFlag(p *string) *outputFlag {
	*p = "table"
	return &outputFlag{p}
}

func (f *outputFlag) String() string { return *f.p }
func (f *outputFlag) Type() string   { return "format" }
func (f *outputFlag) Set(v string) error {
	switch v {
	case "table", "json", "yaml":
		*f.p = v
		return nil
	}
	return fmt.Errorf("unknown output format %q (use table, json or yaml)", v)
}

// addOutputFlag registers -o/--output on a read command.
func addOutputFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().VarP(newOutputFlag(p), "output", "o", "output format: table, json or yaml")
}

// show prints v as JSON or YAML when asked, else as the table drawn by table.
func (g *globalOptions) show(format string, v any, table func(w io.Writer)) error {
	if format == "json" || format == "yaml" {
		return printData(g.out, format, v)
	}
	tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// printData writes v as JSON or YAML; table output is done by the caller.
func printData(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("unknown output format %q", format)
}

// oneLine keeps errors to one line, as users read them.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	parts := strings.Split(s, "\n")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return strings.Join(parts, "; ")
}

// withTimeout bounds a whole command.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
