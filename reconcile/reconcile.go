package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/fluxcd/pkg/ssa"
	ssaerrors "github.com/fluxcd/pkg/ssa/errors"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/state"
)

// Charts loads charts a declaration names by repository reference
// (stable/web, example.com/charts/web, https://…/web-1.2.3.tgz), pinned to
// the declared version and archive digest, enforcing the repository's
// signature policy.
type Charts interface {
	Load(ctx context.Context, dir *state.Dir, ref, version, digest string) (*render.Chart, error)
}

// Records is where applied revisions are kept.
type Records interface {
	History(ctx context.Context, release string) ([]*record.Revision, error)
	List(ctx context.Context) ([]*record.Revision, error)
	Create(ctx context.Context, rev *record.Revision) error
	Update(ctx context.Context, rev *record.Revision) error
	Delete(ctx context.Context, release string) error
}

// Event is one progress report: an object applied, ready, deleted or
// failing, or a release-level message (Object empty).
type Event struct {
	Release string
	Object  string // Kind/namespace/name
	// Per object: created, configured, unchanged, deleted, replaced,
	// ready, waiting, failed. Per release (Object empty): waiting, failed,
	// drifted, rolled-back, stalled.
	Action  string
	Message string
	// Revision, when set, is the revision a release-level event is about:
	// its record names the event's involved object without a lookup.
	Revision int
}

// Reconciler converges releases. The zero value is not usable; set State,
// Records and Cluster.
type Reconciler struct {
	State   Declarations
	Records Records
	Cluster *Cluster
	// Charts fetches charts from repositories; nil allows only charts in
	// (or beside) the state.
	Charts Charts

	// Timeout bounds the health wait of one release (default 5m); a
	// declaration's own timeout overrides it.
	Timeout time.Duration
	// Progress, when set, receives an Event per object as it is applied,
	// becomes ready or is deleted. It is called from the reconciling
	// goroutine; it must not block for long.
	Progress func(Event)
	Log      *slog.Logger

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	// namespaces holds target namespaces seen to exist, so a thousand
	// releases in one namespace do not read it a thousand times. An entry
	// is dropped when an apply fails (the namespace may have gone).
	namespaces sync.Map
}

// Result says what one reconcile did.
type Result struct {
	Release string
	// installed, upgraded, unchanged, corrected, uninstalled, waiting,
	// failed, rolled-back, stalled, interrupted, skipped
	Action   string
	Revision int
	Changes  *ssa.ChangeSet
	// Inventory is what the release has applied after a successful
	// reconcile (nil after an uninstall or a failure).
	Inventory []record.ObjectRef
}

// PermanentError marks failures that retrying cannot fix until the
// declaration or chart changes (bad chart, invalid values, rejected object).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Options tune one Reconcile call.
type Options struct {
	// OnlyIfChanged skips releases whose desired state equals the last
	// deployed revision (no drift check). The daemon uses it for file events.
	OnlyIfChanged bool
}

func (r *Reconciler) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

func (r *Reconciler) emit(e Event) {
	if r.Progress != nil {
		r.Progress(e)
	}
}

func (r *Reconciler) lock(name string) func() {
	r.mu.Lock()
	if r.locks == nil {
		r.locks = map[string]*sync.Mutex{}
	}
	l, ok := r.locks[name]
	if !ok {
		l = &sync.Mutex{}
		r.locks[name] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// run carries one reconcile through its steps.
type run struct {
	opts     Options
	name     string
	decl     *state.Release
	src      *Declared
	history  []*record.Revision
	last     *record.Revision // newest revision, any status
	deployed *record.Revision // newest deployed revision
	chart    *render.Chart
	values   map[string]any
	digest   string
	rendered *render.Result
	objects  []*unstructured.Unstructured
	rev      *record.Revision
	changes  *ssa.ChangeSet
	skip     bool
	// stalled: remediation gave up on this desired state; the deployed
	// (rolled back) revision is kept and only checked for drift.
	stalled bool
	// drift found by this pass (a drift check), reported once it is
	// corrected or has failed.
	drift  *record.Drift
	result Result
}

// Reconcile converges one release to its declaration; a release with records
// but no declaration is uninstalled.
func (r *Reconciler) Reconcile(ctx context.Context, name string, opts Options) (*Result, error) {
	defer r.lock(name)()
	ru := &run{name: name, opts: opts, result: Result{Release: name}}

	src, err := r.State.Lookup(ctx, name)
	if errors.Is(err, state.ErrNotFound) {
		return r.uninstall(ctx, ru)
	}
	if err != nil {
		return nil, &PermanentError{err}
	}
	ru.decl, ru.src = src.Release, src

	steps := []struct {
		name string
		fn   func(context.Context, *run) error
	}{
		{"history", r.loadHistory},
		{"load", r.load},
		{"dependencies", r.dependencies},
		{"render", r.render},
		{"plan and apply", r.apply},
		{"prune", r.prune},
		{"wait", r.wait},
		{"record", r.record},
	}
	for _, s := range steps {
		if ru.skip {
			break
		}
		if err := s.fn(ctx, ru); err != nil {
			var waiting *WaitingError
			if errors.As(err, &waiting) {
				r.emit(Event{Release: name, Action: "waiting", Message: err.Error()})
				ru.result.Action = "waiting"
				return &ru.result, err
			}
			attempt := 0
			if s.name == "wait" && ctx.Err() == nil {
				attempt, err = r.remediation(ru, err)
			}
			r.fail(ctx, ru, err)
			r.reportDrift(ctx, ru, err)
			if attempt > 0 {
				err = r.rollback(ctx, ru, err, attempt)
			}
			return &ru.result, err
		}
	}
	if ru.stalled && !ru.skip {
		ru.result.Action = "stalled"
		ru.result.Revision = ru.deployed.Revision
		return &ru.result, r.stalledError(ru)
	}
	switch {
	case ru.rev != nil && ru.rev.Status == record.StatusDeployed:
		ru.result.Inventory = ru.rev.Inventory
	case ru.deployed != nil && ru.result.Action != "failed":
		ru.result.Inventory = ru.deployed.Inventory
	}
	return &ru.result, nil
}

func (r *Reconciler) loadHistory(ctx context.Context, ru *run) error {
	h, err := r.Records.History(ctx, ru.name)
	if err != nil && !errors.Is(err, record.ErrNotFound) {
		return ServerError(r.Cluster.Config.Host, err)
	}
	ru.history = h
	if len(h) > 0 {
		ru.last = h[len(h)-1]
	}
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Status == record.StatusDeployed {
			ru.deployed = h[i]
			break
		}
	}
	return nil
}

func (r *Reconciler) load(ctx context.Context, ru *run) error {
	ch, err := r.loadChart(ctx, ru)
	if err != nil {
		return err
	}
	if ru.decl.Version != "" {
		c, err := semver.NewConstraint(ru.decl.Version)
		if err != nil {
			return &PermanentError{fmt.Errorf("version constraint %q: %w", ru.decl.Version, err)}
		}
		v, err := semver.NewVersion(ch.Chart.Metadata.Version)
		if err != nil || !c.Check(v) {
			return &PermanentError{fmt.Errorf("chart %s version %s does not satisfy %q", ch.Chart.Metadata.Name, ch.Chart.Metadata.Version, ru.decl.Version)}
		}
	}
	vals, err := ru.src.Dir.ValuesFor(ctx, ru.decl)
	if err != nil {
		return &PermanentError{err}
	}
	ru.chart, ru.values = ch, vals
	ru.digest = DesiredDigest(ru.decl, ch.Digest, vals)

	if ru.opts.OnlyIfChanged && ru.deployed != nil && ru.last == ru.deployed && ru.deployed.DesiredDigest == ru.digest {
		ru.skip = true
		ru.result.Action = "unchanged"
		ru.result.Revision = ru.deployed.Revision
	}
	// A permanent failure of this very desired state was already recorded:
	// do not hot-loop on it; the next change of declaration or chart (or a
	// full resync) retries. Retryable failures are retried.
	if ru.opts.OnlyIfChanged && ru.last != nil && ru.last.Status == record.StatusFailed && !ru.last.Retryable && ru.last.DesiredDigest == ru.digest {
		ru.skip = true
		ru.result.Action = "failed"
		ru.result.Revision = ru.last.Revision
	}
	// Remediation gave up on this desired state: keep running the revision
	// it rolled back to (checked for drift on full passes) until the
	// declaration or chart changes.
	if r.isStalled(ru) {
		ru.stalled = true
		if ru.opts.OnlyIfChanged {
			ru.skip = true
			ru.result.Action = "stalled"
			ru.result.Revision = ru.deployed.Revision
		}
	}
	return nil
}

// loadChart loads the declared chart: a chart folder or archive in (or
// beside) the state, else a repository reference.
func (r *Reconciler) loadChart(ctx context.Context, ru *run) (*render.Chart, error) {
	ref := ru.decl.Chart
	path, perr := ru.src.Dir.ResolveChart(ref)
	if perr == nil {
		if _, err := os.Stat(path); err == nil {
			ch, err := render.Load(path)
			if err != nil {
				return nil, &PermanentError{fmt.Errorf("load chart %q: %w", ref, err)}
			}
			return ch, nil
		}
	}
	if r.Charts == nil {
		if perr != nil {
			return nil, &PermanentError{fmt.Errorf("chart %q: %w", ref, perr)}
		}
		return nil, &PermanentError{fmt.Errorf("chart %q not found in the state", ref)}
	}
	ch, err := r.Charts.Load(ctx, ru.src.Dir, ref, ru.decl.Version, ru.decl.Digest)
	if err != nil {
		// Unreachable repositories pass; a bad digest, signature or chart does not.
		if ctx.Err() == nil && isTransientFetch(err) {
			return nil, fmt.Errorf("chart %q: %w", ref, err)
		}
		return nil, &PermanentError{fmt.Errorf("chart %q: %w", ref, err)}
	}
	return ch, nil
}

// isTransientFetch tells network trouble from a verdict on the chart.
func isTransientFetch(err error) bool {
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "timeout", "no such host", "502 ", "503 ", "504 "} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// DesiredDigest identifies everything that decides what a release applies
// and how: its name, namespace, chart reference and digest, values, and the
// declaration's timeout, remediation, force, adopt and drift settings (left
// out of the digest when unset, so digests of releases that set none of them
// stay what they were).
func DesiredDigest(decl *state.Release, chartDigest string, values map[string]any) string {
	b, _ := json.Marshal(struct {
		Name, Namespace, Chart, ChartDigest string
		Values                              map[string]any
		Timeout                             string             `json:",omitempty"`
		Remediation                         *state.Remediation `json:",omitempty"`
		Force                               bool               `json:",omitempty"`
		Adopt                               bool               `json:",omitempty"`
		Drift                               *state.Drift       `json:",omitempty"`
	}{decl.Name, namespaceOf(decl), decl.Chart, chartDigest, values, decl.Timeout, decl.Remediation, decl.Force, decl.Adopt, decl.Drift})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func namespaceOf(decl *state.Release) string {
	if decl.Namespace == "" {
		return "default"
	}
	return decl.Namespace
}

func (r *Reconciler) render(ctx context.Context, ru *run) error {
	ns := namespaceOf(ru.decl)
	// Unchanged desired state (or one remediation gave up on): apply what
	// was recorded (drift correction) instead of rendering again.
	if ru.deployed != nil && (ru.stalled || ru.last == ru.deployed && ru.deployed.DesiredDigest == ru.digest) {
		objs, err := ParseManifest(ru.deployed.Manifest)
		if err == nil {
			ru.objects = objs
			return nil
		}
	}
	caps, err := r.Cluster.Capabilities()
	if err != nil {
		return err
	}
	// A revision of this very desired state left pending (the daemon was
	// killed, the API server went away, Ctrl-C) is picked up and finished,
	// not duplicated.
	var resumed *record.Revision
	if l := ru.last; l != nil && (l.Status == record.StatusPendingInstall || l.Status == record.StatusPendingUpgrade) && l.DesiredDigest == ru.digest {
		resumed = l
	}
	revision := 1
	switch {
	case resumed != nil:
		revision = resumed.Revision
	case ru.last != nil:
		revision = ru.last.Revision + 1
	}
	res, err := render.Render(ru.chart, ru.values, caps.RenderOptions(render.Options{
		ReleaseName: ru.name,
		Namespace:   ns,
		Revision:    revision,
		IsUpgrade:   ru.deployed != nil,
	}))
	if err != nil {
		return &PermanentError{fmt.Errorf("render %s: %w", ru.name, err)}
	}
	ru.rendered = res
	ru.objects = append(append([]*unstructured.Unstructured{}, res.Objects...), res.Hooks...)

	now := time.Now().UTC()
	status := record.StatusPendingInstall
	first := now
	if ru.deployed != nil {
		status = record.StatusPendingUpgrade
		first = ru.deployed.FirstDeployed
	}
	meta := ru.chart.Chart.Metadata
	ru.rev = &record.Revision{
		Release: ru.name, Namespace: ns, Status: status,
		Chart: ru.decl.Chart, ChartName: meta.Name, ChartVersion: meta.Version, ChartDigest: ru.chart.Digest,
		AppVersion: meta.AppVersion, Values: ru.values, ComputedValues: res.Values,
		Manifest: manifestOf(ru.objects), Notes: res.Notes, Inventory: inventoryOf(ru.objects),
		Leftovers:     leftoversOf(inventoryOf(ru.objects), ru.history),
		DesiredDigest: ru.digest, Source: ru.src.Source, SourceRevision: ru.src.Revision,
		FirstDeployed: first, LastDeployed: now,
	}
	if resumed != nil {
		ru.rev.Revision = resumed.Revision
		return r.Records.Update(ctx, ru.rev)
	}
	// The history just read gives the next number; Create looks again only
	// when someone else took it meanwhile.
	ru.rev.Revision = revision
	return r.Records.Create(ctx, ru.rev)
}

// leftoversOf returns the objects the revisions of history name (in their
// inventories and leftovers) that refs does not: what a revision applying
// refs deletes. A pending revision records them before anything is written
// (see record.Revision.Leftovers).
func leftoversOf(refs []record.ObjectRef, history []*record.Revision) []record.ObjectRef {
	var out []record.ObjectRef
	seen := map[string]bool{}
	for _, ref := range refs {
		seen[refKey(ref)] = true
	}
	for _, rev := range history {
		for _, ref := range slices.Concat(rev.Inventory, rev.Leftovers) {
			if k := refKey(ref); !seen[k] {
				seen[k] = true
				out = append(out, ref)
			}
		}
	}
	return out
}

// ensureNamespace creates the release's target namespace when missing, like
// `helm install --create-namespace`. It is not part of the inventory.
func (r *Reconciler) ensureNamespace(ctx context.Context, ns string) error {
	if _, ok := r.namespaces.Load(ns); ok {
		return nil
	}
	err := r.Cluster.Client.Get(ctx, keyOf("", ns), &corev1.Namespace{})
	if err == nil {
		r.namespaces.Store(ns, true)
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return ServerError(r.Cluster.Config.Host, err)
	}
	err = r.Cluster.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	r.namespaces.Store(ns, true)
	return nil
}

// apply writes the objects: on a drift check (desired state unchanged)
// only those that drifted, reporting what drifted; otherwise every object
// that differs from its dry-run.
func (r *Reconciler) apply(ctx context.Context, ru *run) error {
	if err := r.ensureNamespace(ctx, namespaceOf(ru.decl)); err != nil {
		return err
	}
	if err := r.checkOwnership(ctx, ru); err != nil {
		return err
	}
	objs := copyObjects(ru.objects)
	if err := r.keepIgnoredFields(ctx, ru, objs); err != nil {
		return err
	}
	var cs *ssa.ChangeSet
	var err error
	if ru.rev == nil {
		cs, err = r.correctDrift(ctx, ru, objs)
	} else {
		cs, err = r.applyObjects(ctx, ru, objs)
	}
	if cs != nil {
		ru.changes = cs
		for _, e := range cs.Entries {
			r.emit(Event{Release: ru.name, Object: e.Subject, Action: string(e.Action)})
		}
	}
	if err != nil {
		r.namespaces.Delete(namespaceOf(ru.decl))
		return r.applyError(err)
	}
	ru.result.Changes = cs
	return nil
}

// applyError classifies an apply failure: objects the API server rejects
// are permanent until the declaration or chart changes.
func (r *Reconciler) applyError(err error) error {
	var perm *PermanentError
	if errors.As(err, &perm) {
		return err
	}
	err = ServerError(r.Cluster.Config.Host, err)
	var status apierrors.APIStatus
	if errors.As(err, &status) && (apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)) {
		return &PermanentError{fmt.Errorf("apply: %w", err)}
	}
	if apierrors.IsNotFound(err) {
		// The namespace went away under us: the next try creates it.
		return fmt.Errorf("apply: %w", err)
	}
	if strings.Contains(err.Error(), "dry-run failed") {
		return &PermanentError{fmt.Errorf("apply: %w", err)}
	}
	return fmt.Errorf("apply: %w", err)
}

// applyObjects server-side applies objs (dry-run first, only what differs
// is written). An object whose immutable fields changed is deleted and
// created again when the declaration sets force; otherwise the change is
// refused, naming the object and the fields.
func (r *Reconciler) applyObjects(ctx context.Context, ru *run, objs []*unstructured.Unstructured) (*ssa.ChangeSet, error) {
	opts := ssa.DefaultApplyOptions()
	opts.WaitTimeout = r.timeoutFor(ru)
	replaced := map[string]bool{}
	for {
		cs, err := r.Cluster.Manager.ApplyAllStaged(ctx, copyObjects(objs), opts)
		if err == nil {
			return cs, nil
		}
		obj, fields, ok := immutableChange(err)
		if !ok {
			return cs, err
		}
		id := ssautils.FmtUnstructured(obj)
		if !ru.decl.Force {
			return cs, &PermanentError{fmt.Errorf("%s: %s; set force: true in the declaration to replace the object", id, fields)}
		}
		if replaced[id] {
			return cs, &PermanentError{fmt.Errorf("%s: still rejected after it was replaced: %w", id, err)}
		}
		replaced[id] = true
		if err := r.replace(ctx, ru, obj); err != nil {
			return cs, err
		}
		r.emit(Event{Release: ru.name, Object: id, Action: "replaced", Message: fields})
		r.log().Info("object replaced", "release", ru.name, "object", id, "reason", fields)
	}
}

// immutableChange tells whether err is a dry-run refused because immutable
// fields changed, and returns the object and "FIELD is immutable".
func immutableChange(err error) (*unstructured.Unstructured, string, bool) {
	var dr *ssaerrors.DryRunErr
	if !errors.As(err, &dr) || dr.InvolvedObject() == nil {
		return nil, "", false
	}
	cause := dr.Unwrap()
	if !strings.Contains(strings.ToLower(cause.Error()), "immutable") {
		return nil, "", false
	}
	var fields []string
	var status apierrors.APIStatus
	if errors.As(cause, &status) && status.Status().Details != nil {
		for _, c := range status.Status().Details.Causes {
			if c.Field != "" && strings.Contains(strings.ToLower(c.Message), "immutable") && !slices.Contains(fields, c.Field) {
				fields = append(fields, c.Field)
			}
		}
	}
	switch len(fields) {
	case 0:
		return dr.InvolvedObject(), "an immutable field changed", true
	case 1:
		return dr.InvolvedObject(), fields[0] + " is immutable", true
	}
	return dr.InvolvedObject(), strings.Join(fields, ", ") + " are immutable", true
}

// replace deletes obj and waits until it is gone, so it can be created
// again with its new immutable fields.
func (r *Reconciler) replace(ctx context.Context, ru *run, obj *unstructured.Unstructured) error {
	id := ssautils.FmtUnstructured(obj)
	err := r.Cluster.Client.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("replace %s: delete: %w", id, ServerError(r.Cluster.Config.Host, err))
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeoutFor(ru))
	defer cancel()
	for {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(obj.GroupVersionKind())
		err := r.Cluster.Client.Get(ctx, keyOf(obj.GetNamespace(), obj.GetName()), live)
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replace %s: still not deleted after %s", id, r.timeoutFor(ru))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// checkOwnership refuses to take over objects that belong to another
// release (the ownership labels name the owner) and, unless the
// declaration sets adopt, existing objects no release owns. Objects of the
// last deployed inventory are this release's already: they are not read
// again, so a steady-state reconcile costs no request here.
func (r *Reconciler) checkOwnership(ctx context.Context, ru *run) error {
	known := map[string]bool{}
	if ru.deployed != nil {
		for _, ref := range ru.deployed.Inventory {
			known[refKey(ref)] = true
		}
	}
	// Objects new to the release, by kind and namespace: a group of a few
	// is read object by object, a larger one (a chart of 1500 ConfigMaps)
	// with one list. Only metadata is read.
	type group struct {
		gvk  schema.GroupVersionKind
		ns   string
		objs []*unstructured.Unstructured
	}
	groups := map[string]*group{}
	var order []string
	for _, o := range ru.objects {
		if known[refKey(refOf(o))] {
			continue
		}
		k := o.GroupVersionKind().String() + "|" + o.GetNamespace()
		g, ok := groups[k]
		if !ok {
			g = &group{gvk: o.GroupVersionKind(), ns: o.GetNamespace()}
			groups[k] = g
			order = append(order, k)
		}
		g.objs = append(g.objs, o)
	}
	for _, k := range order {
		g := groups[k]
		live := map[string]*metav1.PartialObjectMetadata{}
		if len(g.objs) >= ownershipListThreshold {
			l := &metav1.PartialObjectMetadataList{}
			l.SetGroupVersionKind(g.gvk.GroupVersion().WithKind(g.gvk.Kind + "List"))
			var opts []client.ListOption
			if g.ns != "" {
				opts = append(opts, client.InNamespace(g.ns))
			}
			if err := r.Cluster.Client.List(ctx, l, opts...); err == nil {
				for i := range l.Items {
					live[l.Items[i].Name] = &l.Items[i]
				}
			} // else: the kind is not served yet (a CRD of this release): nothing exists
		} else {
			for _, o := range g.objs {
				m := &metav1.PartialObjectMetadata{}
				m.SetGroupVersionKind(g.gvk)
				if err := r.Cluster.Client.Get(ctx, keyOf(o.GetNamespace(), o.GetName()), m); err == nil {
					live[o.GetName()] = m
				}
			}
		}
		for _, o := range g.objs {
			m, ok := live[o.GetName()]
			if !ok {
				continue // absent
			}
			owner := m.GetLabels()[render.LabelRelease]
			ownerNS := m.GetLabels()[render.LabelNamespace]
			switch {
			case owner == "" && !ru.decl.Adopt:
				return &PermanentError{fmt.Errorf("%s exists and is not managed by charter; set adopt: true in the declaration to take it over",
					ssautils.FmtUnstructured(o))}
			case owner != "" && (owner != ru.name || ownerNS != namespaceOf(ru.decl)):
				return &PermanentError{fmt.Errorf("%s belongs to release %q (namespace %s); refusing to take it over",
					ssautils.FmtUnstructured(o), owner, ownerNS)}
			}
		}
	}
	return nil
}

// ownershipListThreshold is the number of new objects of one kind in one
// namespace from which the ownership check lists them instead of reading
// each (a variable so tests can take either path).
var ownershipListThreshold = 8

func (r *Reconciler) prune(ctx context.Context, ru *run) error {
	keep := map[string]bool{}
	for _, ref := range inventoryOf(ru.objects) {
		keep[refKey(ref)] = true
	}
	var stale []*unstructured.Unstructured
	seen := map[string]bool{}
	// Every revision counts, a resumed one too: its record names what its
	// earlier, interrupted run may have applied.
	for _, rev := range ru.history {
		for _, ref := range slices.Concat(rev.Inventory, rev.Leftovers) {
			k := refKey(ref)
			if keep[k] || seen[k] {
				continue
			}
			seen[k] = true
			stale = append(stale, ref.Object())
		}
	}
	if len(stale) == 0 {
		return nil
	}
	cs, err := r.Cluster.Manager.DeleteAll(ctx, stale, ssa.DeleteOptions{
		PropagationPolicy: metav1.DeletePropagationBackground,
		// Only what still carries this release's ownership labels.
		Inclusions: map[string]string{render.LabelRelease: ru.name, render.LabelNamespace: namespaceOf(ru.decl)},
	})
	if cs != nil {
		for _, e := range cs.Entries {
			if e.Action == ssa.DeletedAction {
				r.emit(Event{Release: ru.name, Object: e.Subject, Action: "deleted"})
			}
		}
		if ru.changes != nil {
			ru.changes.Append(cs.Entries)
		}
	}
	if err != nil {
		return fmt.Errorf("prune: %w", ServerError(r.Cluster.Config.Host, err))
	}
	return nil
}

func (r *Reconciler) timeout() time.Duration {
	if r.Timeout <= 0 {
		return 5 * time.Minute
	}
	return r.Timeout
}

// timeoutFor is the release's health wait: its declared timeout, else the
// reconciler's.
func (r *Reconciler) timeoutFor(ru *run) time.Duration {
	if d := ru.decl.HealthTimeout(); d > 0 {
		return d
	}
	return r.timeout()
}

// waitFor waits until objs are healthy, within the release's timeout.
func (r *Reconciler) waitFor(ctx context.Context, ru *run, objs []*unstructured.Unstructured) error {
	// waitReady reads the timeout from its receiver: give it one with the
	// release's own, sharing the cluster and progress reporting.
	w := &Reconciler{Cluster: r.Cluster, Progress: r.Progress, Log: r.Log, Timeout: r.timeoutFor(ru)}
	return w.waitReady(ctx, ru.name, objs)
}

func (r *Reconciler) wait(ctx context.Context, ru *run) error {
	if ru.changes == nil {
		return nil
	}
	var objs []*unstructured.Unstructured
	changed := false
	for _, o := range ru.objects {
		objs = append(objs, o)
	}
	for _, e := range ru.changes.Entries {
		if e.Action == ssa.CreatedAction || e.Action == ssa.ConfiguredAction {
			changed = true
		}
	}
	// Nothing written and the desired state already recorded as deployed:
	// no need to wait again.
	if !changed && ru.rev == nil {
		return nil
	}
	return r.waitFor(ctx, ru, objs)
}

func (r *Reconciler) record(ctx context.Context, ru *run) error {
	if ru.rev == nil {
		// Desired state unchanged: this pass was a drift check.
		ru.result.Revision = ru.deployed.Revision
		ru.result.Action = "unchanged"
		if ru.changes != nil {
			for _, e := range ru.changes.Entries {
				if e.Action != ssa.UnchangedAction && e.Action != ssa.SkippedAction {
					ru.result.Action = "corrected"
					r.log().Info("drift corrected", "release", ru.name, "object", e.Subject, "action", string(e.Action))
				}
			}
		}
		r.reportDrift(ctx, ru, nil)
		return nil
	}
	ru.result.Action = "installed"
	if ru.rev.Status == record.StatusPendingUpgrade {
		ru.result.Action = "upgraded"
	}
	ru.rev.Status = record.StatusDeployed
	ru.rev.Message = ""
	ru.rev.LastDeployed = time.Now().UTC()
	ru.rev.Leftovers = nil // pruned
	if err := r.Records.Update(ctx, ru.rev); err != nil {
		return err
	}
	ru.result.Revision = ru.rev.Revision
	for _, old := range ru.history {
		// Revisions left pending by an interrupted run of an older desired
		// state are superseded too: nothing will finish them.
		pending := old.Status == record.StatusPendingInstall || old.Status == record.StatusPendingUpgrade
		if (old.Status == record.StatusDeployed || pending) && old.Revision != ru.rev.Revision {
			old.Status = record.StatusSuperseded
			if err := r.Records.Update(ctx, old); err != nil {
				return err
			}
		}
	}
	return nil
}

// fail records why the reconcile failed on the pending revision (or on a new
// failed revision when it failed before one was written) and leaves the
// previous deployed revision untouched.
func (r *Reconciler) fail(ctx context.Context, ru *run, err error) {
	interrupted := ctx.Err() != nil
	ctx = context.WithoutCancel(ctx)
	if interrupted {
		// Cancelled by the caller (Ctrl-C, SIGTERM): that says nothing about
		// the release. A pending revision stays pending, so the next pass
		// retries instead of treating it as a recorded failure.
		r.log().Warn("reconcile interrupted", "release", ru.name, "error", err)
		ru.result.Action = "interrupted"
		if ru.rev != nil {
			ru.rev.Message = "interrupted: " + err.Error()
			if uerr := r.Records.Update(ctx, ru.rev); uerr != nil {
				r.log().Error("record interruption", "release", ru.name, "error", uerr)
			}
			ru.result.Revision = ru.rev.Revision
		}
		return
	}
	r.emit(Event{Release: ru.name, Action: "failed", Message: err.Error()})
	r.log().Error("reconcile failed", "release", ru.name, "error", err)
	ru.result.Action = "failed"
	var perm *PermanentError
	retryable := !errors.As(err, &perm)
	if ru.rev == nil {
		if ru.last != nil && ru.last.Status == record.StatusFailed && ru.last.DesiredDigest == ru.digest && ru.last.Message == err.Error() {
			return // the same failure is already recorded
		}
		ru.rev = &record.Revision{Release: ru.name, Namespace: namespaceOf(ru.decl), Chart: ru.decl.Chart,
			Values: ru.values, DesiredDigest: ru.digest, Source: ru.src.Source, SourceRevision: ru.src.Revision, LastDeployed: time.Now().UTC()}
		if ru.deployed != nil {
			ru.rev.FirstDeployed = ru.deployed.FirstDeployed
			// Keep the inventory so a later prune still knows every object.
			ru.rev.Inventory = ru.deployed.Inventory
		}
		ru.rev.Leftovers = leftoversOf(ru.rev.Inventory, ru.history)
		if ru.chart != nil {
			ru.rev.ChartName, ru.rev.ChartVersion, ru.rev.ChartDigest = ru.chart.Chart.Metadata.Name, ru.chart.Chart.Metadata.Version, ru.chart.Digest
		}
		ru.rev.Status, ru.rev.Message, ru.rev.Retryable = record.StatusFailed, err.Error(), retryable
		if cerr := r.Records.Create(ctx, ru.rev); cerr != nil {
			r.log().Error("record failure", "release", ru.name, "error", cerr)
		}
		ru.result.Revision = ru.rev.Revision
		return
	}
	ru.rev.Status, ru.rev.Message, ru.rev.Retryable = record.StatusFailed, err.Error(), retryable
	ru.rev.LastDeployed = time.Now().UTC()
	if uerr := r.Records.Update(ctx, ru.rev); uerr != nil {
		r.log().Error("record failure", "release", ru.name, "error", uerr)
	}
	ru.result.Revision = ru.rev.Revision
}

func (r *Reconciler) uninstall(ctx context.Context, ru *run) (*Result, error) {
	ru.result.Action = "uninstalled"
	h, err := r.Records.History(ctx, ru.name)
	if errors.Is(err, record.ErrNotFound) {
		return &ru.result, fmt.Errorf("release %q not found", ru.name)
	}
	if err != nil {
		return nil, ServerError(r.Cluster.Config.Host, err)
	}
	last := h[len(h)-1]
	if !r.State.Holds(last.Source) {
		// Its source has not been read (yet): no news is not a removal.
		ru.result.Action = "skipped"
		return &ru.result, nil
	}
	last.Status = record.StatusUninstalling
	if err := r.Records.Update(ctx, last); err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	seen := map[string]bool{}
	for _, rev := range h {
		for _, ref := range slices.Concat(rev.Inventory, rev.Leftovers) {
			if !seen[refKey(ref)] {
				seen[refKey(ref)] = true
				objs = append(objs, ref.Object())
			}
		}
	}
	cs, err := r.Cluster.Manager.DeleteAll(ctx, objs, ssa.DeleteOptions{
		PropagationPolicy: metav1.DeletePropagationBackground,
		Inclusions:        map[string]string{render.LabelRelease: ru.name, render.LabelNamespace: last.Namespace},
	})
	if cs != nil {
		for _, e := range cs.Entries {
			if e.Action == ssa.DeletedAction {
				r.emit(Event{Release: ru.name, Object: e.Subject, Action: "deleted"})
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("uninstall %s: %w", ru.name, ServerError(r.Cluster.Config.Host, err))
	}
	if err := r.Records.Delete(ctx, ru.name); err != nil {
		return nil, err
	}
	ru.result.Changes = cs
	return &ru.result, nil
}

// Names returns every release that needs reconciling: every declaration and
// every release with records (so removed declarations get uninstalled).
// Declarations that exist but cannot be read are returned in broken, one
// error each, and left out of names: a typo in one file neither stalls the
// other releases nor uninstalls its own.
func (r *Reconciler) Names(ctx context.Context) (names []string, broken []error, err error) {
	decls, errs := r.State.Scan(ctx)
	skip := map[string]bool{}
	for _, e := range errs {
		var re *state.ReleaseError
		if !errors.As(e, &re) {
			return nil, nil, e // the state itself cannot be read: touch nothing
		}
		skip[re.Release] = true
		broken = append(broken, e)
	}
	for name, loop := range cycles(decls) {
		skip[name] = true
		broken = append(broken, &state.ReleaseError{Release: name, Err: fmt.Errorf("release %q is on a dependsOn cycle (%s): fix the declarations; none of them is applied", name, loop)})
	}
	recs, err := r.summaries(ctx)
	if err != nil {
		return nil, nil, ServerError(r.Cluster.Config.Host, err)
	}
	set := map[string]bool{}
	for _, d := range decls {
		set[d.Name] = true
	}
	for _, rv := range recs {
		// A release applied from a source not read yet (or failing) stays
		// as it is: no news is not a removal.
		if r.State.Holds(rv.Source) {
			set[rv.Release] = true
		}
	}
	for n := range set {
		if !skip[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, broken, nil
}

// summarizer lists the newest revision of every release without decoding
// the records (record.Store does); Names uses it when Records has it.
type summarizer interface {
	Summaries(ctx context.Context) ([]record.Summary, error)
}

func (r *Reconciler) summaries(ctx context.Context) ([]record.Summary, error) {
	if s, ok := r.Records.(summarizer); ok {
		return s.Summaries(ctx)
	}
	revs, err := r.Records.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]record.Summary, 0, len(revs))
	for _, rv := range revs {
		out = append(out, record.Summary{Release: rv.Release, Revision: rv.Revision, Status: rv.Status, Source: rv.Source})
	}
	return out, nil
}

func copyObjects(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		out[i] = o.DeepCopy()
	}
	return out
}

func inventoryOf(objs []*unstructured.Unstructured) []record.ObjectRef {
	refs := make([]record.ObjectRef, 0, len(objs))
	for _, o := range objs {
		refs = append(refs, refOf(o))
	}
	return refs
}

func refOf(o *unstructured.Unstructured) record.ObjectRef {
	return record.ObjectRef{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}
}

func refKey(ref record.ObjectRef) string {
	gv := ref.APIVersion
	if i := strings.Index(gv, "/"); i >= 0 {
		gv = gv[:i] // group only: a version change is the same object
	} else {
		gv = ""
	}
	return gv + "|" + ref.Kind + "|" + ref.Namespace + "|" + ref.Name
}

// manifestOf serialises objects as one YAML stream.
func manifestOf(objs []*unstructured.Unstructured) string {
	var b strings.Builder
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			continue
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.String()
}

// ParseManifest splits a YAML stream into objects.
func ParseManifest(manifest string) ([]*unstructured.Unstructured, error) {
	objs, err := ssautils.ReadObjects(strings.NewReader(manifest))
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	return objs, nil
}
