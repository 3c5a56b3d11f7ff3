package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charter-sh/charter/state"
)

func stateWith(t *testing.T, releases ...string) *state.Dir {
	t.Helper()
	d, err := state.Init(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range releases {
		body := "name: " + r + "\nchart: charts/x\n"
		if err := os.WriteFile(filepath.Join(d.Root(), "releases", r+".yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestSourceSetReportsANameDeclaredTwiceForBothAndAppliesNeither(t *testing.T) {
	ctx := context.Background()
	set := NewSourceSet([]string{"git-a", "svn-b"})
	set.Set(&Snapshot{Source: "git-a", Revision: "sha1:1", Dir: stateWith(t, "web", "db")})
	set.Set(&Snapshot{Source: "svn-b", Revision: "r7", Dir: stateWith(t, "web", "cache")})

	rels, errs := set.Scan(ctx)
	var names []string
	for _, r := range rels {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "cache,db" {
		t.Errorf("applied releases %s, want cache,db (web is declared twice)", got)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "git-a") || !strings.Contains(errs[0].Error(), "svn-b") {
		t.Fatalf("errors %v, want one naming both sources", errs)
	}
	var re *state.ReleaseError
	if !errors.As(errs[0], &re) || re.Release != "web" {
		t.Errorf("error is not a ReleaseError for web: %v", errs[0])
	}
	if _, err := set.Lookup(ctx, "web"); err == nil || errors.Is(err, state.ErrNotFound) {
		t.Errorf("Lookup(web) = %v, want the conflict (not found would uninstall it)", err)
	}
	d, err := set.Lookup(ctx, "cache")
	if err != nil || d.Source != "svn-b" || d.Revision != "r7" {
		t.Errorf("Lookup(cache) = %+v, %v; want it from svn-b at r7", d, err)
	}
	if _, err := set.Lookup(ctx, "gone"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Lookup(gone) = %v, want ErrNotFound", err)
	}
}

func TestSourceSetHoldsOnlySourcesItHasRead(t *testing.T) {
	set := NewSourceSet([]string{"git-a", "svn-b"})
	set.Set(&Snapshot{Source: "git-a", Revision: "sha1:1", Dir: stateWith(t)})
	if !set.Holds("git-a") {
		t.Error("a source with a snapshot is not held")
	}
	if set.Holds("svn-b") {
		t.Error("a source never read is held: its releases would be uninstalled")
	}
	if !set.Holds("/old/state/no/longer/followed") {
		t.Error("records from a source no longer followed are not judged: they would never be uninstalled")
	}
}
