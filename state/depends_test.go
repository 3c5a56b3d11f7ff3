package state

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDependsOn(t *testing.T) {
	r, err := Parse("api.yaml", []byte("name: api\nchart: charts/x\ndependsOn: [db, cache]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"db", "cache"}, r.DependsOn); diff != "" {
		t.Errorf("dependsOn (-want +got):\n%s", diff)
	}
	for name, tc := range map[string]struct{ in, wantErr string }{
		"itself":     {"name: api\nchart: c\ndependsOn: [api]\n", `release "api" depends on itself`},
		"twice":      {"name: api\nchart: c\ndependsOn: [db, db]\n", `"db" is listed twice`},
		"bad name":   {"name: api\nchart: c\ndependsOn: [Bad_Name]\n", "Bad_Name"},
		"not a list": {"name: api\nchart: c\ndependsOn: db\n", "dependsOn must be a list"},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := Parse("api.yaml", []byte(tc.in))
			if err == nil {
				err = r.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}

	// An edit of dependsOn keeps the rest of a hand-written file.
	d, err := Init(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	orig := "# the API\nname: api\nchart: charts/x   # pinned by hand\nvalues:\n  a: 1\n"
	p := filepath.Join(d.Root(), "releases", "api.yaml")
	if err := os.WriteFile(p, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Update(context.Background(), "api", func(r *Release) error { r.DependsOn = []string{"db"}; return nil }); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	for _, want := range []string{"# the API", "# pinned by hand", "dependsOn:", "- db", "a: 1"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("after the edit the file lacks %q:\n%s", want, got)
		}
	}
}
