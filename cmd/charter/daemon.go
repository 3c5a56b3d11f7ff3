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
	"github.com/charter-sh/charter/source"
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
			p, err := g.stateLocation()
			if err != nil {
				return err
			}
			st, err := g.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			// Publish the state's skeleton (charter.yaml) to git and buckets;
			// a folder is written in place (and committed with --commit).
			if _, err := st.Edit(cmd.Context(), "init charter state", func(d *state.Dir) error { return nil }); err != nil {
				return err
			}
			cf, err := configFile()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(cf), 0o755); err != nil {
				return fmt.Errorf("create %s: %w", filepath.Dir(cf), err)
			}
			if source.KindOf(p, isGitRepo) != source.KindDir && source.Redact(p) != p {
				return fmt.Errorf("refusing to save a state URL with credentials in %s: pass them through the environment (see docs/sources.md)", cf)
			}
			b, _ := yaml.Marshal(userConfig{State: p})
			if err := writeFileAtomic(cf, b); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "Initialized declared state in %s (default saved in %s)\n", source.Redact(p), cf)
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
			st, store, err := g.openState(ctx)
			if err != nil {
				return err
			}
			r, err := g.reconciler(st, store, o.timeout)
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
			for _, n := range names {
				res, err := r.Reconcile(ctx, n, reconcile.Options{})
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
	sources    []string
	config     string
	interval   time.Duration
	resync     time.Duration
	debounce   time.Duration
	workers    int
	timeout    time.Duration
	jsonLogs   bool
	listen     string
	secretFile string
	allowEmpty bool
	cacheDir   string
	src        sourceFlags
	ops        daemonOpsFlags // metrics, pprof, leader election, sharding (daemon_run.go)
	driftWatch bool
}

func newDaemonCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "daemon", Short: "Run the reconciler that keeps the cluster converged"}
	o := &daemonRunOptions{}
	run := &cobra.Command{
		Use:   "run",
		Short: "Follow the declared state's sources and converge the cluster until stopped",
		Long: `Run fetches every source — a folder (often an SVN or Bazaar checkout), a git repository, an
S3/MinIO/GCS bucket — reconciles every release, then follows changes: folders are watched
(debounced, so the burst of an svn up is one pass), git and buckets are polled every
--interval (a poll that finds nothing new fetches and renders nothing) or fetched at once
when a webhook arrives on --listen (POST /hooks/NAME). Every --resync-interval all releases
are resynced, which also corrects drift. SIGTERM or Ctrl-C stops it after in-flight work ends.

Replicas elect a leader (Lease charter-daemon-leader in the records namespace): only it
reconciles; the others stand by and take over when it stops. --shard I/N splits the releases
across daemons by a stable hash of their names. --listen also serves Prometheus /metrics
(and Go profiles at /debug/pprof/ with --pprof); what happens to a release is recorded as
Kubernetes Events on its newest record.

Without --source or --config, the --state location is the one source. A release declared
in two sources is an error reported for both; neither copy is applied. Credentials come
from the environment (see docs/sources.md), never from flags.`,
		Example: `  charter daemon run --state ./charter-state
  charter daemon run --source https://git.example.com/team/state.git?ref=main --interval 30s
  charter daemon run --source /srv/svn/prod-state --source s3://charts-bucket/state --log-json
  charter daemon run --config /etc/charter/daemon.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDaemon(cmd.Context(), g, o)
		},
	}
	f := run.Flags()
	f.StringArrayVar(&o.sources, "source", nil, "a source to follow: folder, git URL or bucket URL (repeatable; NAME=URL names its webhook)")
	f.StringVar(&o.config, "config", "", "daemon config file (sources with per-source settings)")
	f.DurationVar(&o.interval, "interval", time.Minute, "poll interval of git and bucket sources (an idle poll costs the cluster nothing)")
	f.DurationVar(&o.resync, "resync-interval", 10*time.Minute, "full resync of every release: dry-runs every object, correcting drift")
	f.DurationVar(&o.debounce, "debounce", 500*time.Millisecond, "folder sources: quiet time after a change before fetching (an svn up is one change)")
	f.IntVar(&o.workers, "workers", 4, "releases reconciled concurrently")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "health wait per release")
	f.BoolVar(&o.jsonLogs, "log-json", false, "structured JSON logs")
	f.StringVar(&o.listen, "listen", "", "address for webhooks (POST /hooks/NAME), /healthz, /readyz and /metrics, e.g. 127.0.0.1:9292")
	f.StringVar(&o.secretFile, "webhook-secret-file", "", "file holding the webhook secret for sources given with --source")
	f.BoolVar(&o.allowEmpty, "allow-empty", false, "let a --source go from some declarations to none (uninstalling them)")
	f.StringVar(&o.cacheDir, "cache-dir", "", "where clones, downloads and snapshots are kept (default: the user cache dir)")
	f.BoolVar(&o.driftWatch, "drift-watch", true, "watch the objects of releases: a hand edit or deletion is corrected within seconds, and resyncs skip the dry-run of untouched releases")
	o.ops.addFlags(f)
	cmd.AddCommand(run, newDaemonInstallCmd(g), newDaemonUninstallCmd(g), newDaemonStatusCmd(g), newDaemonTargetCmd(g))
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
