package reconcile

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func keyOf(namespace, name string) client.ObjectKey {
	return types.NamespacedName{Namespace: namespace, Name: name}
}

// Object health is polled first after waitFirst, then at intervals that
// double up to waitInterval: most objects are healthy within a few hundred
// milliseconds of being applied (a one-second tick made every release wait
// at least a second), while slow rollouts cost at most one read per object
// per waitInterval.
const (
	waitFirst    = 50 * time.Millisecond
	waitInterval = time.Second
)

// statusless are kinds without a status kstatus looks at: an object of
// one is Current once it exists, so waiting for it would only cost a read.
var statusless = map[schema.GroupKind]bool{
	{Kind: "ConfigMap"}: true, {Kind: "Secret"}: true, {Kind: "ServiceAccount"}: true,
	{Kind: "Endpoints"}: true, {Kind: "LimitRange"}: true,
	{Group: "rbac.authorization.k8s.io", Kind: "Role"}:                              true,
	{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:                       true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                       true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                true,
	{Group: "networking.k8s.io", Kind: "NetworkPolicy"}:                             true,
	{Group: "networking.k8s.io", Kind: "IngressClass"}:                              true,
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:                             true,
	{Group: "storage.k8s.io", Kind: "StorageClass"}:                                 true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:   true,
}

func alwaysReady(o *unstructured.Unstructured) bool {
	return statusless[o.GroupVersionKind().GroupKind()]
}

// waitReady polls every object until kstatus reports it Current, one of them
// Failed, or the timeout passes. It emits "ready" once per object as it
// becomes healthy, so a person can follow the rollout.
func (r *Reconciler) waitReady(parent context.Context, release string, objs []*unstructured.Unstructured) error {
	ctx, cancel := context.WithTimeout(parent, r.timeout())
	defer cancel()

	pending := map[string]*unstructured.Unstructured{}
	last := map[string]string{}
	for _, o := range objs {
		id := ssautils.FmtUnstructured(o)
		if alwaysReady(o) {
			// Nothing to wait for: kstatus reports these Current as soon
			// as they exist, and the apply just succeeded.
			r.emit(Event{Release: release, Object: id, Action: "ready"})
			continue
		}
		pending[id] = o
	}
	delay := waitFirst
	tick := time.NewTimer(delay)
	defer tick.Stop()
	timedOut := func() error {
		var ids []string
		for id := range pending {
			msg := last[id]
			if msg == "" {
				msg = "in progress"
			}
			ids = append(ids, id+" ("+msg+")")
		}
		sort.Strings(ids)
		return fmt.Errorf("timed out after %s waiting for %s", r.timeout(), strings.Join(ids, ", "))
	}
	for {
		for id, o := range pending {
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(o.GroupVersionKind())
			err := r.Cluster.Client.Get(ctx, keyOf(o.GetNamespace(), o.GetName()), live)
			if err != nil {
				// client-go's rate limiter refuses a request that would end
				// after the deadline before the deadline itself passes.
				if ctx.Err() != nil || strings.Contains(err.Error(), "would exceed context deadline") {
					if parent.Err() != nil {
						return parent.Err()
					}
					return timedOut()
				}
				if apierrors.IsNotFound(err) {
					last[id] = "not found"
					continue
				}
				return fmt.Errorf("wait for %s: %w", id, ServerError(r.Cluster.Config.Host, err))
			}
			res, err := status.Compute(live)
			if err != nil {
				return fmt.Errorf("compute status of %s: %w", id, err)
			}
			switch res.Status {
			case status.CurrentStatus:
				delete(pending, id)
				r.emit(Event{Release: release, Object: id, Action: "ready"})
			case status.FailedStatus:
				return fmt.Errorf("%s failed: %s", id, res.Message)
			default:
				if last[id] != res.Message && res.Message != "" {
					r.emit(Event{Release: release, Object: id, Action: "waiting", Message: res.Message})
				}
				last[id] = res.Message
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return parent.Err()
			}
			return timedOut()
		case <-tick.C:
			delay = min(2*delay, waitInterval)
			tick.Reset(delay)
		}
	}
}
