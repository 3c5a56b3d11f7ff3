package repo

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"helm.sh/helm/v4/pkg/provenance"

	"github.com/charter-sh/charter/credential"
	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/state"
)

// Credentials looks a credential up by name (the cluster's credential store).
type Credentials interface {
	Get(ctx context.Context, name string) (*credential.Credential, error)
}

// Declared resolves the chart references of declarations with the
// repositories of their state and credentials from the cluster.
type Declared struct {
	Client      *Client
	Credentials Credentials // nil: repositories needing one fail
}

// Repositories turns the state's repositories into client repositories
// carrying their credentials (token as user, secret as password).
func (d *Declared) Repositories(ctx context.Context, dir *state.Dir) ([]Repository, map[string]state.Repository, error) {
	list, err := dir.Repositories(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Repository, 0, len(list))
	byName := make(map[string]state.Repository, len(list))
	for _, r := range list {
		cr := Repository{Name: r.Name, URL: r.URL, AllowCrossOrigin: r.AllowCrossOrigin}
		if r.Credential != "" {
			if d.Credentials == nil {
				return nil, nil, fmt.Errorf("repository %s needs credential %q, and no credential store is available", r.Name, r.Credential)
			}
			c, err := d.Credentials.Get(ctx, r.Credential)
			if err != nil {
				return nil, nil, fmt.Errorf("repository %s: %w", r.Name, err)
			}
			cr.Username, cr.Password = c.Token, c.Secret()
		}
		out = append(out, cr)
		byName[r.Name] = r
	}
	return out, byName, nil
}

// Resolve resolves ref (see ParseRef) for a state: constraint is a semver
// constraint ("" = latest stable). The result holds the archive.
func (d *Declared) Resolve(ctx context.Context, dir *state.Dir, ref, constraint string) (*Resolved, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	repos, policies, err := d.Repositories(ctx, dir)
	if err != nil {
		return nil, err
	}
	res, err := Resolve(ctx, d.Client, r, constraint, repos)
	if err != nil {
		return nil, err
	}
	if res.Repo != nil {
		if err := verifyPolicy(dir, policies[res.Repo.Name], res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// Load fetches the chart a declaration pins: ref at exactly version, whose
// archive must have digest (when set). It fails closed: a digest mismatch
// or a missing or bad signature where the repository requires one loads
// nothing.
func (d *Declared) Load(ctx context.Context, dir *state.Dir, ref, version, digest string) (*render.Chart, error) {
	constraint := version
	if version != "" && !strings.ContainsAny(version, "<>=^~*|, ") {
		constraint = "=" + version
	}
	res, err := d.Resolve(ctx, dir, ref, constraint)
	if err != nil {
		return nil, err
	}
	if digest != "" && res.Digest != digest {
		return nil, fmt.Errorf("chart %s %s: archive digest %s does not match the declared %s (republished or tampered)", ref, res.Version, res.Digest, digest)
	}
	if res.Archive == nil {
		return nil, fmt.Errorf("chart %s: not an archive", ref)
	}
	return render.LoadArchive(ref, strings.NewReader(string(res.Archive)))
}

// verifyPolicy enforces a repository's signature requirement with the
// keyring the state holds.
func verifyPolicy(dir *state.Dir, policy state.Repository, res *Resolved) error {
	if !policy.RequireSignatures {
		return nil
	}
	name := res.URL
	if res.Chart != nil {
		name = res.Chart.Name + " " + res.Chart.Version
	}
	if res.Prov == nil {
		return fmt.Errorf("chart %s from %s: no provenance file (.prov) and the repository requires signatures", name, policy.Name)
	}
	keyring, err := dir.ResolvePath(policy.Keyring)
	if err != nil {
		return fmt.Errorf("repository %s keyring: %w", policy.Name, err)
	}
	archiveName := filepath.Base(res.URL)
	if res.Chart != nil { // the name the .prov signs, whatever the URL (oci://…:TAG)
		archiveName = res.Chart.Name + "-" + res.Chart.Version + ".tgz"
	}
	if err := VerifySignature(res.Archive, res.Prov, keyring, archiveName); err != nil {
		return fmt.Errorf("chart %s from %s: %w", name, policy.Name, err)
	}
	return nil
}

// VerifySignature checks a Helm provenance file against an archive with a
// public keyring. archiveName is the file name the .prov names.
func VerifySignature(archive, prov []byte, keyring, archiveName string) error {
	sig, err := provenance.NewFromKeyring(keyring, "")
	if err != nil {
		return fmt.Errorf("load keyring %s: %w", keyring, err)
	}
	if archiveName == "" || archiveName == "." || strings.ContainsAny(archiveName, `/\`) {
		archiveName = "chart.tgz"
	}
	if _, err := sig.Verify(archive, prov, archiveName); err != nil {
		return fmt.Errorf("signature does not verify: %w", err)
	}
	return nil
}
