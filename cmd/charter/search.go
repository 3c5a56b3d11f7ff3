package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// SearchResult is one chart version found by search.
type SearchResult struct {
	Ref         string   `json:"ref"`      // NAME/CHART#VERSION, as deploy takes it
	Location    string   `json:"location"` // the seed's form: helm:HOST/PATH/CHART
	Repository  string   `json:"repository"`
	Chart       string   `json:"chart"`
	Version     string   `json:"version"`
	AppVersion  string   `json:"appVersion,omitempty"`
	Description string   `json:"description,omitempty"`
	Keywords    []string `json:"keywords,omitempty"`
}

type searchOptions struct {
	versions bool
	version  string
	output   string
}

func newSearchCmd(g *globalOptions) *cobra.Command {
	o := &searchOptions{}
	cmd := &cobra.Command{
		Use:   "search [PATTERN]",
		Short: "Search every added repository for charts by name, description and keywords",
		Long: `Search looks through the index of every repository added with charter repo add. PATTERN
matches chart names, descriptions and keywords (case-insensitive; a pattern with regexp
characters is a regexp). The newest stable version of each chart is shown unless --versions.`,
		Example: `  charter search nginx
  charter search --versions --version '^1.2' web
  charter search -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pattern := ""
			if len(args) == 1 {
				pattern = args[0]
			}
			return runSearch(cmd.Context(), g, o, pattern)
		},
	}
	cmd.Flags().BoolVar(&o.versions, "versions", false, "show every version, not only the newest")
	cmd.Flags().StringVar(&o.version, "version", "", "semver constraint on versions (prereleases need a -0 constraint)")
	addOutputFlag(cmd, &o.output)
	return cmd
}

func runSearch(ctx context.Context, g *globalOptions, o *searchOptions, pattern string) error {
	d, _, err := g.openState(ctx)
	if err != nil {
		return err
	}
	dec, err := g.declared()
	if err != nil {
		return err
	}
	repos, _, err := dec.Repositories(ctx, d)
	if err != nil {
		return err
	}
	if len(repos) == 0 {
		return fmt.Errorf("no repositories in the declared state %s: add one with charter repo add URL", d.Root())
	}
	var results []SearchResult
	for _, r := range repos {
		if strings.HasPrefix(r.URL, "oci://") {
			continue // registries have no index to search; deploy oci://… directly
		}
		idx, err := dec.Client.Index(ctx, r)
		if err != nil {
			return err
		}
		loc := r.URL
		if i := strings.Index(loc, "://"); i >= 0 {
			loc = loc[i+3:]
		}
		loc = strings.TrimSuffix(loc, "/")
		for _, cv := range idx.Search(pattern, o.versions, o.version) {
			results = append(results, SearchResult{
				Ref: r.Name + "/" + cv.Name + "#" + cv.Version, Location: "helm:" + loc + "/" + cv.Name,
				Repository: r.Name, Chart: cv.Name, Version: cv.Version, AppVersion: cv.AppVersion,
				Description: cv.Description, Keywords: cv.Keywords,
			})
		}
	}
	sort.SliceStable(results, func(i, j int) bool {
		if results[i].Repository != results[j].Repository {
			return results[i].Repository < results[j].Repository
		}
		return results[i].Chart < results[j].Chart
	})
	if len(results) == 0 && o.output == "table" {
		fmt.Fprintln(g.errOut, "No charts found.")
		return nil
	}
	return g.show(o.output, results, func(w io.Writer) {
		for _, r := range results {
			fmt.Fprintf(w, "%s\t%s - %s\n", r.Ref, r.Location, truncate(r.Description, 80))
		}
	})
}
