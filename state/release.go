package state

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

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
	DependsOn []string `json:"dependsOn,omitempty"`
	// Timeout bounds the health wait of this release ("5m"); empty means
	// the daemon's or the CLI's default. See HealthTimeout.
	Timeout string `json:"timeout,omitempty"`
	// Remediation says what to do when an upgrade never becomes healthy.
	Remediation *Remediation `json:"remediation,omitempty"`
	// Force lets charter delete and recreate an object whose immutable
	// fields changed (a Deployment's selector, a Job's template).
	Force bool `json:"force,omitempty"`
	// Adopt lets charter take over existing objects that no release owns.
	// Objects owned by another release are never taken.
	Adopt bool `json:"adopt,omitempty"`
	// Drift tunes drift correction: fields left to others.
	Drift  *Drift         `json:"drift,omitempty"`
	Values map[string]any `json:"values,omitempty"`
}

// Remediation strategies.
const (
	RemediationRollback = "rollback"
	RemediationNone     = "none"
	// DefaultRetries is how many failed attempts of one desired state a
	// remediated release makes before it is stalled; MaxRetries bounds it.
	DefaultRetries = 3
	MaxRetries     = 10
)

// Remediation is what happens when an upgrade fails its health wait.
// Written as `remediation: rollback` or `remediation: {strategy: rollback,
// retries: 5}`.
type Remediation struct {
	// Strategy is "rollback" (re-apply the last deployed revision) or
	// "none".
	Strategy string `json:"strategy"`
	// Retries is how many failed attempts of the same desired state are
	// made before the release is stalled; 0 means DefaultRetries.
	Retries int `json:"retries,omitempty"`
}

// Rollback reports whether a failed upgrade is rolled back.
func (r *Remediation) Rollback() bool {
	return r != nil && r.Strategy == RemediationRollback
}

// Attempts is the number of failed attempts before the release stalls.
func (r *Remediation) Attempts() int {
	if r == nil || r.Retries <= 0 {
		return DefaultRetries
	}
	return r.Retries
}

// Drift holds the drift rules of a release.
type Drift struct {
	Ignore []DriftIgnore `json:"ignore,omitempty"`
}

// DriftIgnore leaves the fields at Paths (JSON pointers, RFC 6901) of the
// objects Target matches (every object when Target is nil) to others: once
// such an object exists, charter neither reports nor reverts changes there.
type DriftIgnore struct {
	Paths  []string     `json:"paths"`
	Target *DriftTarget `json:"target,omitempty"`
}

// DriftTarget selects objects by API group, kind, name and namespace; an
// empty field matches anything.
type DriftTarget struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// Matches reports whether the target selects an object of that group,
// kind, namespace and name. A nil target matches every object.
func (t *DriftTarget) Matches(group, kind, namespace, name string) bool {
	if t == nil {
		return true
	}
	return (t.Group == "" || t.Group == group) && (t.Kind == "" || t.Kind == kind) &&
		(t.Namespace == "" || t.Namespace == namespace) && (t.Name == "" || t.Name == name)
}

// HealthTimeout returns the declared health wait, or 0 when none is
// declared (or it does not parse; Validate reports that).
func (r *Release) HealthTimeout() time.Duration {
	if r.Timeout == "" {
		return 0
	}
	d, err := time.ParseDuration(r.Timeout)
	if err != nil || d <= 0 {
		return 0
	}
	return d
}

// fieldOrder is the order in which charter writes the fields of a release;
// it is also the set of fields a declaration may contain.
var fieldOrder = []string{"apiVersion", "kind", "name", "namespace", "chart", "version", "digest", "chartPath", "valuesFiles", "dependsOn",
	"timeout", "remediation", "force", "adopt", "drift", "values"}

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
	if err := validateTimeout(r.Timeout); err != nil {
		return err
	}
	if err := r.Remediation.validate(); err != nil {
		return err
	}
	if err := r.Drift.validate(); err != nil {
		return err
	}
	if _, err := normalizeValues(r.Values); err != nil {
		return fmt.Errorf("values: %w", err)
	}
	return nil
}

func validateTimeout(s string) error {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("timeout %q is not a duration: want e.g. 90s, 5m or 1h", s)
	}
	if d <= 0 {
		return fmt.Errorf("timeout %q must be positive", s)
	}
	return nil
}

func (r *Remediation) validate() error {
	if r == nil {
		return nil
	}
	switch r.Strategy {
	case RemediationRollback, RemediationNone:
	case "":
		return fmt.Errorf("remediation: strategy is empty: want %s or %s", RemediationRollback, RemediationNone)
	default:
		return fmt.Errorf("remediation: strategy %q is not supported: want %s or %s", r.Strategy, RemediationRollback, RemediationNone)
	}
	if r.Retries < 0 || r.Retries > MaxRetries {
		return fmt.Errorf("remediation: retries %d is out of range: want 1 to %d", r.Retries, MaxRetries)
	}
	return nil
}

func (d *Drift) validate() error {
	if d == nil {
		return nil
	}
	for i, ig := range d.Ignore {
		if len(ig.Paths) == 0 {
			return fmt.Errorf("drift.ignore[%d]: paths is empty: want JSON pointers such as /spec/replicas", i)
		}
		for _, p := range ig.Paths {
			if err := ValidatePointer(p); err != nil {
				return fmt.Errorf("drift.ignore[%d]: %w", i, err)
			}
		}
	}
	return nil
}

// ValidatePointer checks that p is a JSON pointer (RFC 6901) to a field
// charter may leave alone: not the whole object and not the object's
// identity (apiVersion, kind, metadata.name, metadata.namespace).
func ValidatePointer(p string) error {
	if p == "" || p == "/" {
		return fmt.Errorf("path %q would ignore the whole object: want a field such as /spec/replicas", p)
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q is not a JSON pointer: it must start with / (e.g. /spec/replicas)", p)
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return fmt.Errorf("path %q: ~ must be followed by 0 (for ~) or 1 (for /)", p)
		}
	}
	switch p {
	case "/apiVersion", "/kind", "/metadata", "/metadata/name", "/metadata/namespace":
		return fmt.Errorf("path %q is part of the object's identity and cannot be ignored", p)
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
	if r.DependsOn != nil {
		out.DependsOn = append([]string(nil), r.DependsOn...)
	}
	if r.Remediation != nil {
		rem := *r.Remediation
		out.Remediation = &rem
	}
	if r.Drift != nil {
		d := &Drift{}
		for _, ig := range r.Drift.Ignore {
			c := DriftIgnore{Paths: append([]string(nil), ig.Paths...)}
			if ig.Target != nil {
				t := *ig.Target
				c.Target = &t
			}
			d.Ignore = append(d.Ignore, c)
		}
		out.Drift = d
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
