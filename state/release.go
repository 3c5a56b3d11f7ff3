package state

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/charter-sh/charter/render"
)

const (
	// APIVersion is the apiVersion of every document charter reads or writes.
	APIVersion = "charter.sh/v1"
	// KindRelease is the kind of a release declaration or params file.
	KindRelease = "Release"
	// KindState is the kind of the optional charter.yaml marker file.
	KindState = "State"
	// DefaultNamespace is the namespace of a release that names none.
	DefaultNamespace = "default"
	// MaxNameLength is the longest release name accepted (Helm's limit).
	MaxNameLength = 53
	// MaxFileSize is the largest declaration, params or values file read.
	MaxFileSize = 10 << 20
)

// Release is one declared release: which chart to install under which name
// and namespace, with which values. It is the in-memory form of a file in
// STATE/releases/ and of a params file.
type Release struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Chart      string `json:"chart,omitempty"`
	Version    string `json:"version,omitempty"`
	ChartPath  string `json:"chartPath,omitempty"`
	// Digest pins a chart resolved from a repository: "sha256:<hex>" of the
	// archive deploy resolved, so the daemon renders exactly that chart
	// until the declaration changes.
	Digest      string   `json:"digest,omitempty"`
	ValuesFiles []string `json:"valuesFiles,omitempty"`
	// DependsOn names releases that must be deployed (and healthy) before
	// this one is applied.
	DependsOn []string       `json:"dependsOn,omitempty"`
	Values    map[string]any `json:"values,omitempty"`
}

// fieldOrder is the order in which charter writes the fields of a release;
// it is also the set of fields a declaration may contain.
var fieldOrder = []string{"apiVersion", "kind", "name", "namespace", "chart", "version", "digest", "chartPath", "valuesFiles", "dependsOn", "values"}

func knownField(key string) bool {
	for _, f := range fieldOrder {
		if f == key {
			return true
		}
	}
	return false
}

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateName reports whether name can name a release: a DNS-1123 label
// (lowercase letters, digits and '-', starting and ending with a letter or
// digit) of at most 53 characters. The error names the value and the rule.
func ValidateName(name string) error {
	return validateLabel("release name", name, MaxNameLength)
}

func validateLabel(what, v string, max int) error {
	if v == "" {
		return fmt.Errorf("%s is empty: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)", what)
	}
	if len(v) > max {
		return fmt.Errorf("%s %q is %d characters long: must be at most %d", what, v, len(v), max)
	}
	if !dns1123Label.MatchString(v) {
		return fmt.Errorf("%s %q is invalid: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)", what, v)
	}
	return nil
}

// Validate checks r for use as a declaration: a valid name, a valid
// namespace (empty means "default"), a non-empty chart reference that does
// not point outside STATE, a valid semver constraint in version, values files
// that are relative paths inside STATE, and values that JSON can represent.
// It returns the first problem found as a one-line error.
func (r *Release) Validate() error {
	if err := ValidateName(r.Name); err != nil {
		return err
	}
	if err := r.validateBody(); err != nil {
		return fmt.Errorf("release %q: %w", r.Name, err)
	}
	return nil
}

// validateBody checks everything Validate checks except the name, so that
// params files (which carry no name) can be checked too.
func (r *Release) validateBody() error {
	if r.APIVersion != "" && r.APIVersion != APIVersion {
		return fmt.Errorf("apiVersion %q is not supported: want %q", r.APIVersion, APIVersion)
	}
	if r.Kind != "" && r.Kind != KindRelease {
		return fmt.Errorf("kind %q is not supported: want %q", r.Kind, KindRelease)
	}
	if r.Namespace != "" {
		if err := validateLabel("namespace", r.Namespace, 63); err != nil {
			return err
		}
	}
	if strings.TrimSpace(r.Chart) == "" {
		return fmt.Errorf("chart is empty: want a chart reference such as charts/NAME-VERSION.tgz")
	}
	if !strings.Contains(r.Chart, "://") {
		if err := checkChartRef(r.Chart); err != nil {
			return err
		}
	}
	if r.Version != "" {
		if _, err := semver.NewConstraint(r.Version); err != nil {
			return fmt.Errorf("version %q is not a valid semver constraint: %w", r.Version, err)
		}
	}
	for _, f := range r.ValuesFiles {
		if err := checkLocalRef("valuesFiles entry", f); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, d := range r.DependsOn {
		if err := ValidateName(d); err != nil {
			return fmt.Errorf("dependsOn: %w", err)
		}
		if d == r.Name && r.Name != "" {
			return fmt.Errorf("dependsOn: release %q depends on itself", d)
		}
		if seen[d] {
			return fmt.Errorf("dependsOn: %q is listed twice", d)
		}
		seen[d] = true
	}
	if _, err := normalizeValues(r.Values); err != nil {
		return fmt.Errorf("values: %w", err)
	}
	return nil
}

// checkLocalRef checks that ref is a slash-separated path that stays inside
// the state directory on its face (symlinks are checked by Dir.ResolvePath).
func checkLocalRef(what, ref string) error {
	if ref == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if strings.ContainsAny(ref, "\x00\n\r") {
		return fmt.Errorf("%s %q contains a control character", what, ref)
	}
	if filepath.IsAbs(ref) || strings.HasPrefix(ref, "/") {
		return fmt.Errorf("%s %q is an absolute path: must be relative to the state directory", what, ref)
	}
	if !filepath.IsLocal(filepath.FromSlash(ref)) {
		return fmt.Errorf("%s %q points outside the state directory", what, ref)
	}
	return nil
}

// checkChartRef checks a local chart reference on its face: relative, and
// not climbing above the state directory's parent (Dir.ResolveChart checks
// symbolic links).
func checkChartRef(ref string) error {
	if strings.ContainsAny(ref, "\x00\n\r") {
		return fmt.Errorf("chart %q contains a control character", ref)
	}
	if filepath.IsAbs(ref) || strings.HasPrefix(ref, "/") {
		return fmt.Errorf("chart %q is an absolute path: must be relative to the state directory", ref)
	}
	clean := filepath.Clean(filepath.FromSlash(ref))
	if rest, ok := strings.CutPrefix(clean, ".."+string(filepath.Separator)); ok {
		clean = rest // one level up: beside the state directory
	}
	if !filepath.IsLocal(clean) {
		return fmt.Errorf("chart %q points outside the folder holding the state directory", ref)
	}
	return nil
}

// applyDefaults fills in what a reader may leave out: apiVersion, kind and
// namespace.
func (r *Release) applyDefaults() {
	if r.APIVersion == "" {
		r.APIVersion = APIVersion
	}
	if r.Kind == "" {
		r.Kind = KindRelease
	}
	if r.Namespace == "" {
		r.Namespace = DefaultNamespace
	}
}

// DeepCopy returns a copy of r that shares no memory with it.
func (r *Release) DeepCopy() *Release {
	if r == nil {
		return nil
	}
	out := *r
	if r.ValuesFiles != nil {
		out.ValuesFiles = append([]string(nil), r.ValuesFiles...)
	}
	if r.Values != nil {
		out.Values = render.MergeValues(r.Values) // a deep copy
	}
	return &out
}

// normalizeValues converts values to the types a YAML or JSON reader
// produces (map[string]any, []any, string, float64, bool, nil), so that values
// set by code compare equal to values read from a file. It fails for values
// JSON cannot represent (channels, NaN, non-string map keys...).
func normalizeValues(v map[string]any) (map[string]any, error) {
	if len(v) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot be represented as YAML: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("cannot be represented as YAML: %w", err)
	}
	return out, nil
}
