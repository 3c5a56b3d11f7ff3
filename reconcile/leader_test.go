package reconcile

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/charter-sh/charter/internal/testenv"
)

// candidate runs an Election whose work marks it active until its context ends.
type candidate struct {
	e      *Election
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	active  bool
	started int
}

func (c *candidate) isActive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active
}

func startCandidate(t *testing.T, ns, identity string) *candidate {
	t.Helper()
	f := newFixtureClient(t)
	c := &candidate{done: make(chan error, 1)}
	c.e = &Election{Client: f, Namespace: ns, Name: "charter-daemon-leader", Identity: identity,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		c.done <- c.e.Run(ctx, func(ctx context.Context) error {
			c.mu.Lock()
			c.active, c.started = true, c.started+1
			c.mu.Unlock()
			<-ctx.Done()
			time.Sleep(300 * time.Millisecond) // in-flight work finishing
			c.mu.Lock()
			c.active = false
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

func newFixtureClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	cl, err := NewCluster(testenv.Get(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cl.Typed
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestElectionRunsWorkOnOneReplicaAndHandsOver(t *testing.T) {
	ns := testenv.Get(t).NewNamespace(t)
	a := startCandidate(t, ns, "replica-a")
	waitFor(t, "replica-a leads", 10*time.Second, a.isActive)
	b := startCandidate(t, ns, "replica-b")

	// b stands by for a while: never both at once.
	for range 20 {
		if b.isActive() || b.e.Leading() {
			t.Fatal("replica-b runs while replica-a leads")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !a.e.Leading() {
		t.Fatal("replica-a does not report leading")
	}

	// a stops: its work ends before it releases, then b takes over well
	// within the lease duration (the lease is released, not left to expire).
	stopped := time.Now()
	a.cancel()
	if err := <-a.done; err != nil {
		t.Fatalf("replica-a stopping: %v", err)
	}
	a.done <- nil // for the cleanup
	if a.isActive() {
		t.Fatal("replica-a's work still runs after Run returned")
	}
	waitFor(t, "replica-b takes over", 3*time.Second, b.isActive)
	t.Logf("handed over in %s", time.Since(stopped).Round(time.Millisecond))
}

// A leader that cannot renew (another holds the Lease, or the API server is
// gone) stops its work and stands by; it leads again, with its work started
// anew, once the Lease is free. The process never exits for it.
func TestElectionStopsWorkWhenTheLeaseIsLostAndLeadsAgain(t *testing.T) {
	ns := testenv.Get(t).NewNamespace(t)
	a := startCandidate(t, ns, "replica-a")
	waitFor(t, "replica-a leads", 10*time.Second, a.isActive)

	// Someone else takes the Lease (a partition healed on the other side)
	// and then never renews it.
	kube := newFixtureClient(t)
	ctx := context.Background()
	waitFor(t, "the Lease stolen", 10*time.Second, func() bool {
		l, err := kube.CoordinationV1().Leases(ns).Get(ctx, "charter-daemon-leader", metav1.GetOptions{})
		if err != nil {
			return false
		}
		other := "intruder"
		now := metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity, l.Spec.RenewTime, l.Spec.AcquireTime = &other, &now, &now
		_, err = kube.CoordinationV1().Leases(ns).Update(ctx, l, metav1.UpdateOptions{})
		return err == nil
	})
	waitFor(t, "replica-a stops its work", 5*time.Second, func() bool { return !a.isActive() && !a.e.Leading() })
	select {
	case err := <-a.done:
		t.Fatalf("Run returned (%v) on a lost Lease: want it to stand by", err)
	default:
	}
	// The intruder never renews: after the lease duration replica-a leads
	// again and its work starts anew.
	waitFor(t, "replica-a leads again", 10*time.Second, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.active && a.started == 2
	})
}
