package git

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/charter-sh/charter/source"
)

// Spec is a parsed git location:
//
//	LOCATION[//SUBPATH][?ref=BRANCH|tag=TAG|semver=RANGE|commit=SHA]
//
// At most one of Branch, Tag, Semver and Commit is set; none means the
// branch the remote's HEAD points to.
type Spec struct {
	// URL is what go-git dials: https://, http://, ssh://, file:// or
	// scp-like user@host:path, without the "git+" prefix, the sub-path, the
	// query, and (for http and https) without user info, which moves to
	// Username and Password.
	URL string
	// Scheme is "https", "http", "ssh" (also for scp-like locations) or
	// "file".
	Scheme string
	// SubPath is the state root inside the repository, slash-separated,
	// cleaned, without leading or trailing slashes; "" is the repository
	// root.
	SubPath string

	Branch string // ?ref=
	Tag    string // ?tag=
	Semver string // ?semver=, a Masterminds/semver constraint
	Commit string // ?commit=, 40 hex digits, lower case

	// Username and Password come from the location's user info. For ssh
	// Username is the login (default "git"); a password there is used for
	// ssh password authentication.
	Username string
	Password string

	location string // as given
}

// String is the location as given, with credentials redacted.
func (s Spec) String() string { return source.Redact(s.location) }

// Key is a short, stable name for the repository and ref (never the
// credentials), for naming cache folders.
func (s Spec) Key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s", s.URL, s.Username, s.SubPath, s.Branch, s.Tag, s.Semver, s.Commit)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// refLabel describes the ref the spec follows, for messages.
func (s Spec) refLabel() string {
	switch {
	case s.Branch != "":
		return "branch " + s.Branch
	case s.Tag != "":
		return "tag " + s.Tag
	case s.Semver != "":
		return "semver " + s.Semver
	case s.Commit != "":
		return "commit " + s.Commit
	}
	return "the remote HEAD"
}

var (
	scpLike  = regexp.MustCompile(`^(?:([^@/:]+)@)?([A-Za-z0-9._-]+):([^/].*|/.*)$`)
	hexSHA1  = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
	badRefCh = regexp.MustCompile(`[\x00-\x20~^:?*\[\\\x7f]`)
)

// ParseURL parses a git location (see Spec). It does no I/O. Errors name
// the redacted location and what is wrong with it.
func ParseURL(location string) (Spec, error) {
	spec := Spec{location: location}
	fail := func(format string, args ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("git location %s: %s", source.Redact(location), fmt.Sprintf(format, args...))
	}
	loc := strings.TrimPrefix(location, "git+")
	if loc == "" {
		return fail("empty")
	}

	// Query: the ref to follow.
	loc, rawQuery, _ := strings.Cut(loc, "?")
	if rawQuery != "" {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return fail("bad query: %v", err)
		}
		n := 0
		for k, vs := range q {
			if len(vs) != 1 || vs[0] == "" {
				return fail("%s must be given once, with a value", k)
			}
			v := vs[0]
			switch k {
			case "ref":
				if strings.HasPrefix(v, "refs/") && !strings.HasPrefix(v, "refs/heads/") {
					return fail("ref=%s: want a branch name", v)
				}
				spec.Branch = strings.TrimPrefix(v, "refs/heads/")
			case "tag":
				spec.Tag = strings.TrimPrefix(v, "refs/tags/")
			case "semver":
				if _, err := semver.NewConstraint(v); err != nil {
					return fail("semver=%s: %v", v, err)
				}
				spec.Semver = v
			case "commit":
				if !hexSHA1.MatchString(v) {
					return fail("commit=%s: want a full 40-digit SHA-1", v)
				}
				spec.Commit = strings.ToLower(v)
			default:
				return fail("unknown query parameter %q: want one of ref, tag, semver, commit", k)
			}
			n++
		}
		if n > 1 {
			return fail("give only one of ref, tag, semver, commit")
		}
		for _, name := range []string{spec.Branch, spec.Tag} {
			if name != "" && (badRefCh.MatchString(name) || strings.Contains(name, "..") || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".lock")) {
				return fail("%q is not a valid ref name", name)
			}
		}
	}

	// Sub-path: the first "//" after the scheme's.
	head := ""
	rest := loc
	if i := strings.Index(loc, "://"); i >= 0 {
		head, rest = loc[:i+3], loc[i+3:]
	}
	if j := strings.Index(rest[min(1, len(rest)):], "//"); j >= 0 {
		j += min(1, len(rest))
		sub := rest[j+2:]
		rest = rest[:j]
		clean := path.Clean("/" + sub)
		if strings.Contains(sub, "\\") || strings.Contains(sub, "\x00") {
			return fail("sub-path %q: bad characters", sub)
		}
		for _, part := range strings.Split(sub, "/") {
			if part == ".." {
				return fail("sub-path %q leaves the repository", sub)
			}
		}
		spec.SubPath = strings.Trim(clean, "/")
		if spec.SubPath == ".git" || strings.HasPrefix(spec.SubPath, ".git/") {
			return fail("sub-path %q is inside .git", sub)
		}
	}
	loc = head + rest

	if head == "" {
		m := scpLike.FindStringSubmatch(loc)
		if m == nil {
			return fail("want https://, http://, ssh://, file:// or user@host:path")
		}
		spec.Scheme = "ssh"
		spec.Username = m[1]
		if spec.Username == "" {
			spec.Username = "git"
			loc = "git@" + loc
		}
		spec.URL = loc
		return spec, nil
	}

	u, err := url.Parse(loc)
	if err != nil {
		return fail("%v", stripURLError(err))
	}
	spec.Scheme = u.Scheme
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" {
			return fail("no host")
		}
		if u.User != nil {
			spec.Username = u.User.Username()
			spec.Password, _ = u.User.Password()
			u.User = nil
		}
	case "ssh":
		if u.Host == "" {
			return fail("no host")
		}
		spec.Username = "git"
		if u.User != nil {
			if n := u.User.Username(); n != "" {
				spec.Username = n
			}
			spec.Password, _ = u.User.Password()
		}
		u.User = url.User(spec.Username)
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return fail("file:// URLs name a local path: want file:///PATH")
		}
		if u.User != nil {
			return fail("file:// URLs take no user")
		}
		if !path.IsAbs(u.Path) {
			return fail("want an absolute path")
		}
		u.Host = ""
	default:
		return fail("scheme %q: want https, http, ssh or file", u.Scheme)
	}
	if u.Path == "" || u.Path == "/" {
		return fail("no repository path")
	}
	if u.Fragment != "" {
		return fail("fragments (#…) are not supported: use ?ref=, ?tag=, ?semver= or ?commit=")
	}
	spec.URL = u.String()
	return spec, nil
}

// stripURLError drops the URL (which may hold a password) from a url.Parse
// error.
func stripURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
