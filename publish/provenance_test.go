package publish

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSignIsVerifiedByCharterAndHelm(t *testing.T) {
	k := newKeyring(t, "Charter Test")
	archive := packageChart(t, testChart)

	prov, err := Sign(archive, k.Secret, "Charter Test")
	if err != nil {
		t.Fatal(err)
	}
	if prov != archive+".prov" {
		t.Errorf("prov = %s, want %s.prov", prov, archive)
	}
	v, err := Verify(archive, prov, k.Public)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.SignedBy, "Charter Test <charter.test@example.com>") || v.Fingerprint != k.Fingerprint ||
		v.FileHash != "sha256:"+sha256Hex(readFile(t, archive)) {
		t.Errorf("verification = %+v, want signer Charter Test, fingerprint %s and the archive's digest", v, k.Fingerprint)
	}
	out := mustHelm(t, t.TempDir(), "verify", "--keyring", k.Public, archive)
	if !strings.Contains(out, "Signed by: Charter Test") {
		t.Errorf("helm verify output:\n%s", out)
	}
}

func TestVerifyAcceptsHelmSignedCharts(t *testing.T) {
	k := newKeyring(t, "Helm Signer")
	dir := t.TempDir()
	mustHelm(t, t.TempDir(), "package", "--sign", "--key", "Helm Signer", "--keyring", k.Secret, testChart, "-d", dir)
	archive := filepath.Join(dir, "foo-1.1.2.tgz")
	if _, err := Verify(archive, archive+".prov", k.Public); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := newKeyring(t, "Charter Test")
	other := newKeyring(t, "Someone Else")
	archive := packageChart(t, testChart)
	prov, err := Sign(archive, k.Secret, "Charter Test")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		archive, prov, keyring string
		want                   error
	}{
		"a tampered archive": {
			archive: func() string {
				// Another build of the chart, under the signed name.
				src := filepath.Join(t.TempDir(), "foo")
				copyDir(t, testChart, src)
				writeFile(t, filepath.Join(src, "values.yaml"), "greeting: pwned\n")
				p := packageChart(t, src)
				return p
			}(),
			prov: prov, keyring: k.Public, want: ErrDigestMismatch,
		},
		"a signature by a key not in the keyring": {
			archive: archive, prov: prov, keyring: other.Public, want: ErrUnknownKey,
		},
		"an altered provenance file": {
			archive: archive,
			prov: func() string {
				p := filepath.Join(t.TempDir(), "altered.prov")
				writeFile(t, p, strings.Replace(string(readFile(t, prov)), "description: A basic chart", "description: A nasty chart", 1))
				return p
			}(),
			keyring: k.Public, want: ErrBadSignature,
		},
		"no provenance block": {
			archive: archive,
			prov: func() string {
				p := filepath.Join(t.TempDir(), "empty.prov")
				writeFile(t, p, "hello\n")
				return p
			}(),
			keyring: k.Public, want: ErrBadSignature,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, err := Verify(tc.archive, tc.prov, tc.keyring)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want an error wrapping %q", v, err, tc.want)
			}
			// Helm agrees: copy under the signed name and ask helm verify.
			dir := t.TempDir()
			a := filepath.Join(dir, "foo-1.1.2.tgz")
			writeFile(t, a, string(readFile(t, tc.archive)))
			writeFile(t, a+".prov", string(readFile(t, tc.prov)))
			if out, err := helm(t, t.TempDir(), "verify", "--keyring", tc.keyring, a); err == nil {
				t.Errorf("helm verify accepted what charter refused:\n%s", out)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	k := newKeyring(t, "Charter Test")
	archive := packageChart(t, testChart)
	tests := map[string]struct {
		archive, keyring, key, wantErr string
	}{
		"a key not in the keyring": {archive, k.Secret, "Nobody", `no key matching "Nobody"`},
		"a public keyring":         {archive, k.Public, "Charter Test", "no secret part"},
		"no key name":              {archive, k.Secret, "", "no key name"},
		"a missing keyring":        {archive, filepath.Join(t.TempDir(), "none.gpg"), "Charter Test", "no such file"},
		"a chart directory":        {testChart, k.Secret, "Charter Test", "not a chart archive"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Sign(tc.archive, tc.keyring, tc.key)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if _, err := os.Stat(tc.archive + ".prov"); err == nil {
				t.Errorf("a .prov was written")
			}
		})
	}
}
