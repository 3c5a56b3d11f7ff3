package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/reconcile"
	"github.com/charter-sh/charter/state"
)

func newInitCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init --state DIR",
		Short: "Create a declared state and make it the default for later commands",
		Example: `  charter init --state ~/charter-state
  charter init --state ./charter-state`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.stateDir()
			if err != nil {
				return err
			}
			if _, err := state.Init(p); err != nil {
				return err
			}
			cf, err := configFile()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(cf), 0o755); err != nil {
				return fmt.Errorf("create %s: %w", filepath.Dir(cf), err)
			}
			b, _ := yaml.Marshal(userConfig{State: p})
			if err := writeFileAtomic(cf, b); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "Initialized declared state in %s (default saved in %s)\n", p, cf)
			return nil
		},
	}
	return cmd
}

type reconcileOptions struct{ timeout time.Duration }

func newReconcileCmd(g *globalOptions) *cobra.Command {
	o := &reconcileOptions{}
	cmd := &cobra.Command{
		Use:   "reconcile [NAME...]",
		Short: "Run one reconcile pass in-process (all releases, or the named ones)",
		Long: `Reconcile converges the named releases (default: every declared release and every live
release whose declaration was removed) once, in this process, printing each object as it is
applied and becomes ready. It corrects drift and uninstalls releases no longer declared.`,
		Example: `  charter reconcile
  charter reconcile taco-tuesday`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := g.openState(false)
			if err != nil {
				return err
			}
			r, err := g.reconciler(st, o.timeout)
			if err != nil {
				return err
			}
			if err := g.cluster.Ping(ctx); err != nil {
				return err
			}
			names := args
			failed := 0
			if len(names) == 0 {
				var broken []error
				if names, broken, err = r.Names(ctx); err != nil {
					return err
				}
				for _, b := range broken {
					failed++
					fmt.Fprintf(g.out, "%s\n", oneLine(b.Error()))
				}
			}
			rev, _ := st.Revision(ctx)
			for _, n := range names {
				res, err := r.Reconcile(ctx, n, reconcile.Options{SourceRevision: rev})
				if err != nil {
					failed++
					fmt.Fprintf(g.out, "%s: failed: %s\n", n, oneLine(err.Error()))
					continue
				}
				fmt.Fprintf(g.out, "%s: %s (revision %d)\n", n, res.Action, res.Revision)
			}
			if failed > 0 {
				return fmt.Errorf("%d release(s) failed or unreadable", failed)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "health wait per release")
	return cmd
}

type daemonRunOptions struct {
	interval time.Duration
	debounce time.Duration
	workers  int
	timeout  time.Duration
	jsonLogs bool
}

func newDaemonCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "daemon", Short: "Run the reconciler that keeps the cluster converged"}
	o := &daemonRunOptions{}
	run := &cobra.Command{
		Use:   "run",
		Short: "Watch the declared state and converge the cluster until stopped",
		Long: `Run reconciles every release, then watches the state directory (debounced, so the burst of
an svn up is one pass) and resyncs every --interval, which also corrects drift. Releases are
reconciled concurrently by --workers. SIGTERM or Ctrl-C stops it after in-flight work ends.`,
		Example: `  charter daemon run --state ./charter-state
  charter daemon run --state ./charter-state --interval 30s --log-json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := g.openState(false)
			if err != nil {
				return err
			}
			r, err := g.reconciler(st, o.timeout)
			if err != nil {
				return err
			}
			r.Progress = nil
			r.Log = g.logger(o.jsonLogs)
			if err := pingWithRetry(ctx, g.cluster); err != nil {
				return err
			}
			host, _ := os.Hostname()
			d := &reconcile.Daemon{
				Reconciler: r, Dir: st.Root(), Interval: o.interval, Debounce: o.debounce, Workers: o.workers,
				Heartbeat: &reconcile.Heartbeat{Client: g.cluster.Typed, Namespace: g.recordsNS, State: st.Root(),
					Identity: fmt.Sprintf("%s-%d", host, os.Getpid())},
			}
			if err := ensureNS(ctx, g); err != nil {
				return err
			}
			return d.Run(ctx)
		},
	}
	f := run.Flags()
	f.DurationVar(&o.interval, "interval", time.Minute, "full resync interval (drift correction)")
	f.DurationVar(&o.debounce, "debounce", 500*time.Millisecond, "quiet time after a file change before reconciling")
	f.IntVar(&o.workers, "workers", 4, "releases reconciled concurrently")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "health wait per release")
	f.BoolVar(&o.jsonLogs, "log-json", false, "structured JSON logs")
	cmd.AddCommand(run)
	return cmd
}

// pingWithRetry waits for the API server at start-up (it may still be
// coming up next to the daemon).
func pingWithRetry(ctx context.Context, c *reconcile.Cluster) error {
	var err error
	for i := 0; i < 5; i++ {
		if err = c.Ping(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(i+1) * time.Second):
		}
	}
	return err
}

// ensureNS creates the records namespace, where the heartbeat lives.
func ensureNS(ctx context.Context, g *globalOptions) error {
	recs, err := g.records()
	if err != nil {
		return err
	}
	return recs.EnsureNamespace(ctx)
}
