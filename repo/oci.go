package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/Masterminds/semver/v3"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"helm.sh/helm/v4/pkg/registry"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/source"
)

// OCI registries (oci://REGISTRY/REPO/CHART) are read with Helm's registry
// client. Versions are tags: Helm pushes a chart as a tag equal to its
// version with "+" written as "_" (OCI tags cannot hold "+").
//
// Credentials: the Username/Password of the added Repository whose URL is
// oci://HOST[/…] with the reference's host (the longest matching path wins),
// sent only to that registry (and to the token service it names, as the
// distribution spec requires); a redirect to another origin drops them.
// Without such a repository requests are anonymous: the user's Helm and
// Docker credential files are never read.
//
// Registries on loopback addresses (127.0.0.0/8, ::1, localhost) are
// reached over plain http, as Docker does; all others over https.

// ErrOCINotFound marks an oci:// chart or version the registry does not have.
var ErrOCINotFound = errors.New("not found")

// ociRef is an oci:// reference split for the registry client.
type ociRef struct {
	host string // registry host[:port]
	repo string // repository path in the registry, ending in the chart name
}

func (r ociRef) String() string { return "oci://" + r.host + "/" + r.repo }

func parseOCI(ref Ref) (ociRef, error) {
	u, err := url.Parse(ref.URL)
	if err != nil || u.Scheme != "oci" || u.Host == "" {
		return ociRef{}, fmt.Errorf("chart %s: want oci://REGISTRY/REPO/CHART[:TAG]", ref)
	}
	if strings.Contains(u.Path, "@") {
		return ociRef{}, fmt.Errorf("chart %s: digest references (@sha256:…) are not supported; give a :TAG or a version", ref)
	}
	p := strings.Trim(u.Path, "/")
	dir := ""
	if i := strings.LastIndex(p, "/"); i >= 0 {
		dir = p[:i+1]
	}
	if ref.Chart == "" || strings.ContainsAny(ref.Chart, ":@") {
		return ociRef{}, fmt.Errorf("chart %s: no chart name", ref)
	}
	return ociRef{host: strings.ToLower(u.Host), repo: dir + ref.Chart}, nil
}

// ociRepo is the added repository whose credentials apply to r: same
// registry host, longest path prefix of r's repository path.
func ociRepo(r ociRef, repos []Repository) *Repository {
	var best *Repository
	bestLen := -2
	for i := range repos {
		u, err := url.Parse(repos[i].URL)
		if err != nil || u.Scheme != "oci" || strings.ToLower(u.Host) != r.host {
			continue
		}
		p := strings.Trim(u.Path, "/")
		n := 0
		if p != "" {
			if r.repo != p && !strings.HasPrefix(r.repo, p+"/") {
				n = -1 // same registry, another path: used only without a better match
			} else {
				n = len(p) + 1
			}
		}
		if n > bestLen {
			best, bestLen = &repos[i], n
		}
	}
	return best
}

// plainHTTP says whether a registry host is reached over http: loopback only.
func plainHTTP(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// ctxValues is a context with the deadline and cancellation of one
// context and the values of another (the registry client's own requests
// carry only context.Background's deadline).
type ctxValues struct {
	context.Context
	values context.Context
}

func (c ctxValues) Value(key any) any {
	if v := c.values.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

// ociTransport ties the registry client's requests to the caller's context
// and caps every response body.
type ociTransport struct {
	base http.RoundTripper
	ctx  context.Context
	max  int64
}

var errTooLarge = errors.New("larger than the size limit")

func (t *ociTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.WithContext(ctxValues{Context: t.ctx, values: req.Context()})
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w (%d bytes, limit %d)", req.Method, source.Redact(req.URL.String()), errTooLarge, resp.ContentLength, t.max)
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: t.max}
	return resp, nil
}

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

// registryClient is a Helm registry client for r's registry with the
// credentials of repo (nil: anonymous).
func (c *Client) registryClient(ctx context.Context, r ociRef, repo *Repository) (*registry.Client, error) {
	hc := &http.Client{
		Transport: &ociTransport{base: c.base, ctx: ctx, max: c.opts.MaxChartSize + maxProvSize},
		Timeout:   c.opts.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			return nil
		},
	}
	authz := auth.Client{
		Client: hc,
		Cache:  auth.NewCache(),
		Credential: func(_ context.Context, hostport string) (auth.Credential, error) {
			if repo == nil || !strings.EqualFold(hostport, r.host) {
				return auth.EmptyCredential, nil
			}
			if repo.Username == "" {
				return auth.Credential{AccessToken: repo.Password}, nil
			}
			return auth.Credential{Username: repo.Username, Password: repo.Password}, nil
		},
	}
	opts := []registry.ClientOption{
		registry.ClientOptAuthorizer(authz),
		registry.ClientOptHTTPClient(hc),
		// A file that does not exist: the registry client must not read the
		// user's Helm registry credentials (the authorizer above decides).
		registry.ClientOptCredentialsFile(filepath.Join(c.opts.CacheDir, "oci-credentials-unused.json")),
	}
	if plainHTTP(r.host) {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	rc, err := registry.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", r.host, err)
	}
	return rc, nil
}

// ociErr describes a registry failure: the registry and what was asked,
// the status for HTTP errors (401/403 as access refused), never a secret.
func ociErr(ref Ref, r ociRef, repo *Repository, what string, err error) error {
	var er *errcode.ErrorResponse
	switch {
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		// The registry asked for basic credentials and none apply.
		er = &errcode.ErrorResponse{StatusCode: http.StatusUnauthorized}
	case errors.Is(err, errdef.ErrNotFound):
		er = &errcode.ErrorResponse{StatusCode: http.StatusNotFound}
	}
	if er != nil || errors.As(err, &er) {
		switch er.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint := "without credentials (no added repository is oci://" + r.host + ")"
			if repo != nil {
				hint = "with the credentials of " + repo.String()
			}
			return fmt.Errorf("chart %s: %s: registry %s refused access (%d %s) %s", ref, what, r.host, er.StatusCode, http.StatusText(er.StatusCode), hint)
		case http.StatusNotFound:
			return fmt.Errorf("chart %s: %s: %w in registry %s", ref, what, ErrOCINotFound, r.host)
		}
		return fmt.Errorf("chart %s: registry %s: %s: %d %s", ref, r.host, what, er.StatusCode, http.StatusText(er.StatusCode))
	}
	return fmt.Errorf("chart %s: registry %s: %s: %w", ref, r.host, what, redactErr(err))
}

// exactTag is the version a constraint pins exactly ("1.2.3" or "=1.2.3"), or "".
func exactTag(constraint string) string {
	v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(constraint), "="))
	if _, err := semver.StrictNewVersion(v); err == nil {
		return v
	}
	return ""
}

// pickTag chooses among versions (newest first, as registry.Client.Tags
// returns them) the newest satisfying constraint ("": newest stable).
func pickTag(versions []string, constraint string) (string, error) {
	var c *semver.Constraints
	if constraint != "" {
		var err error
		if c, err = semver.NewConstraint(constraint); err != nil {
			return "", fmt.Errorf("version constraint %q: %w", constraint, err)
		}
	}
	for _, s := range versions {
		v, err := semver.StrictNewVersion(s)
		if err != nil {
			continue
		}
		if c == nil && v.Prerelease() == "" || c != nil && c.Check(v) {
			return s, nil
		}
	}
	if c == nil {
		return "", errors.New("no stable version (give a constraint like >=0.0.0-0 to allow prereleases)")
	}
	return "", fmt.Errorf("no version matches %s", constraint)
}

// resolveOCI resolves an oci:// reference: an exact tag (":TAG", "#VERSION"
// or an exact constraint) is pulled directly; otherwise the repository's
// semver tags are listed and the newest matching constraint is pulled.
func resolveOCI(ctx context.Context, client *Client, ref Ref, constraint string, repos []Repository) (*Resolved, error) {
	r, err := parseOCI(ref)
	if err != nil {
		return nil, err
	}
	repo := ociRepo(r, repos)
	rc, err := client.registryClient(ctx, r, repo)
	if err != nil {
		return nil, err
	}
	tag := ref.Version
	if tag == "" {
		tag = exactTag(constraint)
	}
	if tag == "" {
		versions, err := rc.Tags(r.host + "/" + r.repo)
		if err != nil {
			return nil, ociErr(ref, r, repo, "list versions", err)
		}
		if len(versions) == 0 {
			return nil, fmt.Errorf("chart %s: %w in registry %s: the repository has no version tags", ref, ErrOCINotFound, r.host)
		}
		if tag, err = pickTag(versions, constraint); err != nil {
			return nil, fmt.Errorf("chart %s: %w", ref, err)
		}
	}
	// OCI tags cannot hold "+": Helm pushes 1.0.0+build as 1.0.0_build.
	tag = strings.ReplaceAll(tag, "+", "_")
	res, err := client.pullOCI(rc, r, tag)
	if err != nil {
		return nil, ociErr(ref, r, repo, "version "+strings.ReplaceAll(tag, "_", "+"), err)
	}
	u := r.String() + ":" + tag
	ch, err := render.LoadArchive(u, bytes.NewReader(res.chart))
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", ref, err)
	}
	md := ch.Chart.Metadata
	if md.Name != lastElem(r.repo) {
		return nil, fmt.Errorf("chart %s: the registry's %s holds chart %q", ref, u, md.Name)
	}
	if _, err := semver.StrictNewVersion(strings.ReplaceAll(tag, "_", "+")); err == nil && md.Version != strings.ReplaceAll(tag, "_", "+") {
		return nil, fmt.Errorf("chart %s: tag %s holds version %s", ref, tag, md.Version)
	}
	digest := digestOf(res.chart)
	if res.chartDigest != "" && res.chartDigest != digest {
		return nil, fmt.Errorf("chart %s: %w: layer is %s, the manifest says %s", ref, ErrDigestMismatch, digest, res.chartDigest)
	}
	cv := &ChartVersion{
		Name: md.Name, Version: md.Version, AppVersion: md.AppVersion, Description: md.Description,
		Keywords: md.Keywords, URLs: []string{u}, Digest: strings.TrimPrefix(digest, "sha256:"), Deprecated: md.Deprecated,
	}
	cv.sv, _ = semver.NewVersion(md.Version)
	return &Resolved{Repo: repo, Chart: cv, URL: u, Version: md.Version, Digest: digest, Archive: res.chart, Prov: res.prov}, nil
}

// lastElem is the last element of a slash-separated repository path.
func lastElem(p string) string { return p[strings.LastIndex(p, "/")+1:] }

type ociPull struct {
	chart, prov []byte
	chartDigest string
}

// pullOCI pulls the chart (and .prov, when present) tagged tag. Layer
// sizes are checked against the caps before anything is downloaded.
func (c *Client) pullOCI(rc *registry.Client, r ociRef, tag string) (*ociPull, error) {
	var total atomic.Int64
	limit := c.opts.MaxChartSize + maxProvSize + 1<<20
	gc := rc.Generic()
	res, err := gc.PullGeneric(r.host+"/"+r.repo+":"+tag, registry.GenericPullOptions{
		AllowedMediaTypes: []string{
			ocispec.MediaTypeImageManifest, registry.ConfigMediaType,
			registry.ChartLayerMediaType, registry.LegacyChartLayerMediaType, registry.ProvLayerMediaType,
		},
		PreCopy: func(_ context.Context, d ocispec.Descriptor) error {
			max := int64(1 << 20) // manifest, config
			switch d.MediaType {
			case registry.ChartLayerMediaType, registry.LegacyChartLayerMediaType:
				max = c.opts.MaxChartSize
			case registry.ProvLayerMediaType:
				max = maxProvSize
			}
			if d.Size < 0 || d.Size > max || total.Add(d.Size) > limit {
				return fmt.Errorf("layer %s (%s) of %d bytes: %w (%d bytes)", d.Digest, d.MediaType, d.Size, errTooLarge, max)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	var config, chart, prov *ocispec.Descriptor
	for i := range res.Descriptors {
		d := &res.Descriptors[i]
		switch d.MediaType {
		case registry.ConfigMediaType:
			config = d
		case registry.ChartLayerMediaType, registry.LegacyChartLayerMediaType:
			if chart != nil {
				return nil, errors.New("not a Helm chart: more than one chart layer")
			}
			chart = d
		case registry.ProvLayerMediaType:
			prov = d
		}
	}
	if config == nil || chart == nil {
		return nil, fmt.Errorf("not a Helm chart: the manifest has no %s config or no %s layer", registry.ConfigMediaType, registry.ChartLayerMediaType)
	}
	out := &ociPull{chartDigest: chart.Digest.String()}
	if out.chart, err = gc.GetDescriptorData(res.MemoryStore, *chart); err != nil {
		return nil, fmt.Errorf("chart layer: %w", err)
	}
	if prov != nil {
		if out.prov, err = gc.GetDescriptorData(res.MemoryStore, *prov); err != nil {
			return nil, fmt.Errorf("provenance layer: %w", err)
		}
	}
	return out, nil
}
