package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/reconcile"
)

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// get fetches a daemon endpoint: status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startCandidate runs `charter daemon run` without waiting for it to lead;
// stop ends it and returns its exit code.
func (c *cli) startCandidate(t *testing.T, args ...string) (d *daemonRun, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d = &daemonRun{cancel: cancel, done: make(chan int, 1)}
	w := writerFunc(func(p []byte) (int, error) { d.mu.Lock(); defer d.mu.Unlock(); return d.log.Write(p) })
	full := append([]string{"--kubeconfig", c.kubeconfig, "--state", c.state, "--records-namespace", c.ns,
		"daemon", "run", "--log-json", "--cache-dir", t.TempDir(),
		"--leader-elect-lease-duration", "3s", "--leader-elect-renew-deadline", "2s", "--leader-elect-retry-period", "250ms"}, args...)
	go func() { d.done <- run(ctx, full, strings.NewReader(""), w, w) }()
	code, stopped := 0, false
	stop = func() int {
		if !stopped {
			cancel()
			code, stopped = <-d.done, true
		}
		return code
	}
	t.Cleanup(func() {
		if code := stop(); code != 0 {
			t.Errorf("daemon exited %d:\n%s", code, d.logs())
		}
	})
	return d, stop
}

// Two replicas on one state: only the leader reconciles, serves metrics
// saying so, and is the only one ready; when it stops, the other takes over
// within the lease duration and converges the next change.
func TestDaemonLeaderElection(t *testing.T) {
	c := newCLI(t)
	c.ok("init")
	seedState(t, c.state, c.ns, "shop", "v1")
	addrA, addrB := freeAddr(t), freeAddr(t)
	a, stopA := c.startCandidate(t, "--leader-elect-identity", "replica-a", "--listen", addrA, "--interval", "1s", "--pprof")
	c.eventually(t, "replica-a leads", 30*time.Second, func() bool { return strings.Contains(a.logs(), "daemon started") })
	b, _ := c.startCandidate(t, "--leader-elect-identity", "replica-b", "--listen", addrB, "--interval", "1s")
	c.eventually(t, "replica-b stands by", 30*time.Second, func() bool { return strings.Contains(b.logs(), "standby") })
	c.eventually(t, "shop applied", 60*time.Second, func() bool { return strings.Contains(c.message("shop"), "v1") })

	if code, body := get(t, "http://"+addrB+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "standby") {
		t.Errorf("standby /readyz = %d %q, want 503 standby", code, body)
	}
	if code, body := get(t, "http://"+addrB+"/healthz"); code != http.StatusOK {
		t.Errorf("standby /healthz = %d %q, want 200", code, body)
	}
	c.eventually(t, "the leader ready", 10*time.Second, func() bool { code, _ := get(t, "http://"+addrA+"/readyz"); return code == http.StatusOK })
	c.eventually(t, "the leader's metrics", 10*time.Second, func() bool {
		_, body := get(t, "http://"+addrA+"/metrics")
		return strings.Contains(body, "charter_daemon_leader 1") &&
			strings.Contains(body, `charter_reconciles_total{action="installed",result="success"} 1`) &&
			strings.Contains(body, `charter_releases{status="deployed"} 1`) &&
			strings.Contains(body, `charter_api_requests_total{code="201",method="POST"}`)
	})
	if _, body := get(t, "http://"+addrB+"/metrics"); !strings.Contains(body, "charter_daemon_leader 0") || strings.Contains(body, "charter_reconciles_total{") {
		t.Errorf("standby metrics: want leader 0 and no reconciles:\n%s", grepLines(body, "charter_"))
	}
	if code, body := get(t, "http://"+addrA+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("--pprof: /debug/pprof/ = %d", code)
	}
	if code, _ := get(t, "http://"+addrB+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("without --pprof: /debug/pprof/ = %d, want 404", code)
	}
	if strings.Contains(b.logs(), `"msg":"reconciled"`) || strings.Contains(b.logs(), "daemon started") {
		t.Fatalf("the standby replica reconciled:\n%s", b.logs())
	}

	// The leader stops (SIGTERM): exit 0, and replica-b takes over.
	stopped := time.Now()
	if code := stopA(); code != 0 {
		t.Fatalf("replica-a exited %d", code)
	}
	c.eventually(t, "replica-b takes over", 5*time.Second, func() bool { return strings.Contains(b.logs(), "daemon started") })
	t.Logf("taken over in %s", time.Since(stopped).Round(time.Millisecond))
	writeRelease(t, c.state, c.ns, "shop", "v2")
	c.eventually(t, "replica-b converges the change", 60*time.Second, func() bool { return strings.Contains(c.message("shop"), "v2") })
	c.eventually(t, "replica-b ready", 10*time.Second, func() bool { code, _ := get(t, "http://"+addrB+"/readyz"); return code == http.StatusOK })
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestDaemonOpsFlagsRejectBadInput(t *testing.T) {
	c := newCLI(t)
	tests := map[string]struct {
		args []string
		want string
	}{
		"shard out of range":          {[]string{"--shard", "2/2"}, "--shard"},
		"shard not numbers":           {[]string{"--shard", "one/two"}, "INDEX/COUNT"},
		"pprof without listen":        {[]string{"--pprof"}, "--pprof needs --listen"},
		"lease shorter than deadline": {[]string{"--leader-elect-lease-duration", "5s", "--leader-elect-renew-deadline", "5s"}, "--leader-elect-lease-duration"},
		"deadline shorter than retry": {[]string{"--leader-elect-renew-deadline", "1s", "--leader-elect-retry-period", "1s"}, "--leader-elect-renew-deadline"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			errOut := c.fails(append([]string{"daemon", "run"}, tc.args...)...)
			mustContain(t, errOut, tc.want)
		})
	}
}

// Install runs replicas behind leader election, recreated on upgrade (a
// standby replica is never ready), scraped by Prometheus.
func TestDaemonInstallReplicasAndScraping(t *testing.T) {
	c := newCLI(t)
	out := c.ok("daemon", "install", "--namespace", "charter-ops-dry", "--source", testSource, "--replicas", "3", "--dry-run")
	var dep, svc map[string]any
	for _, doc := range strings.Split(out, "---\n")[1:] {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("dry-run output is not YAML: %v", err)
		}
		switch m["kind"] {
		case "Deployment":
			dep = m
		case "Service":
			svc = m
		}
	}
	if dep == nil || svc == nil {
		t.Fatalf("dry-run printed no Deployment or Service:\n%s", out)
	}
	field := func(obj map[string]any, path ...string) any {
		v, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
		return v
	}
	if got := field(dep, "spec", "replicas"); fmt.Sprint(got) != "3" {
		t.Errorf("replicas = %v, want 3", got)
	}
	if got := field(dep, "spec", "strategy", "type"); got != "Recreate" {
		t.Errorf("strategy = %v, want Recreate", got)
	}
	for name, obj := range map[string]map[string]any{
		"pod template": field(dep, "spec", "template").(map[string]any),
		"Service":      svc,
	} {
		ann, _ := field(obj, "metadata", "annotations").(map[string]any)
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "9292" || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s annotations = %v, want Prometheus scraping of :9292/metrics", name, ann)
		}
	}
	args := fmt.Sprint(field(dep, "spec", "template", "spec", "containers"))
	mustContain(t, args, "--listen :9292")

	errOut := c.fails("daemon", "install", "--source", testSource, "--replicas", "0", "--dry-run")
	mustContain(t, errOut, "--replicas 0")
}

// The API server goes away for longer than the leader may go without
// renewing: the daemon stops reconciling but stays up, leads again once the
// server is back, and converges what changed meanwhile.
func TestDaemonOutlivesLostLeadership(t *testing.T) {
	env := testenv.New(t) // its own control plane: this test stops the API server
	kube, err := kubernetes.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	c := &cli{t: t, kubeconfig: env.Kubeconfig, state: filepath.Join(t.TempDir(), "state"), ns: env.NewNamespace(t), kube: kube}
	c.ok("init")
	seedState(t, c.state, c.ns, "shop", "v1")
	d, _ := c.startCandidate(t, "--interval", "1s")
	c.eventually(t, "shop applied", 60*time.Second, func() bool { return strings.Contains(c.message("shop"), "v1") })

	if err := env.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	c.eventually(t, "the leader stands down", 20*time.Second, func() bool { return strings.Contains(d.logs(), "lost leadership") })
	writeRelease(t, c.state, c.ns, "shop", "v2") // changed while nobody may write
	select {
	case code := <-d.done:
		d.done <- code
		t.Fatalf("the daemon exited (%d) on lost leadership:\n%s", code, d.logs())
	case <-time.After(2 * time.Second):
	}
	if err := env.StartAPIServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.eventually(t, "the change converged after the outage", 90*time.Second, func() bool { return strings.Contains(c.message("shop"), "v2") })
	if n := strings.Count(d.logs(), "daemon started"); n != 2 {
		t.Errorf("daemon started %d times, want 2 (before and after the outage)", n)
	}
}

// Sharded daemons renew one heartbeat each: status is only as fresh as the
// stalest shard.
func TestDaemonStatusWatchesEveryShardHeartbeat(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	for i := range 2 {
		hb := &reconcile.Heartbeat{Client: c.kube, Namespace: c.ns, Identity: fmt.Sprintf("shard-%d", i), Shard: reconcile.Shard{Index: i, Count: 2}}
		if err := hb.Renew(ctx, []string{testSource}, reconcile.HeartbeatStatus{LastReconcile: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	status := func() daemonStatusReport {
		t.Helper()
		out, _, _ := c.run("daemon", "status", "--namespace", c.ns, "-o", "json")
		var rep daemonStatusReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("status -o json: %v\n%s", err, out)
		}
		return rep
	}
	if rep := status(); strings.Contains(strings.Join(rep.Problems, "\n"), "heartbeat") || rep.HeartbeatAge == "" {
		t.Errorf("fresh shard heartbeats reported as a problem: %+v", rep)
	}

	// Shard 1 stops beating.
	leases := c.kube.CoordinationV1().Leases(c.ns)
	l, err := leases.Get(ctx, "charter-daemon-1-of-2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old := metav1.NewMicroTime(time.Now().Add(-time.Minute))
	l.Spec.RenewTime = &old
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rep := status()
	if rep.OK || rep.Holder != "shard-1" || !strings.Contains(strings.Join(rep.Problems, "\n"), "no recent heartbeat") {
		t.Errorf("a stale shard is not reported: %+v", rep)
	}
}
