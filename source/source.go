package source

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Artifact is one consistent snapshot of a declared state.
type Artifact struct {
	// Revision is what the team knows the snapshot by: a git commit, an SVN
	// revision ("r42"), a Bazaar revno ("revno:7"), or for sources without
	// one the content digest.
	Revision string
	// Digest is "sha256:<hex>" identifying the snapshot's content: over file
	// names and contents, or for buckets over object keys and ETags. Equal
	// digests mean identical content whatever the revision says.
	Digest string
	// Path is a local folder holding the snapshot: a state directory
	// (releases/, charts/, ...). It stays valid and unchanged until the next
	// Fetch of the same Source; readers never see a half-updated tree.
	Path string
}

// Source fetches snapshots of one declared state.
type Source interface {
	// Fetch returns the latest snapshot. When the source has not changed
	// since the last successful Fetch, it returns an artifact with the same
	// Revision and Digest without downloading content again (for git: one
	// ls-remote; for a bucket: one listing).
	Fetch(ctx context.Context) (*Artifact, error)
	// String is the source's location with credentials redacted.
	String() string
}

// Notifier is implemented by sources that learn of changes by themselves
// (fsnotify on a folder). A value on Changes means "Fetch again soon"; bursts
// are already debounced. The channel is closed when the source is closed.
type Notifier interface {
	Changes() <-chan struct{}
}

// Closer is implemented by sources holding resources (watchers, caches).
type Closer interface {
	Close() error
}

// Credentials authenticate to a source. Empty fields are not used.
type Credentials struct {
	Username string // git over https: basic auth user (with Password or Token)
	Password string
	Token    string // git over https: token (sent as password)

	SSHKeyFile            string // git over ssh: private key file
	SSHKeyPassphrase      string
	KnownHostsFile        string // default ~/.ssh/known_hosts
	InsecureIgnoreHostKey bool   // skip host key checking: only when asked explicitly

	AccessKey string // bucket: S3 access key / GCS HMAC token
	SecretKey string // bucket: S3 secret key / GCS HMAC secret
}

// Options configure Open.
type Options struct {
	// CacheDir holds clones, downloads and snapshots; each source uses a
	// sub-folder named after its URL. Required.
	CacheDir string
	Credentials
	// Endpoint and Region for s3:// buckets (default AWS; for MinIO e.g.
	// "http://127.0.0.1:9000").
	Endpoint string
	Region   string
	// MaxFileSize caps one file of a snapshot (default 10 MiB): larger files
	// are an error, never read into memory.
	MaxFileSize int64
	// Debounce for Notifier sources (default 500ms).
	Debounce time.Duration
	// Timeout bounds one network operation (default 60s).
	Timeout time.Duration
}

// Kind names a backend.
type Kind string

const (
	KindGit    Kind = "git"
	KindDir    Kind = "dir"
	KindBucket Kind = "bucket"
)

var scpLike = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/]`)

// KindOf tells which backend serves a location:
//
//	PATH, dir://PATH                         dir (a plain folder, svn or brz checkout)
//	file://PATH                              git when PATH is a git repository, else dir
//	https://…, http://…, ssh://…, git@host:… git
//	git+https://…, git+file://…              git (explicit)
//	s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX] bucket
//	s3+http(s)://HOST[:PORT]/BUCKET[/PREFIX] bucket at that endpoint (the seed's PROTO://HOST[:PORT]/BUCKET)
//
// isGitRepo reports whether a local path is a git repository; it is only
// consulted for file:// URLs.
func KindOf(location string, isGitRepo func(path string) bool) Kind {
	switch {
	case scpLike.MatchString(location):
		return KindGit
	case strings.HasPrefix(location, "git+"):
		return KindGit
	case strings.HasPrefix(location, "s3://"), strings.HasPrefix(location, "gs://"),
		strings.HasPrefix(location, "s3+http://"), strings.HasPrefix(location, "s3+https://"):
		return KindBucket
	case strings.HasPrefix(location, "https://"), strings.HasPrefix(location, "http://"), strings.HasPrefix(location, "ssh://"):
		return KindGit
	case strings.HasPrefix(location, "file://"):
		if isGitRepo != nil && isGitRepo(strings.TrimPrefix(location, "file://")) {
			return KindGit
		}
		return KindDir
	}
	return KindDir
}

// Redact removes credentials from a location: user info, and query values
// whose names suggest secrets (token, secret, key, password, signature…).
// It never fails: what cannot be parsed is reduced to its scheme and host.
func Redact(location string) string {
	if scpLike.MatchString(location) {
		return location // user@host:path carries a user name, not a secret
	}
	u, err := url.Parse(location)
	if err != nil {
		if i := strings.Index(location, "://"); i >= 0 {
			rest := location[i+3:]
			if j := strings.IndexAny(rest, "/?#"); j >= 0 {
				rest = rest[:j]
			}
			if k := strings.LastIndex(rest, "@"); k >= 0 {
				rest = rest[k+1:]
			}
			return location[:i+3] + rest + "/…"
		}
		return "<unparseable location>"
	}
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else if u.Scheme == "https" || u.Scheme == "http" || strings.HasPrefix(u.Scheme, "git+") || strings.HasPrefix(u.Scheme, "s3+") {
			u.User = url.User("xxxxx") // a bare user in https is usually a token
		}
	}
	q := u.Query()
	changed := false
	for k := range q {
		lk := strings.ToLower(k)
		for _, s := range []string{"token", "secret", "key", "password", "passwd", "signature", "credential", "auth"} {
			if strings.Contains(lk, s) {
				q.Set(k, "xxxxx")
				changed = true
				break
			}
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>]+`)

// RedactText redacts every URL inside free text, such as a tool's error
// output, and folds it onto one line.
func RedactText(text string) string {
	return strings.Join(strings.Fields(urlInText.ReplaceAllStringFunc(text, Redact)), " ")
}
