package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/state"
)

// EventComponent is the source component of the Events charter writes.
const EventComponent = "charter-daemon"

// eventAggregateWindow is how long a repeat of the same event (same
// release, reason and message) bumps the count of the last one instead of
// creating another.
const eventAggregateWindow = 10 * time.Minute

// EventRecorder turns release-level Events (Object empty: installed,
// upgraded, corrected, failed, uninstalled, waiting, drifted, rolled-back,
// stalled…) into Kubernetes core/v1 Events in the records namespace, on the
// release's newest record Secret, so `kubectl describe secret` and
// `kubectl get events -l charter.sh/release=NAME` show what the daemon did.
//
// Emit only queues; Run writes. Event messages are redacted of credentials.
// Writing is best effort: a failure is logged and the event dropped.
type EventRecorder struct {
	client    kubernetes.Interface
	namespace string
	log       *slog.Logger
	host      string
	queue     chan Event
	now       func() time.Time

	mu      sync.Mutex
	refs    map[string]*corev1.ObjectReference // release → its newest record seen
	last    map[string]*lastEvent              // release → the last event written
	drifted map[string]bool                    // releases whose reconcile reported its drift itself
}

type lastEvent struct {
	key   string // reason + message
	name  string
	count int32
	at    time.Time
}

// NewEventRecorder records Events in namespace (the records namespace).
func NewEventRecorder(c kubernetes.Interface, namespace string, log *slog.Logger) *EventRecorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	return &EventRecorder{client: c, namespace: namespace, log: log, host: host, queue: make(chan Event, 256),
		now: time.Now, refs: map[string]*corev1.ObjectReference{}, last: map[string]*lastEvent{}, drifted: map[string]bool{}}
}

// Emit queues a release-level event; per-object events are ignored. It
// never blocks: when the queue is full the event is dropped and logged. It
// fits Reconciler.Progress.
func (r *EventRecorder) Emit(e Event) {
	if r == nil || e.Object != "" || e.Release == "" {
		return
	}
	// A reconcile that reports its drift ("drifted": what changed, by whom,
	// corrected or not) says all a "corrected" result would: one event.
	r.mu.Lock()
	switch e.Action {
	case "drifted":
		r.drifted[e.Release] = true
	case "corrected":
		if r.drifted[e.Release] {
			delete(r.drifted, e.Release)
			r.mu.Unlock()
			return
		}
	default:
		delete(r.drifted, e.Release)
	}
	r.mu.Unlock()
	select {
	case r.queue <- e:
	default:
		r.log.Warn("event dropped: queue full", "release", e.Release, "action", e.Action)
	}
}

// Run writes queued events until ctx ends, then writes what is still
// queued (for at most a few seconds) and returns.
func (r *EventRecorder) Run(ctx context.Context) {
	for {
		select {
		case e := <-r.queue:
			r.write(ctx, e)
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			for {
				select {
				case e := <-r.queue:
					r.write(dctx, e)
				default:
					return
				}
			}
		}
	}
}

// eventReason maps a release-level action to an Event reason and type.
func eventReason(action string) (reason, typ string) {
	switch action {
	case "installed":
		return "Installed", corev1.EventTypeNormal
	case "upgraded":
		return "Upgraded", corev1.EventTypeNormal
	case "corrected":
		return "DriftCorrected", corev1.EventTypeNormal
	case "uninstalled":
		return "Uninstalled", corev1.EventTypeNormal
	case "waiting":
		return "Waiting", corev1.EventTypeNormal
	case "failed":
		return "ReconcileFailed", corev1.EventTypeWarning
	case "drifted":
		return "DriftDetected", corev1.EventTypeWarning
	case "rolled-back":
		return "RolledBack", corev1.EventTypeWarning
	case "stalled":
		return "Stalled", corev1.EventTypeWarning
	}
	var b strings.Builder
	for _, w := range strings.FieldsFunc(action, func(r rune) bool { return r == '-' || r == '_' || r == ' ' }) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	if b.Len() == 0 {
		return "Reconciled", corev1.EventTypeNormal
	}
	return b.String(), corev1.EventTypeNormal
}

// resultEvent is the release-level event of a reconcile result whose action
// the reconciler does not report itself; false for the others.
func resultEvent(res *Result) (Event, bool) {
	if res == nil {
		return Event{}, false
	}
	e := Event{Release: res.Release, Action: res.Action}
	if res.Action != "uninstalled" {
		e.Revision = res.Revision
	}
	switch res.Action {
	case "installed":
		e.Message = fmt.Sprintf("installed revision %d", res.Revision)
	case "upgraded":
		e.Message = fmt.Sprintf("upgraded to revision %d", res.Revision)
	case "corrected":
		e.Message = fmt.Sprintf("corrected drift of revision %d", res.Revision)
		if objs := changedObjects(res.Changes); len(objs) > 0 {
			e.Message += ": " + strings.Join(objs, ", ")
		}
	case "uninstalled":
		e.Message = "uninstalled"
		if objs := changedObjects(res.Changes); len(objs) > 0 {
			e.Message += fmt.Sprintf(": deleted %d object(s)", len(objs))
		}
	default:
		return Event{}, false
	}
	return e, true
}

// changedObjects names the objects a change set wrote or deleted.
func changedObjects(cs *ssa.ChangeSet) []string {
	if cs == nil {
		return nil
	}
	var out []string
	for _, e := range cs.Entries {
		if e.Action != ssa.UnchangedAction && e.Action != ssa.SkippedAction {
			out = append(out, e.Subject)
		}
	}
	return out
}

// remember looks up the release's newest record now, so that an event
// written after its records are gone (an uninstall) still names it.
func (r *EventRecorder) remember(ctx context.Context, release string) {
	if r == nil {
		return
	}
	if ref, err := r.newestRecord(ctx, release); err == nil && ref != nil {
		r.mu.Lock()
		r.refs[release] = ref
		r.mu.Unlock()
	}
}

// newestRecord is a reference to the release's record Secret of the
// highest revision; nil when it has none.
func (r *EventRecorder) newestRecord(ctx context.Context, release string) (*corev1.ObjectReference, error) {
	sel := labels.Set{record.LabelOwner: record.OwnerValue, record.LabelRelease: release}.String()
	l, err := r.client.CoreV1().Secrets(r.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	var best *corev1.Secret
	bestRev := -1
	for i := range l.Items {
		rev, err := strconv.Atoi(l.Items[i].Labels[record.LabelRevision])
		if err == nil && rev > bestRev {
			best, bestRev = &l.Items[i], rev
		}
	}
	if best == nil {
		return nil, nil
	}
	return &corev1.ObjectReference{Kind: "Secret", APIVersion: "v1", Namespace: best.Namespace, Name: best.Name,
		UID: best.UID, ResourceVersion: best.ResourceVersion}, nil
}

// involved finds the object an event of the release is about: its newest
// record (a first failing install writes it just after the event), else the
// last one seen; nil when the release never had one (waiting for its
// dependencies before its first install).
func (r *EventRecorder) involved(ctx context.Context, e Event) *corev1.ObjectReference {
	if e.Revision > 0 {
		// The reconcile just wrote this revision's record: name it, no lookup.
		ref := &corev1.ObjectReference{Kind: "Secret", APIVersion: "v1", Namespace: r.namespace, Name: record.SecretName(e.Release, e.Revision)}
		r.mu.Lock()
		r.refs[e.Release] = ref
		r.mu.Unlock()
		return ref
	}
	for try := 0; ; try++ {
		ref, err := r.newestRecord(ctx, e.Release)
		if err != nil {
			r.log.Warn("event: find release record", "release", e.Release, "error", err)
			break
		}
		if ref != nil {
			r.mu.Lock()
			r.refs[e.Release] = ref
			r.mu.Unlock()
			return ref
		}
		if e.Action != "failed" || try == 3 {
			break // only a failure is recorded just after its event
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refs[e.Release]
}

// write creates the Event, or bumps the count of the same one written
// within the aggregation window.
func (r *EventRecorder) write(ctx context.Context, e Event) {
	ref := r.involved(ctx, e)
	if ref == nil {
		r.log.Debug("event not recorded: release has no record", "release", e.Release, "action", e.Action)
		return
	}
	reason, typ := eventReason(e.Action)
	msg := source.RedactText(e.Message)
	if msg == "" {
		msg = e.Action
	}
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	now := r.now()
	events := r.client.CoreV1().Events(r.namespace)
	key := reason + "\x00" + msg + "\x00" + ref.Name

	r.mu.Lock()
	prev := r.last[e.Release]
	r.mu.Unlock()
	if prev != nil && prev.key == key && now.Sub(prev.at) < eventAggregateWindow {
		// A patch, like client-go's recorder: the daemon's Role may create
		// and patch Events, not read them.
		patch, _ := json.Marshal(map[string]any{"count": prev.count + 1, "lastTimestamp": metav1.NewTime(now)})
		_, err := events.Patch(ctx, prev.name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			r.mu.Lock()
			prev.count, prev.at = prev.count+1, now
			r.mu.Unlock()
			return
		}
		if !apierrors.IsNotFound(err) {
			r.log.Warn("event not recorded", "release", e.Release, "reason", reason, "error", err)
			return
		}
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()),
			Namespace: r.namespace,
			Labels:    map[string]string{record.LabelRelease: e.Release},
		},
		InvolvedObject:      *ref,
		Reason:              reason,
		Message:             msg,
		Type:                typ,
		Source:              corev1.EventSource{Component: EventComponent, Host: r.host},
		FirstTimestamp:      metav1.NewTime(now),
		LastTimestamp:       metav1.NewTime(now),
		Count:               1,
		ReportingController: "charter.sh/daemon",
		ReportingInstance:   r.host,
	}
	created, err := events.Create(ctx, ev, metav1.CreateOptions{})
	if err != nil {
		r.log.Warn("event not recorded", "release", e.Release, "reason", reason, "error", err)
		return
	}
	r.mu.Lock()
	r.last[e.Release] = &lastEvent{key: key, name: created.Name, count: 1, at: now}
	r.mu.Unlock()
}

// uninstalling reports whether the release has no declaration any more,
// so that reconciling it uninstalls it.
func (d *Daemon) uninstalling(ctx context.Context, name string) bool {
	_, err := d.Reconciler.State.Lookup(ctx, name)
	return errors.Is(err, state.ErrNotFound)
}
