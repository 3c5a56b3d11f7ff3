package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/state"
)

// HistoryRow is one revision in `charter history`.
type HistoryRow struct {
	Revision       int       `json:"revision"`
	Updated        time.Time `json:"updated"`
	Status         string    `json:"status"`
	Chart          string    `json:"chart"`
	Source         string    `json:"source,omitempty"`
	SourceRevision string    `json:"sourceRevision,omitempty"`
	Message        string    `json:"message,omitempty"`
}

func newHistoryCmd(g *globalOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "history NAME",
		Short:   "List a release's revisions: when, status, chart#version, source revision",
		Example: `  charter history taco-tuesday`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			recs, err := g.records()
			if err != nil {
				return err
			}
			h, err := recs.History(cmd.Context(), args[0])
			if errors.Is(err, record.ErrNotFound) {
				return fmt.Errorf("release %q not found", args[0])
			}
			if err != nil {
				return err
			}
			rows := make([]HistoryRow, 0, len(h))
			for _, r := range h {
				rows = append(rows, HistoryRow{Revision: r.Revision, Updated: r.LastDeployed, Status: string(r.Status),
					Chart: chartLabel(r.Chart, r.ChartName) + "#" + r.ChartVersion, Source: r.Source,
					SourceRevision: r.SourceRevision, Message: r.Message})
			}
			return g.show(output, rows, func(w io.Writer) {
				fmt.Fprintln(w, "REVISION\tUPDATED\tSTATUS\tCHART\tSOURCE REVISION\tMESSAGE")
				for _, r := range rows {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Revision, r.Updated.Local().Format(time.RFC3339),
						r.Status, r.Chart, shortRev(r.SourceRevision), truncate(r.Message, 60))
				}
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

type rollbackOptions struct {
	waitOptions
}

func newRollbackCmd(g *globalOptions) *cobra.Command {
	o := &rollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback NAME [REVISION]",
		Short: "Write an earlier revision's chart and values back into the declared state, and converge",
		Long: `Rollback makes the declared state say again what REVISION applied (default: the deployed
revision before the newest): its chart reference, version and digest, and its values. It is a
change of the declared state like any other (a commit on git stores): the cluster follows the
declared state, never the other way round. Values files of the declaration are folded into
its values, as they were at that revision.`,
		Example: `  charter rollback taco-tuesday
  charter rollback taco-tuesday 3`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rev := 0
			if len(args) == 2 {
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 1 {
					return fmt.Errorf("revision %q is not a positive number", args[1])
				}
				rev = n
			}
			return runRollback(cmd.Context(), g, o, args[0], rev)
		},
	}
	o.waitOptions.addFlags(cmd)
	return cmd
}

// rollbackTarget picks the revision to return to.
func rollbackTarget(h []*record.Revision, want int) (*record.Revision, error) {
	if want > 0 {
		for _, r := range h {
			if r.Revision == want {
				if r.Manifest == "" && r.Status == record.StatusFailed {
					return nil, fmt.Errorf("revision %d never rendered (it failed: %s)", want, r.Message)
				}
				return r, nil
			}
		}
		return nil, fmt.Errorf("revision %d is not in the kept history", want)
	}
	newest := h[len(h)-1].Revision
	for i := len(h) - 1; i >= 0; i-- {
		r := h[i]
		if r.Revision != newest && (r.Status == record.StatusDeployed || r.Status == record.StatusSuperseded) {
			return r, nil
		}
	}
	return nil, errors.New("no earlier deployed revision to roll back to")
}

func runRollback(ctx context.Context, g *globalOptions, o *rollbackOptions, name string, want int) error {
	recs, err := g.records()
	if err != nil {
		return err
	}
	h, err := recs.History(ctx, name)
	if errors.Is(err, record.ErrNotFound) {
		return fmt.Errorf("release %q not found", name)
	}
	if err != nil {
		return err
	}
	target, err := rollbackTarget(h, want)
	if err != nil {
		return fmt.Errorf("rollback %s: %w", name, err)
	}
	store, err := g.openStore(ctx, false)
	if err != nil {
		return err
	}
	st, err := store.Dir(ctx)
	if err != nil {
		return err
	}
	if _, err := st.Get(ctx, name); err != nil {
		return err // rollback changes a declared release; a removed one is being uninstalled
	}
	// A chart kept in the state must still be the archive that revision
	// used; a repository chart is pinned again by its version and digest.
	p, perr := st.ResolveChart(target.Chart)
	_, serr := os.Stat(p)
	inState := perr == nil && serr == nil
	if inState {
		ch, err := render.Load(p)
		if err != nil {
			return fmt.Errorf("rollback %s: revision %d's chart %s: %w", name, target.Revision, target.Chart, err)
		}
		if ch.Digest != target.ChartDigest {
			return fmt.Errorf("rollback %s: revision %d used %s with digest %s; the state now holds another archive under that name (deploy that chart again, or restore the file with your VCS)",
				name, target.Revision, target.Chart, target.ChartDigest)
		}
	}
	msg := fmt.Sprintf("rollback %s to revision %d: %s %s", name, target.Revision, target.ChartName, target.ChartVersion)
	if _, err := store.Edit(ctx, msg, func(d *state.Dir) error {
		_, err := d.Update(ctx, name, func(r *state.Release) error {
			r.Chart, r.Namespace = target.Chart, target.Namespace
			r.ValuesFiles, r.Values = nil, render.MergeValues(target.Values)
			if !inState {
				r.Version, r.Digest = target.ChartVersion, target.ChartDigest
			}
			return nil
		})
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(g.out, "Rolled back %s to revision %d\n", name, target.Revision)
	if o.noWait {
		return nil
	}
	return g.converge(ctx, store, []string{name}, o.timeout)
}
