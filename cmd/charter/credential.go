package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/charter-sh/charter/credential"
)

func (g *globalOptions) credentials() (*credential.Store, error) {
	c, err := g.clusterClient()
	if err != nil {
		return nil, err
	}
	return credential.NewStore(c.Typed, g.recordsNS), nil
}

func newCredentialCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "credential",
		Aliases: []string{"credentials", "cred"},
		Short:   "Manage credentials for chart repositories, git and buckets (kept in the cluster)",
		Long: `Credentials are kept as Secrets in charter's namespace in the cluster, where the daemon reads
them; they are never written into the declared state and never printed. A repository refers to
one by name (charter repo add -c NAME URL).`,
	}
	var name string
	add := &cobra.Command{
		Use:   "add TOKEN SECRET|- [--name NAME]",
		Short: "Store a token and its secret (an access key and secret key, a user and password)",
		Long: `Add stores a credential. Pass SECRET as "-" to read it from standard input, so it stays out
of your shell history and the process list. The name defaults to token-<the token's start>.`,
		Example: `  charter credential add AKIAIOSFODNN7 - < secret.txt
  charter credential add deploy-bot - --name ci-git`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			secret := args[1]
			if secret == "-" {
				s, err := readSecretLine(g.in)
				if err != nil {
					return err
				}
				secret = s
			}
			st, err := g.credentials()
			if err != nil {
				return err
			}
			c, err := st.Add(cmd.Context(), args[0], secret, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "Created %s\n", c.Name)
			return nil
		},
	}
	add.Flags().StringVar(&name, "name", "", "credential name (default: token-<the token's start>)")

	var output string
	list := &cobra.Command{
		Use:     "list [PATTERN]",
		Aliases: []string{"ls"},
		Short:   "List credentials: name and token, never the secret",
		Example: `  charter credential list
  charter credential list 'token-*' -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.credentials()
			if err != nil {
				return err
			}
			pattern := ""
			if len(args) == 1 {
				pattern = args[0]
			}
			creds, err := st.List(cmd.Context(), pattern)
			if err != nil {
				return err
			}
			return g.show(output, creds, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tTOKEN\tCREATED")
				for _, c := range creds {
					fmt.Fprintf(w, "%s\t%s\t%s\n", c.Name, c.Token, c.Created.Local().Format("2006-01-02 15:04"))
				}
			})
		},
	}
	addOutputFlag(list, &output)

	rm := &cobra.Command{
		Use:     "rm NAME [NAME...]",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove credentials",
		Example: `  charter credential rm token-foo`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return removeCredentials(cmd.Context(), g, args)
		},
	}
	cmd.AddCommand(add, list, rm)
	return cmd
}

func removeCredentials(ctx context.Context, g *globalOptions, names []string) error {
	st, err := g.credentials()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := st.Remove(ctx, n); err != nil {
			return err
		}
		fmt.Fprintf(g.out, "Removed %s\n", n)
	}
	return nil
}

// readSecretLine reads one line (the secret) from r.
func readSecretLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, credential.MaxSecretLength+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read secret from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("read secret from standard input: it is empty")
	}
	return line, nil
}
