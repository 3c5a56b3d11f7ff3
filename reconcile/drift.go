package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/normalize"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/state"
)

// AnnotationDriftIgnore on a rendered object lists JSON pointers (comma
// separated) charter leaves alone once the object exists, like a
// declaration's drift.ignore rule for that object alone.
const AnnotationDriftIgnore = "charter.sh/drift-ignore"

// driftConcurrency bounds the reads and dry-runs of one drift check.
const driftConcurrency = 8

// maxDriftFields bounds how many changed fields are reported per object.
const maxDriftFields = 20

// ignoredPaths returns the JSON pointers of o that the declaration's drift
// rules and o's own annotation leave alone.
func ignoredPaths(decl *state.Release, o metav1.Object, gvk schema.GroupVersionKind) ([]string, error) {
	var paths []string
	if decl.Drift != nil {
		for _, ig := range decl.Drift.Ignore {
			if ig.Target.Matches(gvk.Group, gvk.Kind, o.GetNamespace(), o.GetName()) {
				paths = append(paths, ig.Paths...)
			}
		}
	}
	if a, ok := o.GetAnnotations()[AnnotationDriftIgnore]; ok {
		for _, p := range strings.Split(a, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if err := state.ValidatePointer(p); err != nil {
				return nil, fmt.Errorf("annotation %s: %w", AnnotationDriftIgnore, err)
			}
			paths = append(paths, p)
		}
	}
	return paths, nil
}

// keepIgnoredFields copies, into each object that has ignored paths, the
// live value at every such path, so applying it neither reverts nor
// releases those fields. A path the live object lacks keeps the rendered
// value. Only objects with ignored paths are read.
func (r *Reconciler) keepIgnoredFields(ctx context.Context, ru *run, objs []*unstructured.Unstructured) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(driftConcurrency)
	for _, o := range objs {
		paths, err := ignoredPaths(ru.decl, o, o.GroupVersionKind())
		if err != nil {
			return &PermanentError{fmt.Errorf("%s: %w", ssautils.FmtUnstructured(o), err)}
		}
		if len(paths) == 0 {
			continue
		}
		g.Go(func() error {
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(o.GroupVersionKind())
			err := r.Cluster.Client.Get(gctx, keyOf(o.GetNamespace(), o.GetName()), live)
			if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
				return nil // created as rendered
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", ssautils.FmtUnstructured(o), ServerError(r.Cluster.Config.Host, err))
			}
			copyPaths(live.Object, o.Object, paths)
			return nil
		})
	}
	return g.Wait()
}

// copyPaths sets, in dst, the value src has at each JSON pointer; paths src
// lacks are left as dst has them.
func copyPaths(src, dst map[string]any, paths []string) {
	for _, p := range paths {
		if v, ok := pointerGet(src, p); ok {
			pointerSet(dst, p, runtime.DeepCopyJSONValue(v))
		}
	}
}

// splitPointer splits a JSON pointer (RFC 6901) into unescaped tokens.
func splitPointer(p string) []string {
	if p == "" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts
}

// escapeToken escapes one JSON pointer token.
func escapeToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// pointerGet returns the value at JSON pointer p in obj.
func pointerGet(obj map[string]any, p string) (any, bool) {
	var cur any = obj
	for _, tok := range splitPointer(p) {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// pointerSet sets the value at JSON pointer p in obj, creating missing
// mappings on the way; it reports false when p runs through something that
// is not a mapping or past the end of a list.
func pointerSet(obj map[string]any, p string, v any) bool {
	toks := splitPointer(p)
	if len(toks) == 0 {
		return false
	}
	var cur any = obj
	for i, tok := range toks {
		last := i == len(toks)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[tok] = v
				return true
			}
			next, ok := c[tok]
			if !ok || next == nil {
				next = map[string]any{}
				c[tok] = next
			}
			cur = next
		case []any:
			n, err := strconv.Atoi(tok)
			if err != nil || n < 0 || n >= len(c) {
				return false
			}
			if last {
				c[n] = v
				return true
			}
			cur = c[n]
		default:
			return false
		}
	}
	return false
}

// correctDrift is the apply of a drift check: it reads and dry-runs every
// object, notes which drifted (which fields, changed by which managers, or
// deleted) in ru.drift, and applies only those. When drift cannot be told
// object by object (a kind no longer served, an object the API server now
// refuses), every object is applied as on an upgrade.
func (r *Reconciler) correctDrift(ctx context.Context, ru *run, objs []*unstructured.Unstructured) (*ssa.ChangeSet, error) {
	entries := make([]ssa.ChangeSetEntry, len(objs))
	found := make([]*record.DriftedObject, len(objs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(driftConcurrency)
	for i, o := range objs {
		g.Go(func() error {
			e, d, err := r.objectDrift(gctx, o)
			entries[i], found[i] = e, d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		r.log().Debug("drift check object by object failed; applying every object", "release", ru.name, "error", err)
		return r.applyObjects(ctx, ru, objs)
	}
	var drifted []*unstructured.Unstructured
	for i, d := range found {
		if d != nil {
			drifted = append(drifted, objs[i])
		}
	}
	cs := ssa.NewChangeSet()
	if len(drifted) == 0 {
		cs.Append(entries)
		return cs, nil
	}
	applied, err := r.applyObjects(ctx, ru, drifted)
	// What was written: the apply's own entries for the drifted objects.
	written := map[string]ssa.Action{}
	if applied != nil {
		for _, e := range applied.Entries {
			written[e.Subject] = e.Action
		}
	}
	report := &record.Drift{Time: time.Now().UTC()}
	for i, d := range found {
		if a, ok := written[entries[i].Subject]; ok {
			entries[i].Action = a
		}
		cs.Add(entries[i])
		if d == nil {
			continue
		}
		if a := entries[i].Action; err == nil && (a == ssa.UnchangedAction || a == ssa.SkippedAction) {
			continue // the apply found nothing to correct after all
		}
		report.Objects = append(report.Objects, *d)
	}
	if len(report.Objects) > 0 {
		ru.drift = report
	}
	return cs, err
}

// objectDrift compares one live object with the dry-run of its desired
// state. It returns the change-set entry (unchanged, configured, created)
// and, when it drifted, what changed.
func (r *Reconciler) objectDrift(ctx context.Context, o *unstructured.Unstructured) (ssa.ChangeSetEntry, *record.DriftedObject, error) {
	id := ssautils.FmtUnstructured(o)
	entry := ssa.ChangeSetEntry{ObjMetadata: object.UnstructuredToObjMetadata(o), GroupVersion: o.GroupVersionKind().GroupVersion().String(),
		Subject: id, Action: ssa.UnchangedAction}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(o.GroupVersionKind())
	err := r.Cluster.Client.Get(ctx, keyOf(o.GetNamespace(), o.GetName()), live)
	if apierrors.IsNotFound(err) {
		entry.Action = ssa.CreatedAction
		return entry, &record.DriftedObject{Object: id, Deleted: true}, nil
	}
	if err != nil {
		return entry, nil, fmt.Errorf("read %s: %w", id, err)
	}
	dry := o.DeepCopy()
	ssautils.RemoveCABundleFromCRD(dry)
	err = r.Cluster.Client.Patch(ctx, dry, client.Apply, client.DryRunAll, client.ForceOwnership, client.FieldOwner(FieldManager))
	if err != nil {
		return entry, nil, fmt.Errorf("dry-run %s: %w", id, err)
	}
	a, b := live.DeepCopy(), dry
	_ = normalize.DryRunUnstructured(a)
	_ = normalize.DryRunUnstructured(b)
	fields := changedFields(a.Object, b.Object)
	if len(fields) == 0 {
		return entry, nil, nil
	}
	entry.Action = ssa.ConfiguredAction
	d := &record.DriftedObject{Object: id, Managers: foreignManagers(live, fields)}
	if len(fields) > maxDriftFields {
		fields = append(fields[:maxDriftFields], fmt.Sprintf("(%d more)", len(fields)-maxDriftFields))
	}
	d.Fields = fields
	return entry, d, nil
}

// unreportedMeta are metadata fields the API server changes on every
// write; they are not drift.
var unreportedMeta = map[string]bool{"managedFields": true, "resourceVersion": true, "generation": true, "uid": true, "creationTimestamp": true, "selfLink": true}

// changedFields returns the JSON pointers at which live and merged (the
// dry-run of the desired state) differ, leaving out status and the
// metadata the server maintains. Values are never returned, only paths.
func changedFields(live, merged map[string]any) []string {
	var out []string
	var walk func(path string, a, b any)
	walk = func(path string, a, b any) {
		am, aok := a.(map[string]any)
		bm, bok := b.(map[string]any)
		if aok && bok {
			keys := make([]string, 0, len(am)+len(bm))
			for k := range am {
				keys = append(keys, k)
			}
			for k := range bm {
				if _, ok := am[k]; !ok {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				if path == "" && k == "status" || path == "/metadata" && unreportedMeta[k] {
					continue
				}
				p := path + "/" + escapeToken(k)
				av, ain := am[k]
				bv, bin := bm[k]
				if !ain || !bin {
					out = append(out, p)
					continue
				}
				walk(p, av, bv)
			}
			return
		}
		as, aok := a.([]any)
		bs, bok := b.([]any)
		if aok && bok && len(as) == len(bs) {
			for i := range as {
				walk(path+"/"+strconv.Itoa(i), as[i], bs[i])
			}
			return
		}
		if !reflect.DeepEqual(a, b) {
			out = append(out, path)
		}
	}
	walk("", live, merged)
	return out
}

// foreignManagers names the field managers other than charter that own
// one of fields in live; when none does (a field was removed, say), the
// managers that wrote the object last.
func foreignManagers(live *unstructured.Unstructured, fields []string) []string {
	owners := map[string]bool{}
	var newest time.Time
	latest := map[string]bool{}
	for _, e := range live.GetManagedFields() {
		if e.Manager == FieldManager || e.Subresource == "status" {
			continue
		}
		if e.Time != nil {
			switch {
			case e.Time.After(newest):
				newest, latest = e.Time.Time, map[string]bool{e.Manager: true}
			case e.Time.Equal(&metav1.Time{Time: newest}):
				latest[e.Manager] = true
			}
		}
		fs := fieldSet(e.FieldsV1)
		for _, f := range fields {
			if ownsPointer(fs, f) {
				owners[e.Manager] = true
				break
			}
		}
	}
	if len(owners) == 0 {
		owners = latest
	}
	out := make([]string, 0, len(owners))
	for m := range owners {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// fieldSet decodes a managedFields entry's field set.
func fieldSet(f *metav1.FieldsV1) map[string]any {
	if f == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(f.Raw, &m); err != nil {
		return nil
	}
	return m
}

// ownsPointer reports whether field set fs (managedFields format: "f:name"
// keys, "k:{…}"/"i:N"/"v:…" list items) holds the field at JSON pointer p
// or a field under it. List items are matched loosely: a manager owning
// any item of a list is taken to own the item p names.
func ownsPointer(fs map[string]any, p string) bool {
	if fs == nil {
		return false
	}
	node := fs
	for _, tok := range splitPointer(p) {
		next, ok := node["f:"+tok].(map[string]any)
		if !ok {
			if _, err := strconv.Atoi(tok); err == nil {
				for k := range node {
					if strings.HasPrefix(k, "k:") || strings.HasPrefix(k, "i:") || strings.HasPrefix(k, "v:") {
						return true
					}
				}
			}
			return false
		}
		node = next
	}
	return true
}

// reportDrift records the drift a drift check found on the deployed
// revision and reports it as a "drifted" event; err is the failure of its
// correction, if any.
func (r *Reconciler) reportDrift(ctx context.Context, ru *run, err error) {
	d := ru.drift
	if d == nil {
		return
	}
	ru.drift = nil
	d.Action = record.DriftCorrected
	if err != nil {
		d.Action, d.Message = record.DriftFailed, err.Error()
	}
	parts := make([]string, 0, len(d.Objects))
	for _, o := range d.Objects {
		parts = append(parts, o.String())
	}
	msg := strings.Join(parts, "; ")
	if msg == "" {
		msg = "objects changed"
	}
	if err != nil {
		msg += "; correction failed: " + err.Error()
	} else {
		msg += "; corrected"
	}
	r.emit(Event{Release: ru.name, Action: "drifted", Message: msg})
	r.log().Info("drift", "release", ru.name, "action", d.Action, "objects", parts)
	if ru.deployed == nil {
		return
	}
	ru.deployed.LastDrift = d
	if uerr := r.Records.Update(context.WithoutCancel(ctx), ru.deployed); uerr != nil {
		r.log().Error("record drift", "release", ru.name, "error", uerr)
	}
}

// Watcher follows the live objects of releases through metadata-only
// informers (one per resource type seen in an observed inventory, all
// namespaces, objects carrying charter's release label) and reports a
// release as soon as one of its objects is deleted or someone else changes
// a field charter applied. It implements DriftWatcher.
//
// It tells such writes apart without reading objects: a field charter
// owns that another manager changes (or removes) leaves charter's managed
// field set, so an update that shrinks charter's set without a write by
// charter is drift. Status writes, controllers adding their own fields and
// charter's own applies are not. Fields a release's drift rules ignore
// (the declaration's, or the object's charter.sh/drift-ignore annotation)
// do not count.
type Watcher struct {
	r        *Reconciler
	meta     metadata.Interface
	log      *slog.Logger
	debounce time.Duration

	mu        sync.Mutex
	ctx       context.Context // Run's; nil until Run starts
	informers map[schema.GroupVersionResource]*watchedType
	releases  map[string]*watchedRelease
	events    chan string
}

var _ DriftWatcher = (*Watcher)(nil)

// watchedType is the informer of one resource type.
type watchedType struct {
	gvr      schema.GroupVersionResource
	gvk      schema.GroupVersionKind
	informer cache.SharedIndexInformer
	started  bool
	syncedAt time.Time // zero until the first list completed
	warned   bool
}

// watchedRelease is what the watcher knows of one release.
type watchedRelease struct {
	observed     time.Time // last Observe
	prevObserved time.Time // the Observe before: the last reconcile started after it
	objects      map[string]bool
	types        []schema.GroupVersionResource
	unmapped     bool // an object of a kind the server does not serve
	dirty        bool // deleted or changed by someone else since Observe
}

// NewDriftWatcher returns a watcher of r's cluster; it reads a release's
// drift rules from r's declarations. Nothing is watched until Run.
func NewDriftWatcher(r *Reconciler) (*Watcher, error) {
	mc, err := metadata.NewForConfig(r.Cluster.Config)
	if err != nil {
		return nil, fmt.Errorf("create metadata client for %s: %w", r.Cluster.Config.Host, err)
	}
	return &Watcher{r: r, meta: mc, log: r.log(), debounce: 200 * time.Millisecond,
		informers: map[schema.GroupVersionResource]*watchedType{}, releases: map[string]*watchedRelease{},
		events: make(chan string, 1024)}, nil
}

// Run starts the informers of every type observed so far (later ones start
// as they are observed) and calls kick, at most once per release per
// debounce period, until ctx ends. It returns nil when ctx ends.
func (w *Watcher) Run(ctx context.Context, kick func(release string)) error {
	w.mu.Lock()
	w.ctx = ctx
	for gvr, t := range w.informers {
		if t.started {
			// Run again (leadership regained): an informer runs once, so
			// build it anew; its cache is trusted once it synced again.
			t = w.newType(t.gvr, t.gvk)
			w.informers[gvr] = t
		}
		w.start(t)
	}
	w.mu.Unlock()

	due := map[string]time.Time{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case name := <-w.events:
			if _, ok := due[name]; ok {
				continue // already due: one kick covers both
			}
			due[name] = time.Now().Add(w.debounce)
			if len(due) == 1 {
				timer.Reset(w.debounce)
			}
		case <-timer.C:
			now := time.Now()
			next := time.Duration(0)
			for name, at := range due {
				if wait := at.Sub(now); wait > 0 {
					if next == 0 || wait < next {
						next = wait
					}
					continue
				}
				delete(due, name)
				kick(name)
			}
			if next > 0 {
				timer.Reset(next)
			}
		}
	}
}

// Observe records what a successful reconcile of release left applied and
// starts watching the types of its objects.
func (w *Watcher) Observe(release string, inventory []record.ObjectRef) {
	rel := &watchedRelease{observed: time.Now(), objects: map[string]bool{}}
	seen := map[schema.GroupVersionResource]bool{}
	type newType struct {
		gvr schema.GroupVersionResource
		gvk schema.GroupVersionKind
	}
	var types []newType
	mapper := w.r.Cluster.Client.RESTMapper()
	for _, ref := range inventory {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			rel.unmapped = true
			continue
		}
		m, err := mapper.RESTMapping(gv.WithKind(ref.Kind).GroupKind(), gv.Version)
		if err != nil {
			rel.unmapped = true
			continue
		}
		ns := ref.Namespace
		if m.Scope.Name() == meta.RESTScopeNameRoot {
			ns = ""
		}
		rel.objects[objectKey(m.Resource, ns, ref.Name)] = true
		if !seen[m.Resource] {
			seen[m.Resource] = true
			rel.types = append(rel.types, m.Resource)
			types = append(types, newType{m.Resource, m.GroupVersionKind})
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old := w.releases[release]; old != nil {
		rel.prevObserved = old.observed
	}
	w.releases[release] = rel
	for _, t := range types {
		if _, ok := w.informers[t.gvr]; !ok {
			wt := w.newType(t.gvr, t.gvk)
			w.informers[t.gvr] = wt
			if w.ctx != nil {
				w.start(wt)
			}
		}
	}
}

// Clean reports whether, by the watcher's caches alone, every object of the
// release is present and untouched by others since Observe, with caches
// that were complete before the reconcile that Observe followed began.
// Unknown releases are not clean.
func (w *Watcher) Clean(release string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	rel := w.releases[release]
	if rel == nil || rel.dirty || rel.unmapped || rel.prevObserved.IsZero() {
		return false
	}
	for _, gvr := range rel.types {
		t := w.informers[gvr]
		if t == nil || t.syncedAt.IsZero() || t.syncedAt.After(rel.prevObserved) {
			return false
		}
	}
	for key := range rel.objects {
		gvr, storeKey := splitObjectKey(key)
		t := w.informers[gvr]
		if t == nil {
			return false
		}
		if _, ok, err := t.informer.GetStore().GetByKey(storeKey); err != nil || !ok {
			return false
		}
	}
	return true
}

func objectKey(gvr schema.GroupVersionResource, namespace, name string) string {
	store := name
	if namespace != "" {
		store = namespace + "/" + name
	}
	return gvr.Group + "|" + gvr.Version + "|" + gvr.Resource + "|" + store
}

func splitObjectKey(key string) (schema.GroupVersionResource, string) {
	p := strings.SplitN(key, "|", 4)
	return schema.GroupVersionResource{Group: p[0], Version: p[1], Resource: p[2]}, p[3]
}

// newType builds (but does not start) the informer of one resource type.
func (w *Watcher) newType(gvr schema.GroupVersionResource, gvk schema.GroupVersionKind) *watchedType {
	t := &watchedType{gvr: gvr, gvk: gvk}
	t.informer = metadatainformer.NewFilteredMetadataInformer(w.meta, gvr, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = render.LabelRelease }).Informer()
	_ = t.informer.SetTransform(trimMetadata)
	_ = t.informer.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		w.mu.Lock()
		first := !t.warned
		t.warned = true
		w.mu.Unlock()
		if first {
			w.log.Warn("drift watch failing; drift of this kind is corrected on resync only", "resource", gvr.String(), "error", err)
		}
	})
	_, _ = t.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) { w.updated(t, oldObj, newObj) },
		DeleteFunc: func(obj any) { w.deleted(t, obj) },
	})
	return t
}

// start runs an informer under Run's context; w.mu is held.
func (w *Watcher) start(t *watchedType) {
	if t.started {
		return
	}
	t.started = true
	ctx := w.ctx
	go t.informer.RunWithContext(ctx)
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), t.informer.HasSynced) {
			w.mu.Lock()
			t.syncedAt = time.Now()
			w.mu.Unlock()
		}
	}()
}

// trimMetadata keeps of an object only what the watcher needs: identity,
// the release labels, the drift-ignore annotation and charter's managed
// fields. It keeps the caches small with a thousand releases.
func trimMetadata(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	out := &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
	}}
	if v, ok := m.Labels[render.LabelRelease]; ok {
		out.Labels = map[string]string{render.LabelRelease: v}
	}
	if v, ok := m.Annotations[AnnotationDriftIgnore]; ok {
		out.Annotations = map[string]string{AnnotationDriftIgnore: v}
	}
	for _, e := range m.ManagedFields {
		if e.Manager == FieldManager {
			out.ManagedFields = append(out.ManagedFields, e)
		}
	}
	return out, nil
}

// member returns the release an object of type t belongs to, when it is
// one of the release's observed objects.
func (w *Watcher) member(t *watchedType, m metav1.Object) (string, bool) {
	release := m.GetLabels()[render.LabelRelease]
	w.mu.Lock()
	defer w.mu.Unlock()
	rel := w.releases[release]
	if rel == nil || !rel.objects[objectKey(t.gvr, m.GetNamespace(), m.GetName())] {
		return "", false
	}
	return release, true
}

func (w *Watcher) updated(t *watchedType, oldObj, newObj any) {
	o, ok1 := oldObj.(*metav1.PartialObjectMetadata)
	n, ok2 := newObj.(*metav1.PartialObjectMetadata)
	if !ok1 || !ok2 {
		return
	}
	release, ok := w.member(t, n)
	if !ok {
		return
	}
	lost := lostFields(o.ManagedFields, n.ManagedFields)
	if len(lost) == 0 {
		return
	}
	decl, ok := w.declared(release)
	if !ok {
		return
	}
	if ignored := ignoredTokens(decl, t, n); len(ignored) > 0 && allUnder(lost, ignored) {
		return
	}
	w.mark(release)
}

func (w *Watcher) deleted(t *watchedType, obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return
	}
	if release, ok := w.member(t, m); ok {
		if _, ok := w.declared(release); ok {
			w.mark(release)
		}
	}
}

// mark records that the release drifted and asks Run to kick it.
func (w *Watcher) mark(release string) {
	w.mu.Lock()
	if rel := w.releases[release]; rel != nil {
		rel.dirty = true
	}
	ctx := w.ctx
	w.mu.Unlock()
	if ctx == nil {
		return
	}
	select {
	case w.events <- release:
	case <-ctx.Done():
	}
}

// declared returns the release's declaration. A release no longer declared
// is being uninstalled: the watcher forgets it (its objects going away is
// no drift) until it is observed again.
func (w *Watcher) declared(release string) (*state.Release, bool) {
	w.mu.Lock()
	ctx := w.ctx
	w.mu.Unlock()
	d, err := w.r.State.Lookup(ctx, release)
	switch {
	case errors.Is(err, state.ErrNotFound):
		w.mu.Lock()
		delete(w.releases, release)
		w.mu.Unlock()
		return nil, false
	case err != nil:
		return &state.Release{}, true // unreadable now: no rules known
	}
	return d.Release, true
}

// ignoredTokens returns the ignored paths of one object as pointer tokens.
func ignoredTokens(decl *state.Release, t *watchedType, m metav1.Object) [][]string {
	paths, err := ignoredPaths(decl, m, t.gvk)
	if err != nil {
		return nil
	}
	out := make([][]string, 0, len(paths))
	for _, p := range paths {
		out = append(out, splitPointer(p))
	}
	return out
}

// lostFields returns the fields charter owned before an update and no
// longer owns after it, unless charter itself wrote (its entry's time
// moved): those are the fields someone else changed or removed. Each field
// is a path of managedFields keys ("f:spec", "f:replicas", "k:{…}").
func lostFields(before, after []metav1.ManagedFieldsEntry) [][]string {
	type entryKey struct{ op, sub string }
	now := map[entryKey]metav1.ManagedFieldsEntry{}
	for _, e := range after {
		if e.Manager == FieldManager {
			now[entryKey{string(e.Operation), e.Subresource}] = e
		}
	}
	var lost [][]string
	for _, e := range before {
		if e.Manager != FieldManager {
			continue
		}
		n, ok := now[entryKey{string(e.Operation), e.Subresource}]
		if ok && !timeEqual(e.Time, n.Time) {
			continue // charter wrote: not drift
		}
		var still map[string]any
		if ok {
			still = fieldSet(n.FieldsV1)
		}
		leaves(fieldSet(e.FieldsV1), nil, func(path []string) {
			if !hasField(still, path) {
				lost = append(lost, append([]string(nil), path...))
			}
		})
	}
	return lost
}

func timeEqual(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}

// leaves calls fn with the path of every leaf of field set fs ("." marks a
// mapping or list owned as a whole: its path is the parent's).
func leaves(fs map[string]any, path []string, fn func([]string)) {
	if len(fs) == 0 {
		if len(path) > 0 {
			fn(path)
		}
		return
	}
	for k, v := range fs {
		if k == "." {
			fn(path)
			continue
		}
		child, _ := v.(map[string]any)
		leaves(child, append(path, k), fn)
	}
}

// hasField reports whether field set fs holds the field at path.
func hasField(fs map[string]any, path []string) bool {
	node := fs
	for _, k := range path {
		next, ok := node[k]
		if !ok {
			return false
		}
		node, _ = next.(map[string]any)
	}
	return true
}

// allUnder reports whether every field (a managedFields path) lies under
// one of the ignored JSON pointers (token lists). Fields inside list items
// are matched only when a pointer covers the whole list.
func allUnder(fields, ignored [][]string) bool {
	for _, f := range fields {
		covered := false
		for _, p := range ignored {
			if len(p) > len(f) {
				continue
			}
			match := true
			for i, tok := range p {
				if f[i] != "f:"+tok {
					match = false
					break
				}
			}
			if match {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}
