package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/state"
)

// Watched is one source the daemon follows.
type Watched struct {
	Source source.Source
	// Interval between polls (default: the daemon's Interval). Sources that
	// notify (a folder) are also polled, as a safety net.
	Interval time.Duration
	// AllowEmpty lets the source go from some declarations to none, which
	// uninstalls its releases. Without it such a snapshot is refused: an
	// emptied checkout or a wrong prefix must not wipe a cluster.
	AllowEmpty bool
}

// SourceStatus is what the daemon knows of one source.
type SourceStatus struct {
	Source    string    `json:"source"`
	Revision  string    `json:"revision,omitempty"`
	Releases  int       `json:"releases"`
	LastFetch time.Time `json:"lastFetch"`
	Error     string    `json:"error,omitempty"`
}

// Daemon follows sources and keeps the cluster converged to them.
type Daemon struct {
	Reconciler *Reconciler // its State must be Set
	Set        *SourceSet
	Sources    []Watched
	// Interval is the default poll interval of sources. Default 1m. A poll
	// that finds nothing new costs the cluster nothing.
	Interval time.Duration
	// Resync is the interval between full passes over every release, which
	// dry-run every object and so correct drift. Default 10m.
	Resync time.Duration
	// Workers bounds how many releases are reconciled at once. Default 4.
	Workers int
	// Heartbeat, when set, is renewed so CLIs know a daemon serves the sources.
	Heartbeat *Heartbeat
	// Drift, when set, watches the live objects of releases: a release one
	// of whose objects was changed or deleted by someone else is reconciled
	// at once, and full resyncs skip the dry-run of releases it vouches for.
	Drift DriftWatcher
	// Metrics, when set, records reconciles, fetches and release statuses.
	Metrics *Metrics
	// Events, when set, gets a release-level event for every installed,
	// upgraded, corrected or uninstalled result; Run also runs it. Wire
	// Reconciler.Progress to Events.Emit for the release-level events the
	// reconciler reports itself (failed, waiting…).
	Events *EventRecorder
	// Shard, when set, limits the daemon to the releases of its shard (and
	// to uninstalling those): replicas with the other shards do the rest.
	Shard Shard

	mu       sync.Mutex
	status   map[string]*SourceStatus
	triggers map[string]chan struct{}
	lastPass time.Time         // when the last pass over all releases finished
	released map[string]string // release → status its last reconcile left (metrics)
	memo     *memo             // inputs each release last converged with
}

// DriftWatcher follows the live objects of releases through watches.
type DriftWatcher interface {
	// Run watches until ctx ends, calling kick with a release's name when
	// one of its objects was written or deleted by another field manager.
	Run(ctx context.Context, kick func(release string)) error
	// Observe tells the watcher what a successful reconcile left applied.
	Observe(release string, inventory []record.ObjectRef)
	// Clean reports, from the watcher's caches alone, whether every object
	// of the release is present and untouched by others since Observe.
	Clean(release string) bool
}

// Trigger asks for an immediate fetch of the source whose String() is
// location (a webhook). It reports false for unknown sources.
func (d *Daemon) Trigger(location string) bool {
	d.mu.Lock()
	ch, ok := d.triggers[location]
	d.mu.Unlock()
	if ok {
		select {
		case ch <- struct{}{}:
		default: // a fetch is already pending
		}
	}
	return ok
}

// Status reports every source's last fetch.
func (d *Daemon) Status() []SourceStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]SourceStatus, 0, len(d.Sources))
	for _, w := range d.Sources {
		if st, ok := d.status[w.Source.String()]; ok {
			out = append(out, *st)
		}
	}
	return out
}

// pass is one round of reconciles.
type pass struct {
	full  bool     // resync: drift check on every release
	names []string // when set, only these releases, each with a drift check
}

// Run fetches every source, reconciles, then follows changes and resyncs
// every Interval until ctx is cancelled. It returns nil on cancellation
// after in-flight work ends.
func (d *Daemon) Run(ctx context.Context) error {
	interval, resyncEvery, workers := d.Interval, d.Resync, d.Workers
	if interval <= 0 {
		interval = time.Minute
	}
	if resyncEvery <= 0 {
		resyncEvery = 10 * time.Minute
	}
	if workers <= 0 {
		workers = 4
	}
	log := d.Reconciler.log()
	d.mu.Lock()
	d.status = map[string]*SourceStatus{}
	d.triggers = map[string]chan struct{}{}
	for _, w := range d.Sources {
		d.status[w.Source.String()] = &SourceStatus{Source: w.Source.String()}
		d.triggers[w.Source.String()] = make(chan struct{}, 1)
	}
	d.released = map[string]string{}
	d.memo = newMemo(memoTTL)
	d.mu.Unlock()

	changed := make(chan struct{}, 1)
	kicks := make(chan string, 1024)
	var wg sync.WaitGroup
	if d.Events != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.Events.Run(ctx)
		}()
	}
	if d.Drift != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kick := func(name string) {
				select {
				case kicks <- name:
				case <-ctx.Done():
				}
			}
			if err := d.Drift.Run(ctx, kick); err != nil && ctx.Err() == nil {
				log.Error("drift watcher stopped; drift is corrected on resync only", "error", err)
			}
		}()
	}
	// Fetch every source once before the first pass, so that it sees them all.
	for _, w := range d.Sources {
		d.fetch(ctx, w)
	}
	for _, w := range d.Sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.follow(ctx, w, interval, changed)
		}()
	}
	locations := make([]string, 0, len(d.Sources))
	for _, w := range d.Sources {
		locations = append(locations, w.Source.String())
	}
	log.Info("daemon started", "sources", locations, "interval", interval.String(), "resync", resyncEvery.String(), "workers", workers, "shard", d.Shard.String())

	var (
		resync     = time.NewTicker(resyncEvery)
		beat       = time.NewTicker(HeartbeatEvery)
		running    bool
		queued     *pass
		done       = make(chan error, 1)
		retryAfter = 5 * time.Second
		retryT     = time.NewTimer(time.Hour)
	)
	retryT.Stop()
	defer resync.Stop()
	defer beat.Stop()
	d.beat(ctx, locations)

	start := func(p pass) {
		if running {
			switch {
			case queued == nil:
				queued = &p
			case p.full || queued.full:
				queued = &pass{full: true}
			case p.names == nil || queued.names == nil:
				queued = &pass{}
			default:
				queued.names = append(queued.names, p.names...)
			}
			return
		}
		running = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := d.runPass(ctx, p, workers)
			d.mu.Lock()
			d.lastPass = time.Now()
			d.mu.Unlock()
			done <- err
		}()
	}
	start(pass{full: true})

	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			log.Info("daemon stopped")
			return nil
		case <-changed:
			start(pass{})
		case name := <-kicks:
			log.Info("drift detected", "release", name)
			start(pass{names: []string{name}})
		case <-resync.C:
			start(pass{full: true})
		case <-retryT.C:
			start(pass{})
		case <-beat.C:
			d.beat(ctx, locations)
		case err := <-done:
			running = false
			if err != nil {
				// Transient failures: retry with capped exponential backoff
				// and jitter, or later when the API server asks to.
				delay := retryDelay(retryAfter, err, rand.Float64())
				log.Warn("retrying after transient failure", "in", delay.Round(time.Millisecond).String(), "error", err)
				retryT.Reset(delay)
				retryAfter = min(retryAfter*2, 5*time.Minute)
			} else {
				retryAfter = 5 * time.Second
			}
			if queued != nil {
				p := *queued
				queued = nil
				start(p)
			}
		}
	}
}

// follow re-fetches a source on its notifications, webhook triggers and
// poll interval, signalling changed when its snapshot moved.
func (d *Daemon) follow(ctx context.Context, w Watched, interval time.Duration, changed chan<- struct{}) {
	if w.Interval > 0 {
		interval = w.Interval
	}
	poll := time.NewTicker(interval)
	defer poll.Stop()
	var notes <-chan struct{}
	if n, ok := w.Source.(source.Notifier); ok {
		notes = n.Changes()
	}
	d.mu.Lock()
	trigger := d.triggers[w.Source.String()]
	d.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-notes:
			if !ok {
				notes = nil
				continue
			}
			// A watcher may signal its own trouble (a folder it cannot
			// watch, lost events): report it; the fetch below still runs.
			if e, ok := w.Source.(interface{ Err() error }); ok && e.Err() != nil {
				d.Reconciler.log().Warn("source watcher", "source", w.Source.String(), "error", e.Err())
			}
		case <-trigger:
		case <-poll.C:
		}
		if d.fetch(ctx, w) {
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}
}

// fetch reads one source and installs its snapshot; it reports whether the
// snapshot changed. Failures keep the last good snapshot: its releases stay
// applied and nothing is pruned.
func (d *Daemon) fetch(ctx context.Context, w Watched) bool {
	loc := w.Source.String()
	log := d.Reconciler.log()
	start := time.Now()
	a, err := w.Source.Fetch(ctx)
	if err == nil {
		err = d.install(ctx, w, a)
	}
	if ctx.Err() == nil {
		d.Metrics.observeFetch(loc, time.Since(start), err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.status[loc]
	st.LastFetch = time.Now()
	if err != nil {
		if ctx.Err() == nil {
			if st.Error != err.Error() {
				log.Error("source failed; keeping its last good snapshot", "source", loc, "error", err)
			}
			st.Error = err.Error()
		}
		return false
	}
	st.Error = ""
	if st.Revision == a.Revision+"|"+a.Digest {
		return false
	}
	prev := st.Revision
	st.Revision = a.Revision + "|" + a.Digest
	if snap := d.Set.Get(loc); snap != nil {
		st.Releases = countReleases(ctx, snap.Dir)
	}
	if prev != "" {
		log.Info("source changed", "source", loc, "revision", a.Revision)
	}
	return true
}

// install opens a fetched snapshot and makes it the source's current one,
// unless it empties a source that had declarations (see AllowEmpty).
func (d *Daemon) install(ctx context.Context, w Watched, a *source.Artifact) error {
	loc := w.Source.String()
	if cur := d.Set.Get(loc); cur != nil && cur.Revision == a.Revision && cur.Dir.Root() == a.Path {
		return nil
	}
	dir, err := state.Open(a.Path)
	if err != nil {
		return fmt.Errorf("open snapshot of %s: %w", loc, err)
	}
	// An emptied checkout, a wrong branch, prefix or sub-path leave nothing
	// behind, not even the state's marker file; a state emptied on purpose
	// (charter uninstall, git rm releases/*) keeps it.
	if !w.AllowEmpty && !hasMarker(dir) {
		if cur := d.Set.Get(loc); cur != nil {
			before, now := countReleases(ctx, cur.Dir), countReleases(ctx, dir)
			if before > 0 && now == 0 {
				return fmt.Errorf("revision %s declares no releases and has no %s where the last one declared %d: refusing to uninstall them all (mark the source allowEmpty to permit)", a.Revision, state.MarkerFile, before)
			}
		}
	}
	d.Set.Set(&Snapshot{Source: loc, Revision: a.Revision, Dir: dir})
	return nil
}

// hasMarker reports whether a snapshot holds the state marker file.
func hasMarker(dir *state.Dir) bool {
	_, err := os.Stat(filepath.Join(dir.Root(), state.MarkerFile))
	return err == nil
}

// countReleases counts declaration files, readable or not.
func countReleases(ctx context.Context, dir *state.Dir) int {
	rels, errs := dir.Scan(ctx)
	n := len(rels)
	for _, e := range errs {
		var re *state.ReleaseError
		if errors.As(e, &re) {
			n++
		}
	}
	return n
}

func (d *Daemon) beat(ctx context.Context, locations []string) {
	if d.Heartbeat == nil {
		return
	}
	d.mu.Lock()
	last := d.lastPass
	d.mu.Unlock()
	if err := d.Heartbeat.Renew(ctx, locations, HeartbeatStatus{Sources: d.Status(), LastReconcile: last}); err != nil && ctx.Err() == nil {
		d.Reconciler.log().Warn("heartbeat", "error", err)
	}
}

// runPass reconciles every release once; it returns an error when any
// release failed transiently (permanent failures are recorded and wait for
// a change of the declaration).
func (d *Daemon) runPass(ctx context.Context, p pass, workers int) error {
	log := d.Reconciler.log()
	if p.names != nil {
		return d.runWave(ctx, p, d.Shard.Filter(slices.Compact(slices.Sorted(slices.Values(p.names)))), workers)
	}
	names, broken, err := d.Reconciler.Names(ctx)
	if err != nil {
		log.Error("list releases", "error", err)
		return err
	}
	names = d.Shard.Filter(names) // the other shards' releases, and their uninstalls, are not ours
	d.forgetOthers(names)
	for _, b := range broken {
		var re *state.ReleaseError
		errors.As(b, &re)
		log.Error("declaration unusable; release left as it is", "release", re.Release, "error", b)
	}
	var transient error
	for _, wave := range waves(names, d.dependsOn(ctx)) {
		if err := d.runWave(ctx, p, wave, workers); err != nil {
			transient = err
		}
	}
	return transient
}

// dependsOn returns a lookup of each release's dependencies.
func (d *Daemon) dependsOn(ctx context.Context) func(string) []string {
	return func(name string) []string {
		decl, err := d.Reconciler.State.Lookup(ctx, name)
		if err != nil {
			return nil
		}
		return decl.Release.DependsOn
	}
}

// runWave reconciles releases that do not depend on each other, with at
// most workers at once.
func (d *Daemon) runWave(ctx context.Context, p pass, names []string, workers int) error {
	log := d.Reconciler.log()
	var (
		mu        sync.Mutex
		transient error
	)
	g := errgroup.Group{}
	g.SetLimit(workers)
	for _, name := range names {
		g.Go(func() error {
			start := time.Now()
			if d.Events != nil && d.uninstalling(ctx, name) {
				d.Events.remember(ctx, name) // its records go with it
			}
			// A targeted pass checks drift; a full pass does too, unless the
			// drift watcher vouches for the release from its caches.
			clean := d.Drift != nil && d.Drift.Clean(name)
			onlyIfChanged := (!p.full && p.names == nil) || (p.full && clean)
			// Inputs unchanged since this process converged the release, and
			// nothing to check against the cluster: no request at all.
			key := ""
			if decl, err := d.Reconciler.State.Lookup(ctx, name); err == nil {
				key = inputsKey(decl)
			}
			if onlyIfChanged && p.names == nil && (!p.full || clean) && d.memo.fresh(name, key) {
				return nil
			}
			res, err := d.Reconciler.Reconcile(ctx, name, Options{OnlyIfChanged: onlyIfChanged})
			d.observe(ctx, name, res, err, time.Since(start))
			if err != nil || res == nil || res.Inventory == nil {
				d.memo.remember(name, "")
			} else {
				d.memo.remember(name, key)
			}
			if err != nil {
				var perm *PermanentError
				if !errors.As(err, &perm) && ctx.Err() == nil {
					mu.Lock()
					transient = err
					mu.Unlock()
				}
				return nil
			}
			if d.Drift != nil && res.Inventory != nil {
				d.Drift.Observe(name, res.Inventory)
			}
			if e, ok := resultEvent(res); ok {
				d.Events.Emit(e)
			}
			if res.Action != "unchanged" && res.Action != "skipped" {
				log.Info("reconciled", "release", name, "action", res.Action, "revision", res.Revision,
					"duration", time.Since(start).Round(time.Millisecond).String())
			}
			return nil
		})
	}
	_ = g.Wait()
	return transient
}

// memoTTL bounds how long a release converged by this process is trusted
// without asking the cluster: even when the watches say nothing happened,
// each release is checked against its records at least this often.
const memoTTL = time.Hour

// HeartbeatEvery is how often a daemon renews its heartbeat; a heartbeat
// older than three periods means no daemon serves the sources.
const HeartbeatEvery = 10 * time.Second

// Heartbeat is a Lease a running daemon renews, naming the sources it
// serves, so `charter deploy` knows whether to wait for the daemon or
// converge in-process.
type Heartbeat struct {
	Client    kubernetes.Interface
	Namespace string
	Identity  string
	// Version is the daemon's version, reported with each heartbeat.
	Version string
	// Shard names the Lease: each shard renews its own
	// (Shard.HeartbeatLease), all labelled LabelHeartbeat.
	Shard Shard
}

const leaseName = "charter-daemon"
const annotationSources = "charter.sh/sources"

// LabelHeartbeat ("true") marks every heartbeat Lease, one per shard.
const LabelHeartbeat = "charter.sh/heartbeat"

// AnnotationShard holds the shard ("i/n") a heartbeat Lease reports for;
// absent when the daemon is not sharded.
const AnnotationShard = "charter.sh/shard"

// AnnotationStatus holds the daemon's HeartbeatStatus (JSON) on its Lease.
const AnnotationStatus = "charter.sh/status"

// HeartbeatStatus is what a daemon reports with each heartbeat: how every
// source fared and when it last finished a pass over the releases.
type HeartbeatStatus struct {
	Sources       []SourceStatus `json:"sources"`
	LastReconcile time.Time      `json:"lastReconcile,omitzero"`
	Version       string         `json:"version,omitempty"`
}

// Renew creates or renews the Lease, with the sources followed and their
// status.
func (h *Heartbeat) Renew(ctx context.Context, locations []string, status HeartbeatStatus) error {
	if status.Version == "" {
		status.Version = h.Version
	}
	leases := h.Client.CoordinationV1().Leases(h.Namespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(3 * HeartbeatEvery / time.Second)
	srcs, _ := json.Marshal(locations)
	st, _ := json.Marshal(status)
	name := h.Shard.HeartbeatLease()
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		annotations := map[string]string{annotationSources: string(srcs), AnnotationStatus: string(st)}
		if h.Shard.Sharded() {
			annotations[AnnotationShard] = h.Shard.String()
		}
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelHeartbeat: "true"}, Annotations: annotations},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &h.Identity, RenewTime: &now, LeaseDurationSeconds: &secs},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[annotationSources] = string(srcs)
	l.Annotations[AnnotationStatus] = string(st)
	if h.Shard.Sharded() {
		l.Annotations[AnnotationShard] = h.Shard.String()
	}
	if l.Labels == nil {
		l.Labels = map[string]string{}
	}
	l.Labels[LabelHeartbeat] = "true"
	l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &h.Identity, &now, &secs
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// DaemonServes reports whether daemons that renewed their heartbeats
// recently follow location (a redacted source location, or a directory
// path) for every release: an unsharded daemon, or one of every shard of
// some count n.
func DaemonServes(ctx context.Context, c kubernetes.Interface, namespace, location string) bool {
	leases, err := HeartbeatLeases(ctx, c, namespace)
	if err != nil {
		return false
	}
	shards := map[int]map[int]bool{} // count → indexes seen
	for _, l := range leases {
		if !HeartbeatFresh(&l) {
			continue
		}
		var srcs []string
		if err := json.Unmarshal([]byte(l.Annotations[annotationSources]), &srcs); err != nil || !slices.Contains(srcs, location) {
			continue
		}
		sh, err := ParseShard(l.Annotations[AnnotationShard])
		if l.Annotations[AnnotationShard] == "" || err != nil || !sh.Sharded() {
			return true
		}
		if shards[sh.Count] == nil {
			shards[sh.Count] = map[int]bool{}
		}
		shards[sh.Count][sh.Index] = true
		if len(shards[sh.Count]) == sh.Count {
			return true
		}
	}
	return false
}

// HeartbeatFresh reports whether a heartbeat Lease was renewed within three
// heartbeat periods.
func HeartbeatFresh(l *coordinationv1.Lease) bool {
	return l.Spec.RenewTime != nil && time.Since(l.Spec.RenewTime.Time) < 3*HeartbeatEvery
}

// HeartbeatLeases lists the heartbeat Leases in namespace, one per shard
// (and the unlabelled one of daemons older than sharding), by name.
func HeartbeatLeases(ctx context.Context, c kubernetes.Interface, namespace string) ([]coordinationv1.Lease, error) {
	l, err := c.CoordinationV1().Leases(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []coordinationv1.Lease
	for _, x := range l.Items {
		if x.Labels[LabelHeartbeat] == "true" || x.Name == leaseName {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b coordinationv1.Lease) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
