package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/source"
	sourcedir "github.com/charter-sh/charter/source/dir"
	"github.com/charter-sh/charter/state"
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // controller-runtime's client logs nothing of interest here
	testenv.Main(m)
}

// fixture is a state directory holding the example chart and a reconciler
// recording into the test's own namespace.
type fixture struct {
	t     *testing.T
	ns    string
	dir   *state.Dir
	kube  kubernetes.Interface
	recs  *record.Store
	recon *Reconciler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := testenv.Get(t)
	ns := env.NewNamespace(t)
	dir, err := state.Init(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	copyTree(t, "../examples/state/charts/hello", filepath.Join(dir.Root(), "charts", "hello"))
	cl, err := NewCluster(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	recs := record.NewStore(cl.Typed, ns, 0)
	return &fixture{t: t, ns: ns, dir: dir, kube: cl.Typed, recs: recs,
		recon: &Reconciler{State: DirDeclarations{Dir: dir}, Records: recs, Cluster: cl, Timeout: 2 * time.Minute}}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// daemon follows the fixture's state folder through the dir source; the
// fixture's reconciler then reads the source set.
func (f *fixture) daemon(t *testing.T, interval time.Duration, allowEmpty bool) *Daemon {
	t.Helper()
	src, err := sourcedir.New(f.dir.Root(), source.Options{CacheDir: t.TempDir(), Debounce: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	set := NewSourceSet([]string{src.String()})
	f.recon.State = set
	return &Daemon{Reconciler: f.recon, Set: set, Interval: interval, Resync: interval, Workers: 2,
		Sources: []Watched{{Source: src, AllowEmpty: allowEmpty}}}
}

// declare writes a release file the way a person (or `svn up`) would.
func (f *fixture) declare(name, values string) {
	f.t.Helper()
	body := "apiVersion: charter.sh/v1\nkind: Release\nname: " + name + "\nnamespace: " + f.ns +
		"\nchart: charts/hello\nvalues:\n" + values
	if err := os.WriteFile(filepath.Join(f.dir.Root(), "releases", name+".yaml"), []byte(body), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func (f *fixture) eventually(what string, timeout time.Duration, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (f *fixture) deployedRevision(name string) int {
	rev, err := f.recs.LastDeployed(context.Background(), name)
	if err != nil {
		return 0
	}
	return rev.Revision
}

func TestDaemonConvergesChangesCorrectsDriftAndUninstalls(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Not allowEmpty: removing the last declaration of a state that keeps
	// its charter.yaml marker is deliberate, and uninstalls.
	d := f.daemon(t, 3*time.Second, false)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// A declaration appears: installed and recorded.
	f.declare("web", "  replicaCount: 1\n  message: one\n")
	f.eventually("web deployed", 90*time.Second, func() bool { return f.deployedRevision("web") == 1 })
	dep, err := f.kube.AppsV1().Deployments(f.ns).Get(ctx, "web-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Status.ReadyReplicas != 1 {
		t.Errorf("ready replicas = %d, want 1 when recorded deployed", dep.Status.ReadyReplicas)
	}

	// The file changes: upgraded to revision 2, the change applied.
	f.declare("web", "  replicaCount: 2\n  message: two\n")
	f.eventually("web revision 2", 90*time.Second, func() bool { return f.deployedRevision("web") == 2 })
	cm, err := f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "web-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["index.html"], "two") {
		t.Errorf("configmap not updated: %q", cm.Data["index.html"])
	}

	// Drift: a hand edit is corrected by the next resync, without a new revision.
	cm.Data["index.html"] = "defaced"
	if _, err := f.kube.CoreV1().ConfigMaps(f.ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventually("drift corrected", 30*time.Second, func() bool {
		cm, err := f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "web-hello", metav1.GetOptions{})
		return err == nil && strings.Contains(cm.Data["index.html"], "two")
	})
	if got := f.deployedRevision("web"); got != 2 {
		t.Errorf("drift correction changed the revision to %d", got)
	}

	// The declaration disappears: objects and records go.
	if err := os.Remove(filepath.Join(f.dir.Root(), "releases", "web.yaml")); err != nil {
		t.Fatal(err)
	}
	f.eventually("web uninstalled", 60*time.Second, func() bool {
		_, err := f.recs.History(ctx, "web")
		return errors.Is(err, record.ErrNotFound)
	})
	if _, err := f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "web-hello", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("configmap after uninstall: %v, want not found", err)
	}

	// SIGTERM (context cancelled): Run returns nil after in-flight work.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v on shutdown", err)
		}
		done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop")
	}
}

func TestPruneRemovesOnlyObjectsNoLongerRendered(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.declare("shop", "  replicaCount: 1\n")
	if _, err := f.recon.Reconcile(ctx, "shop", Options{}); err != nil {
		t.Fatal(err)
	}
	// An object that is not ours must survive.
	if _, err := f.kube.CoreV1().ConfigMaps(f.ns).Create(ctx, cmNamed("not-ours"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The chart stops rendering the Service.
	if err := os.Remove(filepath.Join(f.dir.Root(), "charts", "hello", "templates", "service.yaml")); err != nil {
		t.Fatal(err)
	}
	res, err := f.recon.Reconcile(ctx, "shop", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "upgraded" {
		t.Errorf("action = %s, want upgraded", res.Action)
	}
	if _, err := f.kube.CoreV1().Services(f.ns).Get(ctx, "shop-hello", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("service no longer rendered still exists: %v", err)
	}
	if _, err := f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "not-ours", metav1.GetOptions{}); err != nil {
		t.Errorf("object outside the inventory was touched: %v", err)
	}
	if _, err := f.kube.AppsV1().Deployments(f.ns).Get(ctx, "shop-hello", metav1.GetOptions{}); err != nil {
		t.Errorf("object still rendered was deleted: %v", err)
	}
}

func cmNamed(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func TestChartBesideTheStateIsRendered(t *testing.T) {
	f := newFixture(t)
	beside := filepath.Join(filepath.Dir(f.dir.Root()), "charts", "web")
	copyTree(t, "../examples/state/charts/hello", beside)
	body := "name: side\nnamespace: " + f.ns + "\nchart: ../charts/web\n"
	if err := os.WriteFile(filepath.Join(f.dir.Root(), "releases", "side.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := f.recon.Reconcile(context.Background(), "side", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "installed" {
		t.Errorf("action = %s, want installed", res.Action)
	}
	if _, err := f.kube.AppsV1().Deployments(f.ns).Get(context.Background(), "side-hello", metav1.GetOptions{}); err != nil {
		t.Errorf("deployment of the chart beside the state: %v", err)
	}
}

func TestBrokenDeclarationNeitherStallsOthersNorUninstalls(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.declare("good", "  message: one\n")
	f.declare("typo", "  message: one\n")
	for _, n := range []string{"good", "typo"} {
		if _, err := f.recon.Reconcile(ctx, n, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	// A typo in one file; a change in the other.
	if err := os.WriteFile(filepath.Join(f.dir.Root(), "releases", "typo.yaml"), []byte("name: typo\nchart: [unclosed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.declare("good", "  message: two\n")

	d := &Daemon{Reconciler: f.recon, Workers: 2}
	if err := d.runPass(ctx, pass{}, 2); err != nil {
		t.Fatalf("pass: %v", err)
	}
	if got := f.deployedRevision("good"); got != 2 {
		t.Errorf("good release at revision %d, want 2: a broken file stalled it", got)
	}
	if _, err := f.kube.AppsV1().Deployments(f.ns).Get(ctx, "typo-hello", metav1.GetOptions{}); err != nil {
		t.Errorf("release with a broken declaration was uninstalled: %v", err)
	}
	names, broken, err := f.recon.Names(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(broken) != 1 || !strings.Contains(broken[0].Error(), "typo.yaml") || strings.Join(names, ",") != "good" {
		t.Errorf("names %v broken %v, want good and one error naming typo.yaml", names, broken)
	}
}

func TestSourceThatBecomesEmptyIsRefusedUnlessAllowed(t *testing.T) {
	f := newFixture(t)
	f.declare("only", "  message: one\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	d := f.daemon(t, time.Hour, false)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	f.eventually("only deployed", 90*time.Second, func() bool { return f.deployedRevision("only") == 1 })

	// The checkout is emptied (a wrong svn switch, a wiped folder): nothing
	// left, not even the state's marker.
	for _, p := range []string{"releases/only.yaml", state.MarkerFile} {
		if err := os.Remove(filepath.Join(f.dir.Root(), p)); err != nil {
			t.Fatal(err)
		}
	}
	f.eventually("the empty snapshot refused", 30*time.Second, func() bool {
		st := d.Status()
		return len(st) == 1 && strings.Contains(st[0].Error, "refusing to uninstall")
	})
	// A resync pass still sees the last good snapshot: nothing uninstalled.
	if err := d.runPass(ctx, pass{full: true}, 2); err != nil {
		t.Fatal(err)
	}
	if got := f.deployedRevision("only"); got != 1 {
		t.Errorf("release uninstalled by an empty source (revision %d)", got)
	}
	if _, err := f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "only-hello", metav1.GetOptions{}); err != nil {
		t.Errorf("objects of the release went away: %v", err)
	}
}
