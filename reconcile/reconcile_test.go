package reconcile

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/state"
)

func TestDesiredDigest(t *testing.T) {
	base := &state.Release{Name: "web", Namespace: "shop", Chart: "charts/hello"}
	vals := map[string]any{"a": 1.0, "b": map[string]any{"c": "x"}}
	d := DesiredDigest(base, "sha256:aa", vals)
	if !strings.HasPrefix(d, "sha256:") {
		t.Fatalf("digest %q lacks the sha256: prefix", d)
	}
	same := map[string]any{"b": map[string]any{"c": "x"}, "a": 1.0}
	if got := DesiredDigest(base, "sha256:aa", same); got != d {
		t.Errorf("map order changed the digest")
	}
	defaultNS := &state.Release{Name: "web", Chart: "charts/hello"}
	if DesiredDigest(defaultNS, "sha256:aa", vals) != DesiredDigest(&state.Release{Name: "web", Namespace: "default", Chart: "charts/hello"}, "sha256:aa", vals) {
		t.Errorf("an empty namespace and \"default\" gave different digests")
	}
	for name, other := range map[string]string{
		"chart digest": DesiredDigest(base, "sha256:bb", vals),
		"values":       DesiredDigest(base, "sha256:aa", map[string]any{"a": 2.0}),
		"namespace":    DesiredDigest(&state.Release{Name: "web", Namespace: "other", Chart: "charts/hello"}, "sha256:aa", vals),
		"chart ref":    DesiredDigest(&state.Release{Name: "web", Namespace: "shop", Chart: "charts/other"}, "sha256:aa", vals),
	} {
		if other == d {
			t.Errorf("a change of %s did not change the digest", name)
		}
	}
}

func TestRefKeyIgnoresVersionButNotGroup(t *testing.T) {
	a := record.ObjectRef{APIVersion: "autoscaling/v1", Kind: "HorizontalPodAutoscaler", Namespace: "n", Name: "x"}
	b := a
	b.APIVersion = "autoscaling/v2"
	if refKey(a) != refKey(b) {
		t.Errorf("a version change made a different object: %s vs %s", refKey(a), refKey(b))
	}
	c := a
	c.APIVersion = "other.io/v1"
	if refKey(a) == refKey(c) {
		t.Errorf("objects of different groups share a key")
	}
	core := record.ObjectRef{APIVersion: "v1", Kind: "ConfigMap", Namespace: "n", Name: "x"}
	if got, want := refKey(core), "|ConfigMap|n|x"; got != want {
		t.Errorf("core key = %q, want %q", got, want)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	objs, err := ParseManifest(`---
apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  namespace: shop
data:
  k: v
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: b
  namespace: shop
`)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseManifest(manifestOf(objs))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(inventoryOf(objs), inventoryOf(again)); diff != "" {
		t.Errorf("inventory changed through a round trip (-want +got):\n%s", diff)
	}
	want := []record.ObjectRef{
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: "shop", Name: "a"},
		{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "b"},
	}
	if diff := cmp.Diff(want, inventoryOf(objs)); diff != "" {
		t.Errorf("inventory (-want +got):\n%s", diff)
	}
}
