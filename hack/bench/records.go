package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/charter-sh/charter/record"
)

// relState is the newest record of one release as the watch saw it.
type relState struct {
	revision int
	status   string
	at       time.Time // when this revision reached this status
}

// recordWatch follows charter's release records (Secrets, metadata only)
// in one namespace with a single watch, so knowing when releases converge
// costs the API server one LIST and one WATCH, not a poll per release.
type recordWatch struct {
	mu      sync.Mutex
	rels    map[string]relState
	changed chan struct{} // closed and replaced on every change
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
}

var secretsGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

func (c *cluster) watchRecords(ctx context.Context, ns string) (*recordWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &recordWatch{rels: map[string]relState{}, changed: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	res := c.meta.Resource(secretsGVR).Namespace(ns)
	sel := record.LabelOwner + "=" + record.OwnerValue
	list, err := res.List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("list records in %s: %w", ns, err)
	}
	for i := range list.Items {
		w.observe(list.Items[i].Labels, time.Now())
	}
	rv := list.ResourceVersion
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			wi, err := res.Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				if ctx.Err() == nil {
					w.setErr(fmt.Errorf("watch records in %s: %w", ns, err))
					time.Sleep(time.Second)
				}
				continue
			}
			for ev := range wi.ResultChan() {
				m, err := metaOf(ev.Object)
				if err != nil {
					continue
				}
				rv = m.ResourceVersion
				switch ev.Type {
				case watch.Added, watch.Modified:
					w.observe(m.Labels, time.Now())
				case watch.Error:
					rv = "" // expired: start from the current state
				}
			}
			wi.Stop()
		}
	}()
	return w, nil
}

func metaOf(obj any) (*metav1.PartialObjectMetadata, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return nil, fmt.Errorf("unexpected watch object %T", obj)
	}
	return m, nil
}

func (w *recordWatch) setErr(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

// observe records a record Secret's labels: the newest revision wins.
func (w *recordWatch) observe(labels map[string]string, at time.Time) {
	name := labels[record.LabelRelease]
	rev, err := strconv.Atoi(labels[record.LabelRevision])
	if name == "" || err != nil {
		return
	}
	status := labels[record.LabelStatus]
	w.mu.Lock()
	defer w.mu.Unlock()
	cur, ok := w.rels[name]
	if ok && (rev < cur.revision || rev == cur.revision && status == cur.status) {
		return
	}
	w.rels[name] = relState{revision: rev, status: status, at: at}
	close(w.changed)
	w.changed = make(chan struct{})
}

// get returns the newest known record of a release.
func (w *recordWatch) get(name string) (relState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.rels[name]
	return s, ok
}

// deployed counts releases whose newest record is deployed.
func (w *recordWatch) deployed() (deployed, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.rels {
		switch record.Status(s.status) {
		case record.StatusDeployed:
			deployed++
		case record.StatusFailed:
			failed++
		}
	}
	return deployed, failed
}

// wait blocks until cond holds (checked on every change), ctx ends or
// timeout passes.
func (w *recordWatch) wait(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			w.mu.Lock()
			err := w.err
			w.mu.Unlock()
			if err != nil {
				return fmt.Errorf("%w (last watch error: %v)", errNotReady, err)
			}
			return errNotReady
		case <-ch:
		}
	}
}

// waitDeployed waits until n releases are deployed; it prints progress
// every 10 s.
func (w *recordWatch) waitDeployed(ctx context.Context, n int, timeout time.Duration, progress func(string)) error {
	last := time.Now()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				d, f := w.deployed()
				progress(fmt.Sprintf("%d/%d deployed, %d failed (%s)", d, n, f, time.Since(last).Round(time.Second)))
			}
		}
	}()
	return w.wait(ctx, timeout, func() bool { d, _ := w.deployed(); return d >= n })
}

func (w *recordWatch) stop() {
	w.cancel()
	<-w.done
}
