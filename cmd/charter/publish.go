package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/spf13/cobra"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/charter-sh/charter/publish"
)

type signOptions struct {
	sign    bool
	key     string
	keyring string
	version string // overrides Chart.yaml's version (snapshot builds)
}

func (s *signOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&s.sign, "sign", false, "write a Helm provenance file (.prov) signed with --key")
	cmd.Flags().StringVar(&s.key, "key", "", "name (or email) of the signing key in the keyring")
	cmd.Flags().StringVar(&s.keyring, "keyring", "", "secret keyring holding the key (default ~/.gnupg/secring.gpg)")
	cmd.Flags().StringVar(&s.version, "version", "", "package with this version instead of Chart.yaml's (e.g. 1.2.3-snapshot.abc123)")
}

func (s *signOptions) keyringPath() (string, error) {
	if s.keyring != "" {
		return s.keyring, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".gnupg", "secring.gpg"), nil
}

// packageChart packages a chart folder into dest, signing it when asked;
// it returns the archive and .prov paths.
func (g *globalOptions) packageChart(ctx context.Context, dir, dest string, s *signOptions) (string, string, error) {
	if s.version != "" {
		if _, err := semver.StrictNewVersion(s.version); err != nil {
			return "", "", fmt.Errorf("--version %q is not a semantic version", s.version)
		}
		tmp, err := os.MkdirTemp("", "charter-package-")
		if err != nil {
			return "", "", err
		}
		defer os.RemoveAll(tmp)
		copy := filepath.Join(tmp, filepath.Base(filepath.Clean(dir)))
		if err := os.CopyFS(copy, os.DirFS(dir)); err != nil {
			return "", "", fmt.Errorf("copy chart %s: %w", dir, err)
		}
		if err := setChartVersion(filepath.Join(copy, "Chart.yaml"), s.version); err != nil {
			return "", "", err
		}
		dir = copy
	}
	archive, err := publish.Package(ctx, dir, dest)
	if err != nil {
		return "", "", err
	}
	fmt.Fprintf(g.out, "Created %s\n", shortPath(archive))
	if !s.sign {
		return archive, "", nil
	}
	if s.key == "" {
		return "", "", errors.New("--sign needs --key NAME")
	}
	kr, err := s.keyringPath()
	if err != nil {
		return "", "", err
	}
	prov, err := publish.Sign(archive, kr, s.key)
	if err != nil {
		return "", "", err
	}
	fmt.Fprintf(g.out, "Signed %s\n", shortPath(prov))
	return archive, prov, nil
}

func newPackageCmd(g *globalOptions) *cobra.Command {
	var dest string
	s := &signOptions{}
	cmd := &cobra.Command{
		Use:   "package PATH [--sign --key NAME [--keyring FILE]]",
		Short: "Package a chart folder into a reproducible NAME-VERSION.tgz (optionally signed)",
		Long: `Package writes NAME-VERSION.tgz in Helm's archive format. The same input always gives a
byte-identical archive. With --sign it writes NAME-VERSION.tgz.prov in Helm's provenance
format, verifiable by helm verify and by charter for repositories that require signatures.`,
		Example: `  charter package ./mychart
  charter package ./mychart --sign --key "Charts Team" --keyring ~/.gnupg/secring.gpg`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, err := g.packageChart(cmd.Context(), args[0], dest, s)
			return err
		},
	}
	cmd.Flags().StringVarP(&dest, "destination", "d", ".", "folder to write the archive to")
	s.addFlags(cmd)
	return cmd
}

type releaseOptions struct {
	dest       string
	force      bool
	credential string
	sign       signOptions
}

func newReleaseCmd(g *globalOptions) *cobra.Command {
	o := &releaseOptions{}
	cmd := &cobra.Command{
		Use:   "release -u DEST [--force] PATH|FILE...",
		Short: "Package (if needed), upload and index charts in a repository",
		Long: `Release uploads chart archives (and their .prov) to DEST and adds them to DEST's index.yaml,
so any Helm client or charter can use the repository. A folder that is a chart is packaged
first; a folder of charts releases every chart in it. DEST is s3://BUCKET[/PREFIX], gs://…,
s3+http(s)://HOST[:PORT]/BUCKET, http(s)://… (PUT) or file://FOLDER. Concurrent releases
never lose each other's index entries. An existing version is not replaced unless --force.

Credentials: -c NAME uses a credential from the cluster (charter credential add); otherwise
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for buckets, CHARTER_GIT_USERNAME/PASSWORD for http.`,
		Example: `  charter release -u s3://charts-bucket/stable ./mychart
  charter release -u s3+http://127.0.0.1:9000/charts --sign --key "Charts Team" ./charts
  charter release -u file:///srv/www/charts mychart-1.2.3.tgz`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRelease(cmd.Context(), g, o, args)
		},
	}
	cmd.Flags().StringVarP(&o.dest, "url", "u", "", "destination repository (required)")
	cmd.Flags().BoolVar(&o.force, "force", false, "replace a version already released")
	cmd.Flags().StringVarP(&o.credential, "credential", "c", "", "credential (by name) for the destination")
	o.sign.addFlags(cmd)
	_ = cmd.MarkFlagRequired("url")
	return cmd
}

// chartsIn lists what a release argument stands for: an archive, a chart
// folder, or a folder of chart folders.
func chartsIn(arg string) ([]string, error) {
	fi, err := os.Stat(arg)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", arg, err)
	}
	if !fi.IsDir() {
		return []string{arg}, nil
	}
	if _, err := os.Stat(filepath.Join(arg, "Chart.yaml")); err == nil {
		return []string{arg}, nil
	}
	matches, _ := filepath.Glob(filepath.Join(arg, "*", "Chart.yaml"))
	if len(matches) == 0 {
		return nil, fmt.Errorf("release %s: not a chart, a chart archive, or a folder of charts", arg)
	}
	var out []string
	for _, m := range matches {
		out = append(out, filepath.Dir(m))
	}
	sort.Strings(out)
	return out, nil
}

func runRelease(ctx context.Context, g *globalOptions, o *releaseOptions, args []string) error {
	opts, err := g.publishOptions(ctx, o.dest, o.credential)
	if err != nil {
		return err
	}
	opts.Force = o.force
	var items []string
	for _, a := range args {
		c, err := chartsIn(a)
		if err != nil {
			return err
		}
		items = append(items, c...)
	}
	tmp, err := os.MkdirTemp("", "charter-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, it := range items {
		archive, prov := it, ""
		if fi, _ := os.Stat(it); fi != nil && fi.IsDir() {
			if archive, prov, err = g.packageChart(ctx, it, tmp, &o.sign); err != nil {
				return err
			}
		} else if _, err := os.Stat(it + ".prov"); err == nil {
			prov = it + ".prov"
		}
		opts.Prov = prov
		url, err := publish.Release(ctx, archive, o.dest, opts)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.out, "Uploaded to %s\n", url)
	}
	return nil
}

// publishOptions gathers credentials for a destination: a named cluster
// credential, else the environment.
func (g *globalOptions) publishOptions(ctx context.Context, dest, credName string) (publish.Options, error) {
	cache, err := defaultCacheDir()
	if err != nil {
		return publish.Options{}, err
	}
	so := g.src.sourceOptions(cache)
	opts := publish.Options{Bucket: so, Username: so.Username, Password: firstNonEmpty(so.Password, so.Token)}
	if credName != "" {
		st, err := g.credentials()
		if err != nil {
			return opts, err
		}
		c, err := st.Get(ctx, credName)
		if err != nil {
			return opts, err
		}
		if strings.HasPrefix(dest, "http://") || strings.HasPrefix(dest, "https://") {
			opts.Username, opts.Password = c.Token, c.Secret()
		} else {
			opts.Bucket.AccessKey, opts.Bucket.SecretKey = c.Token, c.Secret()
		}
	}
	return opts, nil
}

// setChartVersion rewrites the version field of a Chart.yaml, keeping the
// rest of the file as it is.
func setChartVersion(path, version string) error {
	node, err := kyaml.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := node.PipeE(kyaml.SetField("version", kyaml.NewStringRNode(version))); err != nil {
		return fmt.Errorf("set version in %s: %w", path, err)
	}
	return kyaml.WriteFile(node, path)
}

// shortPath prints a path relative to the current folder when it is inside
// it (foo-1.1.2.tgz, dist/foo-1.1.2.tgz), else as it is.
func shortPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if rel, err := filepath.Rel(wd, p); err == nil && filepath.IsLocal(rel) {
		return rel
	}
	return p
}
