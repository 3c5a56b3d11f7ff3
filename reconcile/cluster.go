package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/charter-sh/charter/render"
)

// FieldManager is the server-side apply field manager charter writes with.
const FieldManager = "charter"

// Cluster bundles the clients charter needs against one API server: a
// controller-runtime client for typed/unstructured reads, the server-side
// apply manager, a typed clientset (records, namespaces) and discovery.
type Cluster struct {
	Config  *rest.Config
	Client  client.Client
	Typed   kubernetes.Interface
	Manager *ssa.ResourceManager

	discovery discovery.DiscoveryInterface
	capsMu    sync.Mutex
	capsOK    bool // caps were read; a failure is not kept
	caps      Capabilities
	capsErr   error
}

// Capabilities describes the target API server for rendering (.Capabilities).
type Capabilities struct {
	KubeVersion string
	APIVersions []string
	// ClusterScoped are the kinds the server serves without a namespace,
	// so rendering never puts a namespace on them.
	ClusterScoped []schema.GroupKind
}

// RenderOptions fills the capability fields of render options.
func (c Capabilities) RenderOptions(o render.Options) render.Options {
	o.KubeVersion, o.APIVersions, o.ClusterScoped = c.KubeVersion, c.APIVersions, c.ClusterScoped
	return o
}

// Client-side rate limit defaults. The API server protects itself with
// priority and fairness; these only keep one charter process from
// monopolising it. Helm and kubectl build a client per resource mapping and
// are in effect not rate limited at all.
const (
	DefaultQPS   = 200
	DefaultBurst = 400
)

// NewCluster connects the clients to the API server in cfg. It does not
// contact the server until first use.
func NewCluster(cfg *rest.Config) (*Cluster, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS = DefaultQPS
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		// One token bucket for every client below, so QPS and Burst bound
		// the whole process, not each client separately.
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("create HTTP client for %s: %w", cfg.Host, err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("create REST mapper for %s: %w", cfg.Host, err)
	}
	c, err := client.New(cfg, client.Options{HTTPClient: hc, Mapper: mapper})
	if err != nil {
		return nil, fmt.Errorf("create client for %s: %w", cfg.Host, err)
	}
	typed, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("create clientset for %s: %w", cfg.Host, err)
	}
	poller := polling.NewStatusPoller(c, mapper, polling.Options{})
	mgr := ssa.NewResourceManager(c, poller, ssa.Owner{Field: FieldManager, Group: "charter.sh"})
	mgr.SetConcurrency(8)
	return &Cluster{Config: cfg, Client: c, Typed: typed, Manager: mgr, discovery: typed.Discovery()}, nil
}

// Ping checks that the API server answers, naming it when it does not.
func (c *Cluster) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := c.Typed.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return ServerError(c.Config.Host, err)
	}
	return nil
}

// ServerError turns a connection failure into one line naming the server.
// Errors the server itself returned are passed through unchanged.
func ServerError(host string, err error) error {
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return err
	}
	var netErr net.Error
	var urlErr *url.Error
	if errors.As(err, &urlErr) || errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("API server %s unreachable: %w", host, Unwrapped(err))
	}
	return err
}

// Unwrapped returns the innermost error, which for network failures is the
// readable part ("connection refused").
func Unwrapped(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// Capabilities asks the server for its version and API versions on first
// use. A failure is not kept: the next call asks again, so an API server
// that was unreachable for a while does not fail every later render.
func (c *Cluster) Capabilities() (Capabilities, error) {
	c.capsMu.Lock()
	defer c.capsMu.Unlock()
	if c.capsOK {
		return c.caps, nil
	}
	c.caps, c.capsErr = Capabilities{}, nil
	func() {
		v, err := c.discovery.ServerVersion()
		if err != nil {
			c.capsErr = ServerError(c.Config.Host, err)
			return
		}
		c.caps.KubeVersion = v.GitVersion
		_, lists, err := c.discovery.ServerGroupsAndResources()
		if err != nil && len(lists) == 0 {
			c.capsErr = ServerError(c.Config.Host, err)
			return
		}
		seen := map[string]bool{}
		scoped := map[schema.GroupKind]bool{}
		for _, l := range lists {
			gv, _ := schema.ParseGroupVersion(l.GroupVersion)
			if !seen[l.GroupVersion] {
				seen[l.GroupVersion] = true
				c.caps.APIVersions = append(c.caps.APIVersions, l.GroupVersion)
			}
			for _, r := range l.APIResources {
				if !r.Namespaced && !strings.Contains(r.Name, "/") {
					gk := schema.GroupKind{Group: gv.Group, Kind: r.Kind}
					if !scoped[gk] {
						scoped[gk] = true
						c.caps.ClusterScoped = append(c.caps.ClusterScoped, gk)
					}
				}
				gvk := l.GroupVersion + "/" + r.Kind
				if !seen[gvk] {
					seen[gvk] = true
					c.caps.APIVersions = append(c.caps.APIVersions, gvk)
				}
			}
		}
		sort.Strings(c.caps.APIVersions)
	}()
	c.capsOK = c.capsErr == nil
	return c.caps, c.capsErr
}
