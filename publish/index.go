package publish

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	yamlv3 "go.yaml.in/yaml/v3"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"sigs.k8s.io/yaml"
)

// index is a repository's index.yaml, with the fields of Helm's
// repo.IndexFile (helm.sh/helm/v4/pkg/repo/v1), whose package is not used
// because it pulls in Helm's OCI and plugin machinery.
type index struct {
	ServerInfo  map[string]any             `json:"serverInfo,omitempty"`
	APIVersion  string                     `json:"apiVersion"`
	Generated   time.Time                  `json:"generated"`
	Entries     map[string][]*chartVersion `json:"entries"`
	PublicKeys  []string                   `json:"publicKeys,omitempty"`
	Annotations map[string]string          `json:"annotations,omitempty"`
}

// chartVersion is one entry: Helm's repo.ChartVersion.
type chartVersion struct {
	*chartv2.Metadata
	URLs    []string  `json:"urls"`
	Created time.Time `json:"created"`
	Removed bool      `json:"removed,omitempty"`
	Digest  string    `json:"digest,omitempty"`

	// Deprecated fields Helm still reads and writes back.
	Checksum      string `json:"checksum,omitempty"`
	Engine        string `json:"engine,omitempty"`
	TillerVersion string `json:"tillerVersion,omitempty"`
	URL           string `json:"url,omitempty"`
}

func newIndex() *index {
	return &index{APIVersion: "v1", Entries: map[string][]*chartVersion{}}
}

// parseIndex reads an index. Unlike Helm's loader it drops nothing: entries
// that are not the released chart's are written back as they were read
// (fields unknown to Helm excepted).
func parseIndex(data []byte) (*index, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty")
	}
	// sigs.k8s.io/yaml keeps the last of duplicate keys silently; an index
	// with duplicates is ambiguous, so it is refused rather than rewritten.
	var probe any
	if err := yamlv3.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not a valid index: %s", strings.Join(strings.Fields(err.Error()), " "))
	}
	var idx index
	if err := yaml.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("not a valid index: %w", err)
	}
	if idx.APIVersion == "" {
		return nil, errors.New("not a Helm repository index (no apiVersion)")
	}
	if idx.Entries == nil {
		idx.Entries = map[string][]*chartVersion{}
	}
	return &idx, nil
}

// find returns the position of name's exact version, or -1.
func (idx *index) find(name, version string) int {
	for i, v := range idx.Entries[name] {
		if v != nil && v.Metadata != nil && v.Version == version {
			return i
		}
	}
	return -1
}

// remove drops the entry at position i of name.
func (idx *index) remove(name string, i int) {
	vs := idx.Entries[name]
	idx.Entries[name] = append(vs[:i:i], vs[i+1:]...)
}

// add adds an entry and sorts name's entries newest first, as Helm does.
func (idx *index) add(v *chartVersion) {
	name := v.Name
	idx.Entries[name] = append(idx.Entries[name], v)
	vs := idx.Entries[name]
	sort.SliceStable(vs, func(a, b int) bool { return newer(vs[a], vs[b]) })
}

// newer orders entries by semantic version, newest first; entries whose
// version does not parse go last (Helm's ChartVersions order, reversed).
func newer(a, b *chartVersion) bool {
	va, errA := version(a)
	vb, errB := version(b)
	switch {
	case errA != nil:
		return false
	case errB != nil:
		return true
	}
	return vb.LessThan(va)
}

func version(v *chartVersion) (*semver.Version, error) {
	if v == nil || v.Metadata == nil {
		return nil, errors.New("no metadata")
	}
	return semver.NewVersion(v.Version)
}
