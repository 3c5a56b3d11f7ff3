package source

import (
	"strings"
	"testing"
)

func TestKindOf(t *testing.T) {
	isRepo := func(p string) bool { return p == "/srv/repo.git" }
	for loc, want := range map[string]Kind{
		"./state":                          KindDir,
		"/srv/svn-checkout":                KindDir,
		"dir:///srv/x":                     KindDir,
		"file:///srv/repo.git":             KindGit,
		"file:///srv/plain":                KindDir,
		"https://github.com/org/repo":      KindGit,
		"ssh://git@host/org/repo.git":      KindGit,
		"git@github.com:org/repo.git":      KindGit,
		"git+file:///srv/other":            KindGit,
		"s3://bucket/prefix":               KindBucket,
		"gs://bucket":                      KindBucket,
		"s3+http://127.0.0.1:9000/bucket":  KindBucket,
		"s3+https://minio.corp:443/charts": KindBucket,
	} {
		if got := KindOf(loc, isRepo); got != want {
			t.Errorf("KindOf(%q) = %s, want %s", loc, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://alice:s3cret@git.example.com/org/repo.git": "https://alice:xxxxx@git.example.com/org/repo.git",
		"https://ghp_abcdef@github.com/org/repo":            "https://xxxxx@github.com/org/repo",
		"s3://bucket/prefix?access_key=AK&secret_key=SK":    "s3://bucket/prefix?access_key=xxxxx&secret_key=xxxxx",
		"https://host/repo.git?ref=main&token=abc":          "https://host/repo.git?ref=main&token=xxxxx",
		"git@github.com:org/repo.git":                       "git@github.com:org/repo.git",
		"/srv/checkout":                                     "/srv/checkout",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactText(t *testing.T) {
	in := "svn: E170013: Unable to connect to a repository at URL\n 'https://bob:hunter2@svn.example.com/repo?token=abc'"
	got := RedactText(in)
	if strings.Contains(got, "hunter2") || strings.Contains(got, "token=abc") || strings.Contains(got, "\n") {
		t.Errorf("RedactText = %q: credentials or a line break survive", got)
	}
	if !strings.Contains(got, "svn.example.com/repo") {
		t.Errorf("RedactText = %q lost the location", got)
	}
}
