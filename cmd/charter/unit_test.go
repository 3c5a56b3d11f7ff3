package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestRandomNameIsDNSSafeAndAvoidsTakenNames(t *testing.T) {
	re := regexp.MustCompile(`^[a-z]+-[a-z]+(-[0-9]+)?$`)
	taken := map[string]bool{}
	for i := 0; i < 200; i++ {
		n := randomName(func(s string) bool { return taken[s] })
		if !re.MatchString(n) || len(n) > 53 {
			t.Fatalf("name %q is not adjective-noun DNS-safe", n)
		}
		if taken[n] {
			t.Fatalf("name %q handed out twice", n)
		}
		taken[n] = true
	}
}

func TestLocations(t *testing.T) {
	obj := func(s string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(s), &u.Object); err != nil {
			t.Fatal(err)
		}
		return u
	}
	for name, tc := range map[string]struct {
		obj  string
		want []string
	}{
		"cluster ip": {"kind: Service\nspec: {clusterIP: 10.0.0.7, ports: [{port: 8080}]}", []string{"10.0.0.7:8080"}},
		"headless":   {"kind: Service\nspec: {clusterIP: None, ports: [{port: 80}]}", nil},
		"load balancer": {"kind: Service\nspec: {clusterIP: 10.0.0.8, ports: [{port: 443}]}\nstatus: {loadBalancer: {ingress: [{ip: 1.2.3.4}]}}",
			[]string{"1.2.3.4:443", "10.0.0.8:443"}},
		"ingress tls": {"kind: Ingress\nspec: {tls: [{}], rules: [{host: shop.example.com}]}", []string{"https://shop.example.com"}},
	} {
		t.Run(name, func(t *testing.T) {
			got := locations(obj(tc.obj))
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("locations = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTemplatePrintsRenderedObjectsWithoutACluster(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--kubeconfig", "/nonexistent", "template", "../../examples/state/charts/hello",
		"--name", "demo", "--namespace", "web", "--set", "replicaCount=3"}, strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"kind: Deployment", "name: demo-hello", "namespace: web", "replicas: 3", "charter.sh/release: demo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("template output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "serves") {
		t.Errorf("NOTES.txt was printed as a manifest")
	}
}

func TestErrorsAreOneLineWithNonZeroExit(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"template", "/does/not/exist"}, strings.NewReader(""), &out, &errb)
	if code == 0 {
		t.Fatal("template of a missing chart succeeded")
	}
	if lines := strings.Count(strings.TrimSpace(errb.String()), "\n"); lines != 0 {
		t.Errorf("error spans %d lines: %q", lines+1, errb.String())
	}
	if !strings.Contains(errb.String(), "/does/not/exist") {
		t.Errorf("error does not name the chart: %q", errb.String())
	}
}
