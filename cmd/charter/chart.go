package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/state"
)

type templateOptions struct {
	name        string
	namespace   string
	kubeVersion string
	apiVersions []string
	values      valueOptions
}

func newTemplateCmd(g *globalOptions) *cobra.Command {
	o := &templateOptions{}
	cmd := &cobra.Command{
		Use:   "template CHART",
		Short: "Render a chart locally and print the manifests (like helm template)",
		Long: `Template renders CHART (a chart directory or .tgz) with its default values, -f files and
--set flags, exactly as Helm does, applies charter's post-processing (namespace defaulting,
ownership labels) and prints the objects. It never contacts a cluster.`,
		Example: `  charter template ./mychart
  charter template ./mychart --name demo --namespace web -f prod.yaml --set replicaCount=3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := o.values.read()
			if err != nil {
				return err
			}
			ch, err := render.Load(args[0])
			if err != nil {
				return err
			}
			if err := state.ValidateName(o.name); err != nil {
				return err
			}
			res, err := render.Render(ch, in.values, render.Options{ReleaseName: o.name, Namespace: o.namespace,
				KubeVersion: o.kubeVersion, APIVersions: o.apiVersions})
			if err != nil {
				return err
			}
			fmt.Fprint(g.out, res.Manifest)
			// helm template prints hooks too (test hooks excluded here).
			for _, h := range res.Hooks {
				b, err := yaml.Marshal(h.Object)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.out, "---\n%s", b)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.name, "name", "release-name", "release name")
	cmd.Flags().StringVar(&o.namespace, "namespace", "default", "target namespace")
	cmd.Flags().StringVar(&o.kubeVersion, "kube-version", "", "Kubernetes version for .Capabilities.KubeVersion (like helm template)")
	cmd.Flags().StringSliceVarP(&o.apiVersions, "api-versions", "a", nil, "API versions for .Capabilities.APIVersions (like helm template)")
	o.values.addFlags(cmd)
	return cmd
}

type listParamsOptions struct{ output string }

func newListParamsCmd(g *globalOptions) *cobra.Command {
	o := &listParamsOptions{}
	cmd := &cobra.Command{
		Use:   "list-params CHART",
		Short: "List a chart's parameters with their defaults and descriptions",
		Long: `List every parameter of CHART's values.yaml with its default and the description taken from
the comment above it (also helm-docs' "# --" convention) or from values.schema.json.`,
		Example: `  charter list-params ./mychart
  charter list-params ./mychart -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ch, err := render.Load(args[0])
			if err != nil {
				return err
			}
			params, err := render.Params(ch)
			if err != nil {
				return err
			}
			return g.show(o.output, params, func(w io.Writer) {
				fmt.Fprintln(w, "PARAMETER\tTYPE\tDEFAULT\tDESCRIPTION")
				for _, p := range params {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.Path, p.Type, truncate(p.Default, 40), oneLine(p.Description))
				}
			})
		},
	}
	addOutputFlag(cmd, &o.output)
	return cmd
}

func truncate(s string, n int) string {
	s = oneLine(s)
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

type genParamsOptions struct {
	file  string
	force bool
}

func newGenParamsCmd(g *globalOptions) *cobra.Command {
	o := &genParamsOptions{}
	cmd := &cobra.Command{
		Use:   "gen-params CHART [CHART...]",
		Short: "Write a params file for a chart: its reference plus every value with its comment",
		Long: `Gen-params writes a params file naming CHART and holding its default values with the chart
author's comments, ready to edit and pass to "charter deploy -f". With one chart the file is
values.yaml (or --file); with several, NAME-values.yaml per chart. Existing files are not
overwritten without --force.`,
		Example: `  charter gen-params ./mychart
  charter deploy -f values.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGenParams(g, o, args)
		},
	}
	cmd.Flags().StringVar(&o.file, "file", "", "file to write (one chart only; default values.yaml)")
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite existing files")
	return cmd
}

func runGenParams(g *globalOptions, o *genParamsOptions, charts []string) error {
	if o.file != "" && len(charts) > 1 {
		return errors.New("--file takes one chart; with several charts each gets NAME-values.yaml")
	}
	type job struct {
		path string
		data []byte
	}
	var jobs []job
	for _, c := range charts {
		ch, err := render.Load(c)
		if err != nil {
			return err
		}
		block, err := render.ParamsFile(ch)
		if err != nil {
			return err
		}
		ref := c
		if !filepath.IsAbs(ref) && !strings.HasPrefix(ref, ".") {
			ref = "./" + ref
		}
		var b strings.Builder
		fmt.Fprintf(&b, "# Params for chart %s %s, written by charter gen-params.\n", ch.Chart.Metadata.Name, ch.Chart.Metadata.Version)
		fmt.Fprintf(&b, "# Edit the values, then: charter deploy -f FILE\n")
		fmt.Fprintf(&b, "apiVersion: charter.sh/v1\nkind: Release\nchart: %s\n", ref)
		b.Write(block)
		out := o.file
		if out == "" {
			out = "values.yaml"
			if len(charts) > 1 {
				out = ch.Chart.Metadata.Name + "-values.yaml"
			}
		}
		var probe map[string]any
		if err := yaml.Unmarshal([]byte(b.String()), &probe); err != nil {
			return fmt.Errorf("params for %s do not parse: %w", c, err)
		}
		jobs = append(jobs, job{out, []byte(b.String())})
	}
	for _, j := range jobs {
		if _, err := os.Stat(j.path); err == nil && !o.force {
			return fmt.Errorf("%s already exists; use --force to overwrite", j.path)
		}
	}
	for _, j := range jobs {
		if err := writeFileAtomic(j.path, j.data); err != nil {
			return err
		}
		fmt.Fprintf(g.out, "Created: %s\n", j.path)
	}
	return nil
}

type createOptions struct{ from string }

func newCreateCmd(g *globalOptions) *cobra.Command {
	o := &createOptions{}
	cmd := &cobra.Command{
		Use:   "create [--from NAME] CHARTNAME",
		Short: "Create a working starter chart",
		Long: `Create writes a starter chart (Helm's familiar one) into CHARTNAME/. It lints clean and
deploys as is. With --from, its values.yaml is filled from a live release's values.`,
		Example: `  charter create mychart
  charter create --from taco-tuesday mychart`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCreate(cmd.Context(), g, o, args[0])
		},
	}
	cmd.Flags().StringVar(&o.from, "from", "", "fill values.yaml from this live release's values")
	return cmd
}

func runCreate(ctx context.Context, g *globalOptions, o *createOptions, path string) error {
	name := filepath.Base(path)
	if err := state.ValidateName(name); err != nil {
		return fmt.Errorf("chart name: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s already exists", path)
	}
	var fromValues map[string]any
	if o.from != "" {
		rev, err := g.lastRecord(ctx, o.from)
		if err != nil {
			return err
		}
		fromValues = rev.Values
	}
	dir, err := render.Create(filepath.Dir(path), name)
	if err != nil {
		return err
	}
	if fromValues != nil {
		vp := filepath.Join(dir, "values.yaml")
		base, err := render.ReadValuesFile(vp)
		if err != nil {
			return err
		}
		b, err := yaml.Marshal(render.MergeValues(base, fromValues))
		if err != nil {
			return err
		}
		hdr := fmt.Sprintf("# Values taken from release %s, over the starter defaults.\n", o.from)
		if err := writeFileAtomic(vp, append([]byte(hdr), b...)); err != nil {
			return err
		}
	}
	var files []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	sort.Slice(files, func(i, j int) bool {
		// Chart.yaml first, as users look for it.
		ci, cj := strings.HasSuffix(files[i], "Chart.yaml"), strings.HasSuffix(files[j], "Chart.yaml")
		if ci != cj {
			return ci
		}
		return files[i] < files[j]
	})
	for _, f := range files {
		// Print as the user named the chart: mychart/Chart.yaml.
		if rel, err := filepath.Rel(dir, f); err == nil {
			f = filepath.Join(path, rel)
		}
		fmt.Fprintf(g.out, "Created %s\n", f)
	}
	return nil
}

func newLintCmd(g *globalOptions) *cobra.Command {
	var strict bool
	cmd := &cobra.Command{
		Use:     "lint PATH",
		Short:   "Check a chart: Chart.yaml, rendering with defaults, schema, YAML of the output",
		Example: `  charter lint ./mychart`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			findings := render.Lint(args[0])
			errs, warns := 0, 0
			for _, f := range findings {
				loc := f.Path
				if f.Line > 0 {
					loc = fmt.Sprintf("%s:%d", f.Path, f.Line)
				}
				if loc != "" {
					loc += ": "
				}
				fmt.Fprintf(g.out, "[%s] %s%s\n", strings.ToUpper(f.Severity), loc, f.Message)
				switch f.Severity {
				case "error":
					errs++
				case "warning":
					warns++
				}
			}
			if errs > 0 || (strict && warns > 0) {
				return &exitError{code: 1, err: fmt.Errorf("%s: %d error(s), %d warning(s)", args[0], errs, warns)}
			}
			fmt.Fprintf(g.out, "%s: linted, %d warning(s), no errors\n", args[0], warns)
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "fail on warnings too")
	return cmd
}
