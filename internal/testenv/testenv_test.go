package testenv_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/charter-sh/charter/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m)
}

func TestDeploymentBecomesAvailableAndServiceGetsEndpoints(t *testing.T) {
	env := testenv.Get(t)
	client := newClient(t, env)
	ns := env.NewNamespace(t)
	ctx := t.Context()

	labels := map[string]string{"app": "web"}
	replicas := int32(1)
	_, err := client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "web",
					Image: "registry.invalid/web:1", // never pulled: kwok runs nothing
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	svc, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service: %v", err)
	}

	_, serviceNet, _ := net.ParseCIDR(testenv.ServiceCIDR)
	if ip := net.ParseIP(svc.Spec.ClusterIP); ip == nil || !serviceNet.Contains(ip) {
		t.Errorf("service ClusterIP = %q, want an address in %s", svc.Spec.ClusterIP, testenv.ServiceCIDR)
	}

	eventually(t, 60*time.Second, "deployment web available with 1 ready replica", func(ctx context.Context) (bool, string) {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		available := false
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
				available = true
			}
		}
		return available && d.Status.ReadyReplicas == 1,
			fmt.Sprintf("ready replicas %d, available %t", d.Status.ReadyReplicas, available)
	})

	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("got %d pods, want 1", len(pods.Items))
	}
	pod := pods.Items[0]
	if pod.Spec.NodeName != testenv.FakeNodeName || pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
		t.Errorf("pod %s: node %q, phase %s, IP %q; want scheduled on %s, Running, with an IP",
			pod.Name, pod.Spec.NodeName, pod.Status.Phase, pod.Status.PodIP, testenv.FakeNodeName)
	}

	eventually(t, 30*time.Second, "endpoint slice of service web lists the pod", func(ctx context.Context) (bool, string) {
		slices, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=web",
		})
		if err != nil {
			return false, err.Error()
		}
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if len(e.Addresses) > 0 && e.Addresses[0] == pod.Status.PodIP && e.Conditions.Ready != nil && *e.Conditions.Ready {
					return true, ""
				}
			}
		}
		return false, "no ready endpoint for " + pod.Status.PodIP
	})
}

func TestNewNamespaceIsolatesAndCleansUp(t *testing.T) {
	env := testenv.Get(t)
	client := newClient(t, env)

	var first, second string
	t.Run("first", func(t *testing.T) { first = env.NewNamespace(t) })
	t.Run("second", func(t *testing.T) {
		second = env.NewNamespace(t)
		if second == first {
			t.Fatalf("two tests got the same namespace %s", first)
		}
	})
	// Both subtests have ended: their namespaces are deleted or going away.
	for _, name := range []string{first, second} {
		ns, err := client.CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			t.Fatalf("get namespace %s: %v", name, err)
		}
		if ns.DeletionTimestamp == nil {
			t.Errorf("namespace %s still exists and is not being deleted after its test ended", name)
		}
	}
}

func TestKubeconfigFileGivesAdminAccess(t *testing.T) {
	env := testenv.Get(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		t.Fatalf("load %s: %v", env.Kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	node, err := client.CoreV1().Nodes().Get(t.Context(), testenv.FakeNodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get node with kubeconfig: %v", err)
	}
	if node.Status.Allocatable.Cpu().IsZero() || node.Status.Allocatable.Pods().IsZero() {
		t.Errorf("node allocatable = %v, want cpu and pods", node.Status.Allocatable)
	}
	version, err := client.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if version.Major != "1" || version.GitVersion == "" || version.GitVersion[0] != 'v' || version.GitVersion == "v0.0.0-master+$Format:%H$" {
		t.Errorf("server version = %+v, want a released 1.x version (built with version ldflags)", version)
	}
}

func newClient(t *testing.T, env *testenv.Env) kubernetes.Interface {
	t.Helper()
	client, err := kubernetes.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	return client
}

// eventually polls cond every 200ms until it holds, failing t after timeout
// with cond's last explanation.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(context.Context) (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond(ctx)
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not reached within %s: %s", what, timeout, why)
		case <-tick.C:
		}
	}
}
