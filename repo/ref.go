package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/source"
)

// RefKind says what a chart reference points at.
type RefKind int

// The kinds of references ParseRef returns.
const (
	RefRepoName RefKind = iota + 1 // NAME/CHART: a repository added by name
	RefLocation                    // HOST/PATH/CHART: a repository by its location without scheme
	RefURL                         // https://…/chart-1.2.3.tgz, s3://…/chart.tgz: a direct archive
	RefOCI                         // oci://registry/repo/chart[:tag]
	RefLocal                       // ./dir, /abs, x.tgz: a local chart folder or archive
)

// ErrOCIUnsupported was returned by Resolve for oci:// references, which
// are now supported; it is kept for callers that still test for it.
//
// Deprecated: Resolve no longer returns it.
var ErrOCIUnsupported = errors.New("oci references are not supported yet")

// Ref is a parsed chart reference.
type Ref struct {
	Kind    RefKind
	Repo    string // RefRepoName: the repository name; RefLocation: its location without scheme
	Chart   string // chart name (RefRepoName, RefLocation, RefOCI)
	Version string // from a "#VERSION" suffix (or an oci ":tag"); "" when absent
	URL     string // RefURL and RefOCI: the URL, without #VERSION
	Path    string // RefLocal: the path as given
}

// String is the reference in the form charter prints (repo/chart#version).
func (r Ref) String() string {
	var s string
	switch r.Kind {
	case RefRepoName, RefLocation:
		s = r.Repo + "/" + r.Chart
	case RefURL, RefOCI:
		s = source.Redact(r.URL)
	case RefLocal:
		s = r.Path
	}
	if r.Version != "" && r.Kind != RefOCI {
		s += "#" + r.Version
	}
	return s
}

// ParseRef parses a chart reference:
//
//	NAME/CHART[#VERSION]            repository added with that name (no "." or ":" in NAME)
//	HOST[:PORT]/PATH/CHART[#VERSION] repository location without scheme, also with a
//	                                "helm:" or "charter:" prefix
//	https://…/chart.tgz, http://…, s3://…, gs://…, s3+http(s)://…, file://….tgz
//	oci://REGISTRY/REPO/CHART[:TAG]
//	./dir, ../dir, /abs/dir, ~/dir, x.tgz, x.tar.gz (local; a bare "dir/x" is NAME/CHART)
func ParseRef(ref string) (Ref, error) {
	bad := func(why string) (Ref, error) {
		return Ref{}, fmt.Errorf("chart reference %q: %s", source.Redact(ref), why)
	}
	if strings.TrimSpace(ref) != ref || ref == "" {
		return bad("empty or surrounded by spaces")
	}
	for _, r := range ref {
		if r < 0x20 || r == 0x7f {
			return bad("control character")
		}
	}
	if strings.HasPrefix(ref, "oci://") {
		u, err := url.Parse(ref)
		if err != nil || u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return bad("want oci://REGISTRY/REPO/CHART[:TAG]")
		}
		if u.User != nil {
			return bad("credentials in the URL are not accepted")
		}
		r := Ref{Kind: RefOCI, URL: ref}
		p := strings.Trim(u.Path, "/")
		if u.Fragment != "" {
			r.Version = u.Fragment
			r.URL = strings.TrimSuffix(ref, "#"+u.Fragment)
		}
		last := p[strings.LastIndex(p, "/")+1:]
		if name, tag, ok := strings.Cut(last, ":"); ok {
			last, r.Version = name, tag
		}
		r.Chart = last
		return r, nil
	}
	if i := strings.Index(ref, "://"); i > 0 {
		u, err := url.Parse(ref)
		if err != nil {
			return bad("not a URL")
		}
		switch u.Scheme {
		case "https", "http", "s3", "gs", "s3+http", "s3+https", "file":
		default:
			return bad(fmt.Sprintf("scheme %q is not supported", u.Scheme))
		}
		if u.User != nil {
			return bad("credentials in the URL are not accepted; add a credential instead")
		}
		if u.Fragment != "" {
			return bad("a #VERSION suffix has no meaning on an archive URL")
		}
		if u.Scheme == "file" && !isArchive(u.Path) {
			return Ref{Kind: RefLocal, Path: u.Path}, nil
		}
		if !isArchive(u.Path) {
			return bad("a URL must point at a chart archive (.tgz); for a repository chart use NAME/CHART or HOST/PATH/CHART")
		}
		return Ref{Kind: RefURL, URL: ref}, nil
	}
	if isLocal(ref) {
		return Ref{Kind: RefLocal, Path: ref}, nil
	}
	s := ref
	for _, p := range []string{"helm:", "charter:"} {
		s = strings.TrimPrefix(s, p)
	}
	var version string
	if i := strings.LastIndex(s, "#"); i >= 0 {
		s, version = s[:i], s[i+1:]
		if version == "" {
			return bad("empty #VERSION")
		}
	}
	i := strings.LastIndex(s, "/")
	if i <= 0 || i == len(s)-1 || strings.Contains(s, "//") {
		return bad("want NAME/CHART, HOST/PATH/CHART, a URL or a local path (./dir, /abs, x.tgz)")
	}
	repo, chart := s[:i], s[i+1:]
	if strings.ContainsAny(repo, ".:") || strings.Contains(repo, "/") || repo == "localhost" {
		return Ref{Kind: RefLocation, Repo: repo, Chart: chart, Version: version}, nil
	}
	return Ref{Kind: RefRepoName, Repo: repo, Chart: chart, Version: version}, nil
}

func isArchive(p string) bool { return strings.HasSuffix(p, ".tgz") || strings.HasSuffix(p, ".tar.gz") }

func isLocal(ref string) bool {
	return ref == "." || ref == ".." || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") ||
		strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "~/") || isArchive(ref)
}

// Resolved is what a reference resolved to. For repository and URL
// references the archive has been fetched and Digest is its sha256.
type Resolved struct {
	Repo    *Repository   // the repository used (nil for local paths and URLs outside any repository)
	Chart   *ChartVersion // the index entry (nil for URLs and local paths)
	URL     string        // where the archive came from, or the local path
	Version string
	Digest  string // "sha256:<hex>" of the archive as fetched; for folders, render's digest of the files
	Archive []byte // the archive (nil for a local folder)
	Prov    []byte // its .prov file, nil when there is none
}

// Resolve finds, fetches and verifies the chart ref names. constraint is a
// semver constraint ("": latest stable); a #VERSION in the reference is an
// exact version and conflicts with a different constraint. Repository
// names and locations are looked up in repos; a location that matches no
// added repository is fetched as https://LOCATION without credentials.
// Direct URLs use the credentials of the added repository with the same
// origin (https) or bucket, if any. oci:// references are pulled from the
// registry with the credentials of the added oci://HOST repository, if any
// (see oci.go); Digest is then the sha256 of the chart layer.
func Resolve(ctx context.Context, client *Client, ref Ref, constraint string, repos []Repository) (*Resolved, error) {
	if ref.Version != "" {
		if constraint != "" && constraint != ref.Version {
			return nil, fmt.Errorf("chart %s: version #%s conflicts with constraint %s", ref, ref.Version, constraint)
		}
		constraint = ref.Version
	}
	switch ref.Kind {
	case RefOCI:
		return resolveOCI(ctx, client, ref, constraint, repos)
	case RefLocal:
		return resolveLocal(ref)
	case RefURL:
		return resolveURL(ctx, client, ref, repos)
	}
	repo, err := findRepo(ref, repos)
	if err != nil {
		return nil, err
	}
	idx, err := client.Index(ctx, *repo)
	if err != nil {
		return nil, err
	}
	cv, err := idx.Find(ref.Chart, constraint)
	if err != nil {
		return nil, err
	}
	u, err := ChartURL(*repo, cv)
	if err != nil {
		return nil, err
	}
	archive, prov, err := client.Fetch(ctx, *repo, cv)
	if err != nil {
		return nil, err
	}
	return &Resolved{Repo: repo, Chart: cv, URL: u.String(), Version: cv.Version, Digest: digestOf(archive), Archive: archive, Prov: prov}, nil
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// withoutScheme is a repository URL as the seed's references write it.
func withoutScheme(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	return strings.TrimSuffix(u, "/")
}

func findRepo(ref Ref, repos []Repository) (*Repository, error) {
	for i := range repos {
		r := &repos[i]
		if ref.Kind == RefRepoName && r.Name == ref.Repo || ref.Kind == RefLocation && withoutScheme(r.URL) == ref.Repo {
			return r, nil
		}
	}
	if ref.Kind == RefRepoName {
		return nil, fmt.Errorf("chart %s: no repository named %q (add it with `charter repo add`; local folders start with ./)", ref, ref.Repo)
	}
	return &Repository{Name: ref.Repo, URL: "https://" + ref.Repo}, nil
}

func resolveURL(ctx context.Context, client *Client, ref Ref, repos []Repository) (*Resolved, error) {
	u, err := url.Parse(ref.URL)
	if err != nil {
		return nil, fmt.Errorf("chart %s: not a URL", ref)
	}
	// The repository whose credentials apply: same origin (http) or bucket.
	var repo *Repository
	for i := range repos {
		ru, err := url.Parse(repos[i].URL)
		if err != nil || ru.Scheme != u.Scheme {
			continue
		}
		if isBucket(u.Scheme) && bucketOf(ru) == bucketOf(u) || !isBucket(u.Scheme) && origin(ru) == origin(u) {
			repo = &repos[i]
			break
		}
	}
	r := Repository{Name: "(direct)", URL: ref.URL}
	if repo != nil {
		r = *repo
	}
	if repo == nil {
		base := *u
		base.Path = base.Path[:strings.LastIndex(base.Path, "/")+1]
		r.URL = base.String()
	}
	cv := &ChartVersion{Name: filepath.Base(u.Path), URLs: []string{ref.URL}}
	archive, prov, err := client.Fetch(ctx, r, cv)
	if err != nil {
		return nil, err
	}
	ch, err := render.LoadArchive(source.Redact(ref.URL), bytes.NewReader(archive))
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", ref, err)
	}
	return &Resolved{Repo: repo, URL: ref.URL, Version: ch.Chart.Metadata.Version, Digest: digestOf(archive), Archive: archive, Prov: prov}, nil
}

func resolveLocal(ref Ref) (*Resolved, error) {
	p := ref.Path
	if strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", ref, err)
		}
		p = filepath.Join(home, p[2:])
	}
	ch, err := render.Load(p)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", ref, err)
	}
	res := &Resolved{URL: p, Version: ch.Chart.Metadata.Version, Digest: ch.Digest}
	if ref.Version != "" && ref.Version != res.Version {
		return nil, fmt.Errorf("chart %s: the chart's version is %s", ref, res.Version)
	}
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		if res.Archive, err = os.ReadFile(p); err != nil {
			return nil, fmt.Errorf("chart %s: %w", ref, err)
		}
		if prov, err := os.ReadFile(p + ".prov"); err == nil {
			res.Prov = prov
		}
	}
	return res, nil
}
