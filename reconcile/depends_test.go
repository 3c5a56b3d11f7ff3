package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/charter-sh/charter/state"
)

func TestCyclesAndWaves(t *testing.T) {
	rels := []*state.Release{
		{Name: "api", DependsOn: []string{"db", "cache"}},
		{Name: "db"},
		{Name: "cache", DependsOn: []string{"db"}},
		{Name: "x", DependsOn: []string{"y"}},
		{Name: "y", DependsOn: []string{"x"}},
		{Name: "web", DependsOn: []string{"ghost"}},
	}
	c := cycles(rels)
	if len(c) != 2 || c["x"] == "" || c["y"] == "" {
		t.Fatalf("cycles = %v, want x and y", c)
	}
	if !strings.Contains(c["x"], "x → y → x") && !strings.Contains(c["x"], "y → x → y") {
		t.Errorf("cycle of x = %q", c["x"])
	}
	deps := map[string][]string{}
	for _, r := range rels {
		deps[r.Name] = r.DependsOn
	}
	got := waves([]string{"api", "cache", "db", "web"}, func(n string) []string { return deps[n] })
	want := [][]string{{"db", "web"}, {"cache"}, {"api"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("waves (-want +got):\n%s", diff)
	}
}

// A release waits for its dependency; a pass applies both in order; a
// cycle applies neither.
func TestDependsOnOrdersReleases(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(f.dir.Root(), "releases", name+".yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("front", "name: front\nnamespace: "+f.ns+"\nchart: charts/hello\ndependsOn: [back]\n")
	write("back", "name: back\nnamespace: "+f.ns+"\nchart: charts/hello\n")

	// Alone, the dependent waits: nothing applied, nothing recorded.
	_, err := f.recon.Reconcile(ctx, "front", Options{})
	var waiting *WaitingError
	if !errors.As(err, &waiting) || !strings.Contains(err.Error(), `dependency "back"`) {
		t.Fatalf("reconcile of front before back: %v, want waiting for back", err)
	}
	if f.deployedRevision("front") != 0 {
		t.Fatal("front was applied before its dependency")
	}

	// A pass applies back, then front.
	d := &Daemon{Reconciler: f.recon, Workers: 2, Interval: time.Hour}
	if err := d.runPass(ctx, pass{full: true}, 2); err != nil {
		t.Fatal(err)
	}
	if f.deployedRevision("back") != 1 || f.deployedRevision("front") != 1 {
		t.Fatalf("after a pass: back %d front %d, want both deployed", f.deployedRevision("back"), f.deployedRevision("front"))
	}

	// A dependency that is not declared at all is a permanent error.
	write("orphan", "name: orphan\nnamespace: "+f.ns+"\nchart: charts/hello\ndependsOn: [nobody]\n")
	_, err = f.recon.Reconcile(ctx, "orphan", Options{})
	var perm *PermanentError
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), `"nobody", which is not declared`) {
		t.Errorf("undeclared dependency: %v, want a permanent error naming it", err)
	}

	// A cycle: reported for both, neither applied.
	write("x", "name: x\nnamespace: "+f.ns+"\nchart: charts/hello\ndependsOn: [y]\n")
	write("y", "name: y\nnamespace: "+f.ns+"\nchart: charts/hello\ndependsOn: [x]\n")
	names, broken, err := f.recon.Names(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == "x" || n == "y" {
			t.Errorf("release %s on a cycle would be reconciled", n)
		}
	}
	cyc := 0
	for _, b := range broken {
		if strings.Contains(b.Error(), "dependsOn cycle") {
			cyc++
		}
	}
	if cyc != 2 {
		t.Errorf("cycle reported %d times, want for both x and y: %v", cyc, broken)
	}
}
