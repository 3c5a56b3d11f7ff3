package record

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// Status is the state of one revision.
type Status string

// The possible revision statuses; they mirror Helm's so users recognise them.
const (
	StatusPendingInstall Status = "pending-install"
	StatusPendingUpgrade Status = "pending-upgrade"
	StatusDeployed       Status = "deployed"
	StatusFailed         Status = "failed"
	StatusSuperseded     Status = "superseded"
	StatusUninstalling   Status = "uninstalling"
)

// Pending reports whether the revision is still being converged.
func (s Status) Pending() bool {
	return s == StatusPendingInstall || s == StatusPendingUpgrade || s == StatusUninstalling
}

// ObjectRef identifies one object of a release's inventory.
type ObjectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// String formats the reference as Kind/namespace/name (Kind/name when cluster scoped).
func (o ObjectRef) String() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Kind + "/" + o.Namespace + "/" + o.Name
}

// Object returns a bare object with the reference's identity, enough to
// get, delete or diff it.
func (o ObjectRef) Object() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(o.APIVersion)
	u.SetKind(o.Kind)
	u.SetNamespace(o.Namespace)
	u.SetName(o.Name)
	return u
}

// Revision is one applied (or attempted) revision of a release.
type Revision struct {
	Release   string `json:"release"`
	Namespace string `json:"namespace"` // the release's target namespace
	Revision  int    `json:"revision"`
	Status    Status `json:"status"`
	Message   string `json:"message,omitempty"`
	// Retryable marks a failure that may pass on its own (the API server
	// unreachable, a health wait that timed out); others (a bad chart, a
	// rejected object) wait for the declaration or chart to change.
	Retryable bool `json:"retryable,omitempty"`

	Chart        string `json:"chart"` // the reference as declared
	ChartName    string `json:"chartName"`
	ChartVersion string `json:"chartVersion"`
	ChartDigest  string `json:"chartDigest"`
	AppVersion   string `json:"appVersion,omitempty"`

	// Values are the user-supplied values (declaration's valuesFiles and
	// values merged); ComputedValues are coalesced with the chart defaults.
	Values         map[string]any `json:"values,omitempty"`
	ComputedValues map[string]any `json:"computedValues,omitempty"`
	Manifest       string         `json:"manifest"`
	Notes          string         `json:"notes,omitempty"`
	Inventory      []ObjectRef    `json:"inventory"`
	// Leftovers, on a revision not deployed (yet), are the objects earlier
	// revisions may have left in the cluster, which this one prunes once
	// applied. With Inventory they are the intended inventory (old ∪ new),
	// recorded before anything is written: however a run ends, the newest
	// record names every object the next run may have to delete.
	Leftovers []ObjectRef `json:"leftovers,omitempty"`

	// DesiredDigest identifies the desired state (chart digest, namespace,
	// values); equal digests mean nothing to render differently.
	DesiredDigest string `json:"desiredDigest"`
	// Source is the redacted location of the declared state the revision
	// came from, SourceRevision that source's revision.
	Source         string `json:"source,omitempty"`
	SourceRevision string `json:"sourceRevision,omitempty"`

	FirstDeployed time.Time `json:"firstDeployed"`
	LastDeployed  time.Time `json:"lastDeployed"`

	// RolledBack is set on a revision written by automatic remediation: it
	// re-applied an earlier revision after an upgrade failed.
	RolledBack *Rollback `json:"rolledBack,omitempty"`
	// LastDrift is the last time the live objects of this (deployed)
	// revision were found changed by someone else, and what was done.
	LastDrift *Drift `json:"lastDrift,omitempty"`
}

// Rollback describes an automatic rollback after a failed upgrade.
type Rollback struct {
	// To is the revision whose manifest was re-applied (the original one
	// when that was itself a rollback).
	To int `json:"to"`
	// Failed is the revision whose upgrade failed.
	Failed int `json:"failed"`
	// DesiredDigest is the desired state that failed, and Attempts how many
	// times in a row it has failed; once Attempts reaches the declared
	// retries the release is stalled until the desired state changes.
	DesiredDigest string `json:"desiredDigest"`
	Attempts      int    `json:"attempts"`
}

// Drift actions.
const (
	DriftCorrected = "corrected"
	DriftFailed    = "failed"
)

// Drift is one detected drift of a release's live objects.
type Drift struct {
	Time time.Time `json:"time"`
	// Action is what charter did: DriftCorrected or DriftFailed.
	Action string `json:"action"`
	// Message says why a correction failed.
	Message string          `json:"message,omitempty"`
	Objects []DriftedObject `json:"objects"`
}

// DriftedObject is one object found changed or deleted.
type DriftedObject struct {
	Object string `json:"object"` // Kind/namespace/name
	// Fields are JSON pointers (/spec/replicas, /data/key) whose live value
	// differed from the declared one.
	Fields []string `json:"fields,omitempty"`
	// Managers are the field managers other than charter that wrote the
	// object (those owning the changed fields when known).
	Managers []string `json:"managers,omitempty"`
	Deleted  bool     `json:"deleted,omitempty"`
}

// String formats the drift of one object as "Kind/ns/name /a, /b changed
// by m1, m2" or "Kind/ns/name deleted".
func (d DriftedObject) String() string {
	s := d.Object
	switch {
	case d.Deleted:
		s += " deleted"
	case len(d.Fields) > 0:
		s += " " + strings.Join(d.Fields, ", ") + " changed"
	default:
		s += " changed"
	}
	if len(d.Managers) > 0 {
		s += " by " + strings.Join(d.Managers, ", ")
	}
	return s
}

// Labels and the Secret type used for records.
const (
	LabelOwner    = "owner"
	OwnerValue    = "charter"
	LabelRelease  = "charter.sh/release"
	LabelRevision = "charter.sh/revision"
	LabelStatus   = "charter.sh/status"
	SecretType    = "charter.sh/release.v1"
	dataKey       = "release"

	// DefaultNamespace is where records live unless configured otherwise.
	DefaultNamespace = "charter-system"
	// DefaultMaxHistory is how many revisions of each release are kept.
	DefaultMaxHistory = 10
)

// ErrNotFound is returned (wrapped) when a release has no record.
var ErrNotFound = errors.New("not found")

// Store reads and writes revisions as Secrets in one namespace.
type Store struct {
	client     kubernetes.Interface
	namespace  string
	maxHistory int

	nsReady atomic.Bool // the records namespace was seen to exist
}

// NewStore returns a Store keeping records in namespace (DefaultNamespace
// when empty) and at most maxHistory revisions per release (DefaultMaxHistory
// when ≤ 0).
func NewStore(c kubernetes.Interface, namespace string, maxHistory int) *Store {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	if maxHistory <= 0 {
		maxHistory = DefaultMaxHistory
	}
	return &Store{client: c, namespace: namespace, maxHistory: maxHistory}
}

// Namespace is where the records are kept.
func (s *Store) Namespace() string { return s.namespace }

// SecretName is the name of the Secret holding a revision of a release.
func SecretName(release string, rev int) string {
	return secretName(release, rev)
}

func secretName(release string, rev int) string {
	return fmt.Sprintf("charter.v1.%s.v%d", release, rev)
}

// History returns every kept revision of the release, oldest first.
// A release without records returns ErrNotFound.
func (s *Store) History(ctx context.Context, release string) ([]*Revision, error) {
	revs, err := s.list(ctx, labels.Set{LabelOwner: OwnerValue, LabelRelease: release})
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return nil, fmt.Errorf("release %q: %w", release, ErrNotFound)
	}
	return revs, nil
}

// Last returns the newest revision of the release, whatever its status.
func (s *Store) Last(ctx context.Context, release string) (*Revision, error) {
	revs, err := s.History(ctx, release)
	if err != nil {
		return nil, err
	}
	return revs[len(revs)-1], nil
}

// LastDeployed returns the newest revision with status deployed, or
// ErrNotFound when no revision ever converged.
func (s *Store) LastDeployed(ctx context.Context, release string) (*Revision, error) {
	revs, err := s.History(ctx, release)
	if err != nil {
		return nil, err
	}
	for i := len(revs) - 1; i >= 0; i-- {
		if revs[i].Status == StatusDeployed {
			return revs[i], nil
		}
	}
	return nil, fmt.Errorf("release %q has no deployed revision: %w", release, ErrNotFound)
}

// List returns the newest revision of every release, sorted by name, in one
// API request.
func (s *Store) List(ctx context.Context) ([]*Revision, error) {
	revs, err := s.list(ctx, labels.Set{LabelOwner: OwnerValue})
	if err != nil {
		return nil, err
	}
	latest := map[string]*Revision{}
	for _, r := range revs {
		if cur, ok := latest[r.Release]; !ok || r.Revision > cur.Revision {
			latest[r.Release] = r
		}
	}
	out := make([]*Revision, 0, len(latest))
	for _, r := range latest {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Release < out[j].Release })
	return out, nil
}

// AnnotationSource holds a record's Source on its Secret.
const AnnotationSource = "charter.sh/source"

// Summary is what Summaries reports of a release's newest revision.
type Summary struct {
	Release  string
	Revision int
	Status   Status
	Source   string
}

// Summaries returns the newest revision of every release, read from the
// records' labels and annotations: one list request and no decoding of
// manifests, so a daemon can check a thousand releases cheaply. Records
// written before the source annotation existed are decoded.
func (s *Store) Summaries(ctx context.Context) ([]Summary, error) {
	sel := labels.Set{LabelOwner: OwnerValue}
	l, err := s.client.CoreV1().Secrets(s.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list release records in %s: %w", s.namespace, err)
	}
	latest := map[string]*corev1.Secret{}
	revOf := func(sec *corev1.Secret) int {
		n, _ := strconv.Atoi(sec.Labels[LabelRevision])
		return n
	}
	for i := range l.Items {
		sec := &l.Items[i]
		if sec.Type != SecretType || sec.Labels[LabelRelease] == "" {
			continue
		}
		if cur, ok := latest[sec.Labels[LabelRelease]]; !ok || revOf(sec) > revOf(cur) {
			latest[sec.Labels[LabelRelease]] = sec
		}
	}
	out := make([]Summary, 0, len(latest))
	for name, sec := range latest {
		sum := Summary{Release: name, Revision: revOf(sec), Status: Status(sec.Labels[LabelStatus])}
		src, ok := sec.Annotations[AnnotationSource]
		if !ok {
			r, err := decode(sec.Data[dataKey])
			if err != nil {
				return nil, fmt.Errorf("decode record %s: %w", sec.Name, err)
			}
			src = r.Source
		}
		sum.Source = src
		out = append(out, sum)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Release < out[j].Release })
	return out, nil
}

func (s *Store) list(ctx context.Context, sel labels.Set) ([]*Revision, error) {
	l, err := s.client.CoreV1().Secrets(s.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list release records in %s: %w", s.namespace, err)
	}
	revs := make([]*Revision, 0, len(l.Items))
	for i := range l.Items {
		if l.Items[i].Type != SecretType {
			continue
		}
		r, err := decode(l.Items[i].Data[dataKey])
		if err != nil {
			return nil, fmt.Errorf("decode record %s: %w", l.Items[i].Name, err)
		}
		revs = append(revs, r)
	}
	sort.Slice(revs, func(i, j int) bool {
		if revs[i].Release != revs[j].Release {
			return revs[i].Release < revs[j].Release
		}
		return revs[i].Revision < revs[j].Revision
	})
	return revs, nil
}

// Create stores rev as a new revision. When rev.Revision is 0 it is set to
// one more than the newest existing revision. Revisions beyond the history
// limit are deleted afterwards (deployed revisions last).
func (s *Store) Create(ctx context.Context, rev *Revision) error {
	if err := s.EnsureNamespace(ctx); err != nil {
		return err
	}
	for attempt := 0; attempt < 5; attempt++ {
		if rev.Revision == 0 || attempt > 0 {
			last, err := s.Last(ctx, rev.Release)
			switch {
			case errors.Is(err, ErrNotFound):
				rev.Revision = 1
			case err != nil:
				return err
			default:
				rev.Revision = last.Revision + 1
			}
		}
		sec, err := s.encodeSecret(rev)
		if err != nil {
			return err
		}
		_, err = s.client.CoreV1().Secrets(s.namespace).Create(ctx, sec, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			continue // another writer took this number; take the next
		}
		if err != nil {
			return fmt.Errorf("write record for release %q revision %d: %w", rev.Release, rev.Revision, err)
		}
		if s.maxHistory > 0 && rev.Revision <= s.maxHistory {
			return nil // numbers start at 1: there cannot be too many yet
		}
		return s.prune(ctx, rev.Release)
	}
	return fmt.Errorf("write record for release %q: revision numbers kept colliding", rev.Release)
}

// Update overwrites an existing revision (e.g. its status).
func (s *Store) Update(ctx context.Context, rev *Revision) error {
	sec, err := s.encodeSecret(rev)
	if err != nil {
		return err
	}
	_, err = s.client.CoreV1().Secrets(s.namespace).Update(ctx, sec, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update record for release %q revision %d: %w", rev.Release, rev.Revision, err)
	}
	return nil
}

// Delete removes every record of the release.
func (s *Store) Delete(ctx context.Context, release string) error {
	sel := labels.Set{LabelOwner: OwnerValue, LabelRelease: release}.String()
	err := s.client.CoreV1().Secrets(s.namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete records of release %q: %w", release, err)
	}
	return nil
}

func (s *Store) prune(ctx context.Context, release string) error {
	revs, err := s.History(ctx, release)
	if err != nil || len(revs) <= s.maxHistory {
		return err
	}
	// Keep the newest deployed revision whatever its age: it is what a
	// rollback or status needs.
	keepDeployed := -1
	for i := len(revs) - 1; i >= 0; i-- {
		if revs[i].Status == StatusDeployed {
			keepDeployed = revs[i].Revision
			break
		}
	}
	excess := len(revs) - s.maxHistory
	for _, r := range revs {
		if excess == 0 {
			break
		}
		if r.Revision == keepDeployed {
			continue
		}
		err := s.client.CoreV1().Secrets(s.namespace).Delete(ctx, secretName(release, r.Revision), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("prune record %s: %w", secretName(release, r.Revision), err)
		}
		excess--
	}
	return nil
}

// EnsureNamespace creates the records namespace when missing.
func (s *Store) EnsureNamespace(ctx context.Context) error {
	if s.nsReady.Load() {
		return nil
	}
	_, err := s.client.CoreV1().Namespaces().Get(ctx, s.namespace, metav1.GetOptions{})
	if err == nil {
		s.nsReady.Store(true)
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get records namespace %s: %w", s.namespace, err)
	}
	_, err = s.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create records namespace %s: %w", s.namespace, err)
	}
	s.nsReady.Store(true)
	return nil
}

func (s *Store) encodeSecret(rev *Revision) (*corev1.Secret, error) {
	data, err := encode(rev)
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      secretName(rev.Release, rev.Revision),
			Namespace: s.namespace,
			Labels: map[string]string{
				LabelOwner:    OwnerValue,
				LabelRelease:  rev.Release,
				LabelRevision: strconv.Itoa(rev.Revision),
				LabelStatus:   string(rev.Status),
			},
			// Read by Summaries without decoding the record.
			Annotations: map[string]string{AnnotationSource: rev.Source},
		},
		Type: SecretType,
		Data: map[string][]byte{dataKey: data},
	}, nil
}

func encode(rev *Revision) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err := json.NewEncoder(zw).Encode(rev); err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress record: %w", err)
	}
	return buf.Bytes(), nil
}

func decode(data []byte) (*Revision, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	raw, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		return nil, err
	}
	var rev Revision
	if err := json.Unmarshal(raw, &rev); err != nil {
		return nil, err
	}
	return &rev, nil
}
