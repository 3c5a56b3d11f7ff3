package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// errLostLeadership ends a term whose Lease could not be renewed.
var errLostLeadership = errors.New("lost leadership")

// Election runs work only while this replica holds a Lease (client-go
// leader election), so that of several replicas exactly one writes.
type Election struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string // the Lease, e.g. Shard.LeaderLease()
	Identity  string // unique per replica: hostname-pid
	// LeaseDuration is how long followers wait, after the last renewal, to
	// take over from a leader that vanished (default 15s); RenewDeadline how
	// long the leader keeps trying to renew before it gives up (default
	// 10s); RetryPeriod the interval between tries (default 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       *slog.Logger
	// Metrics, when set, gets charter_daemon_leader.
	Metrics *Metrics

	leading atomic.Bool
}

// Leading reports whether this replica holds the Lease now.
func (e *Election) Leading() bool { return e.leading.Load() }

func (e *Election) setLeading(v bool) {
	e.leading.Store(v)
	e.Metrics.SetLeader(v)
}

func (e *Election) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// Run waits until this replica acquires the Lease, then runs work with a
// context that ends when ctx ends or leadership is lost. The Lease is
// renewed until work returns and released only then (so a successor never
// overlaps in-flight writes).
//
// A leader that cannot renew in time (the API server unreachable, another
// replica took over) cancels work, waits for it to return — nothing more is
// written — and stands by as a candidate again; work runs anew (so it must
// be restartable) when this replica regains the Lease. Unlike
// controller-runtime the process does not exit: a daemon outlives an API
// server outage without a restart, and a restart would change nothing about
// who may write.
//
// Run returns work's error, or nil once ctx ends.
func (e *Election) Run(ctx context.Context, work func(context.Context) error) error {
	for {
		err := e.term(ctx, work)
		if !errors.Is(err, errLostLeadership) || ctx.Err() != nil {
			return err
		}
		e.log().Warn("lost leadership: stopped reconciling; standing by as a candidate again",
			"lease", e.Namespace+"/"+e.Name, "identity", e.Identity)
	}
}

// term is one candidacy: wait for the Lease, lead until ctx ends, work
// returns or the Lease is lost.
func (e *Election) term(ctx context.Context, work func(context.Context) error) error {
	log := e.log().With("lease", e.Namespace+"/"+e.Name, "identity", e.Identity)
	durations := []*time.Duration{&e.LeaseDuration, &e.RenewDeadline, &e.RetryPeriod}
	for i, def := range []time.Duration{15 * time.Second, 10 * time.Second, 2 * time.Second} {
		if *durations[i] <= 0 {
			*durations[i] = def
		}
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: e.Name, Namespace: e.Namespace},
		Client:     e.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	var (
		started  atomic.Bool
		workDone = make(chan error, 1)
		stopped  = make(chan struct{})
	)
	// The elector runs on its own context, cancelled only once work has
	// returned: ReleaseOnCancel then hands the Lease over at once.
	leCtx, leCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer leCancel()
	el, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            e.Name,
		LeaseDuration:   e.LeaseDuration,
		RenewDeadline:   e.RenewDeadline,
		RetryPeriod:     e.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				started.Store(true)
				e.setLeading(true)
				log.Info("leading: this replica reconciles")
				wctx, cancel := context.WithCancel(ctx)
				defer cancel()
				stop := context.AfterFunc(lctx, cancel) // leadership lost: stop writing
				defer stop()
				workDone <- work(wctx)
			},
			OnStoppedLeading: func() {
				e.setLeading(false)
				close(stopped)
			},
			OnNewLeader: func(id string) {
				if id != e.Identity {
					log.Info("standby: another replica leads", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	e.setLeading(false)
	log.Info("waiting for leadership")
	go el.Run(leCtx)

	select {
	case <-ctx.Done():
		waited := started.Load()
		if waited {
			err = <-workDone // in-flight work ends before the Lease is released
		}
		leCancel()
		<-stopped
		if !waited && started.Load() { // it won the Lease just as ctx ended
			err = <-workDone
		}
		return err
	case err := <-workDone:
		leCancel()
		<-stopped
		return err
	case <-stopped:
		if started.Load() {
			<-workDone // its context was cancelled with the leadership
		}
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("lease %s/%s: %w", e.Namespace, e.Name, errLostLeadership)
	}
}
