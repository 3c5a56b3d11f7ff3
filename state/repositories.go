package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	yaml "go.yaml.in/yaml/v3"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/charter-sh/charter/source"
)

const (
	// RepositoriesFile is the STATE-relative file listing the chart
	// repositories: the CLI and the daemon read the same list.
	RepositoriesFile = "repositories.yaml"
	// KindRepositories is the kind of RepositoriesFile.
	KindRepositories = "Repositories"
	// MaxRepoNameLength is the longest repository name accepted.
	MaxRepoNameLength = 63
)

// RepositorySchemes are the URL schemes a repository may use.
var RepositorySchemes = []string{"https", "http", "s3", "gs", "s3+http", "s3+https", "file", "oci"}

// Repository is a chart repository as declared in STATE/repositories.yaml.
// It never holds a secret: Credential names a credential kept in the
// cluster (see package credential).
type Repository struct {
	// Name is how charts of the repository are referred to: NAME/CHART.
	Name string `json:"name"`
	// URL is where the repository's index.yaml lives (without index.yaml).
	URL string `json:"url"`
	// Credential is the name of the credential sent to the repository.
	Credential string `json:"credential,omitempty"`
	// RequireSignatures makes deploy and the daemon refuse a chart of this
	// repository whose .prov file is missing or does not verify against
	// Keyring.
	RequireSignatures bool `json:"requireSignatures,omitempty"`
	// Keyring is a STATE-relative path to a public keyring.
	Keyring string `json:"keyring,omitempty"`
	// AllowCrossOrigin allows sending Credential to chart URLs of the index
	// that are on another scheme, host or port than URL.
	AllowCrossOrigin bool `json:"allowCrossOrigin,omitempty"`
}

// repoFieldOrder is the order in which charter writes a repository's
// fields; it is also the set of fields an entry may hold.
var repoFieldOrder = []string{"name", "url", "credential", "requireSignatures", "keyring", "allowCrossOrigin"}

var repoFileFields = []string{"apiVersion", "kind", "repositories"}

// Validate checks r on its face: a DNS-1123 name, a URL with a supported
// scheme and no user info, a valid credential name, and a relative keyring
// path (required with RequireSignatures). Whether the keyring resolves
// inside a state directory is checked by Dir.AddRepository.
func (r Repository) Validate() error {
	if err := validateLabel("repository name", r.Name, MaxRepoNameLength); err != nil {
		return err
	}
	if err := ValidateRepositoryURL(r.URL); err != nil {
		return fmt.Errorf("repository %q: %w", r.Name, err)
	}
	if r.Credential != "" {
		if err := validateLabel("credential name", r.Credential, 63); err != nil {
			return fmt.Errorf("repository %q: %w", r.Name, err)
		}
	}
	if r.RequireSignatures && r.Keyring == "" {
		return fmt.Errorf("repository %q: requireSignatures needs a keyring: the path of a public keyring inside the state directory", r.Name)
	}
	if r.Keyring != "" {
		if err := checkLocalRef("keyring", r.Keyring); err != nil {
			return fmt.Errorf("repository %q: %w", r.Name, err)
		}
	}
	return nil
}

// ValidateRepositoryURL checks that u can locate a repository: a scheme of
// RepositorySchemes, a host (a bucket for s3:// and gs://, a host and a
// bucket for s3+http(s)://, a path for file://), no user info (credentials
// belong in the credential store) and no fragment. Errors show u redacted.
func ValidateRepositoryURL(u string) error {
	if u == "" {
		return errors.New("repository URL is empty")
	}
	for _, r := range u {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("repository URL %q holds a space or control character", source.Redact(u))
		}
	}
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("repository URL %s is invalid: %w", source.Redact(u), errors.Unwrap(err))
	}
	scheme := p.Scheme
	if !containsString(RepositorySchemes, scheme) {
		if scheme == "" {
			return fmt.Errorf("repository URL %s has no scheme: want one of %s", source.Redact(u), strings.Join(RepositorySchemes, ", "))
		}
		return fmt.Errorf("repository URL %s: scheme %q is not supported: want one of %s", source.Redact(u), scheme, strings.Join(RepositorySchemes, ", "))
	}
	if p.User != nil {
		return fmt.Errorf("repository URL %s holds credentials: store them with `charter credential add` and name the credential instead", source.Redact(u))
	}
	if p.Fragment != "" || strings.HasSuffix(u, "#") {
		return fmt.Errorf("repository URL %s has a #fragment: a repository URL names a folder, not a chart version", source.Redact(u))
	}
	switch scheme {
	case "file":
		if p.Host == "" && strings.Trim(p.Path, "/") == "" {
			return fmt.Errorf("repository URL %s names no folder", source.Redact(u))
		}
	case "s3", "gs":
		if p.Host == "" {
			return fmt.Errorf("repository URL %s names no bucket: want %s://BUCKET[/PREFIX]", source.Redact(u), scheme)
		}
	case "s3+http", "s3+https":
		if p.Host == "" || strings.Trim(p.Path, "/") == "" {
			return fmt.Errorf("repository URL %s names no bucket: want %s://HOST[:PORT]/BUCKET[/PREFIX]", source.Redact(u), scheme)
		}
	default:
		if p.Host == "" {
			return fmt.Errorf("repository URL %s names no host", source.Redact(u))
		}
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// normalRepoURL is the form in which two repository URLs are compared:
// scheme and host lowercased, trailing slashes dropped.
func normalRepoURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return strings.TrimRight(u, "/")
	}
	p.Scheme = strings.ToLower(p.Scheme)
	p.Host = strings.ToLower(p.Host)
	p.Path = strings.TrimRight(p.Path, "/")
	p.RawPath = ""
	return p.String()
}

// genericHostLabels are first host labels that say nothing about whose
// repository it is ("charts.example.com" is better called "example").
var genericHostLabels = map[string]bool{"www": true, "charts": true, "chart": true, "helm": true, "repo": true, "repos": true, "registry": true}

// DefaultRepoName derives a repository name from a URL: the last element of
// its path (index.yaml aside) when it has one, else the first label of its
// host, skipping a generic one (www, charts, helm, repo…) when more than a
// domain follows; an IP address is used whole. The result is made DNS-safe
// (lowercase letters, digits and '-', at most 63 characters); "repo" when
// nothing usable is left. Examples: https://charts.bitnami.com/bitnami →
// bitnami; https://charts.example.com → example; s3://team-charts →
// team-charts.
func DefaultRepoName(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "repo"
	}
	elems := strings.Split(strings.Trim(p.Path, "/"), "/")
	if p.Scheme == "s3+http" || p.Scheme == "s3+https" {
		// The first element is the bucket: a name as good as any prefix.
		if len(elems) > 0 && elems[0] != "" {
			p.Host = ""
		}
	}
	if n := len(elems); n > 0 && strings.EqualFold(elems[n-1], "index.yaml") {
		elems = elems[:n-1]
	}
	for i := len(elems) - 1; i >= 0; i-- {
		if name := dnsSafe(elems[i]); name != "" {
			return name
		}
	}
	host := p.Hostname()
	if p.Scheme == "s3" || p.Scheme == "gs" {
		if name := dnsSafe(host); name != "" {
			return name // the bucket, dots and all
		}
		return "repo"
	}
	if ip := net.ParseIP(host); ip != nil {
		if name := dnsSafe(host); name != "" {
			return name
		}
		return "repo"
	}
	labels := strings.Split(host, ".")
	for i, l := range labels {
		// Keep at least the label before the top-level domain.
		if genericHostLabels[strings.ToLower(l)] && i+2 < len(labels) {
			continue
		}
		if name := dnsSafe(l); name != "" {
			return name
		}
	}
	return "repo"
}

// dnsSafe lowercases s, turns runs of anything but letters and digits into
// one '-', trims dashes and cuts to 63 characters.
func dnsSafe(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > MaxRepoNameLength {
		out = strings.TrimRight(out[:MaxRepoNameLength], "-")
	}
	return out
}

// Repositories returns the repositories declared in STATE/repositories.yaml,
// in file order. A missing file declares none. Reading is strict: a file
// that is not YAML, holds duplicate keys, unknown fields, invalid or
// clashing entries, or a keyring outside the state directory is an error
// naming the file.
func (d *Dir) Repositories(ctx context.Context) ([]Repository, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read repositories: %w", err)
	}
	repos, _, _, err := d.loadRepositories()
	if err == nil && repos == nil {
		repos = []Repository{} // so that `repo list -o json` prints []
	}
	return repos, err
}

// Repository returns the repository called nameOrURL, or else the one whose
// URL is nameOrURL (ignoring case of scheme and host and trailing slashes),
// or an error wrapping ErrNotFound.
func (d *Dir) Repository(ctx context.Context, nameOrURL string) (*Repository, error) {
	repos, err := d.Repositories(ctx)
	if err != nil {
		return nil, err
	}
	i := findRepository(repos, nameOrURL)
	if i < 0 {
		return nil, repoNotFound(nameOrURL)
	}
	r := repos[i]
	return &r, nil
}

func findRepository(repos []Repository, nameOrURL string) int {
	for i, r := range repos {
		if r.Name == nameOrURL {
			return i
		}
	}
	if strings.Contains(nameOrURL, ":") {
		want := normalRepoURL(nameOrURL)
		for i, r := range repos {
			if normalRepoURL(r.URL) == want {
				return i
			}
		}
	}
	return -1
}

func repoNotFound(nameOrURL string) error {
	if strings.Contains(nameOrURL, ":") {
		return fmt.Errorf("repository %s %w", source.Redact(nameOrURL), ErrNotFound)
	}
	return fmt.Errorf("repository %q %w", nameOrURL, ErrNotFound)
}

// AddRepository declares r (validated, its keyring resolving inside the
// state directory) at the end of STATE/repositories.yaml, creating the file
// if needed. A repository with the same name or URL is an error wrapping
// ErrExists that names the clash. The file is edited under the state lock
// and written atomically; its comments, key order and other entries are
// kept.
func (d *Dir) AddRepository(ctx context.Context, r Repository) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("add %w", err)
	}
	if r.Keyring != "" {
		if _, err := d.ResolvePath(r.Keyring); err != nil {
			return fmt.Errorf("add repository %q: keyring: %w", r.Name, err)
		}
	}
	return d.editRepositories(ctx, "add repository "+strconv.Quote(r.Name), func(repos []Repository) ([]Repository, error) {
		for _, o := range repos {
			if o.Name == r.Name {
				return nil, fmt.Errorf("repository %q %w (with URL %s)", r.Name, ErrExists, source.Redact(o.URL))
			}
			if normalRepoURL(o.URL) == normalRepoURL(r.URL) {
				return nil, fmt.Errorf("repository URL %s %w as %q", source.Redact(r.URL), ErrExists, o.Name)
			}
		}
		return append(repos, r), nil
	})
}

// RemoveRepository removes the repository called nameOrURL, or else the
// one whose URL is nameOrURL, or returns an error wrapping ErrNotFound. The
// rest of the file is kept as it is.
func (d *Dir) RemoveRepository(ctx context.Context, nameOrURL string) error {
	what := "remove repository " + strconv.Quote(nameOrURL)
	if strings.Contains(nameOrURL, ":") {
		what = "remove repository " + source.Redact(nameOrURL)
	}
	return d.editRepositories(ctx, what, func(repos []Repository) ([]Repository, error) {
		i := findRepository(repos, nameOrURL)
		if i < 0 {
			return nil, repoNotFound(nameOrURL)
		}
		return append(repos[:i:i], repos[i+1:]...), nil
	})
}

// editRepositories runs fn on the declared repositories under the state
// lock and writes the list it returns. Errors from fn are returned as they
// are; others are prefixed with what.
func (d *Dir) editRepositories(ctx context.Context, what string, fn func([]Repository) ([]Repository, error)) error {
	unlock, err := d.lock(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer unlock()
	old, data, perm, err := d.loadRepositories()
	if err != nil {
		return err
	}
	want, err := fn(append([]Repository(nil), old...))
	if err != nil {
		return err
	}
	path, err := d.ResolvePath(RepositoriesFile)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	out, err := editRepositoriesFile(path, data, want)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := writeFile(ctx, path, out, perm, false, d.wrapWrite); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// loadRepositories reads and checks STATE/repositories.yaml, returning the
// repositories, the file's bytes (nil when missing) and its mode.
func (d *Dir) loadRepositories() ([]Repository, []byte, fs.FileMode, error) {
	path, err := d.ResolvePath(RepositoriesFile)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read repositories: %w", err)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, 0o644, nil
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read repositories: %w", err)
	}
	data, err := readLimited(path)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read repositories: %w", err)
	}
	repos, err := ParseRepositories(path, data)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, r := range repos {
		if r.Keyring != "" {
			if _, err := d.ResolvePath(r.Keyring); err != nil {
				return nil, nil, 0, fmt.Errorf("%s: repository %q: keyring: %w", path, r.Name, err)
			}
		}
	}
	return repos, data, fi.Mode().Perm(), nil
}

// ParseRepositories reads a repositories file strictly: one YAML mapping
// (or nothing but comments) of at most MaxFileSize bytes, without duplicate
// keys, with apiVersion charter.sh/v1 and kind Repositories when present and
// a list of repositories whose fields are known, of the right type, valid
// (see Repository.Validate) and whose names and URLs are unique. name is the
// file name errors start with.
func ParseRepositories(name string, data []byte) ([]Repository, error) {
	if err := checkSize(name, int64(len(data))); err != nil {
		return nil, err
	}
	docs, err := decodeDocs(name, data)
	if err != nil {
		return nil, err
	}
	switch len(docs) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("%s: holds %d YAML documents: want one list of repositories", name, len(docs))
	}
	root := docs[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: line %d: want a mapping with apiVersion, kind and repositories, got %s", name, root.Line, kindName(root))
	}
	if err := checkDuplicates(root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var repos []Repository
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], resolveAlias(root.Content[i+1])
		if k.Kind != yaml.ScalarNode || !containsString(repoFileFields, k.Value) {
			return nil, fmt.Errorf("%s: line %d: unknown field %q (known fields: %s)", name, k.Line, k.Value, strings.Join(repoFileFields, ", "))
		}
		switch k.Value {
		case "apiVersion", "kind":
			want := APIVersion
			if k.Value == "kind" {
				want = KindRepositories
			}
			if v.Kind != yaml.ScalarNode || v.Value != want {
				return nil, fmt.Errorf("%s: line %d: %s must be %s", name, k.Line, k.Value, want)
			}
		case "repositories":
			if isNull(v) {
				continue
			}
			if v.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("%s: line %d: repositories must be a list, got %s", name, k.Line, kindName(v))
			}
			for _, e := range v.Content {
				r, err := parseRepository(resolveAlias(e))
				if err != nil {
					return nil, fmt.Errorf("%s: line %d: %w", name, e.Line, err)
				}
				if err := r.Validate(); err != nil {
					return nil, fmt.Errorf("%s: line %d: %w", name, e.Line, err)
				}
				for _, o := range repos {
					if o.Name == r.Name {
						return nil, fmt.Errorf("%s: line %d: repository %q is declared twice", name, e.Line, r.Name)
					}
					if normalRepoURL(o.URL) == normalRepoURL(r.URL) {
						return nil, fmt.Errorf("%s: line %d: repository %q has the URL of repository %q", name, e.Line, r.Name, o.Name)
					}
				}
				repos = append(repos, r)
			}
		}
	}
	return repos, nil
}

func parseRepository(n *yaml.Node) (Repository, error) {
	var r Repository
	if n.Kind != yaml.MappingNode {
		return r, fmt.Errorf("want a repository (a mapping with name and url), got %s", kindName(n))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || !containsString(repoFieldOrder, k.Value) {
			return r, fmt.Errorf("unknown repository field %q (known fields: %s)", k.Value, strings.Join(repoFieldOrder, ", "))
		}
		switch k.Value {
		case "requireSignatures", "allowCrossOrigin":
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
				return r, fmt.Errorf("field %s must be true or false, got %s", k.Value, kindName(v))
			}
			var b bool
			if err := v.Decode(&b); err != nil {
				return r, fmt.Errorf("field %s: %s", k.Value, oneLine(err))
			}
			if k.Value == "requireSignatures" {
				r.RequireSignatures = b
			} else {
				r.AllowCrossOrigin = b
			}
			continue
		}
		if isNull(v) {
			continue
		}
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			return r, fmt.Errorf("field %s must be a string, got %s", k.Value, kindName(v))
		}
		switch k.Value {
		case "name":
			r.Name = v.Value
		case "url":
			r.URL = v.Value
		case "credential":
			r.Credential = v.Value
		case "keyring":
			r.Keyring = v.Value
		}
	}
	return r, nil
}

// repositoryNode builds the YAML mapping for r, fields in charter's order.
func repositoryNode(r Repository) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	add := func(k string, v *yaml.Node) { m.Content = append(m.Content, stringNode(k), v) }
	trueNode := func() *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"} }
	add("name", stringNode(r.Name))
	add("url", stringNode(r.URL))
	if r.Credential != "" {
		add("credential", stringNode(r.Credential))
	}
	if r.RequireSignatures {
		add("requireSignatures", trueNode())
	}
	if r.Keyring != "" {
		add("keyring", stringNode(r.Keyring))
	}
	if r.AllowCrossOrigin {
		add("allowCrossOrigin", trueNode())
	}
	return m
}

const repositoriesHeader = `# Chart repositories, for the charter CLI and daemon alike ('charter repo
# add' and 'charter repo rm' edit this file). A credential is named here;
# its secret stays in the cluster ('charter credential add').
`

// editRepositoriesFile returns orig (the file's bytes; nil when there is no
// file) changed to declare want. It edits the repositories list through
// kyaml and replays the change onto the original text, so comments, key
// order, blank lines and other entries survive; the result is checked to
// read back as want.
func editRepositoriesFile(name string, orig []byte, want []Repository) ([]byte, error) {
	docs, err := decodeDocs(name, orig)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		// No file, or nothing but comments: write the canonical form after
		// whatever comments there are.
		root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		root.Content = append(root.Content,
			stringNode("apiVersion"), stringNode(APIVersion),
			stringNode("kind"), stringNode(KindRepositories),
			stringNode("repositories"), repositoriesNode(nil, want))
		body, err := encodeNode(root, kyaml.DefaultIndent, kyaml.WideSequenceStyle)
		if err != nil {
			return nil, err
		}
		prefix := string(orig)
		if strings.TrimSpace(prefix) == "" {
			prefix = repositoriesHeader
		} else if !strings.HasSuffix(prefix, "\n") {
			prefix += "\n"
		}
		out := append([]byte(prefix), body...)
		return out, readsAsRepositories(name, out, want)
	}

	src := string(orig)
	indent, seq := deriveListStyle(src)
	before, err := kyaml.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	after, err := kyaml.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	root := after.YNode()
	cur := fieldValue(root, "repositories")
	nv := repositoriesNode(cur, want)
	if cur == nil {
		root.Content = append(root.Content, stringNode("repositories"), nv)
	} else {
		setFieldNode(root, "repositories", nv)
	}
	return replayed(name, orig, before.Document(), after.Document(), indent, seq,
		func(data []byte) error { return readsAsRepositories(name, data, want) })
}

// deriveListStyle tells how the file indents its list of repositories,
// the only nesting a repositories file has: items under their key by some
// columns ("wide", charter's default, with that indentation) or not
// ("compact").
func deriveListStyle(src string) (int, kyaml.SequenceIndentStyle) {
	for _, line := range strings.Split(src, "\n") {
		t := strings.TrimLeft(line, " ")
		if !strings.HasPrefix(t, "- ") && t != "-" {
			continue
		}
		col := len(line) - len(t)
		if col == 0 {
			return kyaml.DefaultIndent, kyaml.CompactSequenceStyle
		}
		if col <= 8 {
			return col, kyaml.WideSequenceStyle
		}
		break
	}
	return kyaml.DefaultIndent, kyaml.WideSequenceStyle
}

// repositoriesNode returns the list node declaring want, reusing the nodes
// of cur (the current list, may be nil) for entries that are unchanged so
// their comments and formatting survive.
func repositoriesNode(cur *yaml.Node, want []Repository) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	var existing []*yaml.Node
	if cur != nil && cur.Kind == yaml.SequenceNode {
		seq.HeadComment, seq.LineComment, seq.FootComment = cur.HeadComment, cur.LineComment, cur.FootComment
		existing = cur.Content
	}
	used := make([]bool, len(existing))
	for _, r := range want {
		var node *yaml.Node
		for i, e := range existing {
			if used[i] {
				continue
			}
			if got, err := parseRepository(resolveAlias(e)); err == nil && reflect.DeepEqual(got, r) {
				node, used[i] = e, true
				break
			}
		}
		if node == nil {
			node = repositoryNode(r)
		}
		seq.Content = append(seq.Content, node)
	}
	if len(seq.Content) == 0 {
		seq.Style = yaml.FlowStyle // an empty block list cannot be written
	}
	return seq
}

// setFieldNode replaces the value of key f in mapping m. A comment on the
// line of a flow list ("repositories: [] # none") stays on the key's line
// when the list becomes a block.
func setFieldNode(m *yaml.Node, f string, nv *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == f {
			if k := m.Content[i]; nv.Style&yaml.FlowStyle == 0 && nv.LineComment != "" && k.LineComment == "" {
				k.LineComment, nv.LineComment = nv.LineComment, ""
			}
			m.Content[i+1] = nv
			return
		}
	}
}

// readsAsRepositories checks that data parses to want.
func readsAsRepositories(name string, data []byte, want []Repository) error {
	got, err := ParseRepositories(name, data)
	if err != nil {
		return fmt.Errorf("edit %s: edited file does not parse: %w", name, err)
	}
	if len(got) == 0 && len(want) == 0 {
		return nil
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("edit %s: edited file does not read back as the new list of repositories", filepath.Base(name))
	}
	return nil
}
