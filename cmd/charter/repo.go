package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/charter-sh/charter/credential"
	"github.com/charter-sh/charter/state"
)

type repoAddOptions struct {
	credential        string
	name              string
	requireSignatures bool
	keyring           string
	allowCrossOrigin  bool
}

func newRepoCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "repo",
		Aliases: []string{"repository", "repositories"},
		Short:   "Manage the chart repositories of the declared state",
		Long: `Repositories are part of the declared state (repositories.yaml), so the CLI and the daemon
know the same list. A repository names a credential kept in the cluster (charter credential add);
the secret itself is never written to the state.`,
	}
	o := &repoAddOptions{}
	add := &cobra.Command{
		Use:   "add [-c CREDENTIAL] [--name NAME] URL",
		Short: "Add a chart repository (https://, s3://, gs://, s3+http(s)://HOST[:PORT]/BUCKET, file://)",
		Example: `  charter repo add https://charts.example.com
  charter repo add -c token-ci --name internal s3+http://minio.local:9000/charts
  charter repo add --require-signatures --keyring keys/stable.gpg https://charts.example.com/stable`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRepoAdd(cmd.Context(), g, o, args[0])
		},
	}
	f := add.Flags()
	f.StringVarP(&o.credential, "credential", "c", "", "credential (by name) to authenticate with")
	f.StringVar(&o.name, "name", "", "repository name (default: derived from the URL)")
	f.BoolVar(&o.requireSignatures, "require-signatures", false, "refuse charts without a valid .prov signature")
	f.StringVar(&o.keyring, "keyring", "", "public keyring inside the state to verify signatures with")
	f.BoolVar(&o.allowCrossOrigin, "allow-cross-origin", false, "send the credential to chart URLs on other hosts named by the index")

	var output string
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List repositories: name, URL, credential name",
		Example: `  charter repo list -o yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, _, err := g.openState(cmd.Context())
			if err != nil {
				return err
			}
			repos, err := d.Repositories(cmd.Context())
			if err != nil {
				return err
			}
			return g.show(output, repos, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tURL\tCREDENTIAL\tSIGNATURES")
				for _, r := range repos {
					sig := "-"
					if r.RequireSignatures {
						sig = "required (" + r.Keyring + ")"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Name, r.URL, firstNonEmpty(r.Credential, "-"), sig)
				}
			})
		},
	}
	addOutputFlag(list, &output)
	rm := &cobra.Command{
		Use:     "rm URL|NAME",
		Aliases: []string{"remove"},
		Short:   "Remove a repository from the declared state",
		Example: `  charter repo rm internal`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			store, err := g.openStore(ctx, false)
			if err != nil {
				return err
			}
			if _, err := store.Edit(ctx, "repo rm "+args[0], func(d *state.Dir) error {
				return d.RemoveRepository(ctx, args[0])
			}); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "Removed %s\n", args[0])
			return nil
		},
	}
	var force bool
	push := &cobra.Command{
		Use:     "push CHART.tgz|PATH REPO",
		Short:   "Release a chart to an added repository (by name or URL), with its credential",
		Example: `  charter repo push mychart-0.1.0.tgz internal`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			d, _, err := g.openState(ctx)
			if err != nil {
				return err
			}
			r, err := d.Repository(ctx, args[1])
			if err != nil {
				return err
			}
			return runRelease(ctx, g, &releaseOptions{dest: r.URL, force: force, credential: r.Credential}, args[:1])
		},
	}
	push.Flags().BoolVar(&force, "force", false, "replace a version already released")
	cmd.AddCommand(add, list, rm, push)
	return cmd
}

func runRepoAdd(ctx context.Context, g *globalOptions, o *repoAddOptions, url string) error {
	if err := state.ValidateRepositoryURL(url); err != nil {
		return err
	}
	r := state.Repository{Name: o.name, URL: url, Credential: o.credential,
		RequireSignatures: o.requireSignatures, Keyring: o.keyring, AllowCrossOrigin: o.allowCrossOrigin}
	if r.Name == "" {
		r.Name = state.DefaultRepoName(url)
	}
	if err := r.Validate(); err != nil {
		return err
	}
	if r.Credential != "" {
		// The credential must exist in the cluster; its secret stays there.
		creds, err := g.credentials()
		if err != nil {
			return err
		}
		if _, err := creds.Get(ctx, r.Credential); err != nil {
			if errors.Is(err, credential.ErrNotFound) {
				return fmt.Errorf("credential %q not found (add it with charter credential add)", r.Credential)
			}
			return err
		}
	}
	store, err := g.openStore(ctx, true)
	if err != nil {
		return err
	}
	if _, err := store.Edit(ctx, "repo add "+r.Name, func(d *state.Dir) error {
		return d.AddRepository(ctx, r)
	}); err != nil {
		return err
	}
	fmt.Fprintf(g.out, "Added %s (%s)\n", r.Name, url)
	return nil
}
