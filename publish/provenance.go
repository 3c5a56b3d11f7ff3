package publish

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"helm.sh/helm/v4/pkg/provenance"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/render"
)

// Verification errors, wrapped by Verify's error.
var (
	// ErrUnknownKey: the provenance file is signed by a key the keyring
	// does not hold.
	ErrUnknownKey = errors.New("signed by a key not in the keyring")
	// ErrBadSignature: the provenance file is not a valid signature (it was
	// altered, or is not a provenance file).
	ErrBadSignature = errors.New("invalid signature")
	// ErrDigestMismatch: the signature is good but the archive is not the
	// one that was signed.
	ErrDigestMismatch = errors.New("archive does not match its provenance file")
)

// Verification is what a good provenance file says about an archive.
type Verification struct {
	// SignedBy is the signing key's identity, "NAME (COMMENT) <EMAIL>"
	// (its primary one when it has several).
	SignedBy string
	// Fingerprint is the signing key's fingerprint, upper-case hex.
	Fingerprint string
	// FileHash is the archive's digest as signed, "sha256:<hex>".
	FileHash string
}

// ProvName is the provenance file of an archive: ARCHIVE.prov.
func ProvName(archivePath string) string { return archivePath + ".prov" }

// Sign writes ARCHIVE.prov, Helm's provenance file for the chart archive at
// archivePath, signed with the secret key of keyringPath whose identity is
// or contains keyName (like `helm package --sign --key NAME --keyring
// FILE`; keyring: `gpg --export-secret-keys > secring.gpg`). It returns the
// .prov's path. Keys protected by a passphrase are refused. The archive is
// loaded (with render.Load's checks) to read the chart metadata the
// provenance file carries.
func Sign(archivePath, keyringPath, keyName string) (string, error) {
	fail := func(err error) (string, error) { return "", fmt.Errorf("sign %s: %w", archivePath, err) }
	if keyName == "" {
		return fail(errors.New("no key name given"))
	}
	signer, err := provenance.NewFromKeyring(keyringPath, keyName)
	if err != nil {
		return fail(fmt.Errorf("keyring %s: %w", keyringPath, err))
	}
	switch {
	case signer.Entity == nil:
		return fail(fmt.Errorf("no key matching %q in keyring %s", keyName, keyringPath))
	case signer.Entity.PrivateKey == nil:
		return fail(fmt.Errorf("key %q in %s has no secret part; give a keyring exported with `gpg --export-secret-keys`", keyName, keyringPath))
	case signer.Entity.PrivateKey.Encrypted:
		return fail(fmt.Errorf("key %q is protected by a passphrase, which is not supported; use a key without one", keyName))
	}
	if fi, err := os.Stat(archivePath); err != nil {
		return fail(err)
	} else if fi.IsDir() {
		return fail(errors.New("not a chart archive; package the chart first"))
	}
	ch, err := render.Load(archivePath)
	if err != nil {
		return fail(err)
	}
	meta, err := yaml.Marshal(ch.Chart.Metadata)
	if err != nil {
		return fail(fmt.Errorf("chart metadata: %w", err))
	}
	data, err := os.ReadFile(archivePath)
	if err != nil {
		return fail(err)
	}
	sig, err := signer.ClearSign(data, filepath.Base(archivePath), meta)
	if err != nil {
		return fail(err)
	}
	prov := ProvName(archivePath)
	if err := writeFileAtomic(prov, []byte(sig), 0o644); err != nil {
		return fail(err)
	}
	return prov, nil
}

// Verify checks the provenance file provPath of the archive at archivePath
// against the public keys of keyringPath, as `helm verify` does: the
// signature must be made by a key of the keyring, and the archive's SHA-256
// must be the one signed for its file name. Errors wrap ErrUnknownKey,
// ErrBadSignature or ErrDigestMismatch.
func Verify(archivePath, provPath, keyringPath string) (*Verification, error) {
	fail := func(err error) (*Verification, error) { return nil, fmt.Errorf("verify %s: %w", archivePath, err) }
	signer, err := provenance.NewFromKeyring(keyringPath, "")
	if err != nil {
		return fail(fmt.Errorf("keyring %s: %w", keyringPath, err))
	}
	data, err := os.ReadFile(archivePath)
	if err != nil {
		return fail(err)
	}
	prov, err := os.ReadFile(provPath)
	if err != nil {
		return fail(fmt.Errorf("provenance file: %w", err))
	}
	v, err := signer.Verify(data, prov, filepath.Base(archivePath))
	if err != nil {
		switch {
		case v != nil && v.SignedBy != nil:
			return fail(fmt.Errorf("%w: %v", ErrDigestMismatch, err))
		case errors.Is(err, pgperrors.ErrUnknownIssuer):
			return fail(fmt.Errorf("%s: %w %s", provPath, ErrUnknownKey, keyringPath))
		default:
			return fail(fmt.Errorf("%s: %w: %v", provPath, ErrBadSignature, err))
		}
	}
	return &Verification{
		SignedBy:    identity(v.SignedBy),
		Fingerprint: strings.ToUpper(fmt.Sprintf("%x", v.SignedBy.PrimaryKey.Fingerprint)),
		FileHash:    v.FileHash,
	}, nil
}

// identity is the entity's primary identity, else its first in name order.
func identity(e *openpgp.Entity) string {
	if id := e.PrimaryIdentity(); id != nil {
		return id.Name
	}
	names := make([]string, 0, len(e.Identities))
	for n := range e.Identities {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return ""
	}
	return names[0]
}
