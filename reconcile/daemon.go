package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sync/errgroup"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/charter-sh/charter/state"
)

// Daemon watches a directory state and keeps the cluster converged to it.
type Daemon struct {
	Reconciler *Reconciler
	// Dir is the state directory to watch.
	Dir string
	// Interval between full resyncs (which also correct drift). Default 1m.
	Interval time.Duration
	// Debounce collapses a burst of file events (an `svn up`, an editor
	// save) into one pass. Default 500ms.
	Debounce time.Duration
	// Workers bounds how many releases are reconciled at once. Default 4.
	Workers int
	// Heartbeat, when set, is renewed so CLIs know a daemon serves Dir.
	Heartbeat *Heartbeat
}

// pass is one round of reconciles.
type pass struct {
	full bool // resync: drift check on every release
}

// Run reconciles everything once, then on every debounced change of Dir and
// every Interval, until ctx is cancelled. It returns nil on cancellation
// after in-flight reconciles finish.
func (d *Daemon) Run(ctx context.Context) error {
	interval, debounce, workers := d.Interval, d.Debounce, d.Workers
	if interval <= 0 {
		interval = time.Minute
	}
	if debounce <= 0 {
		debounce = 500 * time.Millisecond
	}
	if workers <= 0 {
		workers = 4
	}
	log := d.Reconciler.log()

	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", d.Dir, err)
	}
	defer w.Close()
	if err := addRecursive(w, d.Dir); err != nil {
		return err
	}
	log.Info("daemon started", "state", d.Dir, "interval", interval.String(), "workers", workers)

	var (
		debounceT  = time.NewTimer(time.Hour)
		resync     = time.NewTicker(interval)
		beat       = time.NewTicker(HeartbeatEvery)
		running    bool
		queued     *pass
		done       = make(chan error, 1)
		retryAfter = 5 * time.Second
		retryT     = time.NewTimer(time.Hour)
		wg         sync.WaitGroup
	)
	debounceT.Stop()
	retryT.Stop()
	defer resync.Stop()
	defer beat.Stop()
	d.beat(ctx)

	start := func(p pass) {
		if running {
			if queued == nil || p.full {
				queued = &p
			}
			return
		}
		running = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			done <- d.runPass(ctx, p, workers)
		}()
	}
	start(pass{full: true})

	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			log.Info("daemon stopped")
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watcher closed")
			}
			if ignoredPath(ev.Name) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					_ = addRecursive(w, ev.Name)
				}
			}
			debounceT.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file watcher closed")
			}
			log.Error("file watcher", "error", err)
		case <-debounceT.C:
			start(pass{})
		case <-resync.C:
			start(pass{full: true})
		case <-retryT.C:
			start(pass{})
		case <-beat.C:
			d.beat(ctx)
		case err := <-done:
			running = false
			if err != nil {
				// Transient failures: retry with capped exponential backoff.
				log.Warn("retrying after transient failure", "in", retryAfter.String(), "error", err)
				retryT.Reset(retryAfter)
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

func (d *Daemon) beat(ctx context.Context) {
	if d.Heartbeat == nil {
		return
	}
	if err := d.Heartbeat.Renew(ctx); err != nil && ctx.Err() == nil {
		d.Reconciler.log().Warn("heartbeat", "error", err)
	}
}

// runPass reconciles every release once; it returns an error when any
// release failed transiently (permanent failures are recorded and wait for
// a change of the declaration).
func (d *Daemon) runPass(ctx context.Context, p pass, workers int) error {
	log := d.Reconciler.log()
	names, broken, err := d.Reconciler.Names(ctx)
	if err != nil {
		log.Error("list releases", "error", err)
		return err
	}
	for _, b := range broken {
		var re *state.ReleaseError
		errors.As(b, &re)
		log.Error("declaration unreadable; release left as it is", "release", re.Release, "error", b)
	}
	rev, err := d.Reconciler.State.Revision(ctx)
	if err != nil {
		log.Error("state revision", "error", err)
	}
	var (
		mu        sync.Mutex
		transient error
	)
	g := errgroup.Group{}
	g.SetLimit(workers)
	for _, name := range names {
		g.Go(func() error {
			start := time.Now()
			res, err := d.Reconciler.Reconcile(ctx, name, Options{OnlyIfChanged: !p.full, SourceRevision: rev})
			if err != nil {
				var perm *PermanentError
				if !errors.As(err, &perm) && ctx.Err() == nil {
					mu.Lock()
					transient = err
					mu.Unlock()
				}
				return nil
			}
			if res.Action != "unchanged" {
				log.Info("reconciled", "release", name, "action", res.Action, "revision", res.Revision,
					"duration", time.Since(start).Round(time.Millisecond).String())
			}
			return nil
		})
	}
	_ = g.Wait()
	return transient
}

func ignoredPath(p string) bool {
	base := filepath.Base(p)
	switch {
	case strings.HasPrefix(base, ".charter"),
		strings.HasSuffix(base, "~"), strings.HasSuffix(base, ".swp"), strings.HasSuffix(base, ".swx"),
		strings.HasPrefix(base, "#") && strings.HasSuffix(base, "#"):
		return true
	}
	for _, part := range strings.Split(filepath.ToSlash(p), "/") {
		switch part {
		case ".git", ".svn", ".bzr", ".hg":
			return true
		}
	}
	return false
}

func addRecursive(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !de.IsDir() {
			return nil
		}
		if p != root && ignoredPath(p) {
			return filepath.SkipDir
		}
		if err := w.Add(p); err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		return nil
	})
}

// HeartbeatEvery is how often a daemon renews its heartbeat; a heartbeat
// older than three periods means no daemon serves the state.
const HeartbeatEvery = 10 * time.Second

// Heartbeat is a Lease a running daemon renews, naming the state it serves,
// so `charter deploy` knows whether to wait for the daemon or converge
// in-process.
type Heartbeat struct {
	Client    kubernetes.Interface
	Namespace string
	State     string // absolute state location served
	Identity  string
}

const leaseName = "charter-daemon"
const annotationState = "charter.sh/state"

// Renew creates or renews the Lease.
func (h *Heartbeat) Renew(ctx context.Context) error {
	leases := h.Client.CoordinationV1().Leases(h.Namespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(3 * HeartbeatEvery / time.Second)
	l, err := leases.Get(ctx, leaseName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: leaseName, Annotations: map[string]string{annotationState: h.State}},
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
	l.Annotations[annotationState] = h.State
	l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &h.Identity, &now, &secs
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// DaemonServes reports whether a daemon renewed its heartbeat for state
// recently.
func DaemonServes(ctx context.Context, c kubernetes.Interface, namespace, state string) bool {
	l, err := c.CoordinationV1().Leases(namespace).Get(ctx, leaseName, metav1.GetOptions{})
	if err != nil || l.Spec.RenewTime == nil || l.Annotations[annotationState] != state {
		return false
	}
	return time.Since(l.Spec.RenewTime.Time) < 3*HeartbeatEvery
}
