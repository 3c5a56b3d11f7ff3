package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Cluster-wide settings of every environment.
const (
	// FakeNodeName is the one Node kwok manages.
	FakeNodeName = "charter-node"
	// ServiceCIDR is the range Service ClusterIPs are allocated from.
	ServiceCIDR = "10.96.0.0/16"

	podCIDR            = "10.244.0.0/16"
	fakeNodeIP         = "10.240.0.2"
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	saIssuer           = "https://kubernetes.default.svc.cluster.local"

	defaultStartTimeout = 3 * time.Minute
	startAttempts       = 3
)

// Options configure Start. The zero value runs in a new temporary folder
// with the tools from ToolsDir.
type Options struct {
	// Dir holds certificates, etcd data, logs, the state file and the
	// kubeconfig. Empty means a new temporary folder. An existing Dir must be
	// empty or hold a stopped environment (which is replaced).
	Dir string
	// Tools is the tools cache folder; empty means ToolsDir().
	Tools string
	// Detach starts the processes in their own sessions, so they keep
	// running after the calling program exits; stop them with Shutdown(Dir)
	// or Env.Stop.
	Detach bool
}

// Env is a running control plane.
type Env struct {
	// Kubeconfig is the path of an admin kubeconfig (group system:masters).
	Kubeconfig string
	// Dir is the environment's folder; Stop removes it.
	Dir string

	host   string
	caPEM  []byte
	admin  keyPair
	detach bool

	mu    sync.Mutex // guards procs, which StartAPIServer changes
	procs []*process

	stopOnce sync.Once
	stopErr  error
}

// errPortInUse marks a start failure caused by a port taken between
// choosing it and binding it; Start then retries on new ports.
var errPortInUse = errors.New("port already in use")

// Start runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler
// and kwok on free loopback ports and returns once the guarantees listed in
// the package documentation hold. ctx bounds the start (3 minutes when it
// has no deadline); it does not bound the life of the processes. On error
// nothing is left running and the folder is removed.
func Start(ctx context.Context, opts Options) (*Env, error) {
	tools := opts.Tools
	if tools == "" {
		tools = ToolsDir()
	}
	if err := CheckTools(tools); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}

	dir := opts.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "charter-testenv-")
		if err != nil {
			return nil, fmt.Errorf("create control-plane folder: %w", err)
		}
		dir = tmp
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("control-plane folder %s: %w", dir, err)
		}
		dir = abs
		if err := claimDir(dir); err != nil {
			return nil, err
		}
	}

	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var env *Env
		env, err = startOnce(ctx, dir, tools, opts.Detach)
		if err == nil {
			return env, nil
		}
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	if rmErr := os.RemoveAll(dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("remove control-plane folder: %w", rmErr))
	}
	return nil, err
}

// claimDir makes dir ready for a new environment: it must not exist, be
// empty, or hold an environment whose processes are all gone.
func claimDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("control-plane folder %s: %w", dir, err)
	case len(entries) == 0:
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err != nil {
		return fmt.Errorf("control-plane folder %s is not empty and has no %s; not using it", dir, StateFile)
	}
	running, err := Running(dir)
	if err != nil {
		return err
	}
	if len(running) > 0 {
		return fmt.Errorf("control plane already running in %s (%s); stop it first", dir, strings.Join(running, ", "))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove stopped control plane in %s: %w", dir, err)
	}
	return nil
}

// starter holds what one start attempt has created so far.
type starter struct {
	dir, tools string
	detach     bool
	procs      []*process
}

func startOnce(ctx context.Context, dir, tools string, detach bool) (env *Env, err error) {
	s := &starter{dir: dir, tools: tools, detach: detach}
	defer func() {
		if err != nil {
			if stopErr := stopProcesses(s.procs, time.Second); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
	}()
	// A failed earlier attempt may have left files behind.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clear control-plane folder: %w", err)
	}
	for _, sub := range []string{"pki", "logs", "kwok-home"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create control-plane folder: %w", err)
		}
	}
	if err := writeState(dir, nil); err != nil {
		return nil, err
	}

	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]
	host := "https://127.0.0.1:" + strconv.Itoa(apiPort)

	certs, err := writePKI(filepath.Join(dir, "pki"), host)
	if err != nil {
		return nil, err
	}

	// etcd
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	etcd, err := s.start(binEtcd,
		"--name=charter",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=charter="+peerURL,
		"--initial-cluster-state=new",
		"--unsafe-no-fsync=true", // test data: durability is not wanted, speed is
		"--log-level=warn",
	)
	if err != nil {
		return nil, err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := s.waitFor(ctx, "etcd health", etcd, func(ctx context.Context) error {
		return httpOK(ctx, plain, etcdURL+"/health")
	}); err != nil {
		return nil, err
	}

	// kube-apiserver
	pki := func(name string) string { return filepath.Join(dir, "pki", name) }
	apiserver, err := s.start(binAPIServer,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// Endpoints may not hold loopback addresses, so the default/kubernetes
		// Service would be re-synced, and fail, every 10 s; nothing needs it.
		"--endpoint-reconciler-type=none",
		"--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(dir, "pki"),
		"--tls-cert-file="+pki("apiserver.crt"),
		"--tls-private-key-file="+pki("apiserver.key"),
		"--client-ca-file="+pki("ca.crt"),
		"--service-account-issuer="+saIssuer,
		"--service-account-key-file="+pki("sa.pub"),
		"--service-account-signing-key-file="+pki("sa.key"),
		"--service-cluster-ip-range="+ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false", // fewer objects to bootstrap; no multi-tenant load here
		"--profiling=false",
	)
	if err != nil {
		return nil, err
	}
	tlsClient, err := adminHTTPClient(certs)
	if err != nil {
		return nil, err
	}
	if err := s.waitFor(ctx, "kube-apiserver /readyz", apiserver, func(ctx context.Context) error {
		return httpOK(ctx, tlsClient, host+"/readyz")
	}); err != nil {
		return nil, err
	}

	// Controllers, scheduler and kwok talk only to the API server.
	kcm, err := s.start(binControllerManager,
		"--kubeconfig="+pki("kube-controller-manager.kubeconfig"),
		"--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+pki("sa.key"),
		"--root-ca-file="+pki("ca.crt"),
		"--cluster-signing-cert-file="+pki("ca.crt"),
		"--cluster-signing-key-file="+pki("ca.key"),
		"--controllers=*",
		"--kube-api-qps=100",
		"--kube-api-burst=200",
	)
	if err != nil {
		return nil, err
	}
	if _, err := s.start(binScheduler,
		"--kubeconfig="+pki("kube-scheduler.kubeconfig"),
		"--secure-port=0",
		"--leader-elect=false",
	); err != nil {
		return nil, err
	}
	stages, err := stageFiles(tools)
	if err != nil {
		return nil, err
	}
	kwokArgs := []string{
		"--kubeconfig=" + pki("kwok.kubeconfig"),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--node-lease-duration-seconds=40",
		"--cidr=" + podCIDR,
		"--node-ip=" + fakeNodeIP,
	}
	for _, f := range stages {
		kwokArgs = append(kwokArgs, "--config="+f)
	}
	// kwok also reads $HOME/.kwok/kwok.yaml; a private HOME keeps a user's
	// own kwok settings out of the tests.
	kwok, err := s.startWithEnv(binKwok, []string{"HOME=" + filepath.Join(dir, "kwok-home")}, kwokArgs...)
	if err != nil {
		return nil, err
	}

	env = &Env{
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
		Dir:        dir,
		host:       host,
		caPEM:      certs.ca.certPEM,
		admin:      certs.admin,
		detach:     detach,
		procs:      s.procs,
	}
	client, err := kubernetes.NewForConfig(env.RESTConfig())
	if err != nil {
		return nil, fmt.Errorf("create admin client: %w", err)
	}
	if err := s.waitFor(ctx, "fake node creation", apiserver, func(ctx context.Context) error {
		return createFakeNode(ctx, client)
	}); err != nil {
		return nil, err
	}
	if err := s.waitFor(ctx, "default service account", kcm, func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return nil, err
	}
	if err := s.waitFor(ctx, "fake node Ready", kwok, func(ctx context.Context) error {
		return nodeSchedulable(ctx, client)
	}); err != nil {
		return nil, err
	}

	if err := writeKubeconfig(env.Kubeconfig, host, certs.ca.certPEM, certs.admin, "charter-admin"); err != nil {
		return nil, err
	}
	return env, nil
}

func (s *starter) start(name string, args ...string) (*process, error) {
	return s.startWithEnv(name, nil, args...)
}

func (s *starter) startWithEnv(name string, env []string, args ...string) (*process, error) {
	// The resolved path is what /proc/<pid>/exe will show, which is how
	// Shutdown recognises the process later.
	binary, err := filepath.EvalSymlinks(filepath.Join(s.tools, name))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if binary, err = filepath.Abs(binary); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p, err := startProcess(component{
		name:    name,
		binary:  binary,
		args:    args,
		env:     env,
		logPath: filepath.Join(s.dir, "logs", name+".log"),
	}, s.detach)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	if err := writeState(s.dir, s.procs); err != nil {
		return nil, err
	}
	return p, nil
}

// waitFor polls check until it succeeds. It fails as soon as any started
// component exits, reporting that component's log, or when ctx ends,
// reporting the log of blame, the component expected to make check pass.
func (s *starter) waitFor(ctx context.Context, what string, blame *process, check func(context.Context) error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		checkCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := check(checkCtx)
		cancel()
		if err == nil {
			return nil
		}
		for _, p := range s.procs {
			if p.exited() {
				tail := logTail(p.logPath, 30)
				exitErr := fmt.Errorf("%s %s while waiting for %s; last lines of its log:\n%s", p.name, p.exitStatus(), what, tail)
				if strings.Contains(tail, "address already in use") {
					return fmt.Errorf("%w: %w", errPortInUse, exitErr)
				}
				return exitErr
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last check: %v); last lines of the %s log:\n%s",
				what, ctx.Err(), err, blame.name, logTail(blame.logPath, 30))
		case <-tick.C:
		}
	}
}

// RESTConfig returns a new admin client configuration for the API server.
func (e *Env) RESTConfig() *rest.Config {
	return &rest.Config{
		Host: e.host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   e.caPEM,
			CertData: e.admin.certPEM,
			KeyData:  e.admin.keyPEM,
		},
		QPS:   100,
		Burst: 200,
	}
}

// Stop kills every component and removes Dir. It is safe to call more than
// once; later calls return the first call's result.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		e.mu.Lock()
		err := stopProcesses(e.procs, stopGrace)
		e.mu.Unlock()
		if rmErr := os.RemoveAll(e.Dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove control-plane folder: %w", rmErr))
		}
		e.stopErr = err
	})
	return e.stopErr
}

// certSet is everything writePKI generated that Start needs later.
type certSet struct {
	ca    *authority
	admin keyPair
}

// writePKI generates the CA, serving, client and service-account keys of an
// environment into dir, plus one kubeconfig per component.
func writePKI(dir, host string) (certSet, error) {
	ca, err := newAuthority("charter-testenv-ca")
	if err != nil {
		return certSet{}, err
	}
	serving, err := ca.issue(certRequest{
		commonName: "kube-apiserver",
		server:     true,
		ips:        []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 96, 0, 1)},
		dnsNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
	})
	if err != nil {
		return certSet{}, err
	}
	admin, err := ca.issue(certRequest{commonName: "charter-admin", organizations: []string{"system:masters"}})
	if err != nil {
		return certSet{}, err
	}
	kcm, err := ca.issue(certRequest{commonName: "system:kube-controller-manager"})
	if err != nil {
		return certSet{}, err
	}
	scheduler, err := ca.issue(certRequest{commonName: "system:kube-scheduler"})
	if err != nil {
		return certSet{}, err
	}
	kwok, err := ca.issue(certRequest{commonName: "kwok", organizations: []string{"system:masters"}})
	if err != nil {
		return certSet{}, err
	}
	saKey, saPub, err := newServiceAccountKey()
	if err != nil {
		return certSet{}, err
	}

	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{"ca.crt", ca.certPEM, 0o644},
		{"ca.key", ca.keyPEM, 0o600},
		{"apiserver.crt", serving.certPEM, 0o644},
		{"apiserver.key", serving.keyPEM, 0o600},
		{"admin.crt", admin.certPEM, 0o644},
		{"admin.key", admin.keyPEM, 0o600},
		{"sa.key", saKey, 0o600},
		{"sa.pub", saPub, 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return certSet{}, fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	kubeconfigs := []struct {
		name string
		cert keyPair
		user string
	}{
		{"kube-controller-manager.kubeconfig", kcm, "kube-controller-manager"},
		{"kube-scheduler.kubeconfig", scheduler, "kube-scheduler"},
		{"kwok.kubeconfig", kwok, "kwok"},
	}
	for _, k := range kubeconfigs {
		if err := writeKubeconfig(filepath.Join(dir, k.name), host, ca.certPEM, k.cert, k.user); err != nil {
			return certSet{}, err
		}
	}
	return certSet{ca: ca, admin: admin}, nil
}

// writeKubeconfig writes a single-context kubeconfig with embedded
// credentials, atomically and readable by the owner only.
func writeKubeconfig(path, host string, caPEM []byte, cert keyPair, user string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["charter"] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: cert.certPEM, ClientKeyData: cert.keyPEM}
	cfg.Contexts["charter"] = &clientcmdapi.Context{Cluster: "charter", AuthInfo: user}
	cfg.CurrentContext = "charter"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encode kubeconfig %s: %w", path, err)
	}
	return writeFileAtomic(path, data, 0o600)
}

func adminHTTPClient(certs certSet) (*http.Client, error) {
	pair, err := tls.X509KeyPair(certs.admin.certPEM, certs.admin.keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load admin certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(certs.ca.cert)
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		},
	}, nil
}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago. Another program may still take one before it is bound; Start
// retries when that happens.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// createFakeNode registers the Node kwok manages, with enough allocatable
// resources for the scheduler to place any test workload on it.
func createFakeNode(ctx context.Context, client kubernetes.Interface) error {
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("128Gi"),
		corev1.ResourcePods:   resource.MustParse("250"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: FakeNodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname": FakeNodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
			Annotations: map[string]string{kwokNodeAnnotation: "fake"},
		},
		Status: corev1.NodeStatus{Capacity: resources, Allocatable: resources},
	}
	_, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// nodeSchedulable succeeds once the fake node is Ready and the node
// lifecycle controller has lifted its not-ready taint.
func nodeSchedulable(ctx context.Context, client kubernetes.Interface) error {
	node, err := client.CoreV1().Nodes().Get(ctx, FakeNodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		return fmt.Errorf("node %s is not Ready", FakeNodeName)
	}
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return fmt.Errorf("node %s still has taint %s", FakeNodeName, t.Key)
		}
	}
	return nil
}
